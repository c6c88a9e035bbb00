"""The operators' pages: login, works, meter operations, assets, map and provisioning.

Every page needs a session; every form carries the session's CSRF token; every write is
audited. Stakeholders (I8) see only the service points granted to them, and each such
access is audited too.
"""

from __future__ import annotations

import io
import json
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.engine import Engine, RowMapping
from starlette.concurrency import run_in_threadpool

from smmc.domain.access import ROLES, Permission, allows, restricted_to_grants
from smmc.domain.assets import MeterType
from smmc.domain.concentrator_status import LETTERS, decode_status_word, format_status_word
from smmc.domain.events import CONCENTRATOR_WORD
from smmc.domain.geo import CHILE, ServiceArea
from smmc.domain.time import DEFAULT_TIME_ZONE, to_local
from smmc.domain.work_orders import (
    OPEN_STATES,
    ActivityType,
    InvalidTransition,
    InvalidWorkOrder,
    State,
    View,
    parse_target_csv,
    validate_reason,
)
from smmc.store import tables as t
from smmc.store.provisioning import ImportOptions, import_file
from smmc.store.users import LANGUAGES, Principal
from smmc.store.work_orders import (
    CSV_COLUMNS,
    SubmitResult,
    TargetRef,
    WorkOrderFilter,
    WorkOrderNotFound,
    WorkOrderQueue,
    write_csv,
)
from smmc.web import queries
from smmc.web.api import events as events_api
from smmc.web.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    Forbidden,
    access_store,
    audit,
    check_csrf,
    may_see_service_point,
    principal_of,
    require,
    web_session,
)
from smmc.web.caching import validated_response
from smmc.web.pages.forms import BadForm, Form, read_form
from smmc.web.pages.render import LANGUAGE_COOKIE, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
LOGIN_CSRF_COOKIE = "smmc_login_csrf"
OPERATIONS = (
    ActivityType.METER_SYNC,
    ActivityType.CONNECT,
    ActivityType.DISCONNECT,
    ActivityType.READING,
)
CSV_MODEL = "podname;serialnumber\nPOD-0000001;UAA0000001\n;UAA0000002\nPOD-0000003;\n"
_MAX_NAME = 255


def _principal_dep(permission: Permission) -> Any:
    return Depends(require(permission))


Viewer = Annotated[Principal, _principal_dep(Permission.VIEW_WORK_ORDERS)]
Operator = Annotated[Principal, _principal_dep(Permission.SUBMIT_WORK_ORDERS)]
AssetReader = Annotated[Principal, _principal_dep(Permission.VIEW_ASSETS)]
MapReader = Annotated[Principal, _principal_dep(Permission.VIEW_MAP)]
Provisioner = Annotated[Principal, _principal_dep(Permission.PROVISION)]


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _queue(request: Request) -> WorkOrderQueue:
    queue: WorkOrderQueue | None = getattr(request.app.state, "queue", None)
    if queue is None:
        queue = request.app.state.queue = WorkOrderQueue(_engine(request))
    return queue


def _csrf(request: Request) -> str:
    session = web_session(request)
    return session.csrf_token if session else ""


def _page(request: Request, template: str, principal: Principal, **context: Any) -> HTMLResponse:
    return render(request, template, principal=principal, csrf=_csrf(request), **context)


def _cookie_secure(request: Request) -> bool:
    return bool(getattr(request.app.state, "cookie_secure", True))


