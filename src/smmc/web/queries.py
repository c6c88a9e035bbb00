"""The read side of the asset API: SQLAlchemy Core selects against the store's tables.

Each list is one joined select (no per-row queries) plus one count over the same filters.
The sealed `*_enc` columns are never selected as values, only tested for presence.
A meter's current service point is its open link (`valid_to IS NULL`); the store's partial
unique indexes guarantee at most one per meter and per service point, so the joins never
multiply rows.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Connection, RowMapping

from smmc.domain.assets import (
    LifecycleState,
    MeterStatus,
    MeterType,
    Phase,
    SupplyStatus,
    lifecycle_state,
)
from smmc.store.tables import (
    UtcDateTime,
    concentrators,
    meter_links,
    meters,
    service_points,
    substations,
    transformers,
)

current_link = meter_links.alias("current_link")

_METER_FROM = (
    meters.outerjoin(concentrators, meters.c.concentrator_id == concentrators.c.id)
    .outerjoin(
        current_link,
        sa.and_(current_link.c.meter_id == meters.c.id, current_link.c.valid_to.is_(None)),
    )
    .outerjoin(service_points, current_link.c.service_point_id == service_points.c.id)
)

_LOCATED_METER_FROM = meters.outerjoin(
    current_link,
    sa.and_(current_link.c.meter_id == meters.c.id, current_link.c.valid_to.is_(None)),
).outerjoin(service_points, current_link.c.service_point_id == service_points.c.id)

_CONCENTRATOR_FROM = concentrators.outerjoin(
    transformers, concentrators.c.transformer_id == transformers.c.id
).outerjoin(substations, transformers.c.substation_id == substations.c.id)

_SERVICE_POINT_FROM = service_points.outerjoin(
    current_link,
    sa.and_(
        current_link.c.service_point_id == service_points.c.id, current_link.c.valid_to.is_(None)
    ),
).outerjoin(meters, current_link.c.meter_id == meters.c.id)

_TRANSFORMER_FROM = transformers.join(substations, transformers.c.substation_id == substations.c.id)

_IS_POINT_TO_POINT = sa.and_(meters.c.concentrator_id.is_(None), meters.c.host.is_not(None))


def meter_state(
    linked: bool, commissioned: bool, reachable: bool, in_dc_table: bool
) -> LifecycleState:
    """`linked` means the meter has a communication path: a concentrator or its own network
    address (DOMAIN.md §2 says "linked to a concentrator"; point-to-point meters are linked
    to the head-end directly)."""
    return lifecycle_state(MeterStatus(linked, commissioned, reachable, in_dc_table))


@dataclass(frozen=True, slots=True)
class MeterFilter:
    concentrator: str | None = None
    commissioned: bool | None = None
    reachable: bool | None = None
    in_dc_table: bool | None = None
    comuna: str | None = None
    tag: str | None = None
    meter_type: MeterType | None = None
    phase: Phase | None = None
    point_to_point: bool | None = None
    service_point: str | None = None
    q: str | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        where: list[sa.ColumnElement[bool]] = []
        if self.concentrator is not None:
            where.append(concentrators.c.name == self.concentrator)
        for column, value in (
            (meters.c.commissioned, self.commissioned),
            (meters.c.reachable, self.reachable),
            (meters.c.in_dc_table, self.in_dc_table),
        ):
            if value is not None:
                where.append(column == value)
        if self.comuna is not None:
            where.append(service_points.c.comuna == self.comuna)
        if self.tag is not None:
            where.append(meters.c.tag == self.tag)
        if self.meter_type is not None:
            where.append(meters.c.meter_type == self.meter_type.value)
        if self.phase is not None:
            where.append(meters.c.phase == self.phase.value)
        if self.point_to_point is not None:
            where.append(_IS_POINT_TO_POINT if self.point_to_point else sa.not_(_IS_POINT_TO_POINT))
        if self.service_point is not None:
            where.append(service_points.c.name == self.service_point)
        if self.q:
            where.append(meters.c.serial_number.istartswith(self.q, autoescape=True))
        return where

    def count_from(self) -> sa.FromClause:
        """Only the joins these filters read (counting 100,000 meters through three unused
        outer joins costs more than the page itself)."""
        from_clause: sa.FromClause = meters
        if self.concentrator is not None:
            from_clause = from_clause.join(
                concentrators, meters.c.concentrator_id == concentrators.c.id
            )
        if self.comuna is not None or self.service_point is not None:
            from_clause = from_clause.join(
                current_link,
                sa.and_(current_link.c.meter_id == meters.c.id, current_link.c.valid_to.is_(None)),
            ).join(service_points, current_link.c.service_point_id == service_points.c.id)
        return from_clause


@dataclass(frozen=True, slots=True)
class ConcentratorFilter:
    comuna: str | None = None
    tag: str | None = None
    transformer: str | None = None
    substation: str | None = None
    reachable: bool | None = None
    q: str | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        where: list[sa.ColumnElement[bool]] = []
        for column, text in (
            (concentrators.c.comuna, self.comuna),
            (concentrators.c.tag, self.tag),
            (transformers.c.code, self.transformer),
            (substations.c.name, self.substation),
        ):
            if text is not None:
                where.append(column == text)
        if self.reachable is not None:
            where.append(concentrators.c.reachable == self.reachable)
        if self.q:
            where.append(concentrators.c.name.istartswith(self.q, autoescape=True))
        return where


@dataclass(frozen=True, slots=True)
class ServicePointFilter:
    comuna: str | None = None
    tag: str | None = None
    net_billing: bool | None = None
    is_balance: bool | None = None
    supply_status: SupplyStatus | None = None
    has_meter: bool | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        where: list[sa.ColumnElement[bool]] = []
        if self.comuna is not None:
            where.append(service_points.c.comuna == self.comuna)
        if self.tag is not None:
            where.append(service_points.c.tag == self.tag)
        if self.net_billing is not None:
            where.append(service_points.c.net_billing == self.net_billing)
        if self.is_balance is not None:
            where.append(service_points.c.is_balance == self.is_balance)
        if self.supply_status is not None:
            where.append(service_points.c.supply_status == self.supply_status.value)
        if self.has_meter is not None:
            open_id = current_link.c.id
            where.append(open_id.is_not(None) if self.has_meter else open_id.is_(None))
        return where


@dataclass(frozen=True, slots=True)
class Page:
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Listing:
    rows: Sequence[RowMapping]
    total: int


def _listing(
    conn: Connection,
    columns: Sequence[Any],
    from_clause: sa.FromClause,
    where: Sequence[sa.ColumnElement[bool]],
    order_by: sa.ColumnElement[Any],
    page: Page,
    count_from: sa.FromClause | None = None,
) -> Listing:
    """One page and the total. `count_from` may drop outer joins the filters do not read:
    they join on unique keys, so they never change the number of rows."""
    counted = from_clause if count_from is None else count_from
    total = conn.execute(sa.select(sa.func.count()).select_from(counted).where(*where))
    rows = conn.execute(
        sa.select(*columns)
        .select_from(from_clause)
        .where(*where)
        .order_by(order_by)
        .limit(page.limit)
        .offset(page.offset)
    )
    return Listing(rows.mappings().all(), total.scalar_one())


_METER_SUMMARY = (
    meters.c.serial_number,
    meters.c.tag,
    meters.c.meter_type,
    meters.c.phase,
    meters.c.firmware_id,
    meters.c.concentrator_id,
    meters.c.node_address,
    meters.c.host,
    meters.c.port,
    meters.c.commissioned,
    meters.c.reachable,
    meters.c.in_dc_table,
    concentrators.c.name.label("concentrator"),
    service_points.c.name.label("service_point"),
    service_points.c.comuna.label("comuna"),
)


def list_meters(conn: Connection, where: MeterFilter, page: Page) -> Listing:
    return _listing(
        conn,
        _METER_SUMMARY,
        _METER_FROM,
        where.conditions(),
        meters.c.serial_number,
        page,
        where.count_from(),
    )


def get_meter(conn: Connection, serial: str) -> RowMapping | None:
    query = (
        sa.select(
            *_METER_SUMMARY,
            meters.c.board_serial,
            meters.c.mac_address,
            meters.c.hardware_id,
            meters.c.service_kind,
            meters.c.encryption_key_enc.is_not(None).label("has_encryption_key"),
            meters.c.authentication_key_enc.is_not(None).label("has_authentication_key"),
            meters.c.created_at,
            meters.c.updated_at,
            service_points.c.address.label("service_point_address"),
            service_points.c.city.label("service_point_city"),
            current_link.c.valid_from.label("linked_since"),
        )
        .select_from(_METER_FROM)
        .where(meters.c.serial_number == serial)
    )
    return conn.execute(query).mappings().one_or_none()


def meter_links_of(conn: Connection, serial: str) -> Sequence[RowMapping] | None:
    """The meter's link history, newest first; None when the meter does not exist."""
    meter_id = conn.execute(
        sa.select(meters.c.id).where(meters.c.serial_number == serial)
    ).scalar_one_or_none()
    if meter_id is None:
        return None
    query = (
        sa.select(
            service_points.c.name.label("service_point"),
            service_points.c.comuna,
            meter_links.c.valid_from,
            meter_links.c.valid_to,
        )
        .select_from(
            meter_links.join(service_points, meter_links.c.service_point_id == service_points.c.id)
        )
        .where(meter_links.c.meter_id == meter_id)
        .order_by(meter_links.c.valid_from.desc(), meter_links.c.id.desc())
    )
    return conn.execute(query).mappings().all()


