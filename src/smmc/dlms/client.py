"""asyncio DLMS/COSEM client over TCP: IEC 62056-47 wrapper, or HDLC over TCP.

``async with DlmsClient.connect(host, port, settings) as client:`` opens the socket,
associates (lowest, LLS or HLS-GMAC, ciphered or not, as the settings say) and releases the
association on exit. Every method sends one confirmed request and waits for its answer;
block transfers are handled inside :class:`~smmc.dlms.connection.ClientConnection`.

A server that accepts successive associations on one connection (a concentrator does) may
be spoken to over a :class:`Link` the caller keeps: ``DlmsClient.over(link, settings)``
associates over it and leaves it open after a clean release, ready for the next one, and
closes it after anything else.

Errors are the :mod:`smmc.dlms.errors` hierarchy: ``AssociationRejected``, ``AccessDenied``
(read-write-denied), ``ServiceError`` (any other data-access-result or action result, with
its code), ``DecodeError``, ``CipheringError``/``ReplayError``, ``DlmsTimeout`` and
``ProtocolError``. After any of them but the per-request ``AccessDenied``/``ServiceError``
the association is gone and the client is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import select
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import NoReturn, Protocol, TypeVar, cast

from smmc.dlms.apdu import (
    ActionResult,
    CaptureObjectDefinition,
    DataAccessResult,
    RangeDescriptor,
    SelectiveAccessDescriptor,
)
from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.connection import (
    ActionDone,
    AssociationAccepted,
    ClientConnection,
    ClientEvent,
    ClientSettings,
    GetListResult,
    GetResult,
    NotificationReceived,
    ReleaseAccepted,
    SecurityPolicy,
    SetResult,
    State,
)
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import (
    AccessDenied,
    DlmsError,
    DlmsTimeout,
    ProtocolError,
    ServiceError,
)
from smmc.dlms.framing.hdlc import (
    ApduReceived,
    Connected,
    ConnectionRejected,
    Disconnected,
    HdlcAddress,
    HdlcConnection,
    HdlcState,
)
from smmc.dlms.framing.wrapper import WrapperDecoder, WrapperFrame
from smmc.dlms.obis import Obis
from smmc.dlms.security import InvocationCounterGuard

__all__ = ["ClientSettings", "DlmsClient", "Link", "SecurityPolicy"]

Row = tuple[Data, ...]
AttributeRef = tuple[int, Obis, int] | tuple[int, Obis, int, SelectiveAccessDescriptor | None]
T = TypeVar("T")


class _Transport(Protocol):
    """Carries whole APDUs to and from the server."""

    async def open(self) -> None: ...

    async def send(self, apdu: bytes) -> None: ...

    async def receive(self) -> bytes: ...

    async def finish(self) -> None:
        """End the link layer's own connection (HDLC DISC); the socket stays open."""
        ...


