from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smmc.web.api.deps import MAX_OFFSET

if TYPE_CHECKING:
    from conftest import AssetFactory, StatementLog

SECRET_MARK = "SECRET"
JAN_ISO = "2025-01-01T03:00:00Z"
JUN_ISO = "2025-06-01T04:00:00Z"

ALL_METERS = ["UAA001", "UAA002", "UAB003", "UAB004"]


def serials(body: dict[str, Any]) -> list[str]:
    return [item["serial_number"] for item in body["items"]]


def names(body: dict[str, Any], key: str = "name") -> list[str]:
    return [item[key] for item in body["items"]]


def test_meters_are_paged_in_serial_order(client: TestClient, fleet: AssetFactory) -> None:
    pages = []
    for offset in (0, 3, 6):
        response = client.get("/api/meters", params={"limit": 3, "offset": offset})
        assert response.status_code == 200
        body = response.json()
        assert (body["total"], body["limit"], body["offset"]) == (4, 3, offset)
        pages.append(serials(body))
    assert pages == [ALL_METERS[:3], ALL_METERS[3:], []]


def test_meter_list_defaults_to_a_page_of_100(client: TestClient, fleet: AssetFactory) -> None:
    body = client.get("/api/meters").json()
    assert (body["limit"], body["offset"], body["total"]) == (100, 0, 4)
    assert serials(body) == ALL_METERS


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"concentrator": "TD-1000"}, ["UAA001", "UAA002"]),
        ({"concentrator": "TD-2000"}, []),
        ({"commissioned": "true"}, ["UAA001", "UAA002"]),
        ({"commissioned": "false"}, ["UAB003", "UAB004"]),
        ({"reachable": "true"}, ["UAA001", "UAB003"]),
        ({"in_dc_table": "1"}, ["UAA001"]),
        ({"comuna": "Santiago"}, ["UAA001"]),
        ({"comuna": "Maipu"}, ["UAA002"]),
        ({"comuna": "Renca"}, []),  # only through a closed link
        ({"tag": "beta"}, ["UAA002", "UAB003"]),
        ({"meter_type": "polyphase"}, ["UAA002"]),
        ({"meter_type": "monophase"}, ["UAA001", "UAB003", "UAB004"]),
        ({"phase": "R"}, ["UAA001"]),
        ({"point_to_point": "true"}, ["UAB003"]),
        ({"point_to_point": "false"}, ["UAA001", "UAA002", "UAB004"]),
        ({"service_point": "POD-2"}, ["UAA002"]),
        ({"service_point": "POD-4"}, []),
        ({"q": "uab"}, ["UAB003", "UAB004"]),
        ({"q": "UAA00"}, ["UAA001", "UAA002"]),
        ({"q": "U%"}, []),
        ({"q": "UA_"}, []),
        ({"commissioned": "true", "reachable": "false"}, ["UAA002"]),
        ({"tag": "beta", "point_to_point": "false"}, ["UAA002"]),
    ],
)
def test_meter_filters(
    client: TestClient, fleet: AssetFactory, params: dict[str, str], expected: list[str]
) -> None:
    response = client.get("/api/meters", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert serials(body) == expected
    assert body["total"] == len(expected)


@pytest.mark.parametrize(
    ("path", "params", "bad"),
    [
        ("/api/meters", {"meter_type": "trifasico"}, "meter_type"),
        ("/api/meters", {"phase": "X"}, "phase"),
        ("/api/meters", {"commissioned": "maybe"}, "commissioned"),
        ("/api/meters", {"point_to_point": "2"}, "point_to_point"),
        ("/api/meters", {"limit": "0"}, "limit"),
        ("/api/meters", {"limit": "1001"}, "limit"),
        ("/api/meters", {"offset": "-1"}, "offset"),
        ("/api/meters", {"limit": "ten"}, "limit"),
        ("/api/meters", {"q": "UA\x00"}, "q"),
        ("/api/concentrators", {"reachable": "yes please"}, "reachable"),
        ("/api/service-points", {"supply_status": "cut"}, "supply_status"),
        ("/api/service-points", {"has_meter": "perhaps"}, "has_meter"),
        ("/api/transformers", {"offset": "x"}, "offset"),
    ],
)
def test_bad_parameters_are_422_problems_naming_them(
    client: TestClient, path: str, params: dict[str, str], bad: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert [(e["in"], e["name"]) for e in errors] == [("query", bad)]
    assert errors[0]["detail"]


def test_meter_detail_via_concentrator(client: TestClient, fleet: AssetFactory) -> None:
    response = client.get("/api/meters/UAA001")
    assert response.status_code == 200
    body = response.json()
    assert body["serial_number"] == "UAA001"
    assert (body["meter_type"], body["phase"], body["tag"]) == ("monophase", "R", "alpha")
    assert body["communication_path"] == {
        "kind": "concentrator",
        "concentrator": "TD-1000",
        "node_address": 5,
    }
    assert body["lifecycle"] == {
        "linked": True,
        "commissioned": True,
        "reachable": True,
        "in_dc_table": True,
    }
    assert body["lifecycle_state"] == "in_dc_table"
    assert body["service_point"]["name"] == "POD-1"
    assert body["service_point"]["comuna"] == "Santiago"
    assert body["service_point"]["linked_since"] == "2025-01-01T03:00:00Z"
    assert body["has_keys"] == {"encryption_key": True, "authentication_key": True}
    assert not any(key.endswith("_enc") for key in body)


def test_meter_detail_lifecycle_stops_at_first_gap(client: TestClient, fleet: AssetFactory) -> None:
    body = client.get("/api/meters/UAA002").json()
    assert body["lifecycle_state"] == "commissioned"
    assert body["service_point"]["name"] == "POD-2"
    assert body["has_keys"] == {"encryption_key": True, "authentication_key": False}


def test_meter_detail_point_to_point(client: TestClient, fleet: AssetFactory) -> None:
    body = client.get("/api/meters/UAB003").json()
    assert body["communication_path"] == {
        "kind": "point_to_point",
        "host": "10.9.0.3",
        "port": 4059,
    }
    # reachable but never commissioned: only linked for work-order purposes
    assert body["lifecycle"]["reachable"] is True
    assert body["lifecycle_state"] == "linked"
    assert body["service_point"] is None


def test_meter_detail_without_path(client: TestClient, fleet: AssetFactory) -> None:
    body = client.get("/api/meters/UAB004").json()
    assert body["communication_path"] is None
    assert body["lifecycle_state"] == "registered"
    assert body["has_keys"] == {"encryption_key": False, "authentication_key": False}


def test_meter_list_items_carry_state_and_location(client: TestClient, fleet: AssetFactory) -> None:
    items = {item["serial_number"]: item for item in client.get("/api/meters").json()["items"]}
    assert items["UAA001"]["lifecycle_state"] == "in_dc_table"
    assert items["UAA002"]["comuna"] == "Maipu"
    assert items["UAA002"]["service_point"] == "POD-2"
    assert items["UAB003"]["point_to_point"] is True
    assert items["UAB004"]["concentrator"] is None


def test_meter_link_history_newest_first(client: TestClient, fleet: AssetFactory) -> None:
    body = client.get("/api/meters/UAA002/links").json()
    assert body["meter"] == "UAA002"
    assert body["items"] == [
        {
            "service_point": "POD-2",
            "comuna": "Maipu",
            "valid_from": JUN_ISO,
            "valid_to": None,
            "current": True,
        },
        {
            "service_point": "POD-4",
            "comuna": "Renca",
            "valid_from": JAN_ISO,
            "valid_to": JUN_ISO,
            "current": False,
        },
    ]
    assert client.get("/api/meters/UAB004/links").json()["items"] == []


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/api/meters/NOPE123", "NOPE123"),
        ("/api/meters/NOPE123/links", "NOPE123"),
        ("/api/concentrators/TD-9", "TD-9"),
        ("/api/service-points/POD-99", "POD-99"),
        ("/api/transformers/TR-404", "TR-404"),
    ],
)
def test_unknown_keys_are_404_problems(
    client: TestClient, fleet: AssetFactory, path: str, key: str
) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert key in body["detail"]
    assert body["instance"] == path


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["TD-1000", "TD-2000"]),
        ({"comuna": "Maipu"}, ["TD-2000"]),
        ({"tag": "urban"}, ["TD-1000"]),
        ({"transformer": "TR-002"}, ["TD-2000"]),
        ({"substation": "SS-NORTE"}, ["TD-1000"]),
        ({"reachable": "false"}, ["TD-2000"]),
        ({"q": "td-1"}, ["TD-1000"]),
        ({"q": "TD-"}, ["TD-1000", "TD-2000"]),
        ({"substation": "SS-SUR", "reachable": "true"}, []),
    ],
)
def test_concentrator_filters(
    client: TestClient, fleet: AssetFactory, params: dict[str, str], expected: list[str]
) -> None:
    body = client.get("/api/concentrators", params=params).json()
    assert names(body) == expected
    assert body["total"] == len(expected)


