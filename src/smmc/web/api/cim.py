"""SOAP 1.1 endpoints for Legacy at ``/cim/<Service>``, each with its WSDL at ``?wsdl``.

When the app enforces authentication (``smmc serve``, the demo) a call needs an API token
(``Authorization: Bearer …``) whose role holds the service's permission — the I6 integration
account; without one the answer is a SOAP fault with HTTP 401 (7.2 / 7.4) or 403 (7.5). The
WSDLs stay open. The body is read with a hard cap before any parsing; the work happens in a
worker thread because it touches the database. The SOAP logic itself lives in
``smmc.integration.soap``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from smmc.config import OutboxSettings
from smmc.domain.access import Permission, allows
from smmc.integration.codes import CodeBook
from smmc.integration.soap import (
    SERVICES,
    CimService,
    ServiceSpec,
    SoapAnswer,
    soap_fault,
    wsdl_text,
)
from smmc.integration.xml import FORMAT_ERROR, MessageError, SchemaSet
from smmc.store.work_orders import WorkOrderQueue
from smmc.web.auth import audit, has_bearer, token_principal
from smmc.web.problems import problem_response

router = APIRouter(prefix="/cim", tags=["cim"], include_in_schema=False)

SOAP_MEDIA_TYPE = "text/xml; charset=utf-8"

# What a service's caller must be allowed to do. MeterConfig changes meter master data, which
# is provisioning: the integration role does not hold it by default.
PERMISSIONS: Mapping[str, Permission] = MappingProxyType(
    {
        "ExecuteEndDeviceControls": Permission.SUBMIT_WORK_ORDERS,
        "GetMeterReadings": Permission.VIEW_METER_DATA,
        "GetEndDeviceEvents": Permission.VIEW_CONTROL_ROOM,
        "ExecuteMeterConfig": Permission.PROVISION,
    }
)


def cim_service(request: Request) -> CimService:
    """One service per app, built on first use from the app's engine and the environment
    (``SMMC_CIM_SCHEMA_DIR`` turns on run-time schema validation, ``SMMC_CIM_CODES`` names
    the code book — the same one the outbox publisher renders outcomes with)."""
    service: CimService | None = getattr(request.app.state, "cim_service", None)
    if service is None:
        engine = request.app.state.engine
        codes = CodeBook.configured(OutboxSettings.from_env(os.environ).codes_file)
        service = CimService(
            engine, WorkOrderQueue(engine), codes=codes, schemas=SchemaSet.from_env()
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


def _soap(answer: SoapAnswer, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        answer.body, status_code=answer.status, media_type=SOAP_MEDIA_TYPE, headers=headers
    )


def _refusal(service: str, request: Request) -> Response | None:
    """None when the caller may use ``service``; else the SOAP fault to answer with (401
    without a valid API token, 403 when the token's role lacks the permission). Calls that
    change something are written to the audit log."""
    spec: ServiceSpec = SERVICES[service]
    challenge = {"WWW-Authenticate": 'Bearer realm="smmc-cim"'}
    if not has_bearer(request):
        missing = MessageError("7.2", "Authentication required", "Authorization: Bearer <token>")
        return _soap(SoapAnswer(401, soap_fault(spec, missing)), challenge)
    principal = token_principal(request)
    if principal is None:
        bad = MessageError("7.4", "Authentication failure", "unknown, revoked or expired token")
        return _soap(SoapAnswer(401, soap_fault(spec, bad)), challenge)
    permission = PERMISSIONS[service]
    if not allows(principal.role, permission):
        denied = MessageError(
            "7.5", "Action not authorized for user", f"role {principal.role} lacks {permission}"
        )
        return _soap(SoapAnswer(403, soap_fault(spec, denied)))
    if service.startswith("Execute"):
        audit(request, principal, "cim.call", service)
    return None


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
    if request.app.state.auth_required:
        refused = await run_in_threadpool(_refusal, service, request)
        if refused is not None:
            return refused
    cim = cim_service(request)
    data = await _read_capped(request, cim.limits.max_bytes)
    if data is None:
        too_big = MessageError(
            FORMAT_ERROR, "Message too large", f"limit {cim.limits.max_bytes} bytes"
        )
        return _soap(SoapAnswer(500, soap_fault(SERVICES[service], too_big)))
    answer = await run_in_threadpool(cim.handle, service, data)
    return _soap(answer)
