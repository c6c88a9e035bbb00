"""Meters and concentrators as GeoJSON (RFC 7946) for the map.

A map asks for the whole fleet at once (100,000 meters and more), so each endpoint runs one
select and skips response models: the concentrators' builds plain dicts from row tuples and
serialises them once; the meters' has the database write the features as JSON text: all
of it on PostgreSQL, all but the coordinates on SQLite (see `meter_feature_rows`). Records
without usable coordinates are left out and counted in `skipped_without_coordinates`, so
the map can say how many it cannot show.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AfterValidator

from smmc.web.api.deps import ConcentratorFilterDep, EngineDep, MeterFilterDep
from smmc.web.caching import validated_response
from smmc.web.problems import problem_responses
from smmc.web.queries import (
    BBox,
    concentrator_map_rows,
    meter_feature_rows,
    meter_features_written,
)

GEOJSON_MEDIA_TYPE = "application/geo+json"
_finite = math.isfinite


router = APIRouter(prefix="/api/map", tags=["map"], responses=problem_responses(422, 500))

_GEOJSON_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a GeoJSON FeatureCollection of Point features",
        "content": {GEOJSON_MEDIA_TYPE: {"schema": {"type": "object"}}},
    }
}


# Plain decimal degrees: Python's float() would also take "nan", "inf" and "1_0".
_DECIMAL = re.compile(r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*", re.ASCII)


class BBoxError(ValueError):
    """A `bbox` parameter that is not four numbers forming a valid WGS 84 box."""


def parse_bbox(text: str) -> BBox:
    """`minLon,minLat,maxLon,maxLat` in decimal degrees (RFC 7946 §5). A west edge east of
    the east edge is a box crossing the antimeridian, which §5.2 allows."""
    parts = text.split(",")
    if len(parts) != 4:
        raise BBoxError(f"expected 4 comma-separated numbers, got {len(parts)}")
    values = []
    for label, part in zip(("minLon", "minLat", "maxLon", "maxLat"), parts, strict=True):
        if not _DECIMAL.fullmatch(part):
            raise BBoxError(f"{label} {part.strip()[:40]!r} is not a decimal number")
        value = float(part)
        limit = 180.0 if label.endswith("Lon") else 90.0
        if not -limit <= value <= limit:
            raise BBoxError(f"{label} {value} is outside [-{limit:g}, {limit:g}]")
        values.append(value)
    min_lon, min_lat, max_lon, max_lat = values
    if min_lat > max_lat:
        raise BBoxError(f"minLat {min_lat} is north of maxLat {max_lat}")
    return BBox(min_lon, min_lat, max_lon, max_lat)


def _check_bbox(text: str | None) -> str | None:
    """Validate inside pydantic so a bad `bbox` is reported together with any other bad
    parameter of the same request (`BBoxError` is a `ValueError`)."""
    if text is not None:
        parse_bbox(text)
    return text


def bbox_parameter(
    bbox: Annotated[
        str | None,
        Query(
            max_length=200,
            description="minLon,minLat,maxLon,maxLat (WGS 84 degrees)",
            examples=["-70.8,-33.6,-70.5,-33.3"],
        ),
        AfterValidator(_check_bbox),
    ] = None,
) -> BBox | None:
    return None if bbox is None else parse_bbox(bbox)


BBoxDep = Annotated[BBox | None, Depends(bbox_parameter)]


def _point(lon: Any, lat: Any, alt: Any) -> list[float] | None:
    """RFC 7946 position: longitude, latitude, then altitude only when known. PostgreSQL can
    hold NaN and infinities, which JSON cannot: such a record counts as without coordinates."""
    if lon is None or lat is None or not _finite(lon + lat):
        return None
    if alt is None or not _finite(alt):
        return [lon, lat]
    return [lon, lat, alt]


def _collection(request: Request, features: list[dict[str, Any]], skipped: int) -> Response:
    text = json.dumps(features, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return _feature_collection(request, text, skipped)


def _feature_collection(request: Request, features: str, skipped: int) -> Response:
    """`features` is the features array already as JSON text."""
    content = (
        f'{{"type":"FeatureCollection","features":{features},'
        f'"skipped_without_coordinates":{skipped}}}'
    )
    return validated_response(request, content.encode(), GEOJSON_MEDIA_TYPE)


def meter_features_json(rows: Iterable[Any]) -> tuple[str, int]:
    """The features array as JSON text from `meter_feature_rows`, whose id and properties
    come written by the database; only the coordinates are written here."""
    features = []
    skipped = 0
    for ident, lon, lat, alt, properties in rows:
        coordinates = _point(lon, lat, alt)
        if coordinates is None:
            skipped += 1
            continue
        position = ",".join(map(repr, coordinates))
        features.append(
            f'{{"type":"Feature","id":{ident},"geometry":{{"type":"Point",'
            f'"coordinates":[{position}]}},"properties":{properties}}}'
        )
    return f"[{','.join(features)}]", skipped


@router.get("/meters", response_class=Response, responses=_GEOJSON_RESPONSE)
def meters_map(
    request: Request, engine: EngineDep, filters: MeterFilterDep, bbox: BBoxDep
) -> Response:
    """Meters at their current service point's coordinates; same filters as `/api/meters`.
    The ETag lets a client that already holds the collection get ``304 Not Modified``."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            features, skipped = meter_features_written(conn, filters, bbox)
        else:
            features, skipped = meter_features_json(meter_feature_rows(conn, filters, bbox))
    return _feature_collection(request, features, skipped)


def _concentrator_features(rows: Iterable[Any]) -> tuple[list[dict[str, Any]], int]:
    features = []
    skipped = 0
    for name, lon, lat, alt, comuna, tag, reachable, transformer, substation, count in rows:
        coordinates = _point(lon, lat, alt)
        if coordinates is None:
            skipped += 1
            continue
        features.append(
            {
                "type": "Feature",
                "id": name,
                "geometry": {"type": "Point", "coordinates": coordinates},
                "properties": {
                    "name": name,
                    "comuna": comuna,
                    "tag": tag,
                    "reachable": reachable,
                    "transformer": transformer,
                    "substation": substation,
                    "meter_count": count,
                },
            }
        )
    return features, skipped


@router.get("/concentrators", response_class=Response, responses=_GEOJSON_RESPONSE)
def concentrators_map(
    request: Request, engine: EngineDep, filters: ConcentratorFilterDep, bbox: BBoxDep
) -> Response:
    """Concentrators at their own coordinates; same filters as `/api/concentrators`."""
    with engine.connect() as conn:
        features, skipped = _concentrator_features(concentrator_map_rows(conn, filters, bbox))
    return _collection(request, features, skipped)
