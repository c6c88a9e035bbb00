"""SOAP 1.1 endpoints for Legacy at ``/cim/<Service>``, each with its WSDL at ``?wsdl``.

The body is read with a hard cap before any parsing; the work happens in a worker thread
because it touches the database. The SOAP logic itself lives in ``smmc.integration.soap``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from smmc.integration.codes import CodeBook
from smmc.integration.soap import SERVICES, CimService, SoapAnswer, soap_fault, wsdl_text
from smmc.integration.xml import FORMAT_ERROR, MessageError, SchemaSet
from smmc.store.work_orders import WorkOrderQueue
from smmc.web.problems import problem_response

router = APIRouter(prefix="/cim", tags=["cim"], include_in_schema=False)

SOAP_MEDIA_TYPE = "text/xml; charset=utf-8"


def cim_service(request: Request) -> CimService:
    """One service per app, built on first use from the app's engine and the environment
    (``SMMC_CIM_SCHEMA_DIR`` turns on run-time schema validation)."""
    service: CimService | None = getattr(request.app.state, "cim_service", None)
    if service is None:
        engine = request.app.state.engine
        service = CimService(
            engine, WorkOrderQueue(engine), codes=CodeBook(), schemas=SchemaSet.from_env()
        )
        request.app.state.cim_service = service
    return service


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds ``limit`` bytes (nothing more is read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _soap(answer: SoapAnswer) -> Response:
    return Response(answer.body, status_code=answer.status, media_type=SOAP_MEDIA_TYPE)


@router.get("/{service}")
def describe(service: str, request: Request) -> Response:
    if service not in SERVICES or "wsdl" not in {k.lower() for k in request.query_params}:
        return problem_response(404, f"no WSDL at {request.url.path}", request.url.path)
    location = str(request.url.replace(query=""))
    return Response(wsdl_text(service, location), media_type="text/xml; charset=utf-8")


@router.post("/{service}")
async def call(service: str, request: Request) -> Response:
    if service not in SERVICES:
        return problem_response(404, f"no CIM service {service!r}", request.url.path)
    cim = cim_service(request)
    data = await _read_capped(request, cim.limits.max_bytes)
    if data is None:
        too_big = MessageError(
            FORMAT_ERROR, "Message too large", f"limit {cim.limits.max_bytes} bytes"
        )
        return _soap(SoapAnswer(500, soap_fault(SERVICES[service], too_big)))
    answer = await run_in_threadpool(cim.handle, service, data)
    return _soap(answer)