def login_redirect(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def forbidden_page(request: Request, reason: str) -> Response:
    principal = principal_of(request)
    return render(
        request,
        "error.html",
        principal=principal,
        csrf=_csrf(request),
        status_code=403,
        title_key="forbidden",
        reason=reason,
    )


def _not_found(request: Request, principal: Principal, what: str) -> HTMLResponse:
    return render(
        request,
        "error.html",
        principal=principal,
        csrf=_csrf(request),
        status_code=404,
        title_key="not_found",
        reason=what,
    )


async def _form(request: Request) -> Form:
    """The posted form, after the CSRF check every write goes through."""
    try:
        form = await read_form(request)
    except BadForm as exc:
        raise Forbidden(str(exc)) from exc
    check_csrf(request, form.fields.get(CSRF_FIELD))
    return form


# -- login ---------------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    """Only same-site paths: an open redirect would turn the login into a phishing tool."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


@router.get("/login")
def login_form(request: Request, next: str = "/", failed: bool = False) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        principal=None,
        csrf=token,
        next_path=_safe_next(next),
        failed=failed,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        secure=_cookie_secure(request),
        samesite="lax",
        path="/login",
    )
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    try:
        form = await read_form(request)
    except BadForm as exc:
        raise Forbidden(str(exc)) from exc
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = form.fields.get(CSRF_FIELD, "")
    if not expected or not secrets.compare_digest(expected, given):
        raise Forbidden("CSRF token missing or wrong")
    store = access_store(request)
    username = form.text("username")[:64]
    principal = await run_in_threadpool(
        store.authenticate, username, form.fields.get("password", "")
    )
    target = _safe_next(form.fields.get("next"))
    if principal is not None and not ROLES[principal.role].interactive:
        # Service accounts (I6) authenticate with API tokens, never with the login form.
        principal = None
    if principal is None:
        store.audit(None, "login.failed", username)
        return RedirectResponse(f"/login?failed=1&next={quote(target, safe='')}", status_code=303)
    cookie, _ = store.open_session(principal)
    store.audit(principal, "login", principal.username)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        secure=_cookie_secure(request),
        samesite="lax",
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await _form(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    session = web_session(request)
    if cookie:
        access_store(request).close_session(cookie)
    if session:
        access_store(request).audit(session.principal, "logout", session.principal.username)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{code}")
def choose_language(request: Request, code: str, next: str = "/") -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, code, samesite="lax", secure=_cookie_secure(request), path="/"
        )
    return response


@router.get("/")
def home(request: Request) -> Response:
    principal = principal_of(request)
    if principal is None:
        return login_redirect(request)
    if restricted_to_grants(principal.role):
        return RedirectResponse("/assets/service-points", status_code=303)
    return RedirectResponse("/works", status_code=303)


# -- works ---------------------------------------------------------------------------------


class FilterError(ValueError):
    """A works filter the page cannot read; shown next to the form, not as a 500."""


def _optional_int(text: str, name: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 2**31 - 1:
        raise FilterError(f"{name}: a positive whole number")
    return int(text)


def _optional_day(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise FilterError(f"{name}: a date as YYYY-MM-DD") from exc


def _text(value: str, name: str) -> str | None:
    value = value.strip()
    if "\x00" in value or len(value) > _MAX_NAME:
        raise FilterError(f"{name}: at most {_MAX_NAME} characters, no NUL")
    return value or None


@dataclass(frozen=True, slots=True)
class WorksQuery:
    """The works page's filters as typed, and as the query string to repeat them."""

    filters: WorkOrderFilter
    raw: dict[str, str]

    def query_string(self, **extra: Any) -> str:
        values = {k: v for k, v in {**self.raw, **extra}.items() if v not in ("", None)}
        return urlencode(values)


def works_query(request: Request) -> WorksQuery:
    params = request.query_params
    names = (
        "view",
        "idwork",
        "activity",
        "concentrator",
        "meter",
        "pod",
        "ended_from",
        "ended_to",
        "state",
    )
    raw = {name: params.get(name, "").strip() for name in names}
    try:
        view = View(raw["view"]) if raw["view"] else None
        state = State(raw["state"]) if raw["state"] else None
        activity = ActivityType(raw["activity"]) if raw["activity"] else None
    except ValueError as exc:
        raise FilterError(str(exc)) from exc
    start = _optional_day(raw["ended_from"], "ended_from")
    end = _optional_day(raw["ended_to"], "ended_to")
    filters = WorkOrderFilter(
        batch_id=_optional_int(raw["idwork"], "idwork"),
        activity=activity,
        concentrator=_text(raw["concentrator"], "concentrator"),
        meter=_text(raw["meter"], "meter"),
        pod=_text(raw["pod"], "pod"),
        ended_from=datetime.combine(start, time(), UTC) if start else None,
        # The end date is inclusive on the page: orders ended any time that day.
        ended_to=datetime.combine(end + timedelta(days=1), time(), UTC) if end else None,
        view=view,
        state=state,
    )
    return WorksQuery(filters, raw)


def _local_stamp(value: datetime | None, tz: str | None) -> str:
    """A work order's time in its concentrator's zone, as the seed's report shows it."""
    if value is None:
        return ""
    return to_local(value, tz or DEFAULT_TIME_ZONE).strftime("%Y-%m-%d %H:%M:%S")


def _running_batches(engine: Engine, limit: int = 10) -> list[int]:
    wo = t.work_orders.c
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(wo.batch_id)
                .where(wo.state.in_(sorted(s.value for s in OPEN_STATES)))
                .group_by(wo.batch_id)
                .order_by(wo.batch_id.desc())
                .limit(limit)
            ).scalars()
        )


