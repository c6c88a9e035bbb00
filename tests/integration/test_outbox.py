"""The outbox publisher on both databases with the embedded backend: alarms, outages and
spontaneous events rendered as schema-valid ``created EndDeviceEvents`` without a
CorrelationID; the Legacy inbox filled once per MessageID; per-meter order kept while a row
waits for its retry; backoff and dead letters (store query, API, CLI, re-queue); the SOAP
callback to a ReplyAddress served by a real HTTP server; a backend that is down costs the
rows no attempts."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from lxml import etree
from query_plans import QueryPlans
from sqlalchemy.engine import Engine
from test_soap_endpoints import add_meter
from typer.testing import CliRunner

from smmc.config import OutboxSettings, SettingError
from smmc.integration.cli import outbox_app
from smmc.integration.messages import Message
from smmc.integration.outbound import Outgoing, Renderer, RenderError
from smmc.integration.outbox import (
    BackendUnavailable,
    EmbeddedBackend,
    OutboxPublisher,
    PublisherTiming,
    PublishResult,
)
from smmc.integration.payloads import EndDeviceEvents
from smmc.integration.xml import SchemaSet, parse_xml
from smmc.store import tables as t
from smmc.store.db import create_engine
from smmc.store.events import METER, Occurrence, apply_events
from smmc.store.migrate import upgrade
from smmc.store.outbox import dead_letters, due_rows, record_failures, requeue
from smmc.web.app import create_app

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
EVENTS_XSD = "r0ckflite-cim4/wsdl/xsd/EndDeviceEvents.xsd"
FAST = PublisherTiming(
    poll=0.01,
    reconnect=0.01,
    reconnect_max=0.05,
    retry=timedelta(seconds=10),
    sweep_every=3600,
)
CONCENTRATOR = "concentrator"


def schema_check(shared_dir: Path, payload_xsd: str) -> Callable[[bytes], Message]:
    """A validator of emitted messages: the Connexo 2011 message schema of the wrapper and
    the pure-IEC payload schema ``payload_xsd`` (a path under ``cim/xsd``). Returns the
    parsed message."""
    connexo = SchemaSet(shared_dir / "cim" / "xsd" / "connexo")
    payload_schema = etree.XMLSchema(etree.parse(str(shared_dir / "cim" / "xsd" / payload_xsd)))

    def check(xml: bytes) -> Message:
        root = parse_xml(xml)
        assert etree.QName(root).namespace in connexo.namespaces
        assert connexo.errors(root) == []
        message = Message.from_xml(root)
        assert message.payload is not None
        body = message.payload.to_xml()
        assert payload_schema.validate(etree.ElementTree(body)), payload_schema.error_log
        return message

    return check


@pytest.fixture(scope="module")
def validate(shared_dir: Path) -> Callable[[bytes], Message]:
    return schema_check(shared_dir, EVENTS_XSD)


def raise_alarms(engine: Engine, serials: Sequence[str], at: datetime = NOW) -> None:
    """Real alarm rows through the events layer: a terminal-cover-like work-order failure
    and a power-off of the concentrator (an outage incident)."""
    with engine.begin() as conn:
        apply_events(
            conn,
            occurrences=[
                Occurrence(METER, serial, "WO_FAILED", at + timedelta(seconds=i), "test")
                for i, serial in enumerate(serials)
            ],
            now=at,
        )


def outbox_rows(engine: Engine, kind: str | None = None) -> list[dict[str, object]]:
    """The outbox rows (of one kind), in id order."""
    query = sa.select(t.outbox).order_by(t.outbox.c.id)
    if kind is not None:
        query = query.where(t.outbox.c.kind == kind)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def inbox(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.select(t.legacy_inbox).order_by(t.legacy_inbox.c.id)
            ).mappings()
        ]


async def drain(publisher: OutboxPublisher, rounds: int = 5) -> None:
    await publisher.backend.open()
    try:
        for _ in range(rounds):
            await publisher.drain_once()
    finally:
        await publisher.backend.close()


def test_alarms_and_outages_render_valid_without_correlation(
    db: Engine, validate: Callable[[bytes], Message]
) -> None:
    add_meter(db, "M1")
    raise_alarms(db, ["M1"])
    with db.begin() as conn:
        apply_events(
            conn,
            occurrences=[
                Occurrence(CONCENTRATOR, "DC-1", "LVC_POWER_OFF", NOW, "test"),
                Occurrence(CONCENTRATOR, "DC-1", "LVC_POWER_ON", NOW + timedelta(minutes=3), "t"),
            ],
            now=NOW,
        )
    rows = outbox_rows(db)
    kinds = [row["kind"] for row in rows]
    assert kinds.count("outage") == 2
    assert "event" in kinds
    renderer = Renderer()
    codes: list[str] = []
    for row in rows:
        item = renderer.render(row)
        message = validate(item.xml)
        assert message.header.message_id == row["message_id"] == item.message_id
        assert message.header.correlation_id is None
        assert item.correlation_id is None
        assert item.priority == "high"
        assert isinstance(message.payload, EndDeviceEvents)
        (event,) = message.payload.events
        codes.append(event.event_type)
        if row["kind"] == "event":
            body = json.loads(str(row["payload"]))
            assert event.mrid == body["event_id"]
    # the concentrator's own events, then the incident opened (power failure) and closed
    assert "3.26.0.85" in codes
    assert "3.26.0.216" in codes
    assert "3.21.87.85" in codes
    # the same row renders to the same bytes: a redelivery is byte-identical
    assert renderer.render(rows[0]).xml == renderer.render(rows[0]).xml


def test_embedded_backend_fills_the_inbox_once_per_message_id(db: Engine) -> None:
    for serial in ("M1", "M2"):
        add_meter(db, serial)
    raise_alarms(db, ["M1", "M2", "M1"])
    publisher = OutboxPublisher(db, backend=EmbeddedBackend(db), timing=FAST)
    asyncio.run(drain(publisher))
    rows = outbox_rows(db)
    assert all(row["delivered_at"] is not None for row in rows)
    stored = inbox(db)
    assert [r["message_id"] for r in stored] == [r["message_id"] for r in rows]
    assert {r["noun"] for r in stored} == {"EndDeviceEvents"}
    assert [r["meter"] for r in stored] == ["M1", "M2", "M1"]
    # a redelivery (crash after the insert, before delivered_at) adds nothing
    again = [Renderer().render(row) for row in rows]
    asyncio.run(EmbeddedBackend(db).publish(again))
    assert len(inbox(db)) == len(rows)


def test_a_row_waiting_for_its_retry_holds_back_its_meter_only(db: Engine) -> None:
    for serial in ("M1", "M2"):
        add_meter(db, serial)
    raise_alarms(db, ["M1", "M2", "M1", "M2"])
    first = outbox_rows(db)[0]
    with db.begin() as conn:
        record_failures(
            conn,
            {int(str(first["id"])): "callback refused"},
            now=NOW,
            max_attempts=5,
            backoff=timedelta(hours=1),
            max_backoff=timedelta(hours=2),
        )
    publisher = OutboxPublisher(db, backend=EmbeddedBackend(db), timing=FAST, clock=lambda: NOW)
    asyncio.run(drain(publisher))
    stored = [r["meter"] for r in inbox(db)]
    assert stored == ["M2", "M2"]
    waiting = [r for r in outbox_rows(db) if r["delivered_at"] is None]
    assert [json.loads(str(r["payload"]))["meter"] for r in waiting] == ["M1", "M1"]
    assert waiting[0]["attempts"] == 1
    assert waiting[0]["last_error"] == "callback refused"
    # once the retry is due, M1's rows go, in their order
    later = OutboxPublisher(
        db, backend=EmbeddedBackend(db), timing=FAST, clock=lambda: NOW + timedelta(hours=1)
    )
    asyncio.run(drain(later))
    assert [r["meter"] for r in inbox(db)] == ["M2", "M2", "M1", "M1"]


def test_waiting_rows_do_not_fill_the_batch(db: Engine) -> None:
    for serial in ("M1", "M2"):
        add_meter(db, serial)
    raise_alarms(db, ["M1", "M1", "M1", "M2", "M2"])
    with db.begin() as conn:
        record_failures(
            conn,
            {int(str(r["id"])): "callback refused" for r in outbox_rows(db)[:3]},
            now=NOW,
            max_attempts=5,
            backoff=timedelta(hours=1),
            max_backoff=timedelta(hours=2),
        )
    settings = OutboxSettings(batch_size=2)
    publisher = OutboxPublisher(
        db, settings, backend=EmbeddedBackend(db), timing=FAST, clock=lambda: NOW
    )
    asyncio.run(drain(publisher, rounds=1))
    assert [r["meter"] for r in inbox(db)] == ["M2", "M2"]


def test_backoff_doubles_and_the_last_attempt_makes_a_dead_letter(db: Engine) -> None:
    add_meter(db, "M1")
    raise_alarms(db, ["M1"])
    (row,) = outbox_rows(db)
    row_id = int(str(row["id"]))
    waits = []
    for attempt in range(1, 4):
        with db.begin() as conn:
            dead = record_failures(
                conn,
                {row_id: f"failure {attempt}"},
                now=NOW,
                max_attempts=3,
                backoff=timedelta(seconds=1),
                max_backoff=timedelta(seconds=3),
            )
        (current,) = outbox_rows(db)
        assert current["attempts"] == attempt
        if attempt < 3:
            assert dead == []
            waits.append(current["next_attempt_at"] - NOW)  # type: ignore[operator]
        else:
            assert dead == [row_id]
            assert current["dead_at"] == NOW
            assert current["next_attempt_at"] is None
    assert waits == [timedelta(seconds=1), timedelta(seconds=2)]
    with db.connect() as conn:
        (letter,) = dead_letters(conn)
        assert letter["last_error"] == "failure 3"
        assert letter["attempts"] == 3
        assert due_rows(conn, "high", NOW, 10) == []
    with db.begin() as conn:
        assert requeue(conn, [str(row["message_id"])]) == 1
    with db.connect() as conn:
        assert [r["message_id"] for r in due_rows(conn, "high", NOW, 10)] == [row["message_id"]]
        assert dead_letters(conn) == []


def test_an_unrenderable_row_becomes_a_dead_letter_visible_in_api_and_cli(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_meter(db, "M1")
    raise_alarms(db, ["M1", "M1"])
    with db.begin() as conn:
        conn.execute(
            t.outbox.insert().values(
                message_id="bad-row-0000",
                kind="event",
                priority="high",
                payload=json.dumps({"message_id": "bad-row-0000", "kind": "event"}),
                created_at=NOW,
            )
        )
    settings = OutboxSettings(max_attempts=2)
    timing = PublisherTiming(poll=0.01, retry=timedelta(0), sweep_every=3600)
    publisher = OutboxPublisher(db, settings, backend=EmbeddedBackend(db), timing=timing)
    asyncio.run(drain(publisher, rounds=3))
    assert len(inbox(db)) == 2
    with db.connect() as conn:
        (letter,) = dead_letters(conn)
    assert letter["message_id"] == "bad-row-0000"
    assert letter["attempts"] == 2
    assert "payload field missing" in str(letter["last_error"])

    with TestClient(create_app(db)) as client:
        listed = client.get("/api/outbox/dead-letters").json()
        summary = client.get("/api/outbox").json()
    assert [d["message_id"] for d in listed] == ["bad-row-0000"]
    assert summary == {
        "pending": {"high": 0, "normal": 0},
        "dead": 1,
        "delivered": 2,
        "legacy_inbox": 2,
    }

    monkeypatch.setenv("SMMC_DATABASE_URL", db.url.render_as_string(hide_password=False))
    runner = CliRunner()
    shown = runner.invoke(outbox_app, ["dead-letters"])
    assert shown.exit_code == 0, shown.output
    assert "bad-row-0000" in shown.output
    assert "1 dead letter(s)" in shown.output
    status = runner.invoke(outbox_app, ["status"])
    assert "dead letters 1" in status.output
    assert "delivered 2" in status.output
    refused = runner.invoke(outbox_app, ["retry"])
    assert refused.exit_code != 0
    retried = runner.invoke(outbox_app, ["retry", "--all"])
    assert "1 message(s) re-queued" in retried.output
    with db.connect() as conn:
        assert dead_letters(conn) == []


def test_render_error_names_the_row_and_field() -> None:
    row = {"id": 7, "message_id": "x", "kind": "event", "priority": "high", "payload": "{}"}
    with pytest.raises(RenderError, match=r"outbox row 7 \(x\): payload field missing"):
        Renderer().render({**row, "created_at": NOW})
    with pytest.raises(RenderError, match="not JSON"):
        Renderer().render({**row, "payload": "{", "created_at": NOW})
    with pytest.raises(RenderError, match="kind 'mystery' has no CIM rendering"):
        Renderer().render({**row, "kind": "mystery", "created_at": NOW})


class _Flaky:
    """A backend that is down for its first ``down`` opens, then stores in the inbox."""

    name = "flaky"

    def __init__(self, engine: Engine, down: int) -> None:
        self.inner = EmbeddedBackend(engine)
        self.down = down
        self.opens = 0

    async def open(self) -> None:
        self.opens += 1
        if self.opens <= self.down:
            raise BackendUnavailable("connection refused")

    async def publish(self, batch: Sequence[Outgoing]) -> PublishResult:
        return await self.inner.publish(batch)

    async def close(self) -> None:
        return None


def test_a_backend_that_is_down_costs_the_rows_no_attempts(db: Engine) -> None:
    add_meter(db, "M1")
    raise_alarms(db, ["M1", "M1", "M1"])
    backend = _Flaky(db, down=3)
    publisher = OutboxPublisher(db, backend=backend, timing=FAST)

    async def run() -> None:
        task = asyncio.create_task(publisher.run())
        for _ in range(500):
            if publisher.delivered == 3:
                break
            await asyncio.sleep(0.01)
        publisher.stop()
        await task

    asyncio.run(run())
    assert backend.opens == 4
    rows = outbox_rows(db)
    assert all(r["delivered_at"] is not None and r["attempts"] == 0 for r in rows)
    assert len(inbox(db)) == 3


def test_a_database_failure_is_waited_out_not_a_crash(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'h8a-not-yet-migrated.db'}")
    publisher = OutboxPublisher(engine, backend=EmbeddedBackend(engine), timing=FAST)

    async def run() -> None:
        task = asyncio.create_task(publisher.run())
        for _ in range(500):
            if publisher.outages >= 2:
                break
            await asyncio.sleep(0.01)
        assert not task.done()
        await asyncio.to_thread(upgrade, engine)
        await asyncio.to_thread(add_meter, engine, "M1")
        await asyncio.to_thread(raise_alarms, engine, ["M1"])
        for _ in range(500):
            if publisher.delivered == 1:
                break
            await asyncio.sleep(0.01)
        publisher.stop()
        await task

    asyncio.run(run())
    assert publisher.outages >= 2
    assert publisher.delivered == 1
    assert len(inbox(engine)) == 1
    engine.dispose()


class _Callbacks(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []
    refuse = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Callbacks.refuse > 0:
            _Callbacks.refuse -= 1
            self.send_response(503)
        else:
            _Callbacks.received.append((self.headers["SOAPAction"], body))
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def callback_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Callbacks)
    _Callbacks.received = []
    _Callbacks.refuse = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/legacy/callback"
    server.shutdown()
    server.server_close()


def insert_outcome(
    engine: Engine,
    message_id: str,
    meter: str,
    reply_address: str | None,
    correlation_id: str = "corr-1",
) -> None:
    """An outcome row as ``store.outbox.queue_outcomes`` writes it (a completed Disconnect
    of work order 1), without going through a work order."""
    body = {
        "message_id": message_id,
        "kind": "outcome",
        "work_order_id": 1,
        "batch_id": 1,
        "activity": "Disconnect",
        "status": "disconnected",
        "event": "disconnected",
        "ok": True,
        "field_work": False,
        "correlation_id": correlation_id,
        "meter": meter,
        "pod": None,
        "occurred_at": NOW.isoformat(),
        "description": "Disconnect completed",
        "breaker_state": 0,
        "attempt": 1,
        "request": {} if reply_address is None else {"reply_address": reply_address},
    }
    with engine.begin() as conn:
        conn.execute(
            t.outbox.insert().values(
                message_id=message_id,
                kind="outcome",
                priority="high",
                payload=json.dumps(body),
                created_at=NOW,
            )
        )


def test_soap_callback_to_the_reply_address_with_backoff(db: Engine, callback_url: str) -> None:
    insert_outcome(db, "out-1", "M1", callback_url)
    insert_outcome(db, "out-2", "M1", callback_url)
    _Callbacks.refuse = 1
    clock = [NOW]
    publisher = OutboxPublisher(
        db,
        OutboxSettings(callback=True),
        backend=EmbeddedBackend(db, callback=True),
        timing=FAST,
        clock=lambda: clock[0],
    )
    asyncio.run(drain(publisher, rounds=1))
    # the first callback was refused: out-1 waits, and out-2 (same meter) is held back
    assert _Callbacks.received == []
    rows = outbox_rows(db)
    assert [r["attempts"] for r in rows] == [1, 0]
    assert "HTTP 503" in str(rows[0]["last_error"])
    clock[0] = NOW + timedelta(seconds=10)
    asyncio.run(drain(publisher, rounds=2))
    assert [r["delivered_at"] is not None for r in outbox_rows(db)] == [True, True]
    actions = [action for action, _ in _Callbacks.received]
    assert actions == ['"http://iec.ch/TC57/2011/EndDeviceEvents/CreatedEndDeviceEvents"'] * 2
    envelope = parse_xml(_Callbacks.received[0][1])
    body = envelope[0][0]
    message = Message.from_xml(body)
    assert message.header.message_id == "out-1"
    assert message.header.correlation_id == "corr-1"
    # the inbox has each message once although out-1 was inserted twice
    assert [r["message_id"] for r in inbox(db)] == ["out-1", "out-2"]


def test_a_queue_reply_address_is_not_called_back(db: Engine, callback_url: str) -> None:
    """The authored samples give ``queue://…`` ReplyAddresses: the inbox stands for the queue,
    so the row is delivered there and no POST is tried (it would fail until dead-lettered)."""
    insert_outcome(db, "out-q", "M1", "queue://legacy.outcomes")
    insert_outcome(db, "out-h", "M1", callback_url)
    publisher = OutboxPublisher(
        db,
        OutboxSettings(callback=True),
        backend=EmbeddedBackend(db, callback=True),
        timing=FAST,
    )
    asyncio.run(drain(publisher, rounds=1))
    rows = outbox_rows(db)
    assert [r["delivered_at"] is not None for r in rows] == [True, True]
    assert [r["attempts"] for r in rows] == [0, 0]
    assert len(_Callbacks.received) == 1
    assert [r["message_id"] for r in inbox(db)] == ["out-q", "out-h"]


def test_settings_from_environment() -> None:
    settings = OutboxSettings.from_env(
        {
            "SMMC_OUTBOX_BACKEND": "rabbitmq",
            "SMMC_AMQP_URL": "amqp://u:p@broker:5672/x",
            "SMMC_QUEUE_HIGH": "hi",
            "SMMC_OUTBOX_MAX_ATTEMPTS": "4",
            "SMMC_OUTBOX_CALLBACK": "true",
        }
    )
    assert settings.backend == "rabbitmq"
    assert settings.queue_high == "hi"
    assert settings.queue_normal == "smmc.cim.normal"
    assert settings.max_attempts == 4
    assert settings.callback is True
    assert OutboxSettings.from_env({}).backend == "embedded"
    with pytest.raises(SettingError, match="SMMC_OUTBOX_BACKEND: 'kafka'"):
        OutboxSettings.from_env({"SMMC_OUTBOX_BACKEND": "kafka"})
    with pytest.raises(SettingError, match="SMMC_OUTBOX_MAX_ATTEMPTS: 0 is below 1"):
        OutboxSettings.from_env({"SMMC_OUTBOX_MAX_ATTEMPTS": "0"})
    with pytest.raises(SettingError, match="SMMC_OUTBOX_CALLBACK: 'maybe'"):
        OutboxSettings.from_env({"SMMC_OUTBOX_CALLBACK": "maybe"})


def test_the_dead_letters_read_their_partial_index_on_sqlite(
    db: Engine, sqlite_plans: QueryPlans
) -> None:
    """Only dead letters are in ``ix_outbox_dead``: the list and its order come from it."""
    with sqlite_plans("FROM outbox") as plans, db.connect() as conn:
        dead_letters(conn)
    (plan,) = plans
    assert re.search(r"USING INDEX ix_outbox_dead\b", plan), plan
    assert "TEMP B-TREE" not in plan
