"""Meter-data endpoints over the real databases (the `fleet` fixture: TD-1000 with UAA001
(POD-1) and UAA002 (POD-2), TD-2000 in Punta Arenas, point-to-point UAB003, unlinked UAB004);
values come from the simulator's MeterModel."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from smmc.domain.readings import Energy, QualityFlag, daily_closure_type, interval_type
from smmc.domain.time import local_day_bounds, to_local
from smmc.reports.readings_files import DC_COLUMNS, S_COLUMNS
from smmc.sim.anomalies import Anomaly, AnomalyKind
from smmc.sim.meter_model import MeterModel
from smmc.store.readings import (
    RegisterRead,
    assign_energy_profiles,
    ingest_load_profile,
    ingest_register_reads,
    resolve_meter,
)

TZ = "America/Santiago"
FALL_BACK = date(2026, 4, 4)
INSTALLED = datetime(2026, 1, 1, tzinfo=UTC)
LITERAL_A15 = "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.72.0"
A15 = interval_type(Energy.ACTIVE_FORWARD)


@pytest.fixture
def model(db: Engine, fleet: object) -> MeterModel:
    meter = MeterModel("UAA001", 5, installed_at=INSTALLED)
    rows = [(r.captured_utc, r.active_import_wh) for r in meter.load_profile_day(FALL_BACK)]
    with db.begin() as conn:
        ingest_load_profile(conn, "UAA001", LITERAL_A15, rows)
    return meter


def _window() -> dict[str, str]:
    start, end = local_day_bounds(FALL_BACK, TZ)
    return {"from": start.isoformat(), "to": end.isoformat()}


def test_readings_by_meter_and_by_pod(client: TestClient, model: MeterModel) -> None:
    by_meter = client.get(
        "/api/readings", params={"meter": "UAA001", "reading_type": A15.code, **_window()}
    )
    assert by_meter.status_code == 200, by_meter.text
    body = by_meter.json()
    lp = model.load_profile_day(FALL_BACK)
    assert (body["serialnumber"], body["pod"], body["reading_type"]) == (
        "UAA001",
        "POD-1",
        A15.code,
    )
    assert body["unit"] == "Wh"
    assert len(body["items"]) == 100
    assert [i["value"] for i in body["items"]] == [r.active_import_wh for r in lp]
    assert [datetime.fromisoformat(i["interval_end"]) for i in body["items"]] == [
        r.captured_utc for r in lp
    ]
    # Compared as text: aware datetimes in the repeated hour never compare equal across zones.
    assert [i["local_time"] for i in body["items"]] == [
        to_local(r.captured_utc, TZ).isoformat() for r in lp
    ]
    assert {tuple(i["flags"]) for i in body["items"]} == {("DST_DAY",)}
    by_pod = client.get(
        "/api/readings", params={"pod": "POD-1", "reading_type": LITERAL_A15, **_window()}
    )
    assert by_pod.status_code == 200
    assert by_pod.json()["items"] == body["items"]


def test_readings_range_is_exclusive_start_inclusive_end(
    client: TestClient, model: MeterModel
) -> None:
    lp = model.load_profile_day(FALL_BACK)
    params = {
        "meter": "UAA001",
        "reading_type": A15.code,
        "from": lp[9].captured_utc.isoformat(),
        "to": lp[19].captured_utc.isoformat(),
    }
    items = client.get("/api/readings", params=params).json()["items"]
    assert [i["value"] for i in items] == [r.active_import_wh for r in lp[10:20]]


def test_readings_as_csv(client: TestClient, model: MeterModel) -> None:
    response = client.get(
        "/api/readings",
        params={"meter": "UAA001", "reading_type": A15.code, "format": "csv", **_window()},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text), delimiter=";"))
    assert tuple(rows[0]) == S_COLUMNS
    lp = model.load_profile_day(FALL_BACK)
    assert len(rows) == 1 + 100
    first = dict(zip(S_COLUMNS, rows[1], strict=True))
    assert first["serialnumber"] == "UAA001"
    assert first["pod"] == "POD-1"
    assert float(first["value"]) == lp[0].active_import_wh
    assert int(first["state"]) == QualityFlag.DST_DAY
    assert first["sampledate"] == to_local(lp[0].captured_utc, TZ).strftime("%Y-%m-%d %H:%M:%S.000")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"meter": "UAA001", "pod": "POD-1"}, "meter"),
        ({}, "meter"),
        ({"meter": "UAA001", "reading_type": "9.9.9"}, "reading_type"),
        (
            {"meter": "UAA001", "reading_type": daily_closure_type(Energy.ACTIVE_FORWARD).code},
            "reading_type",
        ),
        (
            {
                "meter": "UAA001",
                "from": "2026-04-05T00:00:00+00:00",
                "to": "2026-04-04T00:00:00+00:00",
            },
            "to",
        ),
        (
            {
                "meter": "UAA001",
                "from": "2026-01-01T00:00:00+00:00",
                "to": "2026-04-04T00:00:00+00:00",
            },
            "to",
        ),
    ],
)
def test_inconsistent_parameters_are_422_problems(
    client: TestClient, model: MeterModel, params: dict[str, str], name: str
) -> None:
    query = {"reading_type": A15.code, **_window(), **params}
    response = client.get("/api/readings", params=query)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["name"] for e in response.json()["errors"]] == [name]


def test_unknown_meter_and_naive_times(client: TestClient, model: MeterModel) -> None:
    missing = client.get(
        "/api/readings", params={"meter": "NOPE", "reading_type": A15.code, **_window()}
    )
    assert missing.status_code == 404
    naive = client.get(
        "/api/readings",
        params={
            "meter": "UAA001",
            "reading_type": A15.code,
            "from": "2026-04-04T00:00:00",
            "to": "2026-04-05T00:00:00",
        },
    )
    assert naive.status_code == 422


def test_register_reads_with_tier_sum_violation(
    db: Engine, client: TestClient, fleet: object
) -> None:
    faulty = MeterModel(
        "UAA002",
        9,
        installed_at=INSTALLED,
        anomalies=(Anomaly(AnomalyKind.TIER_TOTAL_MISMATCH, INSTALLED, None, 77),),
    )
    billing = faulty.billing_row(FALL_BACK)
    assert billing is not None
    registers = billing.registers.active_import
    with db.begin() as conn:
        meter_id = resolve_meter(conn, "UAA002")
        result = ingest_register_reads(
            conn,
            [
                RegisterRead(
                    meter_id,
                    Energy.ACTIVE_FORWARD,
                    billing.captured_utc,
                    registers.tiers,
                    registers.total,
                )
            ],
        )
    assert len(result.tier_sum_violations) == 1
    params = {"pod": "POD-2", **_window()}
    body = client.get("/api/register-reads", params=params).json()
    (item,) = body["items"]
    assert item["tiers"] == list(registers.tiers)
    assert item["total"] == registers.total == sum(registers.tiers) + 77
    assert item["flags"] == ["TIER_SUM_VIOLATION"]
    assert item["energy_type_description"] == "8 Active Energy Import Previous"
    assert datetime.fromisoformat(item["local_time"]).replace(tzinfo=None) == datetime(2026, 4, 5)
    text = client.get("/api/register-reads", params={**params, "format": "csv"}).text
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert tuple(rows[0]) == DC_COLUMNS
    assert rows[1] == [
        "UAA002",
        *(str(t) for t in registers.tiers),
        str(registers.total),
        "8",
        "8 Active Energy Import Previous",
        "2026-04-05 00:00:00.000",
    ]


def test_kpi_and_unread_worklist(db: Engine, client: TestClient, model: MeterModel) -> None:
    # UAA001 was read by the fixture just now, months after the day: late. UAA002's value
    # arrives an hour after the day ends: in time.
    day_end = local_day_bounds(FALL_BACK, TZ)[1]
    with db.begin() as conn:
        ingest_load_profile(
            conn, "UAA002", A15, [(day_end, 10.0)], received_at=day_end + timedelta(hours=1)
        )
    report = client.get("/api/kpi/read-success", params={"day": FALL_BACK.isoformat()}).json()
    groups = {(g["level"], g["name"]): g for g in report["groups"]}
    assert (report["target"], report["window_hours"]) == (0.995, 24.0)
    assert set(groups) == {
        ("company", "company"),
        ("concentrator", "TD-1000"),
        ("comuna", "Maipu"),
        ("comuna", "Santiago"),
    }
    company = groups[("company", "company")]
    assert (company["expected"], company["read"], company["success"]) == (2, 1, 0.5)
    assert company["meets_target"] is False
    assert groups[("comuna", "Maipu")]["read"] == 1
    assert groups[("comuna", "Santiago")]["read"] == 0
    half = client.get(
        "/api/kpi/read-success", params={"day": FALL_BACK.isoformat(), "target": 0.5}
    ).json()
    assert {g["name"]: g["meets_target"] for g in half["groups"]}["company"] is True
    bad = client.get("/api/kpi/read-success", params={"day": "2026-04-04", "target": 1.5})
    assert bad.status_code == 422
    worklist = client.get(
        "/api/worklists/unread-meters", params={"days": 2, "today": "2026-04-06"}
    ).json()
    assert worklist == []
    later = client.get(
        "/api/worklists/unread-meters", params={"days": 2, "today": "2026-04-07"}
    ).json()
    assert later == [
        {
            "serialnumber": "UAA001",
            "concentrator": "TD-1000",
            "pod": "POD-1",
            "last_read_day": "2026-04-04",
        },
        {
            "serialnumber": "UAA002",
            "concentrator": "TD-1000",
            "pod": "POD-2",
            "last_read_day": "2026-04-04",
        },
    ]


def test_meter_data_list_with_seed_columns(db: Engine, client: TestClient, fleet: object) -> None:
    with db.begin() as conn:
        assign_energy_profiles(
            conn,
            resolve_meter(conn, "UAA001"),
            daily_closure="DailyClosure Energy Profile",
            load_profile="LP Active + Active Export",
        )
    rows = client.get("/api/meter-data/meters", params={"concentrator": "TD-1000"}).json()
    assert [r["serialnumber"] for r in rows] == ["UAA001", "UAA002"]
    assert rows[0] == {
        "concentrator": "TD-1000",
        "pod": "POD-1",
        "serialnumber": "UAA001",
        "commissioned": True,
        "reachable": True,
        "errorinst": False,
        "row": 5,
        "phase": "Phase R",
        "isupload": True,
        "isdailyclosure": True,
        "energydailyclosureprofile": "DailyClosure Energy Profile",
        "energyfastloadprofile": "LP Active + Active Export",
    }
    text = client.get("/api/meter-data/meters", params={"format": "csv", "limit": 2}).text
    header, *body = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert header == [
        "concentrator",
        "pod",
        "serialnumber",
        "commissioned",
        "reachable",
        "errorinst",
        "row",
        "phase",
        "isupload",
        "isdailyclosure",
        "energydailyclosureprofile",
        "energyfastloadprofile",
    ]
    assert len(body) == 2