@router.get("/works")
def works(request: Request, principal: Viewer, page: int = 1) -> HTMLResponse:
    page = max(1, min(page, 10**6))
    error = None
    try:
        query = works_query(request)
    except FilterError as exc:
        error = str(exc)
        query = WorksQuery(WorkOrderFilter(), {})
    rows, total = _queue(request).list_orders(query.filters, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    return _page(
        request,
        "works.html",
        principal,
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        query=query,
        error=error,
        views=list(View),
        states=list(State),
        activities=list(ActivityType),
        open_states={s.value for s in OPEN_STATES},
        can_cancel=allows(principal.role, Permission.SUBMIT_WORK_ORDERS),
        local_time=_local_stamp,
        running=_running_batches(_engine(request)),
        columns=CSV_COLUMNS,
    )


@router.get("/works/export.csv")
def works_csv(request: Request, principal: Viewer) -> Response:
    try:
        query = works_query(request)
    except FilterError as exc:
        return Response(str(exc), status_code=422, media_type="text/plain")
    queue = _queue(request)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        write_csv(queue.iter_rows(query.filters), buffer)
        yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="workorders.csv"'},
    )


@router.get("/works/batches/{batch_id}/progress")
def batch_progress(request: Request, principal: Viewer, batch_id: int) -> HTMLResponse:
    try:
        progress = _queue(request).batch_progress(batch_id)
    except WorkOrderNotFound:
        return _not_found(request, principal, f"idwork {batch_id}")
    return _page(request, "batch_progress.html", principal, progress=progress)


@router.post("/works/{order_id}/cancel")
async def cancel_order(request: Request, principal: Operator, order_id: int) -> Response:
    form = await _form(request)
    queue = _queue(request)
    try:
        await run_in_threadpool(queue.cancel, order_id)
    except WorkOrderNotFound:
        return _not_found(request, principal, f"work order {order_id}")
    except InvalidTransition as exc:
        raise Forbidden(str(exc)) from exc
    audit(request, principal, "workorder.cancel", str(order_id))
    back = _safe_next(form.fields.get("next") or "/works")
    return RedirectResponse(back, status_code=303)


# -- meter operations ------------------------------------------------------------------------


@router.get("/operations")
def operations(request: Request, principal: Operator) -> HTMLResponse:
    return _page(
        request, "operations.html", principal, activities=OPERATIONS, result=None, errors=[]
    )


@router.get("/operations/model.csv")
def operations_model(principal: Operator) -> Response:
    return Response(
        CSV_MODEL,
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="model.csv"'},
    )


def _operation(form: Form) -> tuple[ActivityType, str | None]:
    try:
        activity = ActivityType(form.text("activity"))
    except ValueError as exc:
        raise InvalidWorkOrder(f"activity: one of {', '.join(OPERATIONS)}") from exc
    if activity not in OPERATIONS:
        raise InvalidWorkOrder(f"activity: one of {', '.join(OPERATIONS)}")
    return activity, validate_reason(activity, form.text("reason") or None)


def _submitted(
    request: Request,
    principal: Principal,
    activity: ActivityType,
    reason: str | None,
    targets: list[TargetRef],
) -> SubmitResult:
    result = _queue(request).submit(activity, targets, reason=reason)
    audit(
        request,
        principal,
        "workorder.submit",
        f"idwork {result.batch_id}: {activity.value} x{len(targets)}",
    )
    return result