_CONCENTRATOR_SUMMARY = (
    concentrators.c.name,
    concentrators.c.serial_number,
    concentrators.c.description,
    concentrators.c.city,
    concentrators.c.comuna,
    concentrators.c.tag,
    concentrators.c.reachable,
    concentrators.c.time_zone,
    transformers.c.code.label("transformer"),
    substations.c.name.label("substation"),
)


def list_concentrators(conn: Connection, where: ConcentratorFilter, page: Page) -> Listing:
    return _listing(
        conn,
        _CONCENTRATOR_SUMMARY,
        _CONCENTRATOR_FROM,
        where.conditions(),
        concentrators.c.name,
        page,
    )


def get_concentrator(conn: Connection, name: str) -> RowMapping | None:
    return (
        conn.execute(
            sa.select(
                concentrators.c.id,
                *_CONCENTRATOR_SUMMARY,
                concentrators.c.address,
                concentrators.c.latitude,
                concentrators.c.longitude,
                concentrators.c.altitude,
                concentrators.c.windows_time_zone_id,
                concentrators.c.host,
                concentrators.c.port,
                concentrators.c.spontaneous_profile,
                concentrators.c.procedure_profile,
                concentrators.c.module_serial,
                concentrators.c.sim_serial,
                concentrators.c.ethernet_name,
                concentrators.c.adlvc,
                concentrators.c.ppp_username,
                concentrators.c.maa_username,
                concentrators.c.ppp_password_enc.is_not(None).label("has_ppp_password"),
                concentrators.c.maa_password_enc.is_not(None).label("has_maa_password"),
                concentrators.c.k2_password_enc.is_not(None).label("has_k2_password"),
                concentrators.c.created_at,
                concentrators.c.updated_at,
            )
            .select_from(_CONCENTRATOR_FROM)
            .where(concentrators.c.name == name)
        )
        .mappings()
        .one_or_none()
    )


