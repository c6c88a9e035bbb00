"""Events and alarms endpoints: query events, active alarms, outages and the control-room
aggregates (meters with events per hour, distribution by event type, top-10 concentrators by
meters with active events, meters and events per comuna)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel
from sqlalchemy.engine import Connection

from smmc.domain.events import Category, Priority
from smmc.store import tables as t
from smmc.store.events import ACTIVE
from smmc.web.api.deps import EngineDep, PageDep, TextFilter
from smmc.web.problems import INVALID_PARAMETERS_TYPE, problem_response, problem_responses
from smmc.web.queries import utc_hour

router = APIRouter(prefix="/api/events", tags=["events"])

MAX_AGGREGATE_RANGE = timedelta(days=31)


class EventOut(BaseModel):
    id: int
    message_id: str
    device_kind: str
    device: str
    concentrator: str | None
    type: str
    acronym: str
    description: str
    severity: int
    priority: str
    category: str
    routing: str
    is_active: bool
    opened_at: datetime
    closed_at: datetime | None
    source: str
    correlation_id: str | None


class EventPage(BaseModel):
    total: int
    items: list[EventOut]


class OutageOut(BaseModel):
    id: int
    scope: str
    scope_key: str
    concentrator: str | None
    started_at: datetime
    last_event_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    power_off_events: int
    devices: int
    is_open: bool


class HourCount(BaseModel):
    hour: datetime
    meters: int
    events: int


class TypeCount(BaseModel):
    type: str
    description: str
    meters: int
    events: int


class ConcentratorCount(BaseModel):
    concentrator: str
    meters_with_active_events: int
    active_events: int


class ComunaCount(BaseModel):
    comuna: str
    meters: int
    events: int


def _event_query() -> sa.Select[Any]:
    e, c = t.events.c, t.concentrators.c
    return sa.select(t.events, c.name.label("concentrator")).select_from(
        t.events.outerjoin(t.concentrators, c.id == e.concentrator_id)
    )


def _out(row: Any) -> EventOut:
    return EventOut(
        id=row.id,
        message_id=row.message_id,
        device_kind=row.device_kind,
        device=row.device,
        concentrator=row.concentrator,
        type=row.code,
        acronym=row.acronym,
        description=row.description,
        severity=row.severity,
        priority=row.priority,
        category=row.category,
        routing=row.routing,
        is_active=row.is_active,
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        source=row.source,
        correlation_id=row.correlation_id,
    )


def _page(conn: Connection, where: list[sa.ColumnElement[bool]], page: Any) -> EventPage:
    e = t.events.c
    query = _event_query().where(*where)
    total = conn.execute(
        sa.select(sa.func.count()).select_from(t.events).where(*where)
    ).scalar_one()
    rows = conn.execute(
        query.order_by(e.opened_at.desc(), e.id.desc()).limit(page.limit).offset(page.offset)
    )
    return EventPage(total=total, items=[_out(row) for row in rows])


@router.get("", response_model=EventPage, responses=problem_responses(422))
def list_events(
    engine: EngineDep,
    page: PageDep,
    meter: TextFilter = None,
    concentrator: TextFilter = None,
    type: Annotated[str | None, Query(max_length=32, pattern=r"^[0-9.]+$")] = None,
    category: Category | None = None,
    priority: Priority | None = None,
    active: bool | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> EventPage:
    """Events, newest first, by meter serial, concentrator name or serial, CIM type,
    category, priority, active flag and opening time range ``[since, until)``."""
    e, c = t.events.c, t.concentrators.c
    where: list[sa.ColumnElement[bool]] = []
    if meter is not None:
        # `key >= ''` (true for every event) gives (device_kind, device, key) a third term,
        # so SQLite takes it over (device_kind, opened_at), which would read every meter
        # event newest first to find one meter's.
        where += [e.device_kind == "meter", e.device == meter, e.key >= ""]
    if concentrator is not None:
        ids = sa.select(c.id).where(sa.or_(c.name == concentrator, c.serial_number == concentrator))
        where.append(sa.or_(e.concentrator_id.in_(ids), e.device == concentrator))
    if type is not None:
        where.append(e.code == type)
    if category is not None:
        where.append(e.category == category.value)
    if priority is not None:
        where.append(e.priority == priority.value)
    if active is not None:
        where.append(e.is_active == active)
    if since is not None:
        where.append(e.opened_at >= since)
    if until is not None:
        where.append(e.opened_at < until)
    with engine.connect() as conn:
        return _page(conn, where, page)


@router.get("/alarms/active", response_model=EventPage)
def active_alarms(engine: EngineDep, page: PageDep, priority: Priority | None = None) -> EventPage:
    """Events still active, newest first (optionally one priority queue's)."""
    e = t.events.c
    where: list[sa.ColumnElement[bool]] = [ACTIVE]
    if priority is not None:
        where.append(e.priority == priority.value)
    with engine.connect() as conn:
        return _page(conn, where, page)


@router.get("/outages", response_model=list[OutageOut])
def outages(
    engine: EngineDep,
    page: PageDep,
    open: bool | None = None,
) -> list[OutageOut]:
    """Outage incidents, newest first, with how many devices lost supply in each."""
    i, c, m = t.outage_incidents.c, t.concentrators.c, t.outage_members.c
    devices = (
        sa.select(sa.func.count())
        .where(m.incident_id == i.id)
        .correlate(t.outage_incidents)
        .scalar_subquery()
    )
    query = (
        sa.select(t.outage_incidents, c.name.label("concentrator"), devices.label("devices"))
        .select_from(t.outage_incidents.outerjoin(t.concentrators, c.id == i.concentrator_id))
        .order_by(i.started_at.desc(), i.id.desc())
        .limit(page.limit)
        .offset(page.offset)
    )
    if open is not None:
        query = query.where(i.is_open == open)
    with engine.connect() as conn:
        return [
            OutageOut(
                id=row.id,
                scope=row.scope,
                scope_key=row.scope_key,
                concentrator=row.concentrator,
                started_at=row.started_at,
                last_event_at=row.last_event_at,
                ended_at=row.ended_at,
                duration_s=row.duration_s,
                power_off_events=row.power_off_events,
                devices=row.devices,
                is_open=row.is_open,
            )
            for row in conn.execute(query)
        ]


def _range_problem(request: Request, since: datetime, until: datetime) -> Any:
    if until <= since or until - since > MAX_AGGREGATE_RANGE:
        return problem_response(
            422,
            f"give since < until, at most {MAX_AGGREGATE_RANGE.days} days apart",
            request.url.path,
            problem_type=INVALID_PARAMETERS_TYPE,
            title="Invalid request parameters",
            errors=[{"field": "until", "message": "range empty or longer than 31 days"}],
        )
    return None


@router.get(
    "/aggregates/per-hour", response_model=list[HourCount], responses=problem_responses(422)
)
def per_hour(
    request: Request, engine: EngineDep, since: AwareDatetime, until: AwareDatetime
) -> Any:
    """Meters with events, and events, per UTC hour of ``[since, until)``."""
    problem = _range_problem(request, since, until)
    if problem is not None:
        return problem
    e = t.events.c
    hour = utc_hour(e.opened_at, engine.dialect)
    meter = sa.case((e.device_kind == "meter", e.device))
    query = (
        sa.select(hour, sa.func.count(sa.distinct(meter)), sa.func.count())
        .where(e.opened_at >= since, e.opened_at < until)
        .group_by(hour)
        .order_by(hour)
    )
    with engine.connect() as conn:
        return [
            HourCount(hour=start, meters=meters, events=events)
            for start, meters, events in conn.execute(query)
        ]


@router.get("/aggregates/by-type", response_model=list[TypeCount])
def by_type(
    engine: EngineDep, since: AwareDatetime | None = None, until: AwareDatetime | None = None
) -> list[TypeCount]:
    """Meters and events per CIM event type, most frequent first."""
    e = t.events.c
    where: list[sa.ColumnElement[bool]] = [e.device_kind == "meter"]
    if since is not None:
        where.append(e.opened_at >= since)
    if until is not None:
        where.append(e.opened_at < until)
    query = (
        sa.select(
            e.code,
            sa.func.min(e.description),
            sa.func.count(sa.distinct(e.device)),
            sa.func.count(),
        )
        .where(*where)
        .group_by(e.code)
        .order_by(sa.func.count().desc(), e.code)
    )
    with engine.connect() as conn:
        return [
            TypeCount(type=code, description=text, meters=meters, events=events)
            for code, text, meters, events in conn.execute(query)
        ]


@router.get("/aggregates/top-concentrators", response_model=list[ConcentratorCount])
def top_concentrators(engine: EngineDep) -> list[ConcentratorCount]:
    """The ten concentrators with most meters carrying an active event."""
    e, c = t.events.c, t.concentrators.c
    meters = sa.func.count(sa.distinct(e.device))
    query = (
        sa.select(c.name, meters, sa.func.count())
        .select_from(t.events.join(t.concentrators, c.id == e.concentrator_id))
        # `device >= ''` holds for every event (device is NOT NULL text); it gives the
        # partial index of the active events (device_kind, device, key) a second term, so
        # SQLite, which has no statistics, takes it over (device_kind, opened_at) and reads
        # the active events only, not every meter event ever recorded.
        .where(ACTIVE, e.device_kind == "meter", e.device >= "")
        .group_by(c.name)
        .order_by(meters.desc(), c.name)
        .limit(10)
    )
    with engine.connect() as conn:
        return [
            ConcentratorCount(concentrator=name, meters_with_active_events=n, active_events=k)
            for name, n, k in conn.execute(query)
        ]


@router.get("/aggregates/comunas", response_model=list[ComunaCount])
def per_comuna(
    engine: EngineDep, since: AwareDatetime | None = None, until: AwareDatetime | None = None
) -> list[ComunaCount]:
    """Meters with events and events per comuna (the service point's, else the
    concentrator's; "unknown" when neither is recorded)."""
    e, c, sp, link = t.events.c, t.concentrators.c, t.service_points.c, t.meter_links.c
    where: list[sa.ColumnElement[bool]] = [e.device_kind == "meter"]
    if since is not None:
        where.append(e.opened_at >= since)
    if until is not None:
        where.append(e.opened_at < until)
    # Events counted per meter first: each meter's service point is then looked up once,
    # in meter order, instead of once per event in time order.
    per_meter = (
        sa.select(e.device, e.meter_id, e.concentrator_id, sa.func.count().label("events"))
        .where(*where)
        .group_by(e.device, e.meter_id, e.concentrator_id)
        .subquery("per_meter")
    )
    m = per_meter.c
    comuna = sa.func.coalesce(sp.comuna, c.comuna, "unknown")
    query = (
        sa.select(comuna, sa.func.count(sa.distinct(m.device)), sa.func.sum(m.events))
        .select_from(
            per_meter.outerjoin(t.concentrators, c.id == m.concentrator_id)
            .outerjoin(t.meter_links, sa.and_(link.meter_id == m.meter_id, link.valid_to.is_(None)))
            .outerjoin(t.service_points, sp.id == link.service_point_id)
        )
        .group_by(comuna)
        .order_by(comuna)
    )
    with engine.connect() as conn:
        return [
            ComunaCount(comuna=name, meters=meters, events=events)
            for name, meters, events in conn.execute(query)
        ]
