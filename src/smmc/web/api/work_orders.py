"""Work-order endpoints: submit (one meter, a list, a `podname;serialnumber` CSV, a whole
concentrator), list with the seed's filters and views (JSON pages or the seed's CSV report),
details, cancel and batch progress."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field, ValidationError
from sqlalchemy.engine import RowMapping
from starlette.concurrency import run_in_threadpool

from smmc.domain.time import DEFAULT_TIME_ZONE, to_local
from smmc.domain.work_orders import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    ActivityType,
    InvalidTransition,
    InvalidWorkOrder,
    Origin,
    State,
    Target,
    View,
    parse_activity_type,
    parse_target_csv,
)
from smmc.store.work_orders import (
    CSV_COLUMNS,
    Rejected,
    SubmitResult,
    TargetRef,
    WorkOrderFilter,
    WorkOrderNotFound,
    WorkOrderQueue,
    csv_record,
)
from smmc.web.api.deps import PageDep, TextFilter
from smmc.web.problems import (
    INVALID_PARAMETERS_TYPE,
    NotFoundError,
    problem_response,
    problem_responses,
)

router = APIRouter(prefix="/api/workorders", tags=["work orders"])

INVALID_TRANSITION_TYPE = "urn:smmc:problem:invalid-transition"
CSV_MEDIA_TYPE = "text/csv"
MAX_TARGETS = 100_000
MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL
_NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: a 422, not a 500
OrderId = Annotated[int, Path(ge=1, le=MAX_ID)]
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "the order's state does not allow this (e.g. cancelling a RUNNING order)",
        "content": {"application/problem+json": {}},
    }
}


def _queue(request: Request) -> WorkOrderQueue:
    """One queue per app: the policy file is read once."""
    queue = getattr(request.app.state, "work_order_queue", None)
    if queue is None:
        queue = WorkOrderQueue(request.app.state.engine)
        request.app.state.work_order_queue = queue
    return queue


class TargetIn(BaseModel):
    meter: str | None = Field(
        None, max_length=64, pattern=_NO_NUL, description="meter serial number"
    )
    pod: str | None = Field(
        None, max_length=100, pattern=_NO_NUL, description="POD (service point) name"
    )


class SubmitRequest(BaseModel):
    activity: str = Field(description="activity type (Reading, Disconnect or CORTE, …)")
    meters: list[Annotated[str, Field(max_length=64, pattern=_NO_NUL)]] = Field(
        default_factory=list, max_length=MAX_TARGETS, description="meter serial numbers"
    )
    targets: list[TargetIn] = Field(default_factory=list, max_length=MAX_TARGETS)
    concentrator: str | None = Field(
        None,
        max_length=100,
        pattern=_NO_NUL,
        description="a concentrator: its own activity, or every meter behind it",
    )
    priority: int | None = Field(None, ge=MIN_PRIORITY, le=MAX_PRIORITY)
    scheduled_at: AwareDatetime | None = None
    special: bool = Field(False, description="bypass the working-day rule of connect/disconnect")
    reason: str | None = Field(None, max_length=32, pattern=_NO_NUL)
    origin: Literal["operator", "legacy"] = "operator"
    external_id: str | None = Field(None, max_length=100, pattern=_NO_NUL)
    payload: dict[str, Any] | None = None


class RejectedOut(BaseModel):
    row: int = Field(description="0-based index in the request, or the CSV line number")
    target: str
    reason: str


class SubmitOut(BaseModel):
    batch_id: int | None = Field(description="the seed's idwork")
    accepted: int
    rejected: list[RejectedOut]


class WorkOrderOut(BaseModel):
    id: int
    idwork: int
    activity: str
    state: State
    priority: int
    origin: str
    external_id: str | None
    concentrator: str | None
    meter: str | None
    pod: str | None
    reason: str | None
    special: bool
    attempts: int
    max_attempts: int
    created_at: datetime
    scheduled_at: datetime
    deadline: datetime
    started_at: datetime | None
    ended_at: datetime | None
    started_local: datetime | None
    ended_local: datetime | None
    is_error: bool
    error_description: str | None
    result: str | None


class AttemptOut(BaseModel):
    attempt: int
    worker: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    error_text: str | None


class WorkOrderDetail(WorkOrderOut):
    history: list[AttemptOut]


class WorkOrderPage(BaseModel):
    items: list[WorkOrderOut]
    total: int
    limit: int
    offset: int


class BatchOut(BaseModel):
    batch_id: int
    activity: str
    origin: str
    external_id: str | None
    total: int
    finished: int
    by_state: dict[str, int]


def _order_out(row: RowMapping) -> dict[str, Any]:
    tz = row["time_zone"] or DEFAULT_TIME_ZONE
    return {
        "id": row["id"],
        "idwork": row["batch_id"],
        "activity": row["activity"],
        "state": row["state"],
        "priority": row["priority"],
        "origin": row["origin"],
        "external_id": row["external_id"],
        "concentrator": row["concentrator_name"],
        "meter": row["meter_serial"],
        "pod": row["service_point_name"],
        "reason": row["reason"],
        "special": row["special"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "created_at": row["created_at"],
        "scheduled_at": row["scheduled_at"],
        "deadline": row["deadline"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "started_local": to_local(row["started_at"], tz) if row["started_at"] else None,
        "ended_local": to_local(row["ended_at"], tz) if row["ended_at"] else None,
        "is_error": row["is_error"],
        "error_description": row["error_text"],
        "result": row["result"],
    }


def _inline_schema() -> dict[str, Any]:
    """The JSON body's schema without `$defs` (a `#/...` reference would resolve against the
    whole OpenAPI document)."""
    schema = SubmitRequest.model_json_schema()
    definitions = schema.pop("$defs", {})
    schema["properties"]["targets"]["items"] = definitions["TargetIn"]
    return schema


def _rejected_out(items: tuple[Rejected, ...], lines: list[int] | None = None) -> list[RejectedOut]:
    return [
        RejectedOut(
            row=lines[item.index] if lines is not None else item.index,
            target=item.target.label(),
            reason=item.reason,
        )
        for item in items
    ]


def _invalid(request: Request, detail: str, errors: list[dict[str, str]]) -> JSONResponse:
    return problem_response(
        422,
        detail,
        request.url.path,
        problem_type=INVALID_PARAMETERS_TYPE,
        title="Invalid request parameters",
        errors=errors,
    )


def _submit(
    request: Request,
    queue: WorkOrderQueue,
    activity: ActivityType,
    targets: list[TargetRef],
    options: dict[str, Any],
    lines: list[int] | None = None,
    extra: list[RejectedOut] | None = None,
) -> Response:
    try:
        result: SubmitResult = queue.submit(activity, targets, **options)
    except InvalidWorkOrder as exc:
        field_name = str(exc).split(":", 1)[0]
        return _invalid(request, str(exc), [{"in": "body", "name": field_name, "detail": str(exc)}])
    rejected = [*(extra or []), *_rejected_out(result.rejected, lines)]
    if result.batch_id is None:
        return _invalid(
            request,
            "no work order accepted: every target was rejected",
            [{"in": "body", "name": f"row {r.row}", "detail": r.reason} for r in rejected],
        )
    body = SubmitOut(batch_id=result.batch_id, accepted=result.accepted, rejected=rejected)
    return JSONResponse(body.model_dump(), status_code=201)


def _activity(request: Request, text: str) -> ActivityType | JSONResponse:
    try:
        return parse_activity_type(text)
    except InvalidWorkOrder as exc:
        return _invalid(request, str(exc), [{"in": "body", "name": "activity", "detail": str(exc)}])


def _submit_json(request: Request, body: SubmitRequest) -> Response:
    """Queue one batch (one idwork): a list of meters and/or targets, or a concentrator
    (its own activity, or every meter behind it). Rejected rows are listed; the others run."""
    queue = _queue(request)
    activity = _activity(request, body.activity)
    if isinstance(activity, JSONResponse):
        return activity
    targets = [TargetRef(meter=serial) for serial in body.meters]
    targets += [TargetRef(meter=item.meter, pod=item.pod) for item in body.targets]
    if body.concentrator is not None:
        if queue.policies[activity].target is Target.CONCENTRATOR:
            targets.append(TargetRef(concentrator=body.concentrator))
        elif not targets:
            try:
                targets = queue.meters_of_concentrator(body.concentrator)
            except InvalidWorkOrder as exc:
                return _invalid(
                    request, str(exc), [{"in": "body", "name": "concentrator", "detail": str(exc)}]
                )
        else:
            targets = [
                TargetRef(meter=t.meter, pod=t.pod, concentrator=body.concentrator) for t in targets
            ]
    if not targets:
        detail = "give meters, targets or a concentrator"
        return _invalid(request, detail, [{"in": "body", "name": "meters", "detail": detail}])
    return _submit(request, queue, activity, targets, _options(body))


def _options(body: SubmitRequest) -> dict[str, Any]:
    return {
        "origin": Origin(body.origin),
        "external_id": body.external_id,
        "priority": body.priority,
        "scheduled_at": body.scheduled_at,
        "special": body.special,
        "reason": body.reason,
        "payload": body.payload,
    }


@router.post(
    "",
    status_code=201,
    response_model=SubmitOut,
    responses=problem_responses(422, 500),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _inline_schema()},
                CSV_MEDIA_TYPE: {"schema": {"type": "string"}},
            },
        }
    },
)
async def submit_work_orders(
    request: Request,
    activity: Annotated[
        str | None, Query(max_length=40, description="with a CSV body: the activity type")
    ] = None,
    priority: Annotated[int | None, Query(ge=MIN_PRIORITY, le=MAX_PRIORITY)] = None,
    special: bool = False,
    reason: Annotated[str | None, Query(max_length=32, pattern=_NO_NUL)] = None,
    external_id: Annotated[str | None, Query(max_length=100, pattern=_NO_NUL)] = None,
) -> Response:
    """Queue one batch (one idwork). A JSON body lists meters and/or targets, or names a
    concentrator (its own activity, or every meter behind it). A `text/csv` body is the
    operators' `podname;serialnumber` file, with the activity and options as query
    parameters. Rejected rows are listed with the reason; the others run."""
    raw = await request.body()
    if request.headers.get("content-type", "").split(";")[0].strip() != CSV_MEDIA_TYPE:
        try:
            body = SubmitRequest.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            return _invalid(request, "invalid work-order request", _body_errors(exc))
        return await run_in_threadpool(_submit_json, request, body)
    if activity is None:
        detail = "a CSV body needs the activity query parameter"
        return _invalid(request, detail, [{"in": "query", "name": "activity", "detail": detail}])
    queue = _queue(request)
    chosen = _activity(request, activity)
    if isinstance(chosen, JSONResponse):
        return chosen
    queue = _queue(request)
    chosen = _activity(request, activity)
    if isinstance(chosen, JSONResponse):
        return chosen
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        detail = "the CSV body is not UTF-8 text"
        return _invalid(request, detail, [{"in": "body", "name": "body", "detail": detail}])
    rows, errors = parse_target_csv(text)
    bad = [RejectedOut(row=e.line, target="line", reason=e.reason) for e in errors]
    if not rows:
        return _invalid(
            request,
            "the CSV has no usable podname;serialnumber row",
            [{"in": "body", "name": f"line {b.row}", "detail": b.reason} for b in bad],
        )
    targets = [TargetRef(meter=row.serial, pod=row.pod) for row in rows]
    options = {
        "origin": Origin.OPERATOR,
        "external_id": external_id,
        "priority": priority,
        "special": special,
        "reason": reason,
    }
    lines = [row.line for row in rows]
    return await run_in_threadpool(_submit, request, queue, chosen, targets, options, lines, bad)


def _body_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {
            "in": "body",
            "name": ".".join(str(part) for part in error["loc"]),
            "detail": error["msg"],
        }
        for error in exc.errors()
    ]


@router.get(
    "",
    response_model=WorkOrderPage,
    responses={
        **problem_responses(422, 500),
        200: {"content": {CSV_MEDIA_TYPE: {}}, "description": "JSON page, or the CSV report"},
    },
)
def list_work_orders(
    request: Request,
    page: PageDep,
    idwork: Annotated[int | None, Query(ge=1, le=MAX_ID, description="batch id")] = None,
    activity: Annotated[str | None, Query(max_length=40)] = None,
    concentrator: TextFilter = None,
    meter: TextFilter = None,
    pod: TextFilter = None,
    ended_from: Annotated[AwareDatetime | None, Query(description="end date, inclusive")] = None,
    ended_to: Annotated[AwareDatetime | None, Query(description="end date, exclusive")] = None,
    view: View | None = None,
    state: State | None = None,
    format: Literal["json", "csv"] = "json",
) -> Any:
    """Orders matching the seed's filters, newest first; `format=csv` streams every match as
    the seed's report (`idwork, concentrator, pod, meter, …, error description`)."""
    queue = _queue(request)
    chosen = None
    if activity is not None:
        parsed = _activity(request, activity)
        if isinstance(parsed, JSONResponse):
            return parsed
        chosen = parsed
    filters = WorkOrderFilter(
        batch_id=idwork,
        activity=chosen,
        concentrator=concentrator,
        meter=meter,
        pod=pod,
        ended_from=ended_from,
        ended_to=ended_to,
        view=view,
        state=state,
    )
    if format == "csv":
        return StreamingResponse(
            _csv_lines(queue, filters),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": 'attachment; filename="workorders.csv"'},
        )
    rows, total = queue.list_orders(filters, page.limit, page.offset)
    return {
        "items": [_order_out(row) for row in rows],
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
    }