def concentrator_meter_counts(conn: Connection, concentrator_id: int) -> RowMapping:
    """Total, commissioned and reachable meters behind a concentrator, in one aggregate."""

    def flagged(column: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((column, 1), else_=0)), 0)

    query = sa.select(
        sa.func.count().label("total"),
        flagged(meters.c.commissioned).label("commissioned"),
        flagged(meters.c.reachable).label("reachable"),
    ).where(meters.c.concentrator_id == concentrator_id)
    return conn.execute(query).mappings().one()


_SERVICE_POINT_SUMMARY = (
    service_points.c.name,
    service_points.c.address,
    service_points.c.city,
    service_points.c.comuna,
    service_points.c.tag,
    service_points.c.is_balance,
    service_points.c.net_billing,
    service_points.c.tariff,
    service_points.c.supply_status,
    meters.c.serial_number.label("current_meter"),
)


def list_service_points(conn: Connection, where: ServicePointFilter, page: Page) -> Listing:
    return _listing(
        conn,
        _SERVICE_POINT_SUMMARY,
        _SERVICE_POINT_FROM,
        where.conditions(),
        service_points.c.name,
        page,
    )


def get_service_point(conn: Connection, name: str) -> RowMapping | None:
    query = (
        sa.select(
            *_SERVICE_POINT_SUMMARY,
            service_points.c.latitude,
            service_points.c.longitude,
            service_points.c.altitude,
            service_points.c.contracted_capacity_kw,
            service_points.c.created_at,
            service_points.c.updated_at,
            current_link.c.valid_from.label("meter_since"),
        )
        .select_from(_SERVICE_POINT_FROM)
        .where(service_points.c.name == name)
    )
    return conn.execute(query).mappings().one_or_none()


