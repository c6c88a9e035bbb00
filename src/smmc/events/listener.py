"""The spontaneous-message listener: TCP and UDP on one port (58700 by default).

Every message received is queued in memory and written raw, with its decode result, in
batches (one transaction per batch: raw messages, events, outage changes and outbox
together). The queue is unbounded on purpose: a storm is absorbed, not dropped; the writers
catch up at batch speed. A batch the database refuses is retried after a pause and, if a
single message is at fault, that message alone is stored undecoded with the error, so one
bad record never loses its neighbours.

On PostgreSQL the writing is split over two *lanes* (two connections): while one lane's
transaction runs on the server, the other prepares its rows in Python, so the client's and
the server's work overlap instead of taking turns. Messages go to lanes by *outage scope*
(the device's transformer, else its concentrator, else the device): every event of one
incident, and every message of one device, is written by one lane in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from smmc.domain.events import Catalog
from smmc.domain.spontaneous import DEFAULT_SPONTANEOUS_PORT
from smmc.events.decode import MAX_MESSAGE, UNKNOWN, Decoded, decode_message, split_stream
from smmc.store.events import (
    Applied,
    DeviceLinks,
    SpontaneousRecord,
    apply_events,
    collector_paused,
    device_links,
    outage_scope,
    record_spontaneous,
)

__all__ = ["Received", "SpontaneousListener"]

_LOG = logging.getLogger(__name__)
_DATABASE_ERRORS = (DBAPIError, SQLAlchemyError, OSError)


def _refused(exc: Exception) -> bool:
    """Whether ``exc`` came from the batch's content (a value a column refuses, an event
    the catalog cannot raise, a fault one message triggers) rather than from an unreachable
    database: the first is narrowed down message by message, the second retried whole."""
    return isinstance(exc, IntegrityError | DataError) or not isinstance(exc, _DATABASE_ERRORS)


def _retrying(what: str, exc: Exception) -> None:
    """Log a failure the writer retries: an unreachable database in one line, anything
    else with its traceback."""
    database = isinstance(exc, _DATABASE_ERRORS)
    _LOG.warning("%s failed, retrying: %s", what, exc, exc_info=not database)


class Received(NamedTuple):
    data: bytes
    received_at: datetime
    transport: str
    peer_host: str
    peer_port: int


_Item = tuple[Received, Decoded | None, DeviceLinks | None]
"""A message, its decoding (``None``: the lane that writes it decodes it) and its device's
links when the lane split looked them up."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SpontaneousListener:
    """``async with SpontaneousListener(engine, port=0) as listener:`` serves TCP and UDP.

    ``on_applied`` is called (in a worker thread, one call at a time) after each committed
    batch, with what it changed: the auto-sync and other follow-ups hang there; its failure
    never stops the listener (the events are already stored).

    ``lanes``: writers side by side, 2 on PostgreSQL by default; SQLite has one writer at a
    time, so one lane there (more is refused).

    ``udp_receive_buffer``: bytes the kernel may hold for the UDP socket while the listener
    is busy. A storm of datagrams beyond it is dropped by the kernel before the listener
    sees it; the size obtained is ``udp_receive_buffer`` after start (Linux caps it at
    ``net.core.rmem_max`` unless the process may exceed that), and ``udp_dropped`` counts
    the kernel's drops for this socket, logged as they happen.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - concentrators call in from the field network
        port: int = DEFAULT_SPONTANEOUS_PORT,
        catalog: Catalog | None = None,
        batch_size: int = 5000,
        retry_delay: float = 1.0,
        clock: Callable[[], datetime] = _utc_now,
        on_applied: Callable[[Applied], object] | None = None,
        lanes: int | None = None,
        udp_receive_buffer: int = 64 * 1024 * 1024,
    ) -> None:
        postgresql = engine.dialect.name == "postgresql"
        self.lanes = (2 if postgresql else 1) if lanes is None else lanes
        if self.lanes < 1 or (self.lanes > 1 and not postgresql):
            raise ValueError(f"{self.lanes} lanes on {engine.dialect.name}: SQLite takes one")
        self.engine = engine
        self.host = host
        self.port = port
        self.catalog = catalog
        self.batch_size = batch_size
        self.retry_delay = retry_delay
        self.clock = clock
        self.on_applied = on_applied
        self.udp_receive_buffer = udp_receive_buffer
        self.udp_dropped = 0
        self._drops_checked = 0.0
        self.received = 0
        self.stored = 0
        self.undecoded = 0
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._udp: socket.socket | None = None
        self._writer: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._bound = port
        self._idle = asyncio.Event()
        self._follow_up = asyncio.Lock()
        self._lane_of_scope: dict[tuple[str, str], int] = {}
        self._lane_load = [0] * self.lanes

    async def __aenter__(self) -> SpontaneousListener:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def bound_port(self) -> int:
        """The port both transports listen on (resolved when ``port=0``)."""
        return self._bound

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self._bound = int(self._server.sockets[0].getsockname()[1])
        family, _, _, _, address = socket.getaddrinfo(
            self.host, self._bound, type=socket.SOCK_DGRAM
        )[0]
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            udp.setblocking(False)
            udp.bind(address)
            self.udp_receive_buffer = _grow_receive_buffer(udp, self.udp_receive_buffer)
        except OSError:
            udp.close()
            raise
        self._udp = udp
        loop.add_reader(udp.fileno(), self._read_datagrams, udp)
        self._writer = loop.create_task(self._write_forever())

    async def stop(self) -> None:
        """Stop accepting, then write everything already received before returning."""
        if self._server is not None:
            self._server.close()
        if self._udp is not None:
            asyncio.get_running_loop().remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        await self.drain()
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None

    async def drain(self) -> None:
        """Wait until every message received so far is stored."""
        while self.stored < self.received:
            self._idle.clear()
            if self.stored >= self.received:
                break
            await self._idle.wait()

    def enqueue(self, item: Received) -> None:
        self.received += 1
        self._queue.put_nowait((item, None, None))

    def _read_datagrams(self, udp: socket.socket, most: int = 4096) -> None:
        """Every datagram waiting, up to ``most``, per wake-up. The event loop shares the
        interpreter with the writer threads and may wait milliseconds for it after each
        wake-up: reading one datagram per wake-up (as asyncio's datagram transport does)
        let a storm overflow the kernel's buffer."""
        for _ in range(most):
            try:
                data, peer = udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                _LOG.info("UDP port %s: receive failed: %s", self._bound, exc)
                return
            self.enqueue(Received(data, self.clock(), "udp", str(peer[0]), int(peer[1])))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer = writer.get_extra_info("peername") or ("?", 0)
        host, port = str(peer[0]), int(peer[1])
        buffer = bytearray()
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buffer.extend(chunk)
                for message in split_stream(buffer):
                    self.enqueue(Received(message, self.clock(), "tcp", host, port))
                if len(buffer) > MAX_MESSAGE:
                    self.enqueue(Received(bytes(buffer), self.clock(), "tcp", host, port))
                    buffer.clear()
        except (ConnectionError, OSError) as exc:
            _LOG.info("spontaneous connection from %s:%s ended: %s", host, port, exc)
        finally:
            if buffer:
                # a length that promised more than arrived: keep what did arrive
                self.enqueue(Received(bytes(buffer), self.clock(), "tcp", host, port))
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._connections.discard(task)

    async def _write_forever(self) -> None:
        """One lane writes straight from the queue. Several: decode each batch taken from
        the queue and hand its messages to their lanes; a lane's queue holds at most a
        batch, so decoding stays at most a batch ahead."""
        if self.lanes == 1:
            await self._write_lane(self._queue)
            return
        queues = [asyncio.Queue[_Item](maxsize=self.batch_size) for _ in range(self.lanes)]
        loop = asyncio.get_running_loop()
        lanes = [loop.create_task(self._write_lane(queue)) for queue in queues]
        try:
            while True:
                batch = [item for item, _, _ in await _take(self._queue, self.batch_size)]
                results = await asyncio.to_thread(self._decode, batch)
                while True:
                    try:
                        lane_of, links = await asyncio.to_thread(self._assign, results)
                        break
                    except Exception as exc:
                        _retrying(f"finding the lanes of {len(batch)} messages", exc)
                        await asyncio.sleep(self.retry_delay)
                for item, result, lane, link in zip(batch, results, lane_of, links, strict=True):
                    await queues[lane].put((item, result, link))
        finally:
            for worker in lanes:
                worker.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)

    async def _write_lane(self, queue: asyncio.Queue[_Item]) -> None:
        while True:
            batch = await _take(queue, self.batch_size)
            total = len(batch)
            applied: list[Applied] = []
            while batch:
                try:
                    stored, undecoded = await asyncio.to_thread(self._store, batch)
                    applied += stored
                    self.undecoded += undecoded
                except Exception as exc:
                    # a lane never dies: a dead one would leave its messages unstored and
                    # ``drain`` waiting (even a message failing to be stored raw is retried)
                    _retrying(f"storing {len(batch)} spontaneous messages", exc)
                    await asyncio.sleep(self.retry_delay)
            self.stored += total
            self._idle.set()
            self._note_udp_drops()
            if self.on_applied is not None:
                async with self._follow_up:
                    for change in applied:
                        try:
                            await asyncio.to_thread(self.on_applied, change)
                        except (SQLAlchemyError, ValueError, OSError) as exc:
                            _LOG.warning("follow-up of a stored batch failed: %s", exc)

    def _note_udp_drops(self, every: float = 1.0) -> None:
        """Read the kernel's drop count of the UDP socket (at most once per ``every``
        seconds) and log any new drops: datagrams lost before the listener could read them
        are not in the store, so they must at least be seen."""
        now = time.monotonic()
        if self._udp is None or now - self._drops_checked < every:
            return
        self._drops_checked = now
        dropped = udp_drops(self._udp)
        if dropped is not None and dropped > self.udp_dropped:
            _LOG.warning(
                "UDP port %s: the kernel dropped %d datagrams (%d in all) before the listener "
                "read them; receive buffer %d bytes (raise net.core.rmem_max, or the "
                "listener's udp_receive_buffer, for larger storms)",
                self._bound, dropped - self.udp_dropped, dropped, self.udp_receive_buffer,
            )  # fmt: skip
            self.udp_dropped = dropped

    @staticmethod
    def _decode(batch: Sequence[Received]) -> list[Decoded]:
        with collector_paused():
            return [_decoded(item) for item in batch]

    def _assign(self, results: Sequence[Decoded]) -> tuple[list[int], list[DeviceLinks | None]]:
        """Each message's lane: its outage scope's (`_lane_of`); and its device's links, which
        the lane's transaction takes instead of reading them again. Undecoded messages
        carry no event and go to the first lane."""
        keys = [_device_key(result) for result in results]
        with self.engine.connect() as conn:
            known = device_links(conn, {key for key in keys if key is not None})
        lanes = []
        links = []
        for key in keys:
            lane = 0
            link = None
            if key is not None:
                link = known.get(key)
                lane = self._lane_of(outage_scope(key[0], key[1], link), known=link is not None)
            self._lane_load[lane] += 1
            lanes.append(lane)
            links.append(link)
        return lanes, links

    def _lane_of(self, scope: tuple[str, str], *, known: bool) -> int:
        """A known device's scope keeps the lane it was first given; an unknown device's
        lane is its name's hash, remembered nowhere, so devices that never existed (a
        corrupt serial, a stranger calling in) cannot grow the map for the process's life."""
        if not known:
            return zlib.crc32("\x1f".join(scope).encode()) % self.lanes
        found = self._lane_of_scope.get(scope)
        if found is None:
            found = min(range(self.lanes), key=self._lane_load.__getitem__)
            self._lane_of_scope[scope] = found
        return found

    def _record(self, item: Received, result: Decoded) -> SpontaneousRecord:
        return SpontaneousRecord(
            received_at=item.received_at,
            transport=item.transport,
            peer_host=item.peer_host,
            peer_port=item.peer_port,
            local_port=self._bound,
            message_type=result.message_type,
            raw=item.data,
            decoded=result.decoded,
            device=None if result.device is None else result.device[:64],
            device_time_local=result.device_time_local,
            reason=result.reason,
        )

    def _write(
        self,
        batch: Sequence[Received],
        results: Sequence[Decoded],
        links: Mapping[tuple[str, str], DeviceLinks] | None = None,
    ) -> Applied:
        with self.engine.begin() as conn:
            record_spontaneous(
                conn, [self._record(i, r) for i, r in zip(batch, results, strict=True)]
            )
            return apply_events(
                conn,
                [r.observation for r in results if r.observation is not None],
                [r.occurrence for r in results if r.occurrence is not None],
                catalog=self.catalog,
                links=links,
            )

    def _store(self, batch: list[_Item]) -> tuple[list[Applied], int]:
        """Write ``batch``, removing from it what is committed, so a retry after a database
        failure never writes a message twice; what it changed and how many messages were
        stored undecoded.

        An error caused by the content (``_refused``) falls back to one message per
        transaction: only the faulty message is stored without its events, with the error
        as its reason. An unreachable database propagates (the lane retries what is
        left)."""
        with collector_paused():
            return self._store_batch(batch)

    def _store_batch(self, batch: list[_Item]) -> tuple[list[Applied], int]:
        decoded = [
            (item, _decoded(item) if result is None else result, link)
            for item, result, link in batch
        ]
        batch[:] = decoded  # decoded once: a retry decodes nothing twice
        items = [item for item, _, _ in decoded]
        results = [result for _, result, _ in decoded]
        links = {
            key: link
            for _, result, link in decoded
            if link is not None and (key := _device_key(result))
        }
        try:
            applied = [self._write(items, results, links)]
            undecoded = sum(1 for r in results if not r.decoded)
            batch.clear()
        except Exception as exc:
            if not _refused(exc):
                raise
            applied, undecoded = [], 0
            for item, result in zip(items, results, strict=True):
                try:
                    applied.append(self._write([item], [result]))
                    undecoded += 0 if result.decoded else 1
                except Exception as fault:
                    if not _refused(fault):
                        raise
                    failed = Decoded(
                        result.message_type, False, reason=f"not stored as event: {fault}"
                    )
                    self._write([item], [failed])
                    undecoded += 1
                del batch[0]
        return applied, undecoded


