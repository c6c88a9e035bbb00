"""Collected readings out to Legacy through the collection executors (simulator over TCP,
both databases): what an order newly stores becomes ``created MeterReadings`` outbox rows in
the same transaction, for the meters whose energy profile uploads — every stored value
once over two days of collection, schema-valid, and a rerun queues nothing twice."""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "field"))  # the shared simulator harness
sys.path.insert(0, str(TESTS / "engine"))  # the scheduler + worker of the collection tests

from field_sim import sim_fleet  # noqa: E402
from test_collection import Collection  # noqa: E402
from test_outbox import outbox_rows, schema_check  # noqa: E402

from smmc.domain.readings import daily_closure_type, reading_type  # noqa: E402
from smmc.integration.outbound import Renderer  # noqa: E402
from smmc.integration.payloads import MeterReadings  # noqa: E402
from smmc.integration.readings import ReadingGroup, queue_meter_readings  # noqa: E402
from smmc.store import tables as t  # noqa: E402
from smmc.store.readings import assign_energy_profiles  # noqa: E402
from smmc.store.secrets import SecretBox  # noqa: E402

Key = tuple[str, str, str]  # meter, reading-type code, timestamp
Stored = tuple[str, int, str]  # meter, reading-type id, timestamp


def _sent(engine: Engine, shared_dir: Path) -> tuple[Counter[Key], Counter[Key]]:
    """Every value of the queued MeterReadings (closures, load profile), counted."""
    validate = schema_check(shared_dir, "openwms-epri-2011/xsd/MeterReadings.xsd")
    closures: Counter[Key] = Counter()
    intervals: Counter[Key] = Counter()
    for row in outbox_rows(engine, "readings"):
        message = validate(Renderer().render(row).xml)
        assert isinstance(message.payload, MeterReadings)
        for reading in message.payload.meter_readings:
            serial = str(reading.meter.serial)
            for code, value in reading.readings:
                closures[(serial, code, value.timestamp.isoformat())] += 1
            for block in reading.interval_blocks:
                for value in block.readings:
                    intervals[(serial, block.reading_type, value.timestamp.isoformat())] += 1
    return closures, intervals


def _stored(engine: Engine, meter_ids: dict[int, str]) -> tuple[set[Stored], set[Stored]]:
    """Every stored total closure and interval value of the meters, as MeterReadings keys."""
    r, iv = t.register_reads.c, t.interval_readings.c
    with engine.connect() as conn:
        closures = {
            (meter_ids[m], type_id, captured.isoformat())
            for m, type_id, captured in conn.execute(
                sa.select(r.meter_id, r.reading_type_id, r.captured_at).where(
                    r.meter_id.in_(meter_ids)
                )
            )
        }
        intervals = {
            (meter_ids[m], type_id, end.isoformat())
            for m, type_id, end in conn.execute(
                sa.select(iv.meter_id, iv.reading_type_id, iv.interval_end).where(
                    iv.meter_id.in_(meter_ids)
                )
            )
        }
    return closures, intervals


async def test_collection_queues_what_it_stored_once_for_uploading_meters(
    db: Engine, secret_box: SecretBox, tmp_path: Path, shared_dir: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path, per_concentrator=3, point_to_point=2) as fleet:
        gateway = fleet.gateway_serials(fleet.dc())
        p2p = fleet.p2p_serials()
        ids = {serial: fleet.meter_id(serial) for serial in [*gateway, *p2p]}
        # gateway[0] and p2p[0] upload everything, gateway[1] only its load profile,
        # gateway[2] and p2p[1] nothing (no upload / no energy-profile row).
        with db.begin() as conn:
            for serial, upload, closure in (
                (gateway[0], True, True),
                (p2p[0], True, True),
                (gateway[1], True, False),
                (gateway[2], False, True),
            ):
                assign_energy_profiles(
                    conn,
                    ids[serial],
                    daily_closure="DailyClosure Energy Profile",
                    load_profile="LP Active",
                    is_upload=upload,
                    is_daily_closure=closure,
                )
        run = Collection(fleet)
        await run.day()
        first = len(outbox_rows(db, "readings"))
        assert first > 0
        await run.day()
        rows = outbox_rows(db, "readings")
        assert len(rows) > first
        assert len({row["message_id"] for row in rows}) == len(rows)

        closures, intervals = _sent(db, shared_dir)
        assert max(closures.values()) == 1
        assert max(intervals.values()) == 1
        by_id = {meter_id: serial for serial, meter_id in ids.items()}
        stored_closures, stored_intervals = _stored(db, by_id)
        # the total of every stored closure of a meter that uploads closures, nothing else
        expected_closures: set[Stored] = set()
        for serial, code, stamp in closures:
            energy = reading_type(code).energy
            assert energy is not None
            expected_closures.add((serial, daily_closure_type(energy).id, stamp))
        closure_meters = {gateway[0], p2p[0]}
        assert {s for s, _, _ in closures} == closure_meters
        assert expected_closures == {k for k in stored_closures if k[0] in closure_meters}
        # every stored interval value of a meter that uploads, each sent once
        interval_meters = {gateway[0], gateway[1], p2p[0]}
        sent = {(s, reading_type(code).id, stamp) for s, code, stamp in intervals}
        assert {s for s, _, _ in sent} == interval_meters
        assert sent == {k for k in stored_intervals if k[0] in interval_meters}

        # Queueing the same readings again (a rerun) adds nothing: same MessageIDs.
        body = rows[0]["payload"]
        assert isinstance(body, str)
        period = json.loads(body)
        again = queue_meter_readings(
            db,
            ReadingGroup(period["group"]),
            datetime.fromisoformat(period["period_start"]),
            datetime.fromisoformat(period["period_end"]),
            meters=[entry["meter"] for entry in period["meters"]],
        )
        assert again >= 1
        assert len(outbox_rows(db, "readings")) == len(rows)