def _concentrator_counts() -> sa.Subquery:
    return (
        sa.select(concentrators.c.transformer_id, sa.func.count().label("concentrator_count"))
        .where(concentrators.c.transformer_id.is_not(None))
        .group_by(concentrators.c.transformer_id)
        .subquery("concentrator_counts")
    )


def list_transformers(conn: Connection, substation: str | None, page: Page) -> Listing:
    counts = _concentrator_counts()
    where = [] if substation is None else [substations.c.name == substation]
    columns = (
        transformers.c.code,
        transformers.c.description,
        substations.c.name.label("substation"),
        sa.func.coalesce(counts.c.concentrator_count, 0).label("concentrator_count"),
    )
    from_clause = _TRANSFORMER_FROM.outerjoin(counts, counts.c.transformer_id == transformers.c.id)
    return _listing(conn, columns, from_clause, where, transformers.c.code, page)


def get_transformer(conn: Connection, code: str) -> tuple[RowMapping, list[str]] | None:
    """The transformer and the names of the concentrators it feeds."""
    row = (
        conn.execute(
            sa.select(
                transformers.c.id,
                transformers.c.code,
                transformers.c.description,
                transformers.c.created_at,
                transformers.c.updated_at,
                substations.c.name.label("substation"),
            )
            .select_from(_TRANSFORMER_FROM)
            .where(transformers.c.code == code)
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        return None
    names = conn.execute(
        sa.select(concentrators.c.name)
        .where(concentrators.c.transformer_id == row["id"])
        .order_by(concentrators.c.name)
    )
    return row, list(names.scalars())


@dataclass(frozen=True, slots=True)
class BBox:
    """An RFC 7946 §5 bounding box; `min_lon > max_lon` means it crosses the antimeridian."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    def contains(
        self, longitude: sa.ColumnElement[Any], latitude: sa.ColumnElement[Any]
    ) -> sa.ColumnElement[bool]:
        in_lat = latitude.between(self.min_lat, self.max_lat)
        if self.min_lon <= self.max_lon:
            return sa.and_(in_lat, longitude.between(self.min_lon, self.max_lon))
        return sa.and_(in_lat, sa.or_(longitude >= self.min_lon, longitude <= self.max_lon))


def _located(
    conditions: list[sa.ColumnElement[bool]],
    longitude: sa.ColumnElement[Any],
    latitude: sa.ColumnElement[Any],
    bbox: BBox | None,
) -> list[sa.ColumnElement[bool]]:
    """Rows without coordinates stay in the result so the caller can count them as skipped."""
    if bbox is None:
        return conditions
    unlocated = sa.or_(longitude.is_(None), latitude.is_(None))
    return [*conditions, sa.or_(unlocated, bbox.contains(longitude, latitude))]


def _json_string(conn: Connection, column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """A text column as a JSON string literal (or `null`), quoted by the database."""
    if conn.dialect.name == "sqlite":
        return sa.func.json_quote(column, type_=sa.Text)
    return sa.func.coalesce(sa.cast(sa.func.to_json(column), sa.Text), "null")


def _json_boolean(column: sa.ColumnElement[bool]) -> sa.ColumnElement[str]:
    return sa.case((column, "true"), else_="false")


def _meter_properties_json(conn: Connection) -> sa.ColumnElement[str]:
    """A meter feature's `properties` object as JSON text, written by the database."""
    state = sa.case(
        {code: json.dumps(name) for code, name in enumerate(MAP_STATES)}, value=_map_flags()
    )
    fields = [
        ("serial_number", _json_string(conn, meters.c.serial_number)),
        ("service_point", _json_string(conn, service_points.c.name)),
        ("comuna", _json_string(conn, service_points.c.comuna)),
        ("concentrator", _json_string(conn, concentrators.c.name)),
        ("tag", _json_string(conn, meters.c.tag)),
        ("commissioned", _json_boolean(meters.c.commissioned)),
        ("reachable", _json_boolean(meters.c.reachable)),
        ("in_dc_table", _json_boolean(meters.c.in_dc_table)),
        ("lifecycle_state", state),
    ]
    properties: sa.ColumnElement[str] = sa.literal("{", sa.Text)
    for index, (name, value) in enumerate(fields):
        properties = properties + sa.literal(f'{"," * bool(index)}"{name}":', sa.Text) + value
    return properties + sa.literal("}", sa.Text)


def meter_feature_rows(
    conn: Connection, where: MeterFilter, bbox: BBox | None
) -> sa.CursorResult[Any]:
    """Meters located at their current service point, with the database writing each
    feature's JSON `id` and `properties`:
    rows of (id, longitude, latitude, altitude, properties), in serial number order. The
    coordinates stay numbers because SQLite (3.40) cannot print every double exactly; the
    caller writes them. PostgreSQL can: see `meter_features_written`."""
    longitude, latitude = service_points.c.longitude, service_points.c.latitude
    query = (
        sa.select(
            _json_string(conn, meters.c.serial_number),
            longitude,
            latitude,
            service_points.c.altitude,
            _meter_properties_json(conn),
        )
        .select_from(_METER_FROM)
        .where(*_located(where.conditions(), longitude, latitude, bbox))
        .order_by(meters.c.serial_number)
    )
    return conn.execute(query)


_HALF_MAX = sys.float_info.max / 2


def _pg_json_number(column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """A double as Python's `repr` writes it: PostgreSQL prints the shortest exact digits too,
    but a whole number without the ".0" (and 1e15 up to 1e16 with an exponent, still the
    same value)."""
    text = sa.cast(column, sa.Text)
    whole = sa.and_(column == sa.func.trunc(column), sa.func.abs(column) < 1e15)
    return sa.case((whole, text + ".0"), else_=text)


def meter_features_written(
    conn: Connection, where: MeterFilter, bbox: BBox | None
) -> tuple[str, int]:
    """PostgreSQL only: the features array of `/api/map/meters` as JSON text, every feature
    written and joined by the database in serial number order, and the number of meters left
    out for want of finite coordinates (longitude + latitude must not overflow, as in
    `math.isfinite(lon + lat)`; halves are compared so the sum itself cannot overflow)."""
    longitude, latitude = service_points.c.longitude, service_points.c.latitude
    altitude = service_points.c.altitude
    located = (longitude * 0.5 + latitude * 0.5).between(-_HALF_MAX, _HALF_MAX)
    height = sa.case(
        (
            (altitude * 0.5).between(-_HALF_MAX, _HALF_MAX),
            sa.literal(",", sa.Text) + _pg_json_number(altitude),
        ),
        else_="",
    )
    feature = (
        sa.literal('{"type":"Feature","id":', sa.Text)
        + _json_string(conn, meters.c.serial_number)
        + sa.literal(',"geometry":{"type":"Point","coordinates":[', sa.Text)
        + _pg_json_number(longitude)
        + sa.literal(",", sa.Text)
        + _pg_json_number(latitude)
        + height
        + sa.literal(']},"properties":', sa.Text)
        + _meter_properties_json(conn)
        + sa.literal("}", sa.Text)
    )
    features = sa.func.string_agg(
        feature, aggregate_order_by(sa.literal(",", sa.Text), meters.c.serial_number)
    ).filter(located)
    query = (
        sa.select(features, sa.func.count(), sa.func.count().filter(located))
        .select_from(_METER_FROM)
        .where(*_located(where.conditions(), longitude, latitude, bbox))
    )
    text, total, shown = conn.execute(query).one()
    return f"[{text or ''}]", total - shown


def concentrator_map_rows(
    conn: Connection, where: ConcentratorFilter, bbox: BBox | None
) -> sa.CursorResult[Any]:
    """Concentrators at their own coordinates, with the number of meters behind each."""
    counts = (
        sa.select(meters.c.concentrator_id, sa.func.count().label("meter_count"))
        .where(meters.c.concentrator_id.is_not(None))
        .group_by(meters.c.concentrator_id)
        .subquery("meter_counts")
    )
    longitude, latitude = concentrators.c.longitude, concentrators.c.latitude
    query = (
        sa.select(
            concentrators.c.name,
            longitude,
            latitude,
            concentrators.c.altitude,
            concentrators.c.comuna,
            concentrators.c.tag,
            concentrators.c.reachable,
            transformers.c.code,
            substations.c.name,
            sa.func.coalesce(counts.c.meter_count, 0),
        )
        .select_from(
            _CONCENTRATOR_FROM.outerjoin(counts, counts.c.concentrator_id == concentrators.c.id)
        )
        .where(*_located(where.conditions(), longitude, latitude, bbox))
        .order_by(concentrators.c.name)
    )
    return conn.execute(query)


# Sixteen flag combinations, resolved once with the domain rule: the map's SQL sends each
# meter's flags as a number (linked 8, commissioned 4, reachable 2, in DC table 1) and the
# client reads the state's name from this table.
MAP_STATES = tuple(
    meter_state(*flags).value for flags in itertools.product((False, True), repeat=4)
)
# Map coordinates travel as whole numbers of 1e-5 degrees (about a metre).
MAP_SCALE = 100_000


@dataclass(frozen=True, slots=True)
class MapColumns:
    """The located fleet as comma-separated numbers, one list per column, in one order."""

    lon: str
    lat: str
    flags: str
    skipped: int


def _map_flags() -> sa.ColumnElement[int]:
    """A meter's `MAP_STATES` index from its flags (linked 8, commissioned 4, reachable 2,
    in DC table 1)."""
    linked = sa.or_(meters.c.concentrator_id.is_not(None), meters.c.host.is_not(None))
    return sum(
        (
            sa.case((condition, weight), else_=0)
            for condition, weight in (
                (linked, 8),
                (meters.c.commissioned, 4),
                (meters.c.reachable, 2),
                (meters.c.in_dc_table, 1),
            )
        ),
        start=sa.literal(0),
    )


def meter_map_columns(conn: Connection) -> MapColumns:
    """Every meter at its current service point, for the map page, built by the database
    in one aggregate: no row of the 100,000 crosses into Python. Meters without a link or
    without usable coordinates (missing, NaN, infinite or off the globe) are only counted."""
    longitude, latitude = service_points.c.longitude, service_points.c.latitude
    located = sa.and_(sa.func.abs(longitude) <= 180, sa.func.abs(latitude) <= 90)

    def joined(values: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        text = sa.cast(values, sa.Text)
        return sa.func.aggregate_strings(text, ",").filter(located)

    def degrees(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return joined(sa.cast(sa.func.round(column * MAP_SCALE), sa.Integer))

    flags = _map_flags()
    query = sa.select(
        degrees(longitude),
        degrees(latitude),
        joined(flags),
        sa.func.count(),
        sa.func.count().filter(located),
    ).select_from(_LOCATED_METER_FROM)
    lon, lat, codes, total, shown = conn.execute(query).one()
    return MapColumns(lon or "", lat or "", codes or "", total - shown)


def utc_hour(column: sa.ColumnElement[Any], dialect: sa.Dialect) -> sa.ColumnElement[Any]:
    """A timestamp column truncated to its UTC hour, computed by the database and read
    back as an aware UTC datetime on both backends."""
    # Literals, not parameters: PostgreSQL must see the same expression in the select list
    # and in GROUP BY.
    if dialect.name == "postgresql":
        utc = sa.func.timezone(sa.literal_column("'UTC'"), column)
        hour = sa.func.date_trunc(sa.literal_column("'hour'"), utc)
    else:
        hour = sa.func.strftime(sa.literal_column("'%Y-%m-%d %H:00:00'"), column)
    return sa.type_coerce(hour, UtcDateTime())