async def _take(queue: asyncio.Queue[Any], most: int) -> list[Any]:
    """The next item (waiting for it) and what else is queued, ``most`` at the most."""
    batch = [await queue.get()]
    while len(batch) < most and not queue.empty():
        batch.append(queue.get_nowait())
    return batch


def _decoded(item: Received) -> Decoded:
    """``item`` decoded. The decoder never raises on bad input; should a bug make it raise
    all the same, that message alone is stored raw with the fault as its reason, instead of
    the fault stopping every message behind it."""
    try:
        return decode_message(item.data, item.received_at)
    except Exception as exc:
        _LOG.exception("decoding a %d-byte message from %s failed", len(item.data), item.peer_host)
        return Decoded(UNKNOWN, False, reason=f"decoder fault: {type(exc).__name__}: {exc}")


def _device_key(result: Decoded) -> tuple[str, str] | None:
    event = result.observation or result.occurrence
    return None if event is None else (event.device_kind, event.device)


def _grow_receive_buffer(sock: socket.socket, wanted: int) -> int:
    """Ask for a ``wanted``-byte receive buffer; returns what the kernel granted. Linux
    doubles the value asked for (bookkeeping) and caps a plain request at
    ``net.core.rmem_max``; ``SO_RCVBUFFORCE`` passes the cap where the process may
    (``CAP_NET_ADMIN``)."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    forced = False
    if force is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, force, wanted)
            forced = True
    if not forced:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
    size = int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    if size < wanted:
        _LOG.warning(
            "UDP receive buffer: %d bytes granted of %d asked; a storm beyond it is dropped "
            "by the kernel (raise net.core.rmem_max)",
            size, wanted,
        )  # fmt: skip
    return size


def udp_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for ``sock`` (Linux: the ``drops`` column of
    ``/proc/net/udp`` or ``udp6`` on the socket's inode); None where that is not known."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table, encoding="ascii") as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    if len(fields) > 12 and fields[9] == inode:
                        return int(fields[12])
        except OSError:
            continue
    return None