def _csv_lines(queue: WorkOrderQueue, filters: WorkOrderFilter) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in queue.iter_rows(filters):
        writer.writerow(csv_record(row))
        if buffer.tell() > 65536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@router.get(
    "/batches/{batch_id}",
    response_model=BatchOut,
    responses=problem_responses(404, 422, 500),
)
def batch_progress(request: Request, batch_id: OrderId) -> BatchOut:
    """How far a batch (idwork) has got: orders per state."""
    try:
        progress = _queue(request).batch_progress(batch_id)
    except WorkOrderNotFound:
        raise NotFoundError("batch", str(batch_id)) from None
    return BatchOut(
        batch_id=progress.batch_id,
        activity=progress.activity,
        origin=progress.origin,
        external_id=progress.external_id,
        total=progress.total,
        finished=progress.finished,
        by_state=dict(progress.by_state),
    )


@router.get(
    "/{order_id}",
    response_model=WorkOrderDetail,
    responses=problem_responses(404, 422, 500),
)
def work_order_detail(request: Request, order_id: OrderId) -> WorkOrderDetail:
    queue = _queue(request)
    try:
        row = queue.get(order_id)
    except WorkOrderNotFound:
        raise NotFoundError("work order", str(order_id)) from None
    history = [AttemptOut.model_validate(dict(item)) for item in queue.attempts(order_id)]
    return WorkOrderDetail(**_order_out(row), history=history)


@router.post(
    "/{order_id}/cancel",
    response_model=WorkOrderOut,
    responses={**problem_responses(404, 422, 500), **_CONFLICT},
)
def cancel_work_order(request: Request, order_id: OrderId) -> Any:
    """Cancel a queued order; a RUNNING or finished one answers 409."""
    queue = _queue(request)
    try:
        queue.cancel(order_id)
    except WorkOrderNotFound:
        raise NotFoundError("work order", str(order_id)) from None
    except InvalidTransition as exc:
        return problem_response(
            409,
            f"work order {order_id} is {exc.current.value}: it cannot be cancelled",
            request.url.path,
            problem_type=INVALID_TRANSITION_TYPE,
            title="Invalid state transition",
        )
    return _order_out(queue.get(order_id))
