"""The outbox publisher against the real RabbitMQ broker (127.0.0.1:5672), on both databases:
durable queues, persistent messages with MessageID/CorrelationID/priority/content type as
AMQP properties, rows delivered only once confirmed; and the acceptance test of issue 8 — a
stream of 10,000 events with the broker stopped in the middle (``rabbitmqctl stop_app``)
and started again: every event arrives, duplicates only as redeliveries of the same
MessageID with the same bytes. Each test uses its own queues and deletes them."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from test_outbox import insert_outcome

from smmc.config import OutboxSettings
from smmc.integration.messages import Message
from smmc.integration.outbox import OutboxPublisher, PublisherTiming
from smmc.integration.xml import parse_xml
from smmc.store import tables as t
from smmc.store.events import METER, Occurrence, apply_events
from smmc.store.outbox import outbox_counts

AMQP_URL = OutboxSettings().amqp_url
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
TIMING = PublisherTiming(poll=0.02, reconnect=0.2, reconnect_max=1.0, sweep_every=3600)


@pytest.fixture
def settings(missing_service: Callable[[str], None]) -> Iterator[OutboxSettings]:
    tag = uuid.uuid4().hex[:8]
    chosen = OutboxSettings(
        backend="rabbitmq",
        queue_high=f"h8a-test-{tag}-high",
        queue_normal=f"h8a-test-{tag}-normal",
        batch_size=500,
    )

    async def reachable() -> None:
        connection = await aio_pika.connect(chosen.amqp_url, timeout=5)
        await connection.close()

    try:
        asyncio.run(reachable())
    except (OSError, aio_pika.exceptions.AMQPError) as exc:
        missing_service(f"RabbitMQ not reachable at {chosen.amqp_url}: {exc}")
    yield chosen

    async def delete() -> None:
        async with await aio_pika.connect(chosen.amqp_url, timeout=30) as connection:
            channel = await connection.channel()
            for name in (chosen.queue_high, chosen.queue_normal):
                await channel.queue_delete(name)

    asyncio.run(delete())


def occurrences(start: int, count: int) -> list[Occurrence]:
    """Work-order results of ``count`` meters: WO_OK is high priority; METER_COMMISSIONED
    (normal) every fifth, so both queues carry part of the stream."""
    return [
        Occurrence(
            METER,
            f"M{n:05d}",
            "METER_COMMISSIONED" if n % 5 == 0 else "WO_OK",
            NOW + timedelta(milliseconds=n),
            "test",
        )
        for n in range(start, start + count)
    ]


def expected_ids(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(t.outbox.c.message_id, t.outbox.c.priority)).all())


def pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return sum(outbox_counts(conn).pending.values())


async def consume_all(
    settings: OutboxSettings, priority: str
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    name = settings.queue_high if priority == "high" else settings.queue_normal
    received: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with await aio_pika.connect(settings.amqp_url, timeout=30) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=2000)
        queue = await channel.declare_queue(name, passive=True)
        count = queue.declaration_result.message_count or 0
        if count == 0:
            return received
        async with queue.iterator(no_ack=True) as messages:
            async for message in messages:
                received.append(message)
                if len(received) == count:
                    break
    return received


@asynccontextmanager
async def running(publisher: OutboxPublisher) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(publisher.run())
    try:
        yield task
    finally:
        publisher.stop()
        await asyncio.wait_for(task, 60)


async def until(condition: Callable[[], bool], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


def test_publish_with_confirms_and_amqp_properties(db: Engine, settings: OutboxSettings) -> None:
    with db.begin() as conn:
        apply_events(conn, occurrences=occurrences(0, 50), now=NOW)
    expected = expected_ids(db)
    publisher = OutboxPublisher(db, settings, timing=TIMING)

    async def scenario() -> tuple[list[aio_pika.abc.AbstractIncomingMessage], ...]:
        async with running(publisher):
            await until(lambda: pending(db) == 0, 60)
        return await consume_all(settings, "high"), await consume_all(settings, "normal")

    high, normal = asyncio.run(scenario())
    assert len(high) == 40
    assert len(normal) == 10
    for priority, messages in (("high", high), ("normal", normal)):
        for message in messages:
            assert message.message_id is not None
            assert expected[message.message_id] == priority
            assert message.priority == (9 if priority == "high" else 1)
            assert message.content_type == "application/xml"
            assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            assert message.type == "EndDeviceEvents"
            assert message.app_id == "SMMC"
            parsed = Message.from_xml(parse_xml(message.body))
            assert parsed.header.message_id == message.message_id
            assert parsed.header.correlation_id is None
            assert message.correlation_id is None
    assert publisher.delivered == 50

    async def durable() -> None:
        # redeclaring a durable queue as transient is refused: the queues are durable
        async with await aio_pika.connect(settings.amqp_url, timeout=10) as connection:
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
                await channel.declare_queue(settings.queue_high, durable=False)

    asyncio.run(durable())


def test_outcome_correlation_id_is_an_amqp_property(db: Engine, settings: OutboxSettings) -> None:
    insert_outcome(db, "out-amqp-1", "M1", None, correlation_id="corr-amqp")
    publisher = OutboxPublisher(db, settings, timing=TIMING)

    async def scenario() -> list[aio_pika.abc.AbstractIncomingMessage]:
        async with running(publisher):
            await until(lambda: pending(db) == 0, 60)
        return await consume_all(settings, "high")

    (message,) = asyncio.run(scenario())
    assert message.message_id == "out-amqp-1"
    assert message.correlation_id == "corr-amqp"
    assert b"<msg:CorrelationID>corr-amqp</msg:CorrelationID>" in message.body


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


async def broker_accepts(url: str, timeout: float) -> None:
    """Wait until the broker takes AMQP connections again: under load its listener may
    open a moment after ``start_app`` has returned."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            connection = await aio_pika.connect(url, timeout=5)
        except (OSError, aio_pika.exceptions.AMQPError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)
            continue
        await connection.close()
        return


