"""The daily event files reproduce the seed's rows (DOMAIN.md §4)."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.events.decode import decode_message
from smmc.reports.events import (
    EVENT_COLUMNS,
    SWE_COLUMNS,
    hpe_rows,
    lpe_rows,
    spontaneous_rows,
    status_word_rows,
    swe_rows,
    write_daily_files,
)
from smmc.store import tables as t
from smmc.store.events import (
    Observation,
    Occurrence,
    SpontaneousRecord,
    apply_events,
    record_spontaneous,
    work_order_occurrence,
)

SEED_ON = bytes.fromhex("011300184E6B001214030902071532314C564D3530414530303038313602")
SEED_OFF = bytes.fromhex("011300184E6F0012090D2503071532314C564D3530414530303038313601")
# 2021-01-01 19:56:12.536 in Santiago (summer time, UTC-3)
SEED_PUP_UTC = datetime(2021, 1, 1, 22, 56, 12, 536000, tzinfo=UTC)


def _seed_meter(db: Engine) -> None:
    with db.begin() as conn:
        dc = conn.execute(
            t.concentrators.insert()
            .values(name="TD-95322", serial_number="DC-95322", reachable=True)
            .returning(t.concentrators.c.id)
        ).scalar_one()
        meter = conn.execute(
            t.meters.insert()
            .values(serial_number="UAAEEDN17700583967", concentrator_id=dc)
            .returning(t.meters.c.id)
        ).scalar_one()
        pod = conn.execute(
            t.service_points.insert().values(name="3005573").returning(t.service_points.c.id)
        ).scalar_one()
        conn.execute(
            t.meter_links.insert().values(
                meter_id=meter, service_point_id=pod, valid_from=SEED_PUP_UTC - timedelta(days=9)
            )
        )


def test_swe_row_is_the_seed_row(db: Engine) -> None:
    _seed_meter(db)
    with db.begin() as conn:
        apply_events(
            conn, [Observation("meter", "UAAEEDN17700583967", {"normal1": 1}, SEED_PUP_UTC, "push")]
        )
        apply_events(
            conn,
            [
                Observation(
                    "meter",
                    "UAAEEDN17700583967",
                    {"normal1": 0},
                    SEED_PUP_UTC + timedelta(minutes=10),
                    "push",
                )
            ],
        )
    with db.connect() as conn:
        rows = swe_rows(conn, date(2021, 1, 1))
        assert swe_rows(conn, date(2021, 1, 2)) == []
    assert rows == [
        ["TD-95322", "UAAEEDN17700583967", "3005573", "3.26.0.85", "2021-01-01 19:56:12.536",
         "0", "TRUE", "Voltage interruption (PUP)"],
        ["TD-95322", "UAAEEDN17700583967", "3005573", "3.26.0.85", "2021-01-01 20:06:12.536",
         "0", "FALSE", "Voltage interruption (PUP)"],
    ]  # fmt: skip


def test_spontaneous_report_rows_are_the_seed_rows(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(
            t.concentrators.insert().values(
                name="TD-MillaTD-Milla", serial_number="21LVM50AE000816"
            )
        )
        records = []
        for frame, received in (
            (SEED_ON, datetime(2021, 7, 3, 0, 5, 28, tzinfo=UTC)),
            (SEED_OFF, datetime(2021, 7, 3, 13, 13, 42, tzinfo=UTC)),
        ):
            decoded = decode_message(frame, received)
            records.append(
                SpontaneousRecord(received, "tcp", "10.117.65.167", 40000, 58700,
                                  decoded.message_type, frame, decoded.decoded,
                                  device=decoded.device,
                                  device_time_local=decoded.device_time_local)
            )  # fmt: skip
        record_spontaneous(conn, records)
    with db.connect() as conn:
        july_2 = spontaneous_rows(conn, date(2021, 7, 2))
        july_3 = spontaneous_rows(conn, date(2021, 7, 3))
    assert july_2 == [
        ["TD-MillaTD-Milla", "10.117.65.167", "LVC_POWER_ON", "58700", "7/2/2021 8:03:09 PM",
         "7/3/2021 12:05:28 AM", "7/2/2021 8:05:28 PM", SEED_ON.hex().upper()],
    ]  # fmt: skip
    assert july_3 == [
        ["TD-MillaTD-Milla", "10.117.65.167", "LVC_POWER_OFF", "58700", "7/3/2021 9:13:37 AM",
         "7/3/2021 1:13:42 PM", "7/3/2021 9:13:42 AM", SEED_OFF.hex().upper()],
    ]  # fmt: skip


def test_daily_files_have_the_seed_headers_and_offset(db: Engine, tmp_path: Path) -> None:
    _seed_meter(db)
    at = datetime(2021, 7, 21, 4, 4, 3, 281000, tzinfo=UTC)
    with db.begin() as conn:
        apply_events(
            conn,
            [Observation("concentrator", "DC-95322", {"concentrator": 0x08001E}, at, "read")],
            [
                Occurrence("meter", "UAAEEDN17700583967", "WO_FAILED", at, "wo",
                           description="[READ_METER_MACADDRESS] [TB_ACK_40] REPEATER 1 FAILURE",
                           correlation_id="20072021200236433-WSCONSULTASMT"),
                Occurrence("meter", "UAAEEDN17700583967", "METER_COMMISSIONED", at, "wo"),
            ],
        )  # fmt: skip
    written = write_daily_files(db, date(2021, 7, 21), tmp_path)
    names = sorted(path.name for path in written)
    assert names == [
        "ConcentratorStatusWordAnalyzedReport_2021-07-21.csv",
        "HPE_2021-07-21.csv",
        "LPE_2021-07-21.csv",
        "SWE_2021-07-21.csv",
        "SpontaneousMessages_2021-07-21.csv",
    ]
    hpe = list(csv.reader((tmp_path / "HPE_2021-07-21.csv").open(encoding="utf-8")))
    assert tuple(hpe[0]) == EVENT_COLUMNS
    assert hpe[1] == [
        "TD-95322", "UAAEEDN17700583967", "3005573", "3.21.87.85", "2021-07-21 00:04:03.281",
        "20072021200236433-WSCONSULTASMT", "0",
        "[READ_METER_MACADDRESS] [TB_ACK_40] REPEATER 1 FAILURE", "", "",
    ]  # fmt: skip
    lpe = list(csv.reader((tmp_path / "LPE_2021-07-21.csv").open(encoding="utf-8")))
    # the concentrator's letters B, G, C (the status word's own events), then commissioning
    assert [row[3] for row in lpe[1:]] == [
        "10.17.110.36",
        "10.36.56.76",
        "10.36.118.76",
        "3.39.74.42",
    ]
    assert lpe[-1][:3] == ["TD-95322", "UAAEEDN17700583967", "3005573"]
    swe = list(csv.reader((tmp_path / "SWE_2021-07-21.csv").open(encoding="utf-8")))
    assert swe == [list(SWE_COLUMNS)]
    spont = (tmp_path / "SpontaneousMessages_2021-07-21.csv").read_text(encoding="utf-8")
    assert spont.splitlines()[0] == "Offset minutes from UTC: -240"
    with db.connect() as conn:
        assert status_word_rows(conn) == [
            ["TD-95322", "DC-95322", "TRUE", "1", "08001E", "2021-07-21 04:04:03"]
        ]
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.events)).scalar_one() == 5


def test_work_order_results_are_the_seed_hpe_rows(db: Engine) -> None:
    _seed_meter(db)
    at = datetime(2021, 7, 21, 18, 8, 36, 123000, tzinfo=UTC)
    with db.begin() as conn:
        apply_events(
            conn,
            occurrences=[
                work_order_occurrence(
                    "UAAEEDN17700583967",
                    ok=True,
                    at=at,
                    correlation_id="140962_7101936-CORTE_20210721100728",
                    description="",
                    disconnected=True,
                    external_request=True,
                    breaker_state=0,
                )
            ],
        )
        apply_events(
            conn,
            occurrences=[
                work_order_occurrence(
                    "UAAEEDN17700583967",
                    ok=False,
                    at=at + timedelta(seconds=1),
                    correlation_id="20072021203741610-WSCONSULTASMT",
                    description=(
                        "[READ_BILLING_PREVIOUSPERIOD] [TB_ACK_21] NODE NOT REACHABLE AGENT"
                    ),
                )
            ],
        )
    with db.connect() as conn:
        rows = hpe_rows(conn, date(2021, 7, 21))
        assert lpe_rows(conn, date(2021, 7, 21)) == []
    assert rows == [
        ["TD-95322", "UAAEEDN17700583967", "3005573", "3.31.17.68", "2021-07-21 14:08:36.123",
         "140962_7101936-CORTE_20210721100728", "0", "", "TRUE", "0"],
        ["TD-95322", "UAAEEDN17700583967", "3005573", "3.21.87.85", "2021-07-21 14:08:37.123",
         "20072021203741610-WSCONSULTASMT", "0",
         "[READ_BILLING_PREVIOUSPERIOD] [TB_ACK_21] NODE NOT REACHABLE AGENT", "", ""],
    ]  # fmt: skip