@router.post("/operations")
async def submit_operation(request: Request, principal: Operator) -> HTMLResponse:
    form = await _form(request)
    errors: list[tuple[int, str]] = []
    result: SubmitResult | None = None
    try:
        activity, reason = _operation(form)
        upload = form.files.get("file")
        if upload is not None and upload.content:
            try:
                text = upload.content.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise InvalidWorkOrder("the CSV file is not UTF-8 text") from exc
            rows, bad = parse_target_csv(text)
            errors.extend((e.line, e.reason) for e in bad)
            targets = [TargetRef(meter=r.serial, pod=r.pod) for r in rows]
            lines = [r.line for r in rows]
        else:
            serial = _text(form.text("meter"), "meter")
            pod = _text(form.text("pod"), "pod")
            if serial is None and pod is None:
                raise InvalidWorkOrder("give a meter serial number, a POD or a CSV file")
            targets, lines = [TargetRef(meter=serial, pod=pod)], [1]
        if not targets:
            raise InvalidWorkOrder("the CSV has no usable podname;serialnumber row")
        result = await run_in_threadpool(_submitted, request, principal, activity, reason, targets)
        errors.extend((lines[r.index], r.reason) for r in result.rejected)
        if result.batch_id is None:
            result = None
    except (InvalidWorkOrder, FilterError) as exc:
        errors.append((0, str(exc)))
    return _page(
        request,
        "operations.html",
        principal,
        activities=OPERATIONS,
        result=result,
        errors=sorted(errors),
        status_code=200 if result is not None else 422,
    )


# -- assets --------------------------------------------------------------------------------


def _flag(text: str) -> bool | None:
    return {"true": True, "false": False}.get(text)


def _stakeholder_only(principal: Principal) -> None:
    """Lists would show other service points: stakeholders use their own list instead."""
    if restricted_to_grants(principal.role):
        raise Forbidden("stakeholder accounts see only their granted service points")


@router.get("/assets/meters")
def meter_list(request: Request, principal: AssetReader, page: int = 1) -> HTMLResponse:
    _stakeholder_only(principal)
    p = request.query_params
    raw = {k: p.get(k, "").strip() for k in ("q", "concentrator", "comuna", "reachable", "type")}
    where = queries.MeterFilter(
        q=_text(raw["q"], "q"),
        concentrator=_text(raw["concentrator"], "concentrator"),
        comuna=_text(raw["comuna"], "comuna"),
        reachable=_flag(raw["reachable"]),
        meter_type=MeterType(raw["type"]) if raw["type"] in set(MeterType) else None,
    )
    page = max(1, min(page, 10**6))
    with _engine(request).connect() as conn:
        listing = queries.list_meters(conn, where, queries.Page(PAGE_SIZE, (page - 1) * PAGE_SIZE))
    return _page(
        request,
        "meters.html",
        principal,
        listing=listing,
        raw=raw,
        page=page,
        meter_types=list(MeterType),
        query_string=urlencode({k: v for k, v in raw.items() if v}),
    )


@router.get("/assets/concentrators")
def concentrator_list(request: Request, principal: AssetReader, page: int = 1) -> HTMLResponse:
    _stakeholder_only(principal)
    p = request.query_params
    raw = {k: p.get(k, "").strip() for k in ("q", "comuna", "reachable")}
    where = queries.ConcentratorFilter(
        q=_text(raw["q"], "q"),
        comuna=_text(raw["comuna"], "comuna"),
        reachable=_flag(raw["reachable"]),
    )
    page = max(1, min(page, 10**6))
    with _engine(request).connect() as conn:
        listing = queries.list_concentrators(
            conn, where, queries.Page(PAGE_SIZE, (page - 1) * PAGE_SIZE)
        )
    return _page(
        request,
        "concentrators.html",
        principal,
        listing=listing,
        raw=raw,
        page=page,
        query_string=urlencode({k: v for k, v in raw.items() if v}),
    )


