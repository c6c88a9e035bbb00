"""The Legacy simulator: its own store (dedup by MessageID, deliveries, rejects), zeep
requests against the real SOAP endpoints with and without a token, the SOAP callback
endpoint, the RabbitMQ consumer (real broker) and the reading of the embedded backend's
``legacy_inbox``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.config import OutboxSettings
from smmc.domain.access import Role
from smmc.sim.legacy import (
    CallbackServer,
    LegacyClient,
    LegacyStore,
    QueueConsumer,
    ThreadedServer,
    legacy_app,
    poll_inbox,
)
from smmc.store import tables as t
from smmc.store.users import AccessStore
from smmc.web.app import create_app

SAMPLES = Path(__file__).resolve().parents[1] / "integration" / "samples"
OUTCOME = "04_CreatedEndDeviceEvents_disconnect_outcome.xml"
CORRELATION = "6f1c2b1e-2d43-4d0a-9a55-2f3b7d9e0a01"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def in_envelope(message: bytes) -> bytes:
    body = message.split(b"?>", 1)[1] if message.startswith(b"<?xml") else message
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}"><soapenv:Body>'.encode()
        + body
        + b"</soapenv:Body></soapenv:Envelope>"
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LegacyStore]:
    legacy = LegacyStore(tmp_path / "h8b-legacy.db")
    yield legacy
    legacy.close()


def test_store_keeps_one_row_per_message_id_and_every_delivery(store: LegacyStore) -> None:
    outcome = sample(OUTCOME)
    assert store.receive("high", outcome) == "a7d9c3e2-4b1f-4c6e-9d8a-7e6f5a4b3c04"
    assert store.receive("high", outcome, redelivered=True) == (
        "a7d9c3e2-4b1f-4c6e-9d8a-7e6f5a4b3c04"
    )
    assert len(store.messages()) == 1
    assert [(d["redelivered"], d["duplicate"]) for d in store.deliveries()] == [
        (False, False),
        (True, True),
    ]
    (event,) = store.events(CORRELATION)
    assert event.meter == "000123456"
    assert event.event_type == "3.31.0.68"
    assert event.created_at == datetime(2025, 11, 20, 13, 17, 38, tzinfo=UTC)
    assert event.details["BreakerStatus"] == "Open"
    assert event.details["EndDeviceControl.mRID"] == "EDC-2025-000123"
    assert store.events("another") == []


@pytest.mark.parametrize(
    "body",
    [
        b"not xml at all",
        b"<a><b/></a>",
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
        in_envelope(b"<a/><b/>"),
    ],
)
def test_unreadable_messages_are_kept_as_rejects(store: LegacyStore, body: bytes) -> None:
    assert store.receive("normal", body) is None
    (reject,) = store.rejects()
    assert reject["channel"] == "normal"
    assert reject["body"] == body
    assert reject["reason"]
    assert store.messages() == []
    assert b"root:" not in reject["reason"].encode()


# -- zeep against the real endpoints -----------------------------------------------------------


@pytest.fixture
def head_end(db: Engine) -> Iterator[str]:
    with ThreadedServer(create_app(db, auth_required=True)).running() as server:
        yield server.base_url


def token_for(db: Engine, role: Role = Role.INTEGRATION) -> str:
    access = AccessStore(db)
    access.create_user(f"h8b-{role.value}", role)
    return access.issue_token(f"h8b-{role.value}", "legacy-sim")


def add_meters(db: Engine, *serials: str) -> None:
    with db.begin() as conn:
        dc = conn.execute(
            t.concentrators.insert().values(name="DC-L").returning(t.concentrators.c.id)
        ).scalar_one()
        conn.execute(
            t.meters.insert(), [{"serial_number": s, "concentrator_id": dc} for s in serials]
        )


def test_client_sends_disconnect_and_connect_through_zeep(
    db: Engine, head_end: str, store: LegacyStore
) -> None:
    add_meters(db, "000123456", "000123457")
    client = LegacyClient(head_end, token_for(db), store, reply_address="queue://smmc.cim.high")
    cut = client.disconnect(["000123456", "000123457"], "CORTE por deuda")
    assert (cut.result, cut.codes) == ("OK", ("0.3",))
    back = client.connect(["000123456"], correlation_id="h8b-reconnect-1")
    assert (back.result, back.codes) == ("OK", ("0.3",))
    unknown = client.disconnect(["999"], "CORTE por deuda")
    assert (unknown.result, unknown.codes) == ("FAILED", ("2.4",))
    wo, m = t.work_orders.c, t.meters.c
    with db.connect() as conn:
        placed = conn.execute(
            sa.select(wo.activity, wo.reason, wo.external_id, m.serial_number)
            .join(t.meters, m.id == wo.meter_id)
            .order_by(wo.id)
        ).all()
    assert [tuple(row) for row in placed] == [
        ("Disconnect", "non_payment", cut.correlation_id, "000123456"),
        ("Disconnect", "non_payment", cut.correlation_id, "000123457"),
        ("Connect", "after_payment", "h8b-reconnect-1", "000123456"),
    ]
    recorded = store.requests()
    assert [r["result"] for r in recorded] == ["OK", "OK", "FAILED"]
    assert recorded[0]["devices"] == "000123456,000123457"
    assert recorded[0]["reply_address"] == "queue://smmc.cim.high"


def test_client_without_a_valid_token_gets_the_fault(
    db: Engine, head_end: str, store: LegacyStore
) -> None:
    add_meters(db, "000123456")
    anonymous = LegacyClient(head_end, None, store).disconnect(["000123456"])
    assert (anonymous.result, anonymous.codes) == ("FAULT", ("7.2",))
    forged = LegacyClient(head_end, "smmc_forged", store).disconnect(["000123456"])
    assert (forged.result, forged.codes) == ("FAULT", ("7.4",))
    reader = token_for(db, Role.WAREHOUSE_READER)
    refused = LegacyClient(head_end, reader, store).disconnect(["000123456"])
    assert (refused.result, refused.codes) == ("FAULT", ("7.5",))
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.work_orders)).scalar() == 0


def test_client_reads_stored_meter_readings(db: Engine, head_end: str, store: LegacyStore) -> None:
    add_meters(db, "000123456")
    client = LegacyClient(head_end, token_for(db), store)
    sent, parts = client.get_meter_readings(
        ["000123456", "000999999"],
        ["0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"],
        datetime(2025, 11, 20, 3, tzinfo=UTC),
        datetime(2025, 11, 21, 3, tzinfo=UTC),
    )
    assert (sent.result, sent.codes) == ("PARTIAL", ("2.4",))
    names = [p.tag.rsplit("}", 1)[1] for p in parts]
    assert names == ["Header", "Reply", "Payload"]
    meter = parts[2].find(".//{http://iec.ch/TC57/2011/MeterReadings#}Meter")
    assert meter is not None
    assert "000123456" in "".join(meter.itertext())


# -- callbacks, queues, the Legacy inbox ------------------------------------------------------


def test_callback_endpoint_stores_and_answers(store: LegacyStore) -> None:
    with CallbackServer(store).running() as server:
        ok = httpx.post(server.url, content=in_envelope(sample(OUTCOME)), timeout=10)
        again = httpx.post(server.url, content=in_envelope(sample(OUTCOME)), timeout=10)
        bad = httpx.post(server.url, content=b"<broken", timeout=10)
    assert ok.status_code == 200
    assert b"<msg:Result>OK</msg:Result>" in ok.content
    assert f"<msg:CorrelationID>{CORRELATION}</msg:CorrelationID>".encode() in ok.content
    assert again.status_code == 200
    assert bad.status_code == 500
    assert b"<msg:Result>FAILED</msg:Result>" in bad.content
    assert len(store.messages()) == 1
    assert [d["duplicate"] for d in store.deliveries()] == [False, True]
    assert [r["channel"] for r in store.rejects()] == ["callback"]
    (event,) = store.events(CORRELATION)
    assert event.event_type == "3.31.0.68"


async def test_consumer_stores_then_acks_from_a_real_broker(
    store: LegacyStore, missing_service: Callable[[str], None]
) -> None:
    import aio_pika

    url = OutboxSettings().amqp_url
    try:
        connection = await aio_pika.connect(url, timeout=5)
    except (OSError, aio_pika.exceptions.AMQPError) as exc:
        missing_service(f"RabbitMQ not reachable at {url}: {exc}")
    names = {
        "high": f"h8b-test-high-{uuid.uuid4().hex[:8]}",
        "normal": f"h8b-test-normal-{uuid.uuid4().hex[:8]}",
    }
    consumer = QueueConsumer(store, url, names)
    async with connection:
        channel = await connection.channel()
        for name in names.values():
            await channel.declare_queue(name, durable=True)
        try:
            await consumer.start()
            outcome = sample(OUTCOME)
            for routing, body in (
                (names["high"], outcome),
                (names["high"], outcome),
                (names["normal"], b"garbage"),
            ):
                await channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=routing,
                )
            assert await consumer.wait_for(3, timeout=20)
        finally:
            await consumer.stop()
            for name in names.values():
                queue = await channel.declare_queue(name, durable=True)
                remaining = queue.declaration_result.message_count
                await queue.delete(if_unused=False, if_empty=False)
                assert remaining == 0  # everything was acked
    assert len(store.messages()) == 1
    assert [(d["channel"], d["duplicate"]) for d in store.deliveries()] == [
        ("high", False),
        ("high", True),
    ]
    assert [r["channel"] for r in store.rejects()] == ["normal"]


def test_poll_inbox_reads_and_marks_the_legacy_inbox(db: Engine, store: LegacyStore) -> None:
    now = datetime.now(UTC)
    with db.begin() as conn:
        conn.execute(
            t.legacy_inbox.insert().values(
                message_id="a7d9c3e2-4b1f-4c6e-9d8a-7e6f5a4b3c04",
                correlation_id=CORRELATION,
                priority="high",
                noun="EndDeviceEvents",
                meter="000123456",
                xml=sample(OUTCOME).decode(),
                created_at=now,
            )
        )
    assert poll_inbox(db, store) == 1
    assert poll_inbox(db, store) == 0
    with db.connect() as conn:
        assert conn.execute(sa.select(t.legacy_inbox.c.read_at)).scalar_one() is not None
    (event,) = store.events(CORRELATION)
    assert event.meter == "000123456"
    assert store.deliveries()[0]["channel"] == "inbox"


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_sends_a_control_and_lists_what_was_received(
    db: Engine, head_end: str, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    add_meters(db, "000123456")
    runner = CliRunner()
    file = tmp_path / "h8b-cli-legacy.db"
    common = ["--db", str(file), "--url", head_end]
    sent = runner.invoke(
        legacy_app, ["control", "disconnect", "000123456", *common, "--token", token_for(db)]
    )
    assert sent.exit_code == 0, sent.output
    assert sent.output.startswith("OK 0.3 CorrelationID=")
    refused = runner.invoke(legacy_app, ["control", "connect", "000123456", *common])
    assert refused.exit_code == 1
    assert refused.output.startswith("FAULT 7.2")
    with db.connect() as conn:
        assert conn.execute(sa.select(t.work_orders.c.reason)).scalars().all() == ["non_payment"]
    store = LegacyStore(file)
    store.receive("high", sample(OUTCOME))
    store.close()
    listed = runner.invoke(legacy_app, ["received", "--db", str(file)])
    assert listed.exit_code == 0
    assert f"000123456 3.31.0.68 correlation={CORRELATION}" in listed.output
    assert runner.invoke(legacy_app, ["listen", "--db", str(file)]).exit_code == 2
