"""Read-only asset endpoints: lists with filters and pagination, details by natural key."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.engine import RowMapping

from smmc.web.api.deps import (
    ConcentratorFilterDep,
    EngineDep,
    MeterFilterDep,
    NaturalKey,
    PageDep,
    ServicePointFilterDep,
    TextFilter,
)
from smmc.web.api.schemas import (
    ConcentratorCredentials,
    ConcentratorDetail,
    ConcentratorSummary,
    CurrentServicePoint,
    LifecycleFlags,
    Location,
    MeterCounts,
    MeterDetail,
    MeterKeys,
    MeterLinkOut,
    MeterLinks,
    MeterSummary,
    NetworkAddress,
    PageOf,
    PointToPointPath,
    ServicePointDetail,
    ServicePointSummary,
    TransformerDetail,
    TransformerSummary,
    ViaConcentratorPath,
)
from smmc.web.problems import NotFoundError, problem_responses
from smmc.web.queries import (
    Page,
    concentrator_meter_counts,
    get_concentrator,
    get_meter,
    get_service_point,
    get_transformer,
    list_concentrators,
    list_meters,
    list_service_points,
    list_transformers,
    meter_links_of,
    meter_state,
)

router = APIRouter(prefix="/api", tags=["assets"], responses=problem_responses(422, 500))

_NOT_FOUND = problem_responses(404)


def _page_of(items: Sequence[BaseModel], total: int, page: Page) -> dict[str, object]:
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


def _location(row: RowMapping) -> Location | None:
    if row["latitude"] is None or row["longitude"] is None:
        return None
    return Location(latitude=row["latitude"], longitude=row["longitude"], altitude=row["altitude"])


def _meter_flags(row: RowMapping) -> LifecycleFlags:
    return LifecycleFlags(
        linked=row["concentrator_id"] is not None or row["host"] is not None,
        commissioned=row["commissioned"],
        reachable=row["reachable"],
        in_dc_table=row["in_dc_table"],
    )


def _meter_summary(row: RowMapping) -> MeterSummary:
    flags = _meter_flags(row)
    return MeterSummary(
        serial_number=row["serial_number"],
        tag=row["tag"],
        meter_type=row["meter_type"],
        phase=row["phase"],
        firmware_id=row["firmware_id"],
        concentrator=row["concentrator"],
        service_point=row["service_point"],
        comuna=row["comuna"],
        point_to_point=row["concentrator_id"] is None and row["host"] is not None,
        commissioned=flags.commissioned,
        reachable=flags.reachable,
        in_dc_table=flags.in_dc_table,
        lifecycle_state=meter_state(**flags.model_dump()),
    )


@router.get("/meters", response_model=PageOf[MeterSummary])
def meters_list(engine: EngineDep, filters: MeterFilterDep, page: PageDep) -> dict[str, object]:
    with engine.connect() as conn:
        listing = list_meters(conn, filters, page)
    return _page_of([_meter_summary(row) for row in listing.rows], listing.total, page)


@router.get("/meters/{serial}", response_model=MeterDetail, responses=_NOT_FOUND)
def meter_detail(engine: EngineDep, serial: NaturalKey) -> MeterDetail:
    with engine.connect() as conn:
        row = get_meter(conn, serial)
    if row is None:
        raise NotFoundError("meter", serial)
    path: ViaConcentratorPath | PointToPointPath | None = None
    if row["concentrator"] is not None:
        path = ViaConcentratorPath(
            concentrator=row["concentrator"], node_address=row["node_address"]
        )
    elif row["host"] is not None:
        path = PointToPointPath(host=row["host"], port=row["port"])
    service_point = None
    if row["service_point"] is not None:
        service_point = CurrentServicePoint(
            name=row["service_point"],
            address=row["service_point_address"],
            city=row["service_point_city"],
            comuna=row["comuna"],
            linked_since=row["linked_since"],
        )
    flags = _meter_flags(row)
    return MeterDetail(
        serial_number=row["serial_number"],
        board_serial=row["board_serial"],
        mac_address=row["mac_address"],
        firmware_id=row["firmware_id"],
        hardware_id=row["hardware_id"],
        service_kind=row["service_kind"],
        tag=row["tag"],
        meter_type=row["meter_type"],
        phase=row["phase"],
        communication_path=path,
        lifecycle=flags,
        lifecycle_state=meter_state(**flags.model_dump()),
        service_point=service_point,
        has_keys=MeterKeys(
            encryption_key=row["has_encryption_key"],
            authentication_key=row["has_authentication_key"],
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@router.get("/meters/{serial}/links", response_model=MeterLinks, responses=_NOT_FOUND)
def meter_links(engine: EngineDep, serial: NaturalKey) -> MeterLinks:
    with engine.connect() as conn:
        rows = meter_links_of(conn, serial)
    if rows is None:
        raise NotFoundError("meter", serial)
    return MeterLinks(
        meter=serial,
        items=[
            MeterLinkOut(
                service_point=row["service_point"],
                comuna=row["comuna"],
                valid_from=row["valid_from"],
                valid_to=row["valid_to"],
                current=row["valid_to"] is None,
            )
            for row in rows
        ],
    )


@router.get("/concentrators", response_model=PageOf[ConcentratorSummary])
def concentrators_list(
    engine: EngineDep, filters: ConcentratorFilterDep, page: PageDep
) -> dict[str, object]:
    with engine.connect() as conn:
        listing = list_concentrators(conn, filters, page)
    items = [ConcentratorSummary.model_validate(dict(row)) for row in listing.rows]
    return _page_of(items, listing.total, page)


@router.get("/concentrators/{name}", response_model=ConcentratorDetail, responses=_NOT_FOUND)
def concentrator_detail(engine: EngineDep, name: NaturalKey) -> ConcentratorDetail:
    with engine.connect() as conn:
        row = get_concentrator(conn, name)
        if row is None:
            raise NotFoundError("concentrator", name)
        counts = concentrator_meter_counts(conn, row["id"])
    summary = ConcentratorSummary.model_validate(dict(row))
    return ConcentratorDetail(
        **summary.model_dump(),
        address=row["address"],
        location=_location(row),
        windows_time_zone_id=row["windows_time_zone_id"],
        network=NetworkAddress(host=row["host"], port=row["port"]),
        spontaneous_profile=row["spontaneous_profile"],
        procedure_profile=row["procedure_profile"],
        module_serial=row["module_serial"],
        sim_serial=row["sim_serial"],
        ethernet_name=row["ethernet_name"],
        adlvc=row["adlvc"],
        has_credentials=ConcentratorCredentials(
            ppp_username=row["ppp_username"],
            maa_username=row["maa_username"],
            has_ppp_password=row["has_ppp_password"],
            has_maa_password=row["has_maa_password"],
            has_k2_password=row["has_k2_password"],
        ),
        meters=MeterCounts.model_validate(dict(counts)),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@router.get("/service-points", response_model=PageOf[ServicePointSummary])
def service_points_list(
    engine: EngineDep, filters: ServicePointFilterDep, page: PageDep
) -> dict[str, object]:
    with engine.connect() as conn:
        listing = list_service_points(conn, filters, page)
    items = [ServicePointSummary.model_validate(dict(row)) for row in listing.rows]
    return _page_of(items, listing.total, page)


@router.get("/service-points/{name}", response_model=ServicePointDetail, responses=_NOT_FOUND)
def service_point_detail(engine: EngineDep, name: NaturalKey) -> ServicePointDetail:
    with engine.connect() as conn:
        row = get_service_point(conn, name)
    if row is None:
        raise NotFoundError("service point", name)
    summary = ServicePointSummary.model_validate(dict(row))
    return ServicePointDetail(
        **summary.model_dump(),
        location=_location(row),
        contracted_capacity_kw=row["contracted_capacity_kw"],
        meter_since=row["meter_since"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@router.get("/transformers", response_model=PageOf[TransformerSummary])
def transformers_list(
    engine: EngineDep,
    page: PageDep,
    substation: TextFilter = None,
) -> dict[str, object]:
    with engine.connect() as conn:
        listing = list_transformers(conn, substation, page)
    items = [TransformerSummary.model_validate(dict(row)) for row in listing.rows]
    return _page_of(items, listing.total, page)


@router.get("/transformers/{code}", response_model=TransformerDetail, responses=_NOT_FOUND)
def transformer_detail(engine: EngineDep, code: NaturalKey) -> TransformerDetail:
    with engine.connect() as conn:
        found = get_transformer(conn, code)
    if found is None:
        raise NotFoundError("transformer", code)
    row, names = found
    return TransformerDetail(
        code=row["code"],
        description=row["description"],
        substation=row["substation"],
        concentrators=names,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