@router.get("/assets/service-points")
def service_point_list(request: Request, principal: AssetReader, page: int = 1) -> HTMLResponse:
    p = request.query_params
    raw = {k: p.get(k, "").strip() for k in ("comuna", "tag")}
    page = max(1, min(page, 10**6))
    engine = _engine(request)
    if restricted_to_grants(principal.role):
        names = sorted(access_store(request).granted_service_points(principal.user_id))
        with engine.connect() as conn:
            found = [queries.get_service_point(conn, name) for name in names]
        items = [row for row in found if row is not None]
        listing = queries.Listing(rows=items, total=len(items))
        audit(request, principal, "i8.read", ",".join(names)[:255])
    else:
        where = queries.ServicePointFilter(
            comuna=_text(raw["comuna"], "comuna"), tag=_text(raw["tag"], "tag")
        )
        with engine.connect() as conn:
            listing = queries.list_service_points(
                conn, where, queries.Page(PAGE_SIZE, (page - 1) * PAGE_SIZE)
            )
    return _page(
        request,
        "service_points.html",
        principal,
        listing=listing,
        raw=raw,
        page=page,
        query_string=urlencode({k: v for k, v in raw.items() if v}),
    )


def _history(request: Request, **filters: Any) -> list[RowMapping]:
    rows, _ = _queue(request).list_orders(WorkOrderFilter(**filters), 20)
    return rows


@dataclass(frozen=True, slots=True)
class MeterData:
    """What the meter page shows of the meter-data and events stores."""

    alarms: list[RowMapping]
    profile_name: str | None
    profile_unit: str | None
    profile: list[tuple[datetime, float]]
    registers: list[RowMapping]


def _meter_data(engine: Engine, serial: str) -> MeterData:
    """Active alarms, the last two days of the most recently read load profile, and the
    latest daily registers: a handful of indexed queries, whatever the fleet size."""
    e, ir, rr, rt = t.events.c, t.interval_readings.c, t.register_reads.c, t.reading_types.c
    with engine.connect() as conn:
        meter_id = conn.execute(
            sa.select(t.meters.c.id).where(t.meters.c.serial_number == serial)
        ).scalar_one_or_none()
        if meter_id is None:
            return MeterData([], None, None, [], [])
        alarms = list(
            conn.execute(
                sa.select(e.opened_at, e.code, e.description, e.priority)
                .where(e.meter_id == meter_id, e.is_active)
                .order_by(e.opened_at.desc())
                .limit(20)
            ).mappings()
        )
        latest = conn.execute(
            sa.select(ir.reading_type_id, ir.interval_end)
            .where(ir.meter_id == meter_id)
            .order_by(ir.interval_end.desc())
            .limit(1)
        ).first()
        profile: list[tuple[datetime, float]] = []
        name = unit = None
        if latest is not None:
            type_id, last = latest
            name, unit = conn.execute(sa.select(rt.name, rt.unit).where(rt.id == type_id)).one()
            profile = [
                (end, value)
                for end, value in conn.execute(
                    sa.select(ir.interval_end, ir.value)
                    .where(
                        ir.meter_id == meter_id,
                        ir.reading_type_id == type_id,
                        ir.interval_end > last - timedelta(days=2),
                    )
                    .order_by(ir.interval_end)
                )
            ]
        registers = list(
            conn.execute(
                sa.select(rr.captured_at, rt.name, rt.unit, rr.total, rr.t1, rr.t2, rr.t3)
                .join(t.reading_types, rt.id == rr.reading_type_id)
                .where(rr.meter_id == meter_id)
                .order_by(rr.captured_at.desc(), rt.name)
                .limit(12)
            ).mappings()
        )
    return MeterData(alarms, name, unit, profile, registers)


@router.get("/assets/meters/{serial}")
def meter_detail(request: Request, principal: AssetReader, serial: str) -> HTMLResponse:
    with _engine(request).connect() as conn:
        meter = queries.get_meter(conn, serial[:_MAX_NAME])
        links = queries.meter_links_of(conn, serial[:_MAX_NAME]) if meter else None
    if restricted_to_grants(principal.role):
        point = meter["service_point"] if meter else None
        if point is None or not may_see_service_point(request, principal, point):
            audit(request, principal, "i8.denied", f"meter {serial}"[:255])
            raise Forbidden("not a service point granted to this account")
        audit(request, principal, "i8.read", f"meter {serial}"[:255])
    if meter is None:
        return _not_found(request, principal, f"meter {serial}")
    return _page(
        request,
        "meter.html",
        principal,
        meter=meter,
        links=links or [],
        history=_history(request, meter=serial),
        data=_meter_data(_engine(request), serial),
    )


