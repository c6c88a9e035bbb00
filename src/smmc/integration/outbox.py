"""The outbox publisher: drains the outbox into RabbitMQ or the embedded Legacy inbox.

``OutboxPublisher(engine, settings).run()`` loops until ``stop()``: per priority (high
first) it reads the next undelivered rows in id order, renders them
(``smmc.integration.outbound``), hands them to the backend and marks delivered exactly the
ones the backend confirmed. Delivery is at least once: a crash between the confirm and the
``delivered_at`` update sends the row again, with the same MessageID.

- **Order per meter.** Rows go out in id order; a row waiting for its retry holds back the
  later rows of its meter (the rest of the queue goes on).
- **Backend down** (broker unreachable, connection lost, database of the inbox failing):
  nothing is counted against the rows; the publisher waits (0.5 s doubling to 30 s) and
  reconnects.
- **A row that fails** (cannot be rendered, refused by the broker, its SOAP callback
  failing) counts an attempt and waits (1 s doubling, at most 5 min); after
  ``max_attempts`` it becomes a dead letter (``smmc.store.outbox.dead_letters``,
  ``GET /api/outbox/dead-letters``, ``smmc outbox dead-letters``), kept and re-queueable.
- Every few seconds the outcomes of Legacy's orders that ended without an executor event
  (expired in the queue, lease lost on the last attempt, cancelled) are swept into the
  outbox (``smmc.store.outbox.sweep_outcomes``).

One publisher per database (``PublisherLock``): two would both send every row. On
PostgreSQL the running publisher holds ``pg_try_advisory_lock`` on a dedicated connection;
on SQLite an exclusive ``flock`` on ``<database file>.publisher.lock`` (in the var dir by
default). A second publisher logs "another publisher is active" and waits; it takes over
when the first stops or dies (the server drops a dead session's lock, the kernel a dead
process's ``flock``).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeGuard

import aio_pika
import aiormq
import httpx
import sqlalchemy as sa
from lxml import etree
from pamqp.commands import Basic
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from yarl import URL

from smmc.config import OutboxSettings
from smmc.integration.codes import CodeBook
from smmc.integration.outbound import Outgoing, Renderer, RenderError, ordering_key
from smmc.integration.soap import soap_envelope
from smmc.store import tables as t
from smmc.store.events import mark_delivered
from smmc.store.outbox import (
    due_rows,
    outbox_counts,
    record_failures,
    store_legacy_inbox,
    sweep_outcomes,
    waiting_rows,
)

__all__ = [
    "PRIORITIES",
    "Backend",
    "BackendUnavailable",
    "EmbeddedBackend",
    "OutboxPublisher",
    "PublishResult",
    "PublisherLock",
    "PublisherTiming",
    "RabbitBackend",
    "make_backend",
    "pending_summary",
]

log = logging.getLogger(__name__)

PRIORITIES = ("high", "normal")
AMQP_PRIORITY = {"high": 9, "normal": 1}
CONTENT_TYPE = "application/xml"
PERSISTENT = 2
WAITING_LIMIT = 10_000
"""At most this many rows waiting for a retry are read per pass to hold back their meters."""


class BackendUnavailable(Exception):
    """The backend cannot take messages now (broker down, connection lost)."""


@dataclass(slots=True)
class PublishResult:
    """What became of a batch: rows confirmed, rows that failed (row id → error), and, if
    the backend went away during the batch, why. Rows in neither were not attempted."""

    delivered: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    unavailable: str | None = None


class Backend(Protocol):
    name: str

    async def open(self) -> None: ...

    async def publish(self, batch: Sequence[Outgoing]) -> PublishResult: ...

    async def close(self) -> None: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RabbitBackend:
    """RabbitMQ through aio-pika: one durable queue per priority on the default exchange,
    persistent messages, publisher confirms. A window of messages is published, then its
    confirms are awaited together; only confirmed rows count as delivered."""

    name = "rabbitmq"

    def __init__(
        self,
        url: str,
        queues: Mapping[str, str],
        *,
        source: str = "SMMC",
        confirm_timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.queues = dict(queues)
        self.source = source
        self.confirm_timeout = confirm_timeout
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._raw: aiormq.Channel | None = None

    async def open(self) -> None:
        try:
            self._connection = await aio_pika.connect(self.url, timeout=10)
            self._channel = await self._connection.channel(publisher_confirms=True)
            for queue in self.queues.values():
                await self._channel.declare_queue(queue, durable=True)
            raw = await self._channel.get_underlay_channel()
            if not isinstance(raw, aiormq.Channel):
                raise TypeError(f"aio-pika's channel is a {type(raw).__name__}, not aiormq's")
            self._raw = raw
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
            await self.close()
            where = URL(self.url)
            shown = where.with_password("***") if where.password else where
            raise BackendUnavailable(f"RabbitMQ at {shown}: {exc!r}") from exc

    async def close(self) -> None:
        connection, self._connection, self._channel, self._raw = (
            self._connection,
            None,
            None,
            None,
        )
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except (OSError, aio_pika.exceptions.AMQPError, RuntimeError):
                log.debug("RabbitMQ connection already gone", exc_info=True)

    def _properties(self, item: Outgoing) -> Basic.Properties:
        return Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=PERSISTENT,
            priority=AMQP_PRIORITY.get(item.priority, 0),
            correlation_id=item.correlation_id,
            message_id=item.message_id,
            message_type=item.noun,
            app_id=self.source,
        )

    async def publish(self, batch: Sequence[Outgoing]) -> PublishResult:
        channel = self._raw
        if channel is None or channel.is_closed:
            raise BackendUnavailable("RabbitMQ channel is closed")
        result = PublishResult()
        # aiormq's publish straight away (aio-pika's Message/Exchange layer costs ~15 % more
        # CPU per message); each call resolves when the broker confirms its message.
        pending = [
            channel.basic_publish(
                item.xml,
                routing_key=self.queues[item.priority],
                properties=self._properties(item),
                mandatory=True,
                wait=False,
            )
            for item in batch
        ]
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*pending, return_exceptions=True), self.confirm_timeout
            )
        except TimeoutError:
            result.unavailable = f"no confirms within {self.confirm_timeout} s"
            return result
        for item, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, aiormq.exceptions.DeliveryError):
                result.failed[item.row_id] = f"broker refused the message: {outcome!r}"
            elif isinstance(outcome, BaseException):
                result.unavailable = f"{outcome!r}"
            elif isinstance(outcome, Basic.Ack):
                result.delivered.append(item.row_id)
            else:
                result.failed[item.row_id] = f"broker answered {outcome!r}"
        return result


def _is_callback_url(address: str | None) -> TypeGuard[str]:
    return address is not None and address.lower().startswith(("http://", "https://"))


class EmbeddedBackend:
    """The "Legacy integration database": messages are inserted into ``legacy_inbox`` (one
    row per MessageID), and, with ``callback``, an outcome is also POSTed as a SOAP 1.1
    request to its request's ReplyAddress when that is an http(s) URL (a ``queue://…``
    address names a queue, which the inbox already stands for). A failing callback fails its
    row (retried with backoff) and holds back the later rows of the same meter in the batch."""

    name = "embedded"

    def __init__(
        self,
        engine: Engine,
        *,
        callback: bool = False,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.engine = engine
        self.callback = callback
        self.timeout = timeout
        self.transport = transport
        self.clock = clock
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        if self.callback and self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, transport=self.transport)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _insert(self, batch: Sequence[Outgoing]) -> None:
        now = self.clock()
        rows = [
            {
                "message_id": item.message_id,
                "correlation_id": item.correlation_id,
                "priority": item.priority,
                "noun": item.noun,
                "meter": item.meter,
                "xml": item.xml.decode("utf-8"),
                "created_at": now,
            }
            for item in batch
        ]
        with self.engine.begin() as conn:
            store_legacy_inbox(conn, rows)

    async def publish(self, batch: Sequence[Outgoing]) -> PublishResult:
        try:
            await asyncio.to_thread(self._insert, batch)
        except SQLAlchemyError as exc:
            raise BackendUnavailable(f"Legacy inbox: {exc}") from exc
        result = PublishResult()
        if self._client is None:
            result.delivered = [item.row_id for item in batch]
            return result
        held: set[str | None] = set()
        for item in batch:
            if not _is_callback_url(item.reply_address):
                result.delivered.append(item.row_id)
                continue
            if item.meter in held:
                continue
            error = await self._post(self._client, item.reply_address, item)
            if error is None:
                result.delivered.append(item.row_id)
            else:
                result.failed[item.row_id] = error
                held.add(item.meter)
        return result

    async def _post(self, client: httpx.AsyncClient, url: str, item: Outgoing) -> str | None:
        """POST one message to its ReplyAddress ``url``; ``None`` when the peer took it."""
        body = soap_envelope(etree.fromstring(item.xml))
        root = etree.QName(etree.fromstring(item.xml)).localname
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"http://iec.ch/TC57/2011/{item.noun}/{root}"',
        }
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"callback to {url}: {exc!r}"
        if response.status_code >= 300:
            return f"callback to {url}: HTTP {response.status_code}"
        return None


def make_backend(engine: Engine, settings: OutboxSettings) -> Backend:
    """The backend the settings name (``SMMC_OUTBOX_BACKEND``)."""
    if settings.backend == "rabbitmq":
        queues = {"high": settings.queue_high, "normal": settings.queue_normal}
        return RabbitBackend(settings.amqp_url, queues, source=settings.source)
    return EmbeddedBackend(engine, callback=settings.callback)


PUBLISHER_LOCK_KEY = 0x534D4D43_4F555442
"""The PostgreSQL advisory-lock key of the outbox publisher ("SMMCOUTB")."""


class PublisherLock:
    """At most one outbox publisher per database: a session-level advisory lock held on a
    dedicated connection (PostgreSQL), an exclusive ``flock`` on a file beside the
    database file (SQLite; an in-memory database, private to its process, needs none).
    Both vanish with their holder, so a publisher that dies hands over too."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: sa.Connection | None = None
        self._fd: int | None = None
        database = engine.url.database
        self.path: str | None = None
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            self.path = f"{database}.publisher.lock"

    @property
    def held(self) -> bool:
        if self.engine.dialect.name == "postgresql":
            return self._conn is not None
        return self._fd is not None or self.path is None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; ``True`` when this publisher holds it."""
        if self.held:
            return True
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            try:
                got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(PUBLISHER_LOCK_KEY)))
                taken = bool(got.scalar_one())
                conn.commit()
            except BaseException:
                conn.close()
                raise
            if taken:
                self._conn = conn
            else:
                conn.close()
            return taken
        assert self.path is not None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(PUBLISHER_LOCK_KEY)))
                conn.commit()
            except SQLAlchemyError:
                # the session is gone, and its lock with it
                log.debug("outbox publisher: lock connection already gone", exc_info=True)
                conn.invalidate()
            finally:
                conn.close()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


@dataclass(slots=True)
class PublisherTiming:
    """Waits of the publisher (tests shorten them)."""

    poll: float = 0.5
    reconnect: float = 0.5
    reconnect_max: float = 30.0
    retry: timedelta = timedelta(seconds=1)
    retry_max: timedelta = timedelta(minutes=5)
    sweep_every: float = 5.0
    sweep_lookback: timedelta = timedelta(days=1)
    sweep_grace: timedelta = timedelta(seconds=30)
    takeover: float = 2.0
    """How often a waiting publisher tries the lock of the active one."""


class OutboxPublisher:
    """Drains the outbox into a backend until stopped; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        settings: OutboxSettings | None = None,
        *,
        backend: Backend | None = None,
        renderer: Renderer | None = None,
        timing: PublisherTiming | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.engine = engine
        self.settings = settings or OutboxSettings()
        self.backend = backend or make_backend(engine, self.settings)
        if renderer is None:
            codes = CodeBook.configured(self.settings.codes_file)
            renderer = Renderer(codes, self.settings.source)
        self.renderer = renderer
        self.timing = timing or PublisherTiming()
        self.clock = clock
        self.delivered = 0
        self.outages = 0
        self._stopping = asyncio.Event()
        self._last_sweep = 0.0
        self.lock = PublisherLock(engine)

    def stop(self) -> None:
        """Ask ``run`` to finish after the batch in hand."""
        self._stopping.set()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return

    async def _take_over(self) -> bool:
        """Wait until this publisher holds the lock (``True``) or is stopped (``False``)."""
        told = False
        while not self._stopping.is_set():
            try:
                if await asyncio.to_thread(self.lock.try_acquire):
                    if told:
                        log.info("outbox publisher: taking over")
                    return True
                if not told:
                    log.info("outbox publisher: another publisher is active; waiting")
                    told = True
            except SQLAlchemyError:
                log.exception("outbox publisher: cannot take the publisher lock")
                self.outages += 1
            await self._pause(self.timing.takeover)
        return False

    async def run(self) -> None:
        """Publish until ``stop()``, once this is the only publisher of the database (see
        ``PublisherLock``); reconnects with backoff while the backend is down, and waits
        the same way while the outbox's database fails."""
        self._stopping.clear()
        wait = self.timing.reconnect
        opened = False
        try:
            if not await self._take_over():
                return
            while not self._stopping.is_set():
                try:
                    if not opened:
                        await self.backend.open()
                        opened = True
                        log.info("outbox publisher: %s backend open", self.backend.name)
                    progress = await self.drain_once()
                except BackendUnavailable as exc:
                    log.warning("outbox publisher: backend unavailable (%s); retry in %.1f s",
                                exc, wait)  # fmt: skip
                    opened = False
                    self.outages += 1
                    await self.backend.close()
                    await self._pause(wait)
                    wait = min(wait * 2, self.timing.reconnect_max)
                    continue
                except SQLAlchemyError:
                    # the outbox's own database: nothing was marked, the rows stay pending
                    log.exception("outbox publisher: database error; retry in %.1f s", wait)
                    self.outages += 1
                    await self._pause(wait)
                    wait = min(wait * 2, self.timing.reconnect_max)
                    continue
                wait = self.timing.reconnect
                if progress == 0:
                    await self._pause(self.timing.poll)
        finally:
            await self.backend.close()
            await asyncio.to_thread(self.lock.release)

    async def drain_once(self) -> int:
        """One pass over both queues: returns how many rows were delivered or failed.
        Raises ``BackendUnavailable`` when the backend went away (after recording what it
        did confirm)."""
        await self._sweep()
        progress = 0
        for priority in PRIORITIES:
            progress += await self._drain(priority)
        return progress

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_sweep < self.timing.sweep_every:
            return
        self._last_sweep = loop.time()
        codes = self.renderer.codes
        types = {n: codes.event_code(n) for n in ("expired", "cancelled", "work_order_failed")}
        now = self.clock()

        def sweep() -> int:
            with self.engine.begin() as conn:
                return sweep_outcomes(
                    conn,
                    since=now - self.timing.sweep_lookback,
                    until=now - self.timing.sweep_grace,
                    event_types=types,
                    now=now,
                )

        swept = await asyncio.to_thread(sweep)
        if swept:
            log.info("outbox publisher: %d outcome(s) of orders ended in the queue", swept)

    def _select(self, priority: str) -> tuple[list[Outgoing], dict[int, str]]:
        """Rows due now, rendered, in id order, except those behind a waiting row of their
        meter; rows that cannot be rendered as failures."""
        now = self.clock()
        with self.engine.connect() as conn:
            waiting = waiting_rows(conn, priority, now, WAITING_LIMIT)
            rows = due_rows(conn, priority, now, self.settings.batch_size)
        held: dict[str, int] = {}
        for row in waiting:
            key = ordering_key(row)
            if key is not None:
                held.setdefault(key, row["id"])
        ready: list[Outgoing] = []
        failed: dict[int, str] = {}
        for row in rows:
            try:
                item = self.renderer.render(row)
            except RenderError as exc:
                failed[row["id"]] = str(exc)
                continue
            first_waiting = held.get(item.meter) if item.meter is not None else None
            if first_waiting is not None and first_waiting < item.row_id:
                continue
            ready.append(item)
        return ready, failed

    def _settle(self, delivered: Sequence[str], failed: Mapping[int, str]) -> list[int]:
        now = self.clock()
        with self.engine.begin() as conn:
            if delivered:
                mark_delivered(conn, delivered, now)
            return record_failures(
                conn,
                failed,
                now=now,
                max_attempts=self.settings.max_attempts,
                backoff=self.timing.retry,
                max_backoff=self.timing.retry_max,
            )

    async def _drain(self, priority: str) -> int:
        ready, failed = await asyncio.to_thread(self._select, priority)
        result = PublishResult()
        if ready:
            result = await self.backend.publish(ready)
        failed.update(result.failed)
        ids = {item.row_id: item.message_id for item in ready}
        delivered = [ids[row_id] for row_id in result.delivered]
        dead = await asyncio.to_thread(self._settle, delivered, failed)
        for row_id in dead:
            log.error("outbox publisher: row %d is a dead letter: %s", row_id, failed[row_id])
        self.delivered += len(delivered)
        if result.unavailable is not None:
            raise BackendUnavailable(result.unavailable)
        return len(delivered) + len(failed)


def pending_summary(engine: Engine) -> dict[str, Any]:
    """Pending rows per queue, dead letters, delivered rows and the Legacy inbox's size
    (for the CLI and the API)."""
    with engine.connect() as conn:
        counts = outbox_counts(conn)
        inbox = conn.execute(sa.select(sa.func.count()).select_from(t.legacy_inbox)).scalar_one()
    return {
        "pending": {priority: counts.pending.get(priority, 0) for priority in PRIORITIES},
        "dead": counts.dead,
        "delivered": counts.delivered,
        "legacy_inbox": int(inbox),
    }