def test_concentrator_detail(client: TestClient, fleet: AssetFactory) -> None:
    body = client.get("/api/concentrators/TD-1000").json()
    assert body["name"] == "TD-1000"
    assert body["serial_number"] == "20LVM50A10006010"
    assert (body["transformer"], body["substation"]) == ("TR-001", "SS-NORTE")
    assert body["time_zone"] == "America/Santiago"
    assert body["network"] == {"host": "10.1.0.10", "port": 4059}
    assert body["location"] == {"latitude": -33.4489, "longitude": -70.6693, "altitude": 520.0}
    assert body["meters"] == {"total": 2, "commissioned": 2, "reachable": 1}
    assert body["has_credentials"] == {
        "ppp_username": "ppp-user",
        "maa_username": None,
        "has_ppp_password": True,
        "has_maa_password": True,
        "has_k2_password": True,
    }
    assert not any(key.endswith("_enc") for key in body)


def test_concentrator_without_meters_or_location(client: TestClient, fleet: AssetFactory) -> None:
    body = client.get("/api/concentrators/TD-2000").json()
    assert body["time_zone"] == "America/Punta_Arenas"
    assert body["meters"] == {"total": 0, "commissioned": 0, "reachable": 0}
    assert body["location"] is None
    assert body["has_credentials"]["has_k2_password"] is False


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["POD-1", "POD-2", "POD-3", "POD-4"]),
        ({"comuna": "Santiago"}, ["POD-1", "POD-3"]),
        ({"tag": "com"}, ["POD-2"]),
        ({"net_billing": "true"}, ["POD-1"]),
        ({"is_balance": "true"}, ["POD-2"]),
        ({"supply_status": "disconnected"}, ["POD-2"]),
        ({"supply_status": "unknown"}, ["POD-3", "POD-4"]),
        ({"has_meter": "true"}, ["POD-1", "POD-2"]),
        ({"has_meter": "false"}, ["POD-3", "POD-4"]),
        ({"has_meter": "false", "comuna": "Renca"}, ["POD-4"]),
    ],
)
def test_service_point_filters(
    client: TestClient, fleet: AssetFactory, params: dict[str, str], expected: list[str]
) -> None:
    body = client.get("/api/service-points", params=params).json()
    assert names(body) == expected
    assert body["total"] == len(expected)


