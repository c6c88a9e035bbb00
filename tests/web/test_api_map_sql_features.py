"""The meter GeoJSON written by the database (`meter_feature_rows`) against the rendering it
replaced: every feature built as a dict in Python from `meter_map_rows` and serialised once."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, Engine

from smmc.store import tables
from smmc.web import queries
from smmc.web.api.maps import _point, parse_bbox
from smmc.web.queries import MAP_STATES, BBox, MeterFilter

if TYPE_CHECKING:
    from conftest import AssetFactory


def meter_map_rows(conn: Connection, where: MeterFilter, bbox: BBox | None) -> sa.CursorResult[Any]:
    """The query the Python rendering read: meters at their current service point."""
    longitude, latitude = tables.service_points.c.longitude, tables.service_points.c.latitude
    query = (
        sa.select(
            tables.meters.c.serial_number,
            longitude,
            latitude,
            tables.service_points.c.altitude,
            tables.service_points.c.name,
            tables.service_points.c.comuna,
            tables.concentrators.c.name,
            tables.meters.c.tag,
            tables.meters.c.host,
            tables.meters.c.commissioned,
            tables.meters.c.reachable,
            tables.meters.c.in_dc_table,
        )
        .select_from(queries._METER_FROM)
        .where(*queries._located(where.conditions(), longitude, latitude, bbox))
        .order_by(tables.meters.c.serial_number)
    )
    return conn.execute(query)


ODD_NAMES = ['quote " and \\ backslash', "line\nbreak\ttab\x01\x1f", "Ñuñoa é ✓ 🛰", "sep\u2028"]


def previous_rendering(db: Engine, where: MeterFilter, bbox: str | None) -> bytes:
    features = []
    skipped = 0
    with db.connect() as conn:
        rows: list[Any] = list(
            meter_map_rows(conn, where, None if bbox is None else parse_bbox(bbox))
        )
    for (
        serial,
        lon,
        lat,
        alt,
        service_point,
        comuna,
        concentrator,
        tag,
        host,
        commissioned,
        reachable,
        in_dc_table,
    ) in rows:
        coordinates = _point(lon, lat, alt)
        if coordinates is None:
            skipped += 1
            continue
        linked = concentrator is not None or host is not None
        properties = {
            "serial_number": serial,
            "service_point": service_point,
            "comuna": comuna,
            "concentrator": concentrator,
            "tag": tag,
            "commissioned": commissioned,
            "reachable": reachable,
            "in_dc_table": in_dc_table,
            "lifecycle_state": MAP_STATES[
                linked * 8 + commissioned * 4 + reachable * 2 + in_dc_table
            ],
        }
        geometry = {"type": "Point", "coordinates": coordinates}
        features.append(
            {"type": "Feature", "id": serial, "geometry": geometry, "properties": properties}
        )
    body = {
        "type": "FeatureCollection",
        "features": features,
        "skipped_without_coordinates": skipped,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@pytest.fixture
def odd_fleet(db: Engine, assets: AssetFactory) -> AssetFactory:
    postgres = db.dialect.name == "postgresql"
    assets.concentrator("DC-" + ODD_NAMES[2], latitude=-33.0, longitude=-70.0)
    since = datetime(2025, 1, 1, tzinfo=UTC)
    positions: list[tuple[float | None, float | None, float | None]] = [
        (-70.66, -33.45, 530.5),
        (-71.0, -33.0, 500.0),
        (-72.0, -34.0, 999999999999999.0),
        (-70.76, -33.07000000000001, None),
        (0.1 + 0.2, -0.0, 1e-05),
        (-135.31713395112314, 0.00013164905615561245, 3556.1601463115585),
        (179.99999999999997, 89.99999999999999, 1e16),
        (None, -33.0, 10.0),
        (-70.0, None, None),
        (1e308, 1e308, None),  # finite each, but not their sum: the old code skipped it
        (-70.5, -33.5, math.inf),
    ]
    if postgres:  # SQLite stores NaN as NULL
        positions += [(math.nan, -33.0, None), (-70.1, -33.1, math.nan), (math.inf, 0.0, 1.0)]
    for index, (lon, lat, alt) in enumerate(positions):
        serial = f"UAZ{index:03d}"
        name = ODD_NAMES[index % len(ODD_NAMES)]
        linked = {"concentrator": "DC-" + ODD_NAMES[2]} if index % 3 == 0 else {}
        host = {"host": "10.0.0.1"} if index % 3 == 1 else {}
        assets.meter(
            serial,
            **linked,
            **host,
            tag=None if index % 2 else name,
            commissioned=index % 2 == 0,
            reachable=index % 4 < 2,
            in_dc_table=index % 5 < 3,
        )
        point = f"POD-{index:03d} {name}"
        comuna = None if index % 4 == 3 else name
        assets.service_point(point, longitude=lon, latitude=lat, altitude=alt, comuna=comuna)
        assets.link(serial, point, valid_from=since)
    assets.meter("UAZ999", tag="never linked")
    return assets


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({}, MeterFilter()),
        ({"bbox": "-71,-34,-70.7,0"}, MeterFilter()),
        ({"bbox": "170,-90,-60,90"}, MeterFilter()),
        ({"commissioned": "true"}, MeterFilter(commissioned=True)),
    ],
)
def test_sql_written_features_equal_the_python_rendering(
    db: Engine,
    client: TestClient,
    odd_fleet: AssetFactory,
    params: dict[str, str],
    where: MeterFilter,
) -> None:
    expected = previous_rendering(db, where, params.get("bbox"))
    response = client.get("/api/map/meters", params=params)
    assert response.status_code == 200
    assert response.content == expected
    body: dict[str, Any] = response.json()
    assert body["features"], "the sample must show some meters"
    again = client.get(
        "/api/map/meters", params=params, headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304