@router.get("/assets/concentrators/{name}")
def concentrator_detail(request: Request, principal: AssetReader, name: str) -> HTMLResponse:
    _stakeholder_only(principal)
    with _engine(request).connect() as conn:
        row = queries.get_concentrator(conn, name[:_MAX_NAME])
        counts = queries.concentrator_meter_counts(conn, row["id"]) if row else None
    if row is None:
        return _not_found(request, principal, f"concentrator {name}")
    return _page(
        request,
        "concentrator.html",
        principal,
        dc=row,
        counts=counts,
        history=_history(request, concentrator=name),
    )


@router.get("/assets/service-points/{name}")
def service_point_detail(request: Request, principal: AssetReader, name: str) -> HTMLResponse:
    if restricted_to_grants(principal.role):
        if not may_see_service_point(request, principal, name):
            audit(request, principal, "i8.denied", f"service point {name}"[:255])
            raise Forbidden("not a service point granted to this account")
        audit(request, principal, "i8.read", f"service point {name}"[:255])
    with _engine(request).connect() as conn:
        row = queries.get_service_point(conn, name[:_MAX_NAME])
    if row is None:
        return _not_found(request, principal, f"service point {name}")
    return _page(
        request, "service_point.html", principal, sp=row, history=_history(request, pod=name)
    )


# -- map -------------------------------------------------------------------------------------


@router.get("/map")
def map_page(request: Request, principal: MapReader) -> HTMLResponse:
    return _page(request, "map.html", principal)


@router.get("/map/meters.json")
def map_meters(request: Request, principal: MapReader) -> Response:
    """The whole fleet for the map page in columns: longitude and latitude in whole
    1e-5 degrees (``scale``), a state code per meter naming an entry of ``states``. The
    database builds the columns; an unchanged fleet answers ``304`` to the browser's
    ``If-None-Match``."""
    with _engine(request).connect() as conn:
        columns = queries.meter_map_columns(conn)
    body = (
        f'{{"states":{json.dumps(queries.MAP_STATES)},"scale":{queries.MAP_SCALE},'
        f'"lon":[{columns.lon}],"lat":[{columns.lat}],"state":[{columns.flags}],'
        f'"skipped_without_coordinates":{columns.skipped}}}'
    )
    return validated_response(request, body.encode(), "application/json")


# -- audit log -------------------------------------------------------------------------------

Auditor = Annotated[Principal, _principal_dep(Permission.VIEW_AUDIT)]


@router.get("/audit")
def audit_page(request: Request, principal: Auditor) -> HTMLResponse:
    """The latest 200 audit rows, newest first."""
    return _page(request, "audit.html", principal, rows=access_store(request).audit_rows(200))


# -- provisioning ----------------------------------------------------------------------------


@router.get("/provisioning")
def provisioning(request: Request, principal: Provisioner) -> HTMLResponse:
    return _page(request, "provisioning.html", principal, result=None, report=None, error=None)


def _report_dir(request: Request) -> Path | None:
    folder: Path | None = request.app.state.report_dir
    return folder