def test_broker_restart_in_a_stream_of_10000_events_loses_nothing(
    db: Engine, settings: OutboxSettings, missing_service: Callable[[str], None]
) -> None:
    if shutil.which("rabbitmqctl") is None:
        missing_service("rabbitmqctl not found: the broker cannot be stopped and started")
    publisher = OutboxPublisher(db, settings, timing=TIMING)
    total = 10_000
    chunk = 50
    produced = [0]

    def produce(start: int) -> None:
        with db.begin() as conn:
            apply_events(conn, occurrences=occurrences(start, chunk), now=NOW)

    async def producer() -> None:
        # a steady stream (about 2,000 events/s) that goes on while the broker is down
        for start in range(0, total, chunk):
            await asyncio.to_thread(produce, start)
            produced[0] += chunk
            await asyncio.sleep(0.025)

    async def scenario() -> tuple[int, int]:
        async with running(publisher):
            stream = asyncio.create_task(producer())
            await until(lambda: publisher.delivered >= 2000, 60)
            at_stop = produced[0]
            try:
                await asyncio.to_thread(rabbitmqctl, "stop_app")
                await asyncio.sleep(1.0)
            finally:
                await asyncio.to_thread(rabbitmqctl, "start_app")
                await broker_accepts(settings.amqp_url, 120)
            await stream
            await until(lambda: pending(db) == 0, 180)
        return at_stop, publisher.outages

    at_stop, outages = asyncio.run(scenario())
    assert at_stop < total, "the broker must stop in the middle of the stream"
    assert outages >= 1, "the publisher must have seen the broker go away"
    expected = expected_ids(db)
    assert len(expected) == total

    async def collect() -> list[aio_pika.abc.AbstractIncomingMessage]:
        return [*(await consume_all(settings, "high")), *(await consume_all(settings, "normal"))]

    received = asyncio.run(collect())
    counts = Counter(message.message_id for message in received)
    assert set(counts) == set(expected)  # every event arrived, nothing else did
    bodies: dict[str, bytes] = {}
    for message in received:
        assert message.message_id is not None
        header = Message.from_xml(parse_xml(message.body)).header
        assert header.message_id == message.message_id
        # a duplicate is a redelivery of the same message, byte for byte
        assert bodies.setdefault(message.message_id, message.body) == message.body
