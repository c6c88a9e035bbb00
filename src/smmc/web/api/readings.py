"""Meter-data endpoints: interval readings and register reads by meter or POD, reading type
and range (JSON or the seed's CSV columns), the read-success KPI, the unread-meters worklist
and the meter list with the seed's energy-profile columns."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AwareDatetime, BaseModel
from sqlalchemy.engine import Connection

from smmc.domain.readings import (
    TIER_COUNT,
    QualityFlag,
    ReadingType,
    UnknownReadingType,
    energy_type_code,
    reading_type,
    reading_type_by_id,
)
from smmc.domain.time import DEFAULT_TIME_ZONE, to_local
from smmc.reports.readings_files import DC_COLUMNS, S_COLUMNS
from smmc.store.readings import meter_list, read_success, unread_meters
from smmc.store.tables import (
    concentrators,
    interval_readings,
    meter_links,
    meters,
    register_reads,
    service_points,
)
from smmc.web.api.deps import EngineDep, PageDep, TextFilter
from smmc.web.problems import (
    INVALID_PARAMETERS_TYPE,
    NotFoundError,
    problem_response,
    problem_responses,
)

router = APIRouter(prefix="/api", tags=["meter data"], responses=problem_responses(422, 500))

MAX_RANGE = timedelta(days=31)
CSV_MEDIA_TYPE = "text/csv"
_BAD = problem_responses(404)


class IntervalOut(BaseModel):
    interval_end: datetime
    local_time: datetime
    value: float
    quality: int
    flags: list[str]


class ReadingsOut(BaseModel):
    serialnumber: str
    pod: str | None
    reading_type: str
    reading_type_name: str
    unit: str
    time_zone: str
    items: list[IntervalOut]


class RegisterReadOut(BaseModel):
    reading_type: str
    captured_at: datetime
    local_time: datetime
    tiers: list[int]
    total: int
    energy_type: int
    energy_type_description: str
    quality: int
    flags: list[str]


class RegisterReadsOut(BaseModel):
    serialnumber: str
    pod: str | None
    time_zone: str
    items: list[RegisterReadOut]


class KpiGroupOut(BaseModel):
    level: Literal["concentrator", "comuna", "company"]
    name: str
    expected: int
    read: int
    success: float
    meets_target: bool


class KpiOut(BaseModel):
    day: date
    target: float
    window_hours: float
    groups: list[KpiGroupOut]


class UnreadMeterOut(BaseModel):
    serialnumber: str
    concentrator: str | None
    pod: str | None
    last_read_day: date | None


class MeterDataRow(BaseModel):
    concentrator: str | None
    pod: str | None
    serialnumber: str
    commissioned: bool
    reachable: bool
    errorinst: bool
    row: int | None
    phase: str | None
    isupload: bool
    isdailyclosure: bool
    energydailyclosureprofile: str | None
    energyfastloadprofile: str | None


class _Meter(BaseModel):
    id: int
    serial: str
    pod: str | None
    time_zone: str


class BadRequest(Exception):
    """Parameters that are each well formed but do not make a valid request together."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(detail)
        self.name = name


def _flags(quality: int) -> list[str]:
    return [str(f.name) for f in QualityFlag if f.value and quality & f.value]


def _find_meter(conn: Connection, meter: str | None, pod: str | None) -> _Meter:
    if (meter is None) == (pod is None):
        raise BadRequest("meter", "give exactly one of meter (serial number) or pod")
    current = meter_links.alias("current_link")
    query = sa.select(
        meters.c.id, meters.c.serial_number, service_points.c.name, concentrators.c.time_zone
    ).select_from(
        meters.outerjoin(concentrators, meters.c.concentrator_id == concentrators.c.id)
        .outerjoin(
            current, sa.and_(current.c.meter_id == meters.c.id, current.c.valid_to.is_(None))
        )
        .outerjoin(service_points, current.c.service_point_id == service_points.c.id)
    )
    if meter is not None:
        query = query.where(meters.c.serial_number == meter)
    else:
        query = query.where(service_points.c.name == pod)
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError("meter" if meter is not None else "pod", meter or pod or "")
    return _Meter(id=row[0], serial=row[1], pod=row[2], time_zone=row[3] or DEFAULT_TIME_ZONE)