class _Stream(asyncio.Protocol):
    """The TCP socket as an asyncio protocol: what arrives is buffered until read, one
    future wakes the reader (no StreamReader/StreamWriter layers in between).

    ``deadline`` (event-loop time) bounds every wait for the peer: past it the wait raises
    `TimeoutError`. A timer is armed only when a read or a write has to wait, not per
    request as ``asyncio.timeout`` would."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._ended = False
        self._error: Exception | None = None
        self.deadline: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._error = exc
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self, future: asyncio.Future[None]) -> None:
        if self.deadline is None:
            await future
            return
        timer = asyncio.get_running_loop().call_at(self.deadline, _time_out, future)
        try:
            await future
        finally:
            timer.cancel()

    async def read(self) -> bytes:
        if not self._buffer and not self._ended:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._wait(self._waiter)
            finally:
                self._waiter = None
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        if self._error is not None:
            raise self._error
        raise ProtocolError("the server closed the connection")

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self._transport is None or self._transport.is_closing():
            raise ProtocolError("the connection is closed")
        self._transport.write(data)
        if self._writable is not None:
            await self._wait(self._writable)

    @property
    def closed(self) -> bool:
        """Closed by either side, as far as the event loop has seen."""
        transport = self._transport
        return transport is None or transport.is_closing() or self._ended

    @property
    def idle(self) -> bool:
        """Open, nothing unread, and the peer has not closed or reset it — checked on the
        socket itself too, so an end the event loop has not read yet counts."""
        transport = self._transport
        if transport is None or self.closed or self._buffer:
            return False
        poll = select.poll()
        poll.register(transport.get_extra_info("socket").fileno(), select.POLLIN)
        return not poll.poll(0)  # readable while idle: an end, a reset or unasked-for bytes

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _time_out(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class Link:
    """One TCP connection to a DLMS server, kept by the caller across successive
    associations (see :meth:`DlmsClient.over`)."""

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream
        self.associations = 0  # carried so far

    @classmethod
    async def open(cls, host: str, port: int, timeout: float) -> Link:
        """Connect; `DlmsTimeout` after ``timeout`` seconds, `OSError` when refused."""
        try:
            async with asyncio.timeout(timeout):
                _, stream = await asyncio.get_running_loop().create_connection(_Stream, host, port)
        except TimeoutError:
            raise DlmsTimeout(f"no TCP connection to {host}:{port}") from None
        return cls(stream)

    @property
    def idle(self) -> bool:
        """Fit to carry a new association: open, quiet, not closed by the server."""
        return self._stream.idle

    @property
    def closed(self) -> bool:
        """Closed by either side (cheaper than `idle`: no look at the socket)."""
        return self._stream.closed

    def close(self) -> None:
        self._stream.close()


class _WrapperTransport:
    """IEC 62056-47: each APDU in one wrapper frame addressed by wPorts (SAPs)."""

    def __init__(self, stream: _Stream, client_sap: int, server_address: int) -> None:
        self._stream = stream
        self._client = client_sap
        self._server = server_address
        self._decoder = WrapperDecoder()
        self._frames: deque[WrapperFrame] = deque()

    async def open(self) -> None:
        return None

    async def send(self, apdu: bytes) -> None:
        await self._stream.write(WrapperFrame(1, self._client, self._server, apdu).to_bytes())

    async def receive(self) -> bytes:
        while not self._frames:
            self._frames.extend(self._decoder.feed(await self._stream.read()))
        frame = self._frames.popleft()
        if frame.source_wport != self._server or frame.destination_wport != self._client:
            raise ProtocolError(
                f"wrapper frame from wPort {frame.source_wport} to {frame.destination_wport}"
            )
        return frame.payload

    async def finish(self) -> None:
        return None


class _HdlcTransport:
    """HDLC over TCP: SNRM/UA to open, I-frames (segmented) for APDUs, DISC to close."""

    def __init__(self, stream: _Stream, settings: ClientSettings) -> None:
        self._stream = stream
        self._link = HdlcConnection(
            client=True,
            client_address=settings.client_sap,
            server_address=HdlcAddress.server(
                settings.server_logical_address, settings.server_physical_address
            ),
        )
        self._apdus: deque[bytes] = deque()

    async def _pump(self) -> None:
        """Read once, feed the link, answer (RR, next segment) and keep complete APDUs."""
        for event in self._link.receive_data(await self._stream.read()):
            if isinstance(event, ApduReceived):
                self._apdus.append(event.apdu)
            elif isinstance(event, ConnectionRejected | Disconnected):
                raise ProtocolError(f"HDLC link refused or dropped: {type(event).__name__}")
        await self._stream.write(self._link.data_to_send())

    async def open(self) -> None:
        self._link.connect()
        await self._stream.write(self._link.data_to_send())
        while self._link.state is not HdlcState.CONNECTED:
            events = self._link.receive_data(await self._stream.read())
            if any(isinstance(e, ConnectionRejected) for e in events):
                raise ProtocolError("the server refused the HDLC connection (DM)")
            if any(isinstance(e, Connected) for e in events):
                break

    async def send(self, apdu: bytes) -> None:
        self._link.send_apdu(apdu)
        await self._stream.write(self._link.data_to_send())
        while self._link.sending:
            await self._pump()

    async def receive(self) -> bytes:
        while not self._apdus:
            await self._pump()
        return self._apdus.popleft()

    async def finish(self) -> None:
        if self._link.state is HdlcState.CONNECTED:
            self._link.disconnect()
            await self._stream.write(self._link.data_to_send())


class DlmsClient:
    """One association with one logical device; use :meth:`connect`."""

    def __init__(
        self,
        stream: _Stream,
        transport: _Transport,
        connection: ClientConnection,
        settings: ClientSettings,
    ) -> None:
        self._stream = stream
        self._transport = transport
        self._connection = connection
        self.settings = settings
        self._lock = asyncio.Lock()
        self.notifications: list[bytes] = []
        self.accepted: AssociationAccepted | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        host: str,
        port: int,
        settings: ClientSettings,
        *,
        guard: InvocationCounterGuard | None = None,
        on_invocation_counter: Callable[[int], None] | None = None,
    ) -> AsyncIterator[DlmsClient]:
        """Open, associate, yield the client, release and close.

        ``guard`` holds the server's last invocation counters (restore it from storage);
        ``on_invocation_counter`` receives our next counter each time one is used.
        """
        link = await Link.open(host, port, settings.connect_timeout)
        async with cls.over(
            link, settings, guard=guard, on_invocation_counter=on_invocation_counter, keep=False
        ) as client:
            yield client

    @classmethod
    @contextlib.asynccontextmanager
    async def over(
        cls,
        link: Link,
        settings: ClientSettings,
        *,
        guard: InvocationCounterGuard | None = None,
        on_invocation_counter: Callable[[int], None] | None = None,
        keep: bool = True,
    ) -> AsyncIterator[DlmsClient]:
        """Associate over an open ``link``, yield the client and release, as `connect`.

        With ``keep``, after a clean release (the body raised nothing, the server confirmed
        the release) a wrapper link stays open for the next association; after anything
        else it is closed, so a link is never reused mid-association or after an error. An
        HDLC link is closed too: its DISC ends the connection's use.
        """
        transport: _Transport
        if settings.transport == "hdlc":
            transport = _HdlcTransport(link._stream, settings)
        else:
            transport = _WrapperTransport(
                link._stream, settings.client_sap, settings.server_logical_address
            )
        connection = ClientConnection(
            settings, guard=guard, on_invocation_counter=on_invocation_counter
        )
        client = cls(link._stream, transport, connection, settings)
        link.associations += 1
        clean = False
        body_failed = True
        try:
            await client._with_timeout(transport.open())
            await client._associate()
            yield client
            body_failed = False
        finally:
            try:
                if connection.state is State.ASSOCIATED and not connection.busy:
                    with contextlib.suppress(*((DlmsError,) if body_failed else ())):
                        await client._release()
                        clean = not body_failed
            finally:
                if not (clean and keep) or settings.transport == "hdlc":
                    try:
                        await transport.finish()
                    finally:
                        link.close()

    # -- services --------------------------------------------------------------------------

    @property
    def conformance(self) -> int:
        """The negotiated conformance block."""
        return int(self._connection.conformance)

    @property
    def invocation_counter(self) -> int:
        """The next invocation counter this client sends with."""
        return self._connection.invocation_counter

    async def get(
        self,
        class_id: int,
        obis: Obis,
        attribute: int,
        selective_access: SelectiveAccessDescriptor | None = None,
    ) -> Data:
        """Read one attribute (block transfer included)."""
        event = await self._request(
            lambda: self._connection.get(class_id, obis, attribute, selective_access)
        )
        if not isinstance(event, GetResult):
            raise ProtocolError(f"unexpected {type(event).__name__}")
        return _data_or_raise(event.result, f"GET {class_id}/{obis}/{attribute}")

    async def get_many(
        self,
        attributes: Sequence[AttributeRef],
    ) -> list[Data | DataAccessResult]:
        """Read several attributes in one with-list request; failures come back as results.

        Each item is ``(class_id, obis, attribute)`` or the same with a selective access.
        """
        items = [_with_selection(item) for item in attributes]
        event = await self._request(lambda: self._connection.get_many(items))
        if not isinstance(event, GetListResult):
            raise ProtocolError(f"unexpected {type(event).__name__}")
        if len(event.results) != len(items):
            raise ProtocolError(f"{len(event.results)} results for {len(items)} attributes")
        return list(event.results)

    async def set(self, class_id: int, obis: Obis, attribute: int, value: Data) -> None:
        """Write one attribute (datablocks when it is large)."""
        event = await self._request(lambda: self._connection.set(class_id, obis, attribute, value))
        if not isinstance(event, SetResult):
            raise ProtocolError(f"unexpected {type(event).__name__}")
        if event.result is not DataAccessResult.SUCCESS:
            _raise_result(event.result, f"SET {class_id}/{obis}/{attribute}")

    async def action(
        self, class_id: int, obis: Obis, method: int, parameter: Data | None = None
    ) -> Data | None:
        """Invoke a method; returns its return parameters, if any."""
        event = await self._request(
            lambda: self._connection.action(class_id, obis, method, parameter)
        )
        if not isinstance(event, ActionDone):
            raise ProtocolError(f"unexpected {type(event).__name__}")
        what = f"ACTION {class_id}/{obis}/{method}"
        if event.result is not ActionResult.SUCCESS:
            _raise_result(event.result, what)
        if isinstance(event.data, DataAccessResult):
            _raise_result(event.data, what)
        return event.data

    async def read_profile(
        self,
        obis: Obis,
        start: dt.datetime,
        end: dt.datetime,
        columns: Sequence[CaptureObjectDefinition] | None = None,
    ) -> list[Row]:
        """Rows of a profile generic buffer captured in ``[start, end]`` (range access)."""
        descriptor = RangeDescriptor.between(
            CosemDateTime.from_datetime(start),
            CosemDateTime.from_datetime(end),
            tuple(columns or ()),
        )
        buffer = await self.get(7, obis, 2, descriptor.to_access_selection())
        if buffer.tag is not DataTag.ARRAY or not isinstance(buffer.value, tuple):
            raise ProtocolError(f"profile buffer is a {buffer.tag.name}, not an array")
        rows: list[Row] = []
        for row in buffer.value:
            if row.tag is not DataTag.STRUCTURE or not isinstance(row.value, tuple):
                raise ProtocolError(f"profile row is a {row.tag.name}, not a structure")
            rows.append(row.value)
        return rows

    # -- machinery -------------------------------------------------------------------------

    async def _associate(self) -> None:
        event = await self._request(self._connection.associate)
        if not isinstance(event, AssociationAccepted):
            raise ProtocolError(f"unexpected {type(event).__name__} during association")
        self.accepted = event

    async def _release(self) -> None:
        event = await self._request(self._connection.release)
        if not isinstance(event, ReleaseAccepted):
            raise ProtocolError(f"unexpected {type(event).__name__} during release")

    async def _with_timeout(self, awaitable: Awaitable[T]) -> T:
        """``awaitable``, its waits for the server bounded by the settings' timeout."""
        stream = self._stream
        stream.deadline = asyncio.get_running_loop().time() + self.settings.timeout
        try:
            return await awaitable
        except TimeoutError:
            self._connection.abort()
            raise DlmsTimeout(f"no answer within {self.settings.timeout} s") from None
        finally:
            stream.deadline = None

    async def _request(self, queue: Callable[[], object]) -> ClientEvent:
        async with self._lock:
            if self._connection.state is State.CLOSED:
                raise ProtocolError("the association is closed")
            queue()
            try:
                return await self._with_timeout(self._exchange())
            except DlmsError:
                self._connection.abort()
                raise
            except (OSError, ConnectionError) as exc:
                self._connection.abort()
                raise ProtocolError(f"transport failed: {exc}") from None

    async def _exchange(self) -> ClientEvent:
        while True:
            for apdu in self._connection.data_to_send():
                await self._transport.send(apdu)
            event = self._connection.receive_apdu(await self._transport.receive())
            if isinstance(event, NotificationReceived):
                self.notifications.append(event.apdu)
            elif event is not None:
                return event


def _with_selection(
    item: AttributeRef,
) -> tuple[int, Obis, int, SelectiveAccessDescriptor | None]:
    if len(item) == 4:
        return item
    return (item[0], item[1], item[2], None)


def _raise_result(result: DataAccessResult | ActionResult, what: str) -> NoReturn:
    if result == DataAccessResult.READ_WRITE_DENIED:
        raise AccessDenied(f"{what}: read-write-denied")
    raise ServiceError(int(result), f"{what}: {result.name.lower().replace('_', '-')}")


def _data_or_raise(result: Data | DataAccessResult, what: str) -> Data:
    if isinstance(result, DataAccessResult):
        _raise_result(result, what)
    return result
