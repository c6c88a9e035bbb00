"""Request dependencies shared by the API routers: the engine, pagination and the typed
query parameters, declared once so lists and maps validate filters the same way."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.engine import Engine

from smmc.domain.assets import MeterType, Phase, SupplyStatus
from smmc.web.queries import ConcentratorFilter, MeterFilter, Page, ServicePointFilter

# PostgreSQL text cannot hold NUL: refusing it here keeps such input a 422, not a 500.
_NO_NUL = r"^[^\x00]*$"
MAX_OFFSET = 2**31 - 1

TextFilter = Annotated[str | None, Query(max_length=255, pattern=_NO_NUL)]
NaturalKey = Annotated[str, Path(min_length=1, max_length=255, pattern=_NO_NUL)]


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def page(
    limit: Annotated[int, Query(ge=1, le=1000, description="page size")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


PageDep = Annotated[Page, Depends(page)]


def meter_filter(
    concentrator: Annotated[
        str | None, Query(max_length=255, pattern=_NO_NUL, description="concentrator name")
    ] = None,
    commissioned: bool | None = None,
    reachable: bool | None = None,
    in_dc_table: bool | None = None,
    comuna: Annotated[
        str | None,
        Query(max_length=255, pattern=_NO_NUL, description="comuna of the current service point"),
    ] = None,
    tag: TextFilter = None,
    meter_type: MeterType | None = None,
    phase: Phase | None = None,
    point_to_point: Annotated[
        bool | None, Query(description="reached directly, without a concentrator")
    ] = None,
    service_point: Annotated[
        str | None, Query(max_length=255, pattern=_NO_NUL, description="current service point")
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=255, pattern=_NO_NUL, description="serial number prefix, any case"),
    ] = None,
) -> MeterFilter:
    return MeterFilter(
        concentrator=concentrator,
        commissioned=commissioned,
        reachable=reachable,
        in_dc_table=in_dc_table,
        comuna=comuna,
        tag=tag,
        meter_type=meter_type,
        phase=phase,
        point_to_point=point_to_point,
        service_point=service_point,
        q=q,
    )


MeterFilterDep = Annotated[MeterFilter, Depends(meter_filter)]


def concentrator_filter(
    comuna: TextFilter = None,
    tag: TextFilter = None,
    transformer: Annotated[
        str | None, Query(max_length=255, pattern=_NO_NUL, description="transformer code")
    ] = None,
    substation: Annotated[
        str | None, Query(max_length=255, pattern=_NO_NUL, description="substation name")
    ] = None,
    reachable: bool | None = None,
    q: Annotated[
        str | None, Query(max_length=255, pattern=_NO_NUL, description="name prefix, any case")
    ] = None,
) -> ConcentratorFilter:
    return ConcentratorFilter(
        comuna=comuna,
        tag=tag,
        transformer=transformer,
        substation=substation,
        reachable=reachable,
        q=q,
    )


ConcentratorFilterDep = Annotated[ConcentratorFilter, Depends(concentrator_filter)]


def service_point_filter(
    comuna: TextFilter = None,
    tag: TextFilter = None,
    net_billing: bool | None = None,
    is_balance: bool | None = None,
    supply_status: SupplyStatus | None = None,
    has_meter: Annotated[bool | None, Query(description="has an open meter link")] = None,
) -> ServicePointFilter:
    return ServicePointFilter(
        comuna=comuna,
        tag=tag,
        net_billing=net_billing,
        is_balance=is_balance,
        supply_status=supply_status,
        has_meter=has_meter,
    )


ServicePointFilterDep = Annotated[ServicePointFilter, Depends(service_point_filter)]
