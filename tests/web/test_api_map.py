from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from smmc.web.api.maps import BBoxError, parse_bbox
from smmc.web.queries import BBox

if TYPE_CHECKING:
    from conftest import AssetFactory, StatementLog


def feature_ids(body: dict[str, Any]) -> list[str]:
    return [feature["id"] for feature in body["features"]]


def test_meter_map_is_geojson_at_service_point_coordinates(
    client: TestClient, fleet: AssetFactory
) -> None:
    response = client.get("/api/map/meters")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    body = response.json()
    assert body["type"] == "FeatureCollection"
    # UAB003 and UAB004 have no service point, hence no coordinates
    assert body["skipped_without_coordinates"] == 2
    by_id = {feature["id"]: feature for feature in body["features"]}
    assert list(by_id) == ["UAA001", "UAA002"]
    # RFC 7946: longitude first, altitude third only when known
    assert by_id["UAA001"]["geometry"] == {
        "type": "Point",
        "coordinates": [-70.66, -33.45, 530.5],
    }
    assert by_id["UAA002"]["geometry"]["coordinates"] == [-70.76, -33.51]
    assert by_id["UAA001"]["type"] == "Feature"
    assert by_id["UAA001"]["properties"] == {
        "serial_number": "UAA001",
        "service_point": "POD-1",
        "comuna": "Santiago",
        "concentrator": "TD-1000",
        "tag": "alpha",
        "commissioned": True,
        "reachable": True,
        "in_dc_table": True,
        "lifecycle_state": "in_dc_table",
    }
    assert by_id["UAA002"]["properties"]["lifecycle_state"] == "commissioned"


@pytest.mark.parametrize(
    ("params", "expected", "skipped"),
    [
        ({"comuna": "Santiago"}, ["UAA001"], 0),
        ({"reachable": "false"}, ["UAA002"], 1),
        ({"commissioned": "false"}, [], 2),
        ({"tag": "beta"}, ["UAA002"], 1),
        ({"concentrator": "TD-1000"}, ["UAA001", "UAA002"], 0),
        ({"point_to_point": "true"}, [], 1),
        ({"q": "uaa002"}, ["UAA002"], 0),
        ({"bbox": "-70.7,-33.5,-70.6,-33.4"}, ["UAA001"], 2),
        ({"bbox": "-71,-34,-70,-33", "meter_type": "polyphase"}, ["UAA002"], 0),
        ({"bbox": "10,10,20,20"}, [], 2),
    ],
)
def test_meter_map_filters(
    client: TestClient,
    fleet: AssetFactory,
    params: dict[str, str],
    expected: list[str],
    skipped: int,
) -> None:
    body = client.get("/api/map/meters", params=params).json()
    assert feature_ids(body) == expected
    assert body["skipped_without_coordinates"] == skipped


def test_concentrator_map(client: TestClient, fleet: AssetFactory) -> None:
    response = client.get("/api/map/concentrators")
    assert response.headers["content-type"] == "application/geo+json"
    body = response.json()
    assert body["skipped_without_coordinates"] == 1  # TD-2000 has no site coordinates
    (feature,) = body["features"]
    assert feature["id"] == "TD-1000"
    assert feature["geometry"] == {"type": "Point", "coordinates": [-70.6693, -33.4489, 520.0]}
    assert feature["properties"] == {
        "name": "TD-1000",
        "comuna": "Santiago",
        "tag": "urban",
        "reachable": True,
        "transformer": "TR-001",
        "substation": "SS-NORTE",
        "meter_count": 2,
    }


@pytest.mark.parametrize(
    ("params", "expected", "skipped"),
    [
        ({"reachable": "false"}, [], 1),
        ({"substation": "SS-NORTE"}, ["TD-1000"], 0),
        ({"bbox": "-70.7,-33.5,-70.6,-33.4"}, ["TD-1000"], 1),
        ({"bbox": "-70.6,-33.5,-70.5,-33.4"}, [], 1),
    ],
)
def test_concentrator_map_filters(
    client: TestClient,
    fleet: AssetFactory,
    params: dict[str, str],
    expected: list[str],
    skipped: int,
) -> None:
    body = client.get("/api/map/concentrators", params=params).json()
    assert feature_ids(body) == expected
    assert body["skipped_without_coordinates"] == skipped


