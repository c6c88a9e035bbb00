"""The events API: queries, active alarms, outages and the control-room aggregates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from fastapi.testclient import TestClient
from query_plans import QueryPlans
from sqlalchemy.engine import Engine

from smmc.store.events import Observation, Occurrence, apply_events
from smmc.store.tables import events

if TYPE_CHECKING:
    from conftest import AssetFactory

T0 = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)


def _scene(db: Engine, assets: AssetFactory) -> None:
    assets.transformer("TR-A", "SE-A")
    assets.concentrator("TD-A", "TR-A", serial_number="SER-A", comuna="Maipu")
    assets.concentrator("TD-B", comuna="Nunoa")
    for serial, dc in (("M1", "TD-A"), ("M2", "TD-A"), ("M3", "TD-B")):
        assets.meter(serial, dc)
    assets.service_point("POD-1", comuna="Providencia")
    assets.link("M1", "POD-1", T0 - timedelta(days=30))
    with db.begin() as conn:
        apply_events(
            conn,
            [
                Observation("meter", "M1", {"normal1": 1, "extended1": 8}, T0, "push"),
                Observation("meter", "M2", {"normal1": 1}, T0 + timedelta(minutes=10), "push"),
                Observation("meter", "M3", {"normal1": 2}, T0 + timedelta(hours=1), "push"),
            ],
        )
        apply_events(
            conn, [Observation("meter", "M3", {"normal1": 0}, T0 + timedelta(hours=2), "push")]
        )
        apply_events(
            conn,
            occurrences=[
                Occurrence("concentrator", "SER-A", "LVC_POWER_OFF", T0, "spont", active=True)
            ],
        )


def test_query_events_by_filters(db: Engine, assets: AssetFactory, client: TestClient) -> None:
    _scene(db, assets)
    everything = client.get("/api/events").json()
    assert everything["total"] == 5
    m1 = client.get("/api/events", params={"meter": "M1"}).json()
    assert sorted(item["acronym"] for item in m1["items"]) == ["CAPE", "PUP"]
    pup = client.get("/api/events", params={"type": "3.26.0.85", "active": True}).json()
    assert sorted(item["device"] for item in pup["items"]) == ["M1", "M2"]
    by_dc = client.get("/api/events", params={"concentrator": "TD-A"}).json()
    assert by_dc["total"] == 4  # three meter events and the DC's own power-off
    tamper = client.get("/api/events", params={"category": "tamper"}).json()
    assert [item["acronym"] for item in tamper["items"]] == ["CAPE"]
    later = client.get(
        "/api/events", params={"since": (T0 + timedelta(minutes=5)).isoformat()}
    ).json()
    assert sorted(item["device"] for item in later["items"]) == ["M2", "M3"]
    paged = client.get("/api/events", params={"limit": 2, "offset": 4}).json()
    assert paged["total"] == 5
    assert len(paged["items"]) == 1
    assert client.get("/api/events", params={"priority": "urgent"}).status_code == 422
    assert client.get("/api/events", params={"since": "2026-04-10T12:00:00"}).status_code == 422


def test_active_alarms_and_outages(db: Engine, assets: AssetFactory, client: TestClient) -> None:
    _scene(db, assets)
    active = client.get("/api/events/alarms/active").json()
    assert active["total"] == 4  # M3's ORD cleared
    high = client.get("/api/events/alarms/active", params={"priority": "high"}).json()
    assert all(item["priority"] == "high" for item in high["items"])
    outages = client.get("/api/events/outages").json()
    assert len(outages) == 1
    assert outages[0]["scope"] == "transformer"
    assert outages[0]["devices"] == 3  # M1, M2 and the DC
    assert outages[0]["is_open"] is True
    assert client.get("/api/events/outages", params={"open": False}).json() == []


def test_control_room_aggregates(db: Engine, assets: AssetFactory, client: TestClient) -> None:
    _scene(db, assets)
    hours = client.get(
        "/api/events/aggregates/per-hour",
        params={"since": T0.isoformat(), "until": (T0 + timedelta(hours=3)).isoformat()},
    ).json()
    assert [(h["meters"], h["events"]) for h in hours] == [(2, 4), (1, 1)]
    assert [datetime.fromisoformat(h["hour"]) for h in hours] == [T0, T0 + timedelta(hours=1)]
    types = client.get("/api/events/aggregates/by-type").json()
    assert types[0] == {
        "type": "3.26.0.85",
        "description": "Voltage interruption (PUP)",
        "meters": 2,
        "events": 2,
    }
    top = client.get("/api/events/aggregates/top-concentrators").json()
    assert top == [{"concentrator": "TD-A", "meters_with_active_events": 2, "active_events": 3}]
    comunas = client.get("/api/events/aggregates/comunas").json()
    assert comunas == [
        {"comuna": "Maipu", "meters": 1, "events": 1},
        {"comuna": "Nunoa", "meters": 1, "events": 1},
        {"comuna": "Providencia", "meters": 1, "events": 2},
    ]
    too_long = client.get(
        "/api/events/aggregates/per-hour",
        params={"since": T0.isoformat(), "until": (T0 + timedelta(days=40)).isoformat()},
    )
    assert too_long.status_code == 422


def test_per_hour_buckets_are_utc_hours_counted_by_the_database(
    db: Engine, client: TestClient
) -> None:
    """An event at 12:59:59.999999 is in the 12:00 hour, one at 13:00 exactly in the next;
    a concentrator's event counts as an event but not as a meter."""
    moments = [
        ("meter", "M1", T0 + timedelta(minutes=59, seconds=59, microseconds=999_999)),
        ("meter", "M1", T0 + timedelta(minutes=1)),
        ("meter", "M2", T0 + timedelta(hours=1)),
        ("concentrator", "DC-1", T0 + timedelta(hours=1, minutes=30)),
        ("meter", "M3", T0 - timedelta(microseconds=1)),  # before the window
    ]
    with db.begin() as conn:
        conn.execute(
            events.insert(),
            [
                {
                    "message_id": str(uuid.uuid4()),
                    "device_kind": kind,
                    "device": device,
                    "key": f"k{index}",
                    "code": "3.26.0.85",
                    "acronym": "PUP",
                    "description": "Voltage interruption",
                    "severity": 1,
                    "priority": "high",
                    "category": "power",
                    "routing": "control_room",
                    "is_active": False,
                    "opened_at": opened,
                    "source": "test",
                }
                for index, (kind, device, opened) in enumerate(moments)
            ],
        )
    hours = client.get(
        "/api/events/aggregates/per-hour",
        params={"since": T0.isoformat(), "until": (T0 + timedelta(hours=3)).isoformat()},
    ).json()
    assert [(datetime.fromisoformat(h["hour"]), h["meters"], h["events"]) for h in hours] == [
        (T0, 1, 2),
        (T0 + timedelta(hours=1), 1, 2),
    ]


def test_control_room_queries_read_their_indexes_on_sqlite(
    client: TestClient, sqlite_plans: QueryPlans
) -> None:
    """SQLite has no statistics here and picks indexes by their terms: the time windows must
    read (device_kind, opened_at) and the active-event queries the partial index of the
    active events, never every meter event ever recorded."""
    window = {"since": T0.isoformat(), "until": (T0 + timedelta(hours=3)).isoformat()}
    with sqlite_plans("FROM events") as plans:
        client.get("/api/events/aggregates/top-concentrators")
        client.get("/api/events/aggregates/by-type", params=window)
        client.get("/api/events/aggregates/comunas", params=window)
        client.get("/api/events/alarms/active")
        client.get("/api/events", params={"meter": "M-1"})
    top, by_type, comunas, *active, meter_count, meter_page = plans
    assert "uq_events_active" in top
    assert "ix_events_device" in meter_count
    assert "ix_events_device" in meter_page
    assert "ix_events_kind_opened" in by_type
    assert "ix_events_kind_opened" in comunas
    assert active
    assert all("uq_events_active" in plan or "ix_events_opened_at" in plan for plan in active)