def _range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise BadRequest("to", "'to' must be after 'from'")
    if end - start > MAX_RANGE:
        raise BadRequest("to", f"a range spans at most {MAX_RANGE.days} days")


def _bad(request: Request, exc: BadRequest) -> JSONResponse:
    return problem_response(
        422,
        str(exc),
        request.url.path,
        problem_type=INVALID_PARAMETERS_TYPE,
        title="Invalid request parameters",
        errors=[{"in": "query", "name": exc.name, "detail": str(exc)}],
    )


Meter = Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]*$", description="serial")]
Pod = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$", description="POD")]
From = Annotated[AwareDatetime, Query(alias="from", description="exclusive start (UTC or offset)")]
To = Annotated[AwareDatetime, Query(alias="to", description="inclusive end")]
Format = Literal["json", "csv"]


def _csv(rows: Iterator[Sequence[Any]], header: Sequence[str], name: str) -> StreamingResponse:
    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=";")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _local(moment: datetime, tz: str) -> datetime:
    return to_local(moment, tz)


@router.get("/readings", response_model=ReadingsOut, responses=_BAD)
def readings(
    request: Request,
    engine: EngineDep,
    reading_type_code: Annotated[
        str,
        Query(
            alias="reading_type",
            max_length=200,
            pattern=r"^[0-9.]+$",
            description="18-field code, corrected or the seed's literal form",
        ),
    ],
    start: From,
    end: To,
    meter: Meter = None,
    pod: Pod = None,
    format: Format = "json",
) -> Any:
    """Interval values of one meter (by serial or POD) and reading type in ``(from, to]``;
    ``format=csv`` uses the S_/M_ file columns."""
    try:
        kind: ReadingType = reading_type(reading_type_code)
        if kind.minutes is None:
            raise BadRequest("reading_type", f"{kind.name} is a register: use /api/register-reads")
        _range(start, end)
        with engine.connect() as conn:
            found = _find_meter(conn, meter, pod)
            rows = conn.execute(
                sa.select(
                    interval_readings.c.interval_end,
                    interval_readings.c.value,
                    interval_readings.c.quality,
                )
                .where(
                    interval_readings.c.meter_id == found.id,
                    interval_readings.c.reading_type_id == kind.id,
                    interval_readings.c.interval_end > start,
                    interval_readings.c.interval_end <= end,
                )
                .order_by(interval_readings.c.interval_end)
            ).all()
    except UnknownReadingType as exc:
        return _bad(request, BadRequest("reading_type", str(exc)))
    except BadRequest as exc:
        return _bad(request, exc)
    tz = found.time_zone
    if format == "csv":
        return _csv(
            (
                (
                    found.serial,
                    found.pod or "",
                    value,
                    quality,
                    kind.code,
                    _local(e, tz).strftime("%Y-%m-%d %H:%M:%S.000"),
                )
                for e, value, quality in rows
            ),
            S_COLUMNS,
            f"readings_{found.serial}.csv",
        )
    return ReadingsOut(
        serialnumber=found.serial,
        pod=found.pod,
        reading_type=kind.code,
        reading_type_name=kind.name,
        unit=kind.unit,
        time_zone=tz,
        items=[
            IntervalOut(
                interval_end=e,
                local_time=_local(e, tz),
                value=value,
                quality=quality,
                flags=_flags(quality),
            )
            for e, value, quality in rows
        ],
    )