def test_bbox_across_the_antimeridian(client: TestClient, assets: AssetFactory) -> None:
    for name, lon in (("DC-EAST", 179.5), ("DC-WEST", -179.5), ("DC-ZERO", 0.0)):
        assets.concentrator(name, latitude=-1.0, longitude=lon)
    crossing = client.get("/api/map/concentrators", params={"bbox": "179,-5,-179,5"}).json()
    assert feature_ids(crossing) == ["DC-EAST", "DC-WEST"]
    plain = client.get("/api/map/concentrators", params={"bbox": "-179,-5,179,5"}).json()
    assert feature_ids(plain) == ["DC-ZERO"]


def test_map_scales_without_per_row_queries(
    client: TestClient, assets: AssetFactory, statements: StatementLog
) -> None:
    assets.concentrator("TD-1", latitude=-33.0, longitude=-70.0)
    for index in range(60):
        serial = f"UAA{index:03d}"
        assets.meter(serial, "TD-1", commissioned=index % 2 == 0)
        if index % 3:
            assets.service_point(f"POD-{index:03d}", latitude=-33 - index / 100, longitude=-70.5)
            assets.link(serial, f"POD-{index:03d}", valid_from=datetime(2025, 1, 1, tzinfo=UTC))
    statements.statements.clear()
    body = client.get("/api/map/meters").json()
    assert len(statements.statements) == 1
    located = [f"UAA{i:03d}" for i in range(60) if i % 3]
    assert feature_ids(body) == located
    assert body["skipped_without_coordinates"] == 20
    statements.statements.clear()
    conc = client.get("/api/map/concentrators").json()
    assert len(statements.statements) == 1
    assert conc["features"][0]["properties"]["meter_count"] == 60


@pytest.mark.parametrize(
    "bbox",
    [
        "1,2,3",
        "1,2,3,4,5",
        "a,b,c,d",
        "",
        "-181,0,0,1",
        "0,-91,1,1",
        "0,10,1,5",
        "nan,0,1,1",
        "0,0,inf,1",
        "1;2;3;4",
        "1_0,0,2,1",
        "0x1,0,2,1",
    ],
)
@pytest.mark.parametrize("path", ["/api/map/meters", "/api/map/concentrators"])
def test_malformed_bbox_is_a_422_problem(
    client: TestClient, fleet: AssetFactory, path: str, bbox: str
) -> None:
    response = client.get(path, params={"bbox": bbox})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    (error,) = response.json()["errors"]
    assert (error["in"], error["name"]) == ("query", "bbox")
    assert error["detail"]


def test_map_rejects_bad_filters_too(client: TestClient, fleet: AssetFactory) -> None:
    response = client.get("/api/map/meters", params={"phase": "Q", "bbox": "x"})
    assert response.status_code == 422
    assert {e["name"] for e in response.json()["errors"]} == {"phase", "bbox"}


longitudes = st.floats(min_value=-180, max_value=180)
latitudes = st.floats(min_value=-90, max_value=90)


@given(longitudes, latitudes, longitudes, latitudes)
def test_parse_bbox_round_trips_valid_boxes(
    lon1: float, lat1: float, lon2: float, lat2: float
) -> None:
    south, north = sorted((lat1, lat2))
    text = ",".join(repr(value) for value in (lon1, south, lon2, north))
    assert parse_bbox(text) == BBox(lon1, south, lon2, north)


@given(st.text(max_size=40))
def test_parse_bbox_accepts_only_valid_boxes(text: str) -> None:
    try:
        box = parse_bbox(text)
    except BBoxError:
        return
    values = [box.min_lon, box.min_lat, box.max_lon, box.max_lat]
    assert all(math.isfinite(value) for value in values)
    assert -180 <= box.min_lon <= 180
    assert -180 <= box.max_lon <= 180
    assert -90 <= box.min_lat <= box.max_lat <= 90
    assert [float(part) for part in text.split(",")] == values