@router.post("/provisioning")
async def provisioning_upload(request: Request, principal: Provisioner) -> HTMLResponse:
    form = await _form(request)
    box = request.app.state.secret_box
    report_dir = _report_dir(request)
    upload = form.files.get("file")
    if box is None or report_dir is None or upload is None or not upload.content:
        reason = "provisioning_disabled" if box is None or report_dir is None else "template_file"
        return _page(
            request,
            "provisioning.html",
            principal,
            result=None,
            report=None,
            error=reason,
            status_code=422,
        )
    area: ServiceArea | None = getattr(request.app.state, "service_area", CHILE)
    options = ImportOptions(area, report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    safe_name = Path(upload.filename).name or "upload.csv"
    with tempfile.TemporaryDirectory(prefix="smmc-upload-") as folder:
        path = Path(folder) / safe_name
        path.write_bytes(upload.content)
        result = await run_in_threadpool(import_file, _engine(request), box, path, options)
    audit(
        request,
        principal,
        "provisioning.import",
        f"{safe_name}: {result.accepted} accepted, {result.rejected} rejected",
    )
    report = result.report_path.name if result.report_path else None
    return _page(request, "provisioning.html", principal, result=result, report=report, error=None)


@router.get("/provisioning/reports/{name}")
def provisioning_report(request: Request, principal: Provisioner, name: str) -> Response:
    folder = _report_dir(request)
    if folder is None or "/" in name or "\\" in name or not name.endswith(".errors.csv"):
        return _not_found(request, principal, name)
    path = folder / name
    if not path.is_file():
        return _not_found(request, principal, name)
    return Response(
        path.read_bytes(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- control room ----------------------------------------------------------------------------


ControlRoomReader = Annotated[Principal, _principal_dep(Permission.VIEW_CONTROL_ROOM)]

# Letters that read as a healthy, configured DC (the seed's 00001E/08001E, plus CONN-C
# completed); every other letter set is counted as a status-word condition.
NOMINAL_LETTERS = frozenset("BOEGCF")


@dataclass(frozen=True, slots=True)
class StatusWords:
    """The concentrators' last status words: share per letter and the ten with most
    conditions, plus concentrator events per day and priority over the window."""

    concentrators: int
    share: list[tuple[str, str, int, float]]
    top: list[tuple[str, str, list[str]]]
    history: list[tuple[str, dict[str, int]]]
    priorities: list[str]


def _status_words(engine: Engine, since: datetime) -> StatusWords:
    w, e = t.device_status_words.c, t.events.c
    with engine.connect() as conn:
        words = conn.execute(
            sa.select(w.device, w.value).where(
                w.device_kind == "concentrator", w.word == CONCENTRATOR_WORD
            )
        ).all()
        daily = conn.execute(
            sa.select(e.opened_at, e.priority).where(
                e.device_kind == "concentrator", e.opened_at >= since
            )
        ).all()
    counts: dict[str, int] = {}
    conditions: list[tuple[str, str, list[str]]] = []
    for device, value in words:
        letters = sorted(decode_status_word(value))
        for letter in letters:
            counts[letter] = counts.get(letter, 0) + 1
        odd = [letter for letter in letters if letter not in NOMINAL_LETTERS]
        if odd:
            conditions.append((device, format_status_word(value), odd))
    total = len(words)
    share = [
        (letter, LETTERS[letter].name, counts[letter], 100.0 * counts[letter] / total)
        for letter in sorted(counts, key=lambda letter: (-counts[letter], letter))
    ]
    conditions.sort(key=lambda row: (-len(row[2]), row[0]))
    history: dict[str, dict[str, int]] = {}
    for opened, priority in daily:
        day = history.setdefault(opened.astimezone(UTC).date().isoformat(), {})
        day[priority] = day.get(priority, 0) + 1
    priorities = sorted({priority for _, priority in daily})
    return StatusWords(total, share, conditions[:10], sorted(history.items()), priorities)


@router.get("/control-room")
def control_room(request: Request, principal: ControlRoomReader, hours: int = 24) -> HTMLResponse:
    """The events API's aggregates over the last ``hours`` (1 to 744), read in process."""
    hours = max(1, min(hours, 744))
    engine = _engine(request)
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    since = until - timedelta(hours=hours)
    per_hour = events_api.per_hour(request, engine, since, until)
    return _page(
        request,
        "control_room.html",
        principal,
        hours=hours,
        per_hour=per_hour if isinstance(per_hour, list) else [],
        by_type=events_api.by_type(engine, since, until),
        top=events_api.top_concentrators(engine),
        comunas=events_api.per_comuna(engine, since, until),
        outages=events_api.outages(engine, queries.Page(limit=100), open=True),
        active=events_api.active_alarms(engine, queries.Page(limit=20)),
        words=_status_words(engine, since),
    )