@router.get("/register-reads", response_model=RegisterReadsOut, responses=_BAD)
def register_reads_of(
    request: Request,
    engine: EngineDep,
    start: From,
    end: To,
    meter: Meter = None,
    pod: Pod = None,
    format: Format = "json",
) -> Any:
    """Daily-closure register sets of one meter captured in ``(from, to]``; ``format=csv``
    uses the DC file columns."""
    try:
        _range(start, end)
        with engine.connect() as conn:
            found = _find_meter(conn, meter, pod)
            rows = (
                conn.execute(
                    sa.select(register_reads)
                    .where(
                        register_reads.c.meter_id == found.id,
                        register_reads.c.captured_at > start,
                        register_reads.c.captured_at <= end,
                    )
                    .order_by(register_reads.c.captured_at, register_reads.c.reading_type_id)
                )
                .mappings()
                .all()
            )
    except BadRequest as exc:
        return _bad(request, exc)
    tz = found.time_zone
    items = []
    for row in rows:
        kind = reading_type_by_id(row["reading_type_id"])
        code, description = energy_type_code(kind.energy) if kind.energy else (0, "")
        items.append(
            RegisterReadOut(
                reading_type=kind.code,
                captured_at=row["captured_at"],
                local_time=_local(row["captured_at"], tz),
                tiers=[row[f"t{n}"] for n in range(1, TIER_COUNT + 1)],
                total=row["total"],
                energy_type=code,
                energy_type_description=description,
                quality=row["quality"],
                flags=_flags(row["quality"]),
            )
        )
    if format == "csv":
        return _csv(
            (
                (
                    found.serial,
                    *i.tiers,
                    i.total,
                    i.energy_type,
                    i.energy_type_description,
                    i.local_time.strftime("%Y-%m-%d %H:%M:%S.000"),
                )
                for i in items
            ),
            DC_COLUMNS,
            f"register_reads_{found.serial}.csv",
        )
    return RegisterReadsOut(serialnumber=found.serial, pod=found.pod, time_zone=tz, items=items)


@router.get("/kpi/read-success", response_model=KpiOut)
def kpi_read_success(
    engine: EngineDep,
    day: Annotated[date, Query(description="local day")],
    target: Annotated[float, Query(gt=0, le=1, description="share of meters")] = 0.995,
    window_hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0,
) -> KpiOut:
    """Daily read success per concentrator, comuna and company against ``target``: a meter
    counts when a value of its local day arrived within ``window_hours`` after the day."""
    with engine.connect() as conn:
        report = read_success(conn, day, target=target, window=timedelta(hours=window_hours))
    return KpiOut(
        day=report.day,
        target=report.target,
        window_hours=window_hours,
        groups=[
            KpiGroupOut(
                level=g.level,  # type: ignore[arg-type]
                name=g.name,
                expected=g.expected,
                read=g.read,
                success=g.success,
                meets_target=g.meets_target,
            )
            for g in report.groups
        ],
    )


@router.get("/worklists/unread-meters", response_model=list[UnreadMeterOut])
def unread_meters_worklist(
    engine: EngineDep,
    days: Annotated[int, Query(ge=1, le=3650, description="days without any value")],
    today: Annotated[date | None, Query(description="reference day (default: today, UTC)")] = None,
) -> list[UnreadMeterOut]:
    """Commissioned meters with no value for ``days`` days before ``today``, oldest first."""
    reference = today or datetime.now(UTC).date()
    with engine.connect() as conn:
        rows = unread_meters(conn, days, reference)
    return [
        UnreadMeterOut(
            serialnumber=r["serial_number"],
            concentrator=r["concentrator"],
            pod=r["pod"],
            last_read_day=r["last_read_day"],
        )
        for r in rows
    ]


@router.get("/meter-data/meters", response_model=list[MeterDataRow])
def meter_data_meters(
    engine: EngineDep,
    page: PageDep,
    concentrator: TextFilter = None,
    format: Format = "json",
) -> Any:
    """The meter list with the seed's columns (energy profiles, upload and closure flags)."""
    with engine.connect() as conn:
        rows = meter_list(conn, concentrator=concentrator, limit=page.limit, offset=page.offset)
    if format == "csv":
        header = list(MeterDataRow.model_fields)
        return _csv((tuple(r[c] for c in header) for r in rows), header, "meters.csv")
    return [MeterDataRow(**r) for r in rows]
