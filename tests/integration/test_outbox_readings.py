"""Collected readings to Legacy on both databases: daily closures and load profiles of the
meters whose energy profile asks for them become ``created MeterReadings`` outbox rows on the
normal queue, split into bounded messages that validate against the Connexo message schema
and the pure-IEC MeterReadings schema, carry ``ReadingTypeGroup``/``MessageIndex``, and
together hold every value exactly once."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection, Engine
from test_outbox import outbox_rows, schema_check

from smmc.domain.readings import (
    AVERAGE_CURRENT,
    AVERAGE_VOLTAGE,
    DEFAULT_DAILY_CLOSURE_PROFILE,
    Energy,
    daily_closure_type,
    reading_type,
)
from smmc.integration.messages import Message
from smmc.integration.outbound import Renderer
from smmc.integration.payloads import MeterReadings
from smmc.integration.readings import (
    Part,
    ReadingGroup,
    eligible_meters,
    queue_meter_readings,
    readings_message_id,
)
from smmc.store import tables as t
from smmc.store.readings import (
    IntervalValue,
    RegisterRead,
    assign_energy_profiles,
    ingest_intervals,
    ingest_register_reads,
)

DAY = datetime(2025, 11, 20, 3, 0, tzinfo=UTC)  # 00:00 at -03:00
FORWARD = "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"


@pytest.fixture(scope="module")
def validate(shared_dir: Path) -> Callable[[bytes], Message]:
    return schema_check(shared_dir, "openwms-epri-2011/xsd/MeterReadings.xsd")


def add_meters(conn: Connection) -> dict[str, int]:
    """M1 uploads everything, M2 uploads but no daily closure, M3 uploads nothing, M4 has no
    profile: serial → meter id."""
    dc = conn.execute(
        t.concentrators.insert().values(name="DC-1").returning(t.concentrators.c.id)
    ).scalar_one()
    ids = {}
    for serial in ("M1", "M2", "M3", "M4"):
        ids[serial] = conn.execute(
            t.meters.insert()
            .values(serial_number=serial, concentrator_id=dc)
            .returning(t.meters.c.id)
        ).scalar_one()
    for serial, upload, closure in (("M1", True, True), ("M2", True, False), ("M3", False, True)):
        assign_energy_profiles(
            conn,
            ids[serial],
            daily_closure=DEFAULT_DAILY_CLOSURE_PROFILE.name,
            load_profile=None,
            is_upload=upload,
            is_daily_closure=closure,
        )
    return ids


@pytest.fixture
def fleet(db: Engine) -> Engine:
    """The meters of `add_meters`, each with a day of 15-minute values and a daily-closure
    register set."""
    forward = reading_type(FORWARD)
    with db.begin() as conn:
        for meter_id in add_meters(conn).values():
            ingest_intervals(
                conn,
                [
                    IntervalValue(meter_id, forward.id, DAY + timedelta(minutes=15 * k), 100.0 + k)
                    for k in range(1, 97)
                ],
            )
            ingest_register_reads(
                conn,
                [
                    RegisterRead(
                        meter_id,
                        Energy.ACTIVE_FORWARD,
                        DAY + timedelta(days=1),
                        (1000, 2000, 0, 0, 0, 0),
                        3000,
                    )
                ],
            )
    return db


def test_eligible_meters_follow_the_energy_profile(fleet: Engine) -> None:
    assert eligible_meters(fleet, ReadingGroup.DAILY_CLOSURE) == ["M1"]
    assert eligible_meters(fleet, ReadingGroup.LOAD_PROFILE) == ["M1", "M2"]
    assert eligible_meters(fleet, ReadingGroup.LOAD_PROFILE, ["M2", "M3"]) == ["M2"]


def test_daily_closure_message(fleet: Engine, validate: Callable[[bytes], Message]) -> None:
    count = queue_meter_readings(
        fleet, ReadingGroup.DAILY_CLOSURE, DAY, DAY + timedelta(days=1, minutes=1)
    )
    assert count == 1
    (row,) = outbox_rows(fleet, "readings")
    assert row["priority"] == "normal"
    item = Renderer().render(row)
    assert item.noun == "MeterReadings"
    assert item.correlation_id is None
    message = validate(item.xml)
    properties = {p.name: p.value for p in message.header.properties}
    assert properties["ReadingTypeGroup"] == "DAILY_CLOSURE"
    assert properties["MessageIndex"] == "1/1"
    assert isinstance(message.payload, MeterReadings)
    (reading,) = message.payload.meter_readings
    assert reading.meter.serial == "M1"
    assert reading.interval_blocks == ()
    values = {code: r.value for code, r in reading.readings}
    assert values[daily_closure_type(Energy.ACTIVE_FORWARD).code] == "3"  # 3,000 Wh as kWh
    assert values[daily_closure_type(Energy.ACTIVE_FORWARD, 2).code] == "2"


def test_load_profile_is_split_into_bounded_messages(
    fleet: Engine, validate: Callable[[bytes], Message]
) -> None:
    end = DAY + timedelta(days=1)
    # one meter's 96 values never split; two meters in messages of at most 100 values
    count = queue_meter_readings(fleet, ReadingGroup.LOAD_PROFILE, DAY, end, max_values=100)
    assert count == 2
    rows = outbox_rows(fleet, "readings")
    seen: dict[str, list[tuple[datetime, str]]] = {}
    for index, row in enumerate(rows, start=1):
        message = validate(Renderer().render(row).xml)
        properties = {p.name: p.value for p in message.header.properties}
        assert properties["MessageIndex"] == f"{index}/2"
        assert properties["ReadingTypeGroup"] == "LOAD_PROFILE"
        assert isinstance(message.payload, MeterReadings)
        for reading in message.payload.meter_readings:
            assert reading.meter.serial is not None
            (block,) = reading.interval_blocks
            assert block.reading_type == FORWARD
            seen.setdefault(reading.meter.serial, []).extend(
                (r.timestamp, r.value) for r in block.readings
            )
    assert sorted(seen) == ["M1", "M2"]
    for values in seen.values():
        assert len(values) == 96  # the interval ending at the period's start is not in it
        assert values[0] == (DAY + timedelta(minutes=15), "0.101")
        assert values[-1] == (end, "0.196")
    body = json.loads(str(rows[0]["payload"]))
    assert body["period_start"] == DAY.isoformat()


def test_nothing_to_send_writes_nothing(fleet: Engine) -> None:
    later = DAY + timedelta(days=10)
    assert queue_meter_readings(fleet, ReadingGroup.LOAD_PROFILE, later, later + timedelta(1)) == 0
    assert outbox_rows(fleet, "readings") == []
    with pytest.raises(ValueError, match="start before end"):
        queue_meter_readings(fleet, ReadingGroup.LOAD_PROFILE, later, later)


def test_reads_are_sized_to_stay_under_the_stored_readings_limit(
    fleet: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two meters' 192 values pass a limit of 150 in one read; one meter's 96 do not
    monkeypatch.setattr("smmc.integration.soap.MAX_VALUES", 150)
    monkeypatch.setattr("smmc.integration.readings.MAX_VALUES", 150)
    end = DAY + timedelta(days=1)
    assert queue_meter_readings(fleet, ReadingGroup.LOAD_PROFILE, DAY, end) == 1
    (row,) = outbox_rows(fleet, "readings")
    body = json.loads(str(row["payload"]))
    assert [entry["meter"] for entry in body["meters"]] == ["M1", "M2"]


def test_a_part_of_the_load_profile_goes_alone_under_its_own_message_id(fleet: Engine) -> None:
    """A concentrator's load profile and measurands are separate orders: each sends its
    own values, and the two messages of one period and meter do not share a MessageID."""
    end = DAY + timedelta(hours=1)
    ends = [DAY + timedelta(minutes=15 * n) for n in range(1, 5)]
    with fleet.begin() as conn:
        m1 = conn.execute(
            t.meters.select()
            .with_only_columns(t.meters.c.id)
            .where(t.meters.c.serial_number == "M1")
        ).scalar_one()
        ingest_intervals(
            conn,
            [
                IntervalValue(m1, kind.id, at, 1.0)
                for kind in (AVERAGE_VOLTAGE, AVERAGE_CURRENT)
                for at in ends
            ],
        )
    group = ReadingGroup.LOAD_PROFILE
    for part in Part:
        assert queue_meter_readings(fleet, group, DAY, end, meters=["M1"], part=part) == 1
    rows = outbox_rows(fleet, "readings")
    assert len(rows) == 2
    codes = []
    for row in rows:
        body = json.loads(str(row["payload"]))
        (entry,) = body["meters"]
        codes.append(sorted(block["reading_type"] for block in entry["blocks"]))
    assert codes == [[FORWARD], sorted([AVERAGE_CURRENT.code, AVERAGE_VOLTAGE.code])]
    plain = readings_message_id(group, DAY, end, ["M1"])
    assert rows[0]["message_id"] == plain != rows[1]["message_id"]
