"""asyncio DLMS/COSEM server: logical devices served over the IEC 62056-47 wrapper on TCP.

Each TCP connection gets its own task and its own
:class:`~smmc.dlms.connection.ServerConnection`, created from the first frame's wPorts
(source = client SAP, destination = logical device). Client SAPs differ in mechanism,
secrets, keys, security policy and access rights (the latter from the logical device and
its Association LN objects). A peer that misbehaves — bad framing, garbage APDUs, replayed
counters, a second SAP on the same socket, silence beyond ``idle_timeout`` — gets the
ExceptionResponse the state machine queued, if any, and its socket closed; the server keeps
serving everyone else.

The server's own invocation counter and the guard over the clients' counters live per
logical device, across connections, so a restarted association can never reuse a counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from smmc.dlms.connection import (
    InvocationCounter,
    ServerAssociation,
    ServerConnection,
    ServerEvent,
)
from smmc.dlms.cosem.base import LogicalDevice
from smmc.dlms.errors import DecodeError, DlmsError, DlmsTimeout, EncodeError
from smmc.dlms.framing.hdlc import (
    ApduReceived,
    Disconnected,
    HdlcConnection,
    HdlcDecoder,
    HdlcFrame,
)
from smmc.dlms.framing.wrapper import WrapperDecoder, WrapperFrame
from smmc.dlms.security import InvocationCounterGuard

__all__ = ["DlmsServer", "ServedDevice"]

_LOG = logging.getLogger(__name__)
_READ_SIZE = 4096
_MAX_HDLC_PREAMBLE = 4096  # bytes we wait through for the first complete HDLC frame


class _Encodable(Protocol):
    """An APDU value (e.g. a DataNotification)."""

    def to_bytes(self) -> bytes: ...


@dataclass
class ServedDevice:
    """One logical device, its client SAPs and its suite 0 identity.

    ``invocation_counter`` is the device's sending counter, shared by all its connections
    (its ``on_change`` hook persists it), as ``guard`` (with its own hook) keeps the
    clients' counters.
    """

    device: LogicalDevice
    associations: Mapping[int, ServerAssociation]
    system_title: bytes = b"SMM\x00\x00\x00\x00\x00"
    invocation_counter: InvocationCounter = field(default_factory=InvocationCounter)
    guard: InvocationCounterGuard = field(default_factory=InvocationCounterGuard)

    def __post_init__(self) -> None:
        if len(self.system_title) != 8:
            raise EncodeError("system title must be 8 bytes")


class DlmsServer:
    """Serve logical devices (keyed by their wrapper wPort / logical address) over TCP.

    ``async with DlmsServer({1: ServedDevice(...)}, port=0) as server:`` listens on an
    ephemeral port exposed as ``server.port``. ``on_event`` hears every association
    established, refused and released (for logs and the simulator's bookkeeping).
    """

    def __init__(
        self,
        devices: Mapping[int, ServedDevice],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        idle_timeout: float | None = 120.0,
        transport: Literal["wrapper", "hdlc"] = "wrapper",
        on_event: Callable[[ServerEvent], None] | None = None,
    ) -> None:
        if not devices:
            raise ValueError("a server needs at least one logical device")
        self.devices = dict(devices)
        self.host = host
        self._requested_port = port
        self.idle_timeout = idle_timeout
        self.transport = transport
        self.on_event = on_event
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.errors: list[DlmsError] = []

    async def __aenter__(self) -> DlmsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Listen."""
        if self._server is not None:
            raise RuntimeError("the server is already started")
        self._server = await asyncio.start_server(self._accept, self.host, self._requested_port)

    async def stop(self) -> None:
        """Stop listening and end every connection task."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def push(
        self,
        notification: _Encodable,
        host: str,
        port: int,
        *,
        logical_address: int = 1,
        destination_sap: int = 1,
        timeout: float = 10.0,
    ) -> None:
        """Send one notification (e.g. a DataNotification) to a head-end, wrapper framed."""
        frame = WrapperFrame(1, logical_address, destination_sap, notification.to_bytes())
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except TimeoutError:
            raise DlmsTimeout(f"no TCP connection to {host}:{port} for the push") from None
        try:
            writer.write(frame.to_bytes())
            await asyncio.wait_for(writer.drain(), timeout)
        except TimeoutError:
            raise DlmsTimeout(f"push to {host}:{port} not accepted in time") from None
        finally:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    # -- connections -----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            if self.transport == "hdlc":
                await self._serve_hdlc(reader, writer)
            else:
                await self._serve(reader, writer)
        except DlmsError as exc:
            _LOG.info("DLMS peer %s dropped: %s", writer.get_extra_info("peername"), exc)
            self.errors.append(exc)
        except (OSError, ConnectionError) as exc:
            _LOG.info("DLMS peer %s transport error: %s", writer.get_extra_info("peername"), exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        try:
            # ``asyncio.timeout``, not ``wait_for``: no task per read (Python 3.11).
            async with asyncio.timeout(self.idle_timeout):
                return await reader.read(_READ_SIZE)
        except TimeoutError:
            raise DlmsTimeout(f"client silent for {self.idle_timeout} s") from None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = WrapperDecoder()
        connection: ServerConnection | None = None
        logical_address = 0
        try:
            while data := await self._read(reader):
                for frame in decoder.feed(data):
                    if connection is None:
                        logical_address = frame.destination_wport
                        connection = self._open(frame)
                    elif (
                        frame.source_wport != connection.client_sap
                        or frame.destination_wport != logical_address
                    ):
                        raise DecodeError(
                            f"frame for wPorts {frame.source_wport}->{frame.destination_wport} "
                            f"on an association of {connection.client_sap}->{logical_address}"
                        )
                    try:
                        self._event(connection.receive_apdu(frame.payload))
                    finally:
                        sap = connection.client_sap
                        writer.write(
                            b"".join(
                                WrapperFrame(1, logical_address, sap, apdu).to_bytes()
                                for apdu in connection.data_to_send()
                            )
                        )
                        await writer.drain()
        finally:
            if connection is not None:
                connection.abort()

    async def _serve_hdlc(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """HDLC over TCP: the first frame's addresses pick the client SAP and the device."""
        preamble = bytearray()
        first: HdlcFrame | None = None
        while first is None:
            data = await self._read(reader)
            if not data:
                return
            preamble += data
            frames = HdlcDecoder().feed(bytes(preamble))
            if frames:
                first = frames[0]
            elif len(preamble) > _MAX_HDLC_PREAMBLE:
                raise DecodeError("no HDLC frame in the first bytes of the stream")
        link = HdlcConnection(
            client=False, client_address=first.source, server_address=first.destination
        )
        connection = self._connection(first.destination.upper, first.source.upper)
        data = bytes(preamble)
        try:
            while data:
                for event in link.receive_data(data):
                    if isinstance(event, ApduReceived):
                        try:
                            self._event(connection.receive_apdu(event.apdu))
                        finally:
                            for apdu in connection.data_to_send():
                                link.send_apdu(apdu)
                            writer.write(link.data_to_send())
                            await writer.drain()
                    elif isinstance(event, Disconnected):
                        writer.write(link.data_to_send())
                        await writer.drain()
                        return
                writer.write(link.data_to_send())
                await writer.drain()
                data = await self._read(reader)
        finally:
            connection.abort()

    def _event(self, event: ServerEvent | None) -> None:
        if event is not None and self.on_event is not None:
            self.on_event(event)

    def _open(self, frame: WrapperFrame) -> ServerConnection:
        return self._connection(frame.destination_wport, frame.source_wport)

    def _connection(self, logical_address: int, client_sap: int) -> ServerConnection:
        served = self.devices.get(logical_address)
        if served is None:
            raise DecodeError(f"no logical device at address {logical_address}")
        return ServerConnection(
            served.device,
            served.associations,
            client_sap,
            served.system_title,
            guard=served.guard,
            invocation_counter=served.invocation_counter,
        )
