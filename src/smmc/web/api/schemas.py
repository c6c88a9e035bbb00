"""Response models of the asset API. They list every field a client may see, so a sealed
secret can only reach a response by someone adding it here: credentials appear as
`has_*` booleans only."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from smmc.domain.assets import LifecycleState, MeterType, Phase, SupplyStatus

Item = TypeVar("Item", bound=BaseModel)


class Health(BaseModel):
    status: Literal["ok"]
    database: str


class PageOf(BaseModel, Generic[Item]):
    items: list[Item]
    total: int = Field(description="rows matching the filters, across all pages")
    limit: int
    offset: int


class ViaConcentratorPath(BaseModel):
    kind: Literal["concentrator"] = "concentrator"
    concentrator: str
    node_address: int | None


class PointToPointPath(BaseModel):
    kind: Literal["point_to_point"] = "point_to_point"
    host: str
    port: int | None


class MeterSummary(BaseModel):
    serial_number: str
    tag: str | None
    meter_type: MeterType
    phase: Phase | None
    firmware_id: str | None
    concentrator: str | None
    service_point: str | None = Field(description="the service point of the open link")
    comuna: str | None = Field(description="comuna of the current service point")
    point_to_point: bool
    commissioned: bool
    reachable: bool
    in_dc_table: bool
    lifecycle_state: LifecycleState


class LifecycleFlags(BaseModel):
    linked: bool = Field(description="has a communication path (concentrator or own address)")
    commissioned: bool
    reachable: bool
    in_dc_table: bool


class CurrentServicePoint(BaseModel):
    name: str
    address: str | None
    city: str | None
    comuna: str | None
    linked_since: datetime


class MeterKeys(BaseModel):
    encryption_key: bool
    authentication_key: bool


class MeterDetail(BaseModel):
    serial_number: str
    board_serial: str | None
    mac_address: str | None
    firmware_id: str | None
    hardware_id: str | None
    service_kind: str | None
    tag: str | None
    meter_type: MeterType
    phase: Phase | None
    communication_path: ViaConcentratorPath | PointToPointPath | None = Field(discriminator="kind")
    lifecycle: LifecycleFlags
    lifecycle_state: LifecycleState
    service_point: CurrentServicePoint | None
    has_keys: MeterKeys
    created_at: datetime
    updated_at: datetime


class MeterLinkOut(BaseModel):
    service_point: str
    comuna: str | None
    valid_from: datetime
    valid_to: datetime | None
    current: bool


class MeterLinks(BaseModel):
    meter: str
    items: list[MeterLinkOut] = Field(description="newest first")


class ConcentratorSummary(BaseModel):
    name: str
    serial_number: str | None
    description: str | None
    city: str | None
    comuna: str | None
    tag: str | None
    transformer: str | None
    substation: str | None
    time_zone: str
    reachable: bool


class Location(BaseModel):
    latitude: float
    longitude: float
    altitude: float | None


class NetworkAddress(BaseModel):
    host: str | None
    port: int | None


class MeterCounts(BaseModel):
    total: int
    commissioned: int
    reachable: int


class ConcentratorCredentials(BaseModel):
    ppp_username: str | None
    maa_username: str | None
    has_ppp_password: bool
    has_maa_password: bool
    has_k2_password: bool


class ConcentratorDetail(ConcentratorSummary):
    address: str | None
    location: Location | None
    windows_time_zone_id: str | None
    network: NetworkAddress
    spontaneous_profile: str | None
    procedure_profile: str | None
    module_serial: str | None
    sim_serial: str | None
    ethernet_name: str | None
    adlvc: str | None
    has_credentials: ConcentratorCredentials
    meters: MeterCounts
    created_at: datetime
    updated_at: datetime


class ServicePointSummary(BaseModel):
    name: str
    address: str | None
    city: str | None
    comuna: str | None
    tag: str | None
    is_balance: bool
    net_billing: bool
    tariff: str | None
    supply_status: SupplyStatus
    current_meter: str | None


class ServicePointDetail(ServicePointSummary):
    location: Location | None
    contracted_capacity_kw: float | None
    meter_since: datetime | None
    created_at: datetime
    updated_at: datetime


class TransformerSummary(BaseModel):
    code: str
    description: str | None
    substation: str
    concentrator_count: int


class TransformerDetail(BaseModel):
    code: str
    description: str | None
    substation: str
    concentrators: list[str]
    created_at: datetime
    updated_at: datetime