def test_service_point_list_shows_current_meter(client: TestClient, fleet: AssetFactory) -> None:
    items = {i["name"]: i for i in client.get("/api/service-points").json()["items"]}
    assert {name: item["current_meter"] for name, item in items.items()} == {
        "POD-1": "UAA001",
        "POD-2": "UAA002",
        "POD-3": None,
        "POD-4": None,
    }


def test_service_point_detail(client: TestClient, fleet: AssetFactory) -> None:
    body = client.get("/api/service-points/POD-1").json()
    assert body["current_meter"] == "UAA001"
    assert body["meter_since"] == "2025-01-01T03:00:00Z"
    assert body["location"] == {"latitude": -33.45, "longitude": -70.66, "altitude": 530.5}
    assert (body["net_billing"], body["is_balance"], body["supply_status"]) == (
        True,
        False,
        "connected",
    )
    empty = client.get("/api/service-points/POD-4").json()
    assert (empty["current_meter"], empty["meter_since"], empty["location"]) == (None, None, None)


def test_transformers_list_and_filter(client: TestClient, fleet: AssetFactory) -> None:
    body = client.get("/api/transformers").json()
    assert [(i["code"], i["substation"], i["concentrator_count"]) for i in body["items"]] == [
        ("TR-001", "SS-NORTE", 1),
        ("TR-002", "SS-SUR", 1),
        ("TR-003", "SS-SUR", 0),
    ]
    south = client.get("/api/transformers", params={"substation": "SS-SUR"}).json()
    assert names(south, "code") == ["TR-002", "TR-003"]
    assert south["total"] == 2


