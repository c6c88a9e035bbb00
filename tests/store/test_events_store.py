"""Events, status words, outages and the outbox on SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import json
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from query_plans import QueryPlans
from sqlalchemy.engine import Engine

from smmc.domain.events import MeterWords, Priority
from smmc.store import tables as t
from smmc.store.events import (
    Observation,
    Occurrence,
    SpontaneousRecord,
    _iso,
    _stored_text,
    apply_events,
    device_links,
    mark_delivered,
    outage_scope,
    pending_outbox,
    record_spontaneous,
    record_status_words,
    work_order_occurrence,
)

T0 = datetime(2021, 1, 1, 22, 56, 12, 536000, tzinfo=UTC)


def _fleet(db: Engine, meters: int = 3) -> None:
    with db.begin() as conn:
        sub = conn.execute(
            t.substations.insert().values(name="SE-1").returning(t.substations.c.id)
        ).scalar_one()
        tr = conn.execute(
            t.transformers.insert()
            .values(code="TR-1", substation_id=sub)
            .returning(t.transformers.c.id)
        ).scalar_one()
        dc = conn.execute(
            t.concentrators.insert()
            .values(name="TD-95322", serial_number="21LVM50AE000816", transformer_id=tr)
            .returning(t.concentrators.c.id)
        ).scalar_one()
        conn.execute(
            t.meters.insert(),
            [
                {"serial_number": f"UAAEEDN1770058396{i}", "concentrator_id": dc}
                for i in range(meters)
            ],
        )


def _count(db: Engine, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        )


def test_pup_opens_once_and_closes_with_outbox_messages(db: Engine) -> None:
    _fleet(db)
    meter = "UAAEEDN17700583960"
    with db.begin() as conn:
        applied = record_status_words(conn, meter, MeterWords(normal1=1), T0, "collection")
    assert [row["code"] for row in applied.opened] == ["3.26.0.85"]
    with db.begin() as conn:
        again = record_status_words(
            conn, meter, MeterWords(normal1=1), T0 + timedelta(minutes=1), "wo"
        )
    assert again.opened == []
    assert again.closed == []
    with db.begin() as conn:
        cleared = record_status_words(conn, meter, MeterWords(), T0 + timedelta(hours=1), "wo")
    assert [row["acronym"] for row in cleared.closed] == ["PUP"]
    with db.connect() as conn:
        rows = conn.execute(sa.select(t.events)).mappings().all()
        assert len(rows) == 1
        event = rows[0]
        assert event["is_active"] is False
        assert event["closed_at"] == T0 + timedelta(hours=1)
        assert event["description"] == "Voltage interruption (PUP)"
        assert event["priority"] == "high"
        assert event["meter_id"] is not None
        assert event["concentrator_id"] is not None
        outbox = conn.execute(sa.select(t.outbox).order_by(t.outbox.c.id)).mappings().all()
        kinds = [json.loads(r["payload"]) for r in outbox if r["kind"] == "event"]
        assert [(p["type"], p["isactive"]) for p in kinds] == [
            ("3.26.0.85", True),
            ("3.26.0.85", False),
        ]
        assert all(p["event_id"] == event["message_id"] for p in kinds)
        assert kinds[0]["concentrator"] == "TD-95322"
        words = conn.execute(sa.select(t.meter_status_words)).mappings().one()
        assert dict(words) == {
            "meter": meter,
            "normal1": 0,
            "normal2": 0,
            "extended1": 0,
            "extended2": 0,
            "observed_at": T0 + timedelta(hours=1),
            "source": "wo",
        }


def test_a_failure_after_the_event_insert_leaves_neither_event_nor_outbox(db: Engine) -> None:
    _fleet(db)
    seen: list[int] = []

    def crash_after_insert() -> None:
        with db.begin() as conn:
            applied = record_status_words(
                conn, "UAAEEDN17700583961", MeterWords(extended1=8), T0, "push"
            )
            seen.extend((applied.outbox, _count_in(conn, t.events), _count_in(conn, t.outbox)))
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError, match="crash before commit"):
        crash_after_insert()
    assert seen == [1, 1, 1]
    assert _count(db, t.events) == 0
    assert _count(db, t.outbox) == 0
    assert _count(db, t.meter_status_words) == 0


def _count_in(conn: sa.Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_a_batch_pauses_the_collector_and_restores_it(db: Engine) -> None:
    _fleet(db)
    states: list[bool] = []

    def note(*_args: object) -> None:
        states.append(gc.isenabled())

    sa.event.listen(db, "before_cursor_execute", note)
    try:
        with db.begin() as conn:
            apply_events(
                conn, [Observation("meter", "UAAEEDN17700583960", {"normal1": 1}, T0, "push")]
            )
        assert gc.isenabled()
        with (
            pytest.raises(ValueError, match="neither meter nor concentrator"),
            db.begin() as conn,
        ):
            apply_events(conn, [Observation("bus", "X", {"normal1": 1}, T0, "push")])
        assert gc.isenabled()
        gc.disable()
        try:
            with db.begin() as conn:
                apply_events(
                    conn, [Observation("meter", "UAAEEDN17700583961", {"normal1": 0}, T0, "push")]
                )
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        sa.event.remove(db, "before_cursor_execute", note)
    assert states
    assert not any(states)


def test_the_active_events_lookup_reads_the_partial_index_on_sqlite(
    db: Engine, sqlite_plans: QueryPlans
) -> None:
    """SQLite matches the partial index of the active events only with the bare
    `is_active` term, not with the `is_active = 1` SQLAlchemy writes for a Boolean."""
    _fleet(db)
    with sqlite_plans("FROM events") as plans, db.begin() as conn:
        record_status_words(conn, "UAAEEDN17700583960", MeterWords(normal1=1), T0, "wo")
    (plan,) = plans
    assert "USING INDEX uq_events_active" in plan


def test_outbox_queues_by_priority_and_delivery_is_marked(db: Engine) -> None:
    _fleet(db)
    with db.begin() as conn:
        # ORD is normal priority, CAPE high.
        record_status_words(
            conn, "UAAEEDN17700583962", MeterWords(normal1=2, extended1=8), T0, "push"
        )
    with db.begin() as conn:
        high = pending_outbox(conn, Priority.HIGH)
        normal = pending_outbox(conn, Priority.NORMAL)
        assert [json.loads(r["payload"])["acronym"] for r in high] == ["CAPE"]
        assert [json.loads(r["payload"])["acronym"] for r in normal] == ["ORD"]
        assert mark_delivered(conn, [high[0]["message_id"]], T0) == 1
        assert mark_delivered(conn, [high[0]["message_id"]], T0) == 0
    with db.begin() as conn:
        assert pending_outbox(conn, Priority.HIGH) == []


def test_a_concentrator_outage_is_one_incident_closed_on_power_on(db: Engine) -> None:
    _fleet(db, meters=3)
    with db.begin() as conn:
        apply_events(
            conn,
            [
                Observation(
                    "meter",
                    f"UAAEEDN1770058396{i}",
                    {"normal1": 1},
                    T0 + timedelta(seconds=i),
                    "push",
                )
                for i in range(3)
            ],
            [
                Occurrence(
                    "concentrator",
                    "21LVM50AE000816",
                    "LVC_POWER_OFF",
                    T0,
                    "spontaneous",
                    active=True,
                )
            ],
        )
    with db.begin() as conn:
        # a late last gasp still joins the open incident
        apply_events(conn, [Observation("meter", "UAAEEDN17700583960", {"normal1": 1}, T0, "wo")])
    with db.connect() as conn:
        incidents = conn.execute(sa.select(t.outage_incidents)).mappings().all()
    assert len(incidents) == 1
    assert incidents[0]["is_open"] is True
    assert incidents[0]["power_off_events"] == 4
    assert incidents[0]["scope"] == "transformer"
    assert _count(db, t.outage_members) == 4
    back = T0 + timedelta(minutes=30)
    with db.begin() as conn:
        applied = apply_events(
            conn,
            occurrences=[
                Occurrence(
                    "concentrator",
                    "21LVM50AE000816",
                    "LVC_POWER_ON",
                    back,
                    "spontaneous",
                    closes="LVC_POWER_OFF",
                )
            ],
        )
    assert applied.incidents_closed == [incidents[0]["id"]]
    with db.connect() as conn:
        closed = conn.execute(sa.select(t.outage_incidents)).mappings().one()
        dc_events = conn.execute(
            sa.select(t.events.c.key, t.events.c.is_active).where(
                t.events.c.device_kind == "concentrator"
            )
        ).all()
    assert closed["is_open"] is False
    assert closed["duration_s"] == pytest.approx(1800.0)
    assert sorted(dc_events) == [("LVC_POWER_OFF", False), ("LVC_POWER_ON", False)]
    outage_messages = _count(db, t.outbox, t.outbox.c.kind == "outage")
    assert outage_messages == 2


def test_meter_only_outage_closes_when_every_meter_is_back(db: Engine) -> None:
    _fleet(db, meters=2)
    serials = ["UAAEEDN17700583960", "UAAEEDN17700583961"]
    with db.begin() as conn:
        apply_events(conn, [Observation("meter", s, {"normal1": 1}, T0, "push") for s in serials])
    with db.begin() as conn:
        first = apply_events(
            conn,
            [Observation("meter", serials[0], {"normal1": 0}, T0 + timedelta(minutes=5), "push")],
        )
    assert first.incidents_closed == []
    with db.begin() as conn:
        second = apply_events(
            conn,
            [Observation("meter", serials[1], {"normal1": 0}, T0 + timedelta(minutes=9), "push")],
        )
    assert len(second.incidents_closed) == 1
    with db.connect() as conn:
        row = conn.execute(sa.select(t.outage_incidents)).mappings().one()
    assert row["duration_s"] == pytest.approx(540.0)


def test_unknown_devices_are_kept_without_links(db: Engine) -> None:
    with db.begin() as conn:
        applied = record_status_words(conn, "NOT-IN-DB", {"extended2": 16}, T0, "push")
    assert applied.opened[0]["meter_id"] is None
    assert applied.opened[0]["description"] == "Terminal cover removed (TC_REM)"


def test_spontaneous_messages_are_stored_raw_with_the_reason(db: Engine) -> None:
    records = [
        SpontaneousRecord(
            T0,
            "udp",
            "127.0.0.1",
            4000,
            58700,
            "UNKNOWN",
            b"\xff\x00",
            False,
            reason="header FF00 is not 0113",
        ),
        SpontaneousRecord(
            T0,
            "tcp",
            "127.0.0.1",
            4001,
            58700,
            "LVC_POWER_ON",
            b"\x01\x13",
            True,
            device="21LVM50AE000816",
        ),
    ]
    with db.begin() as conn:
        record_spontaneous(conn, records)
    with db.connect() as conn:
        rows = (
            conn.execute(sa.select(t.spontaneous_messages).order_by(t.spontaneous_messages.c.id))
            .mappings()
            .all()
        )
    assert [bytes(r["raw"]) for r in rows] == [b"\xff\x00", b"\x01\x13"]
    assert rows[0]["reason"] == "header FF00 is not 0113"
    assert rows[0]["decoded"] is False


_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=64)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    received=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda moment: moment.replace(tzinfo=UTC)
    ),
    offset=st.integers(-14 * 60, 14 * 60),
    port=st.integers(0, 2**31 - 1),
    raw=st.binary(max_size=300),
    device=st.none() | _TEXT,
    reason=st.none() | _TEXT,
    decoded=st.booleans(),
)
def test_bulk_rows_read_back_as_written(
    db: Engine,
    received: datetime,
    offset: int,
    port: int,
    raw: bytes,
    device: str | None,
    reason: str | None,
    decoded: bool,
) -> None:
    """The bulk path (binary COPY on PostgreSQL, executemany on SQLite) stores every value
    as written: instants in any zone, NULLs, any text and bytes."""
    zone = timezone(timedelta(minutes=offset))
    record = SpontaneousRecord(
        received.astimezone(zone), "tcp", "h", port, 58700, "DLMS_PUSH", raw, decoded,
        device=device, device_time_local="2021-07-02 20:03:09", reason=reason,
    )  # fmt: skip
    with db.begin() as conn:
        record_spontaneous(conn, [record])
    m = t.spontaneous_messages.c
    with db.connect() as conn:
        row = (
            conn.execute(sa.select(t.spontaneous_messages).order_by(m.id.desc())).mappings().first()
        )
    assert row is not None
    assert row["received_at"] == received
    assert (row["peer_port"], bytes(row["raw"]), row["device"]) == (port, raw, device)
    assert (row["reason"], row["decoded"]) == (reason, decoded)


@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offset=st.integers(-14 * 60, 14 * 60),
)
def test_stamps_are_the_isoformat_of_the_utc_instant(moment: datetime, offset: int) -> None:
    """SQLite's stored text is derived from the payload's ISO text, not formatted again."""
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset)))
    assert _iso(aware) == aware.astimezone(UTC).isoformat()
    assert _stored_text(aware) == aware.astimezone(UTC).isoformat(" ", "microseconds")[:26]


def test_two_batches_in_one_transaction_update_the_same_words(db: Engine) -> None:
    _fleet(db)
    meter = "UAAEEDN17700583960"
    with db.begin() as conn:
        record_status_words(conn, meter, {"normal1": 1}, T0, "a")
        second = record_status_words(conn, meter, {"normal1": 3}, T0 + timedelta(seconds=1), "b")
    assert [row["acronym"] for row in second.opened] == ["ORD"]
    with db.connect() as conn:
        value = conn.execute(sa.select(t.meter_status_words.c.normal1)).scalar_one()
    assert value == 3


def test_a_report_of_some_words_keeps_the_others(db: Engine) -> None:
    _fleet(db)
    meter = "UAAEEDN17700583960"
    with db.begin() as conn:
        record_status_words(conn, meter, {"extended1": 8}, T0, "a")
    with db.begin() as conn:
        apply_events(
            conn,
            [
                Observation("meter", meter, {"normal1": 1}, T0 + timedelta(seconds=1), "b"),
                Observation("meter", meter, {"normal2": 4}, T0 + timedelta(seconds=2), "c"),
            ],
        )
    with db.begin() as conn:
        # extended1 still set: no new CAPE; normal1 cleared: PUP closes
        again = record_status_words(conn, meter, {"normal1": 0, "extended1": 8}, T0, "d")
    assert again.opened == []
    assert [row["acronym"] for row in again.closed] == ["PUP"]
    with db.connect() as conn:
        row = conn.execute(sa.select(t.meter_status_words)).mappings().one()
    assert (row["normal1"], row["normal2"], row["extended1"], row["extended2"]) == (0, 4, 8, None)
    assert row["source"] == "d"


def test_concentrator_words_stay_in_device_status_words(db: Engine) -> None:
    _fleet(db)
    with db.begin() as conn:
        apply_events(
            conn, [Observation("concentrator", "TD-95322", {"concentrator": 0x08001E}, T0, "r")]
        )
    with db.connect() as conn:
        rows = conn.execute(sa.select(t.device_status_words)).mappings().all()
    assert [(r["device_kind"], r["device"], r["word"], r["value"]) for r in rows] == [
        ("concentrator", "TD-95322", "concentrator", 0x08001E)
    ]
    assert _count(db, t.meter_status_words) == 0


def test_a_transformer_feeding_part_of_a_concentrator_is_its_own_incident(db: Engine) -> None:
    _fleet(db, meters=6)
    serials = [f"UAAEEDN1770058396{i}" for i in range(6)]
    with db.begin() as conn:
        sub = conn.execute(sa.select(t.substations.c.id)).scalar_one()
        fed = conn.execute(
            t.transformers.insert()
            .values(code="TR-2", substation_id=sub)
            .returning(t.transformers.c.id)
        ).scalar_one()
        meter_ids = dict(conn.execute(sa.select(t.meters.c.serial_number, t.meters.c.id)).all())
        for serial in serials[:3]:
            point = conn.execute(
                t.service_points.insert()
                .values(name=f"POD-{serial}", transformer_id=fed)
                .returning(t.service_points.c.id)
            ).scalar_one()
            conn.execute(
                t.meter_links.insert().values(
                    meter_id=meter_ids[serial], service_point_id=point, valid_from=T0
                )
            )
    with db.begin() as conn:
        opened = apply_events(
            conn, [Observation("meter", s, {"normal1": 1}, T0, "push") for s in serials[:3]]
        )
    assert len(opened.incidents_opened) == 1
    with db.connect() as conn:
        incident = conn.execute(sa.select(t.outage_incidents)).mappings().one()
        dc_id = conn.execute(sa.select(t.concentrators.c.id)).scalar_one()
    assert (incident["scope"], incident["scope_key"]) == ("transformer", str(fed))
    assert incident["transformer_id"] == fed
    assert incident["concentrator_id"] == dc_id
    assert incident["power_off_events"] == 3
    assert _count(db, t.outage_members) == 3
    for minute, serial in enumerate(serials[:3], start=8):
        with db.begin() as conn:
            back = apply_events(
                conn,
                [Observation("meter", serial, {"normal1": 0}, T0 + timedelta(minutes=minute), "p")],
            )
        assert back.incidents_closed == ([incident["id"]] if serial == serials[2] else [])
    with db.begin() as conn:
        other = apply_events(conn, [Observation("meter", serials[3], {"normal1": 1}, T0, "push")])
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(t.outage_incidents).order_by(t.outage_incidents.c.id)
        ).mappings()
        incidents = [dict(r) for r in rows]
    assert len(other.incidents_opened) == 1
    assert [(r["scope_key"], r["is_open"], r["duration_s"]) for r in incidents] == [
        (str(fed), False, 600.0),
        (str(incidents[1]["transformer_id"]), True, None),
    ]
    assert incidents[1]["transformer_id"] != fed  # the concentrator's own transformer


def test_two_writers_of_one_transformer_share_one_incident(db: Engine) -> None:
    """Two transactions correlating the same scope at once (two listener lanes, or a lane
    and an activity executor): the second waits for the first's commit and joins its
    incident instead of opening another."""
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    _fleet(db, meters=2)
    first, second = "UAAEEDN17700583960", "UAAEEDN17700583961"
    done: list[int] = []

    def join() -> None:
        with db.begin() as conn:
            applied = apply_events(conn, [Observation("meter", second, {"normal1": 1}, T0, "p")])
        done.append(len(applied.incidents_opened))

    with db.begin() as conn:
        opened = apply_events(conn, [Observation("meter", first, {"normal1": 1}, T0, "p")])
        other = threading.Thread(target=join)
        other.start()
        time.sleep(0.5)
        assert not done  # waiting for this transaction's scope lock
    other.join(10)
    assert len(opened.incidents_opened) == 1
    assert done == [0]
    with db.connect() as conn:
        incident = conn.execute(sa.select(t.outage_incidents)).mappings().one()
        members = conn.execute(sa.select(t.outage_members.c.device)).scalars().all()
    assert incident["power_off_events"] == 2
    assert sorted(members) == [first, second]


def test_device_links_give_the_incident_scope_and_are_taken_back(db: Engine) -> None:
    _fleet(db)
    meter, dc = ("meter", "UAAEEDN17700583960"), ("concentrator", "21LVM50AE000816")
    with db.connect() as conn:
        transformer = conn.execute(sa.select(t.transformers.c.id)).scalar_one()
        links = device_links(conn, [meter, dc, ("meter", "NOT-IN-DB")])
    assert set(links) == {meter, dc}
    scopes = {key: outage_scope(*key, links.get(key)) for key in [meter, dc, ("meter", "X")]}
    assert scopes == {
        meter: ("transformer", str(transformer)),
        dc: ("transformer", str(transformer)),
        ("meter", "X"): ("meter", "X"),
    }
    with db.begin() as conn:  # links given are used as given, not read again
        elsewhere = {meter: links[meter]._replace(transformer_id=None)}
        apply_events(conn, [Observation(*meter, {"normal1": 1}, T0, "p")], links=elsewhere)
    with db.connect() as conn:
        incident = conn.execute(sa.select(t.outage_incidents)).mappings().one()
    assert (incident["scope"], incident["scope_key"]) == ("concentrator", "TD-95322")


def test_outbox_payloads_are_the_canonical_json_of_their_message(db: Engine) -> None:
    _fleet(db)
    with db.begin() as conn:
        record_status_words(conn, "UAAEEDN17700583960", {"normal1": 3}, T0, "push")
        apply_events(
            conn,
            occurrences=[
                work_order_occurrence(
                    "UAAEEDN17700583961",
                    ok=False,
                    at=T0,
                    correlation_id='wo-"7"',
                    description='Medidor no respondió "timeout" \\ ñ',
                )
            ],
        )
        record_status_words(conn, "UAAEEDN17700583960", {"normal1": 0}, T0, "push")
    with db.connect() as conn:
        payloads = conn.execute(sa.select(t.outbox.c.payload, t.outbox.c.message_id)).all()
    # PUP, ORD and the outage opened, the failure, PUP, ORD and the outage closed
    assert len(payloads) == 7
    for payload, message_id in payloads:
        message = json.loads(payload)
        assert json.dumps(message, sort_keys=True) == payload
        assert message["message_id"] == message_id
    failed = [json.loads(p) for p, _ in payloads if "respondi" in p]
    assert failed[0]["description"] == 'Medidor no respondió "timeout" \\ ñ'
    assert failed[0]["correlation_id"] == 'wo-"7"'
    assert failed[0]["meter"] == "UAAEEDN17700583961"
    assert failed[0]["isactive"] is False


def test_migration_0010_moves_meter_words_into_one_row_and_back(tmp_path: Path) -> None:
    from alembic import command

    from smmc.store.db import create_engine
    from smmc.store.migrate import alembic_config, upgrade

    engine = create_engine(f"sqlite:///{tmp_path / 'h6_migration.db'}")
    upgrade(engine, "0009")
    stamp = "2021-01-01 22:56:12.536000"
    old_rows = [
        ("meter", "M1", "normal1", 1, stamp, "push"),
        ("meter", "M1", "extended1", 8, stamp, "push"),
        ("concentrator", "TD-1", "concentrator", 0x08001E, stamp, "read"),
    ]
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO device_status_words (device_kind, device, word, value, observed_at, "
            "source) VALUES (?, ?, ?, ?, ?, ?)",
            old_rows,
        )
    upgrade(engine)
    with engine.connect() as conn:
        moved = conn.execute(sa.select(t.meter_status_words)).mappings().one()
        kept = conn.execute(sa.select(t.device_status_words.c.device)).scalars().all()
    assert (moved["meter"], moved["normal1"], moved["normal2"], moved["extended1"]) == (
        "M1",
        1,
        None,
        8,
    )
    assert moved["observed_at"] == T0
    assert kept == ["TD-1"]
    command.downgrade(alembic_config(engine), "0009")
    with engine.connect() as conn:
        back = conn.exec_driver_sql(
            "SELECT device_kind, device, word, value, observed_at, source FROM device_status_words"
        ).all()
    assert sorted(tuple(r) for r in back) == sorted(old_rows)
    engine.dispose()