def test_transformer_detail(client: TestClient, fleet: AssetFactory) -> None:
    fleet.concentrator("TD-0500", "TR-001")
    body = client.get("/api/transformers/TR-001").json()
    assert body["code"] == "TR-001"
    assert body["substation"] == "SS-NORTE"
    assert body["description"] == "north feeder"
    assert body["concentrators"] == ["TD-0500", "TD-1000"]


@pytest.mark.parametrize(
    ("path", "queries"),
    [
        ("/api/meters", 2),
        ("/api/concentrators", 2),
        ("/api/service-points", 2),
        ("/api/transformers", 2),
        ("/api/concentrators/TD-1", 2),
        ("/api/transformers/TR-1", 2),
        ("/api/meters/UAA010", 1),
        ("/api/service-points/POD-010", 1),
    ],
)
def test_a_response_costs_a_fixed_number_of_queries(
    client: TestClient,
    assets: AssetFactory,
    statements: StatementLog,
    path: str,
    queries: int,
) -> None:
    assets.transformer("TR-1", "SS-1")
    for index in range(3):
        assets.concentrator(f"TD-{index}", "TR-1")
    for index in range(30):
        serial = f"UAA{index:03d}"
        assets.meter(serial, f"TD-{index % 3}", commissioned=True)
        assets.service_point(f"POD-{index:03d}")
        assets.link(serial, f"POD-{index:03d}", datetime(2025, 1, 1, tzinfo=UTC))
    statements.statements.clear()
    response = client.get(path)
    assert response.status_code == 200
    assert len(statements.statements) == queries, statements.statements
    if path == "/api/concentrators/TD-1":
        assert response.json()["meters"] == {"total": 10, "commissioned": 10, "reachable": 0}


def test_no_endpoint_returns_a_sealed_secret(client: TestClient, fleet: AssetFactory) -> None:
    paths = [
        "/api/meters",
        "/api/concentrators",
        "/api/service-points",
        "/api/transformers",
        "/api/transformers/TR-001",
        "/api/service-points/POD-1",
        "/api/map/meters",
        "/api/map/concentrators",
        *(f"/api/meters/{serial}" for serial in ALL_METERS),
        *(f"/api/meters/{serial}/links" for serial in ALL_METERS),
        "/api/concentrators/TD-1000",
        "/api/concentrators/TD-2000",
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        assert SECRET_MARK not in response.text, path
        assert "v1:" not in response.text, path


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    limit=st.integers(min_value=-5, max_value=1005) | st.integers(),
    offset=st.integers(min_value=-3, max_value=8)
    | st.integers(min_value=-(2**70), max_value=2**70),
)
def test_pagination_slices_the_ordered_list(
    client: TestClient, fleet: AssetFactory, limit: int, offset: int
) -> None:
    response = client.get("/api/meters", params={"limit": limit, "offset": offset})
    if 1 <= limit <= 1000 and 0 <= offset <= MAX_OFFSET:
        assert response.status_code == 200
        assert serials(response.json()) == ALL_METERS[offset : offset + limit]
    else:
        assert response.status_code == 422
        assert {e["name"] for e in response.json()["errors"]} <= {"limit", "offset"}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(q=st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))
def test_serial_prefix_search_matches_python_and_never_fails(
    client: TestClient, fleet: AssetFactory, q: str
) -> None:
    response = client.get("/api/meters", params={"q": q})
    if "\x00" in q:
        assert response.status_code == 422
        return
    assert response.status_code == 200
    if q.isascii():
        expected = [s for s in ALL_METERS if s.lower().startswith(q.lower())]
        assert serials(response.json()) == expected
