"""The assets SMMC manages: the grid side (substation, transformer), the field devices
(concentrator, meter) and the commercial side (service point, the seed's POD).

These are validated records, free of storage concerns: provisioning builds them from the
utility's CSV templates, the store persists them, the API and the engine read them back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Secret:
    """A credential in clear, held only in memory: its repr and str never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class MeterType(enum.StrEnum):
    MONOPHASE = "monophase"
    POLYPHASE = "polyphase"


class Phase(enum.StrEnum):
    R = "R"
    S = "S"
    T = "T"


class SupplyStatus(enum.StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    UNKNOWN = "unknown"


class LifecycleState(enum.StrEnum):
    """The preconditions of DOMAIN.md §2, in the order a meter acquires them."""

    REGISTERED = "registered"
    LINKED = "linked"
    COMMISSIONED = "commissioned"
    REACHABLE = "reachable"
    IN_DC_TABLE = "in_dc_table"


@dataclass(frozen=True, slots=True)
class Substation:
    name: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Transformer:
    code: str
    substation_name: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class GeoPoint:
    latitude: float
    longitude: float
    altitude: float | None = None


@dataclass(frozen=True, slots=True)
class ConcentratorSite:
    """Template 4: where a concentrator stands."""

    name: str
    description: str | None
    address: str | None
    city: str | None
    comuna: str | None
    location: GeoPoint
    time_zone: str
    windows_time_zone_id: str | None


@dataclass(frozen=True, slots=True)
class ConcentratorComposition:
    """Template 7: what a concentrator is made of and which transformer it serves."""

    name: str
    serial_number: str
    spontaneous_profile: str | None
    procedure_profile: str | None
    substation_name: str
    transformer_code: str
    module_serial: str | None
    sim_serial: str | None
    ethernet_name: str | None


@dataclass(frozen=True, slots=True)
class ConcentratorAttributes:
    """Template 6: identity and credentials of a concentrator, keyed by its serial number."""

    serial_number: str
    adlvc: str | None
    ppp_username: str | None
    ppp_password: Secret | None
    maa_username: str | None
    maa_password: Secret | None
    k2_password: Secret | None
    tag: str | None
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class ServicePoint:
    """Template 1: the seed's POD, the supply point a meter is linked to."""

    name: str
    address: str | None
    city: str | None
    comuna: str | None
    location: GeoPoint
    tag: str | None
    is_balance: bool
    net_billing: bool = False
    tariff: str | None = None
    contracted_capacity_kw: float | None = None
    supply_status: SupplyStatus = SupplyStatus.UNKNOWN
    transformer_code: str | None = None
    """The transformer feeding the POD (template 5's code); ``None``: its concentrator's."""


@dataclass(frozen=True, slots=True)
class ViaConcentrator:
    concentrator_name: str
    node_address: int | None = None


@dataclass(frozen=True, slots=True)
class PointToPoint:
    host: str
    port: int


CommunicationPath = ViaConcentrator | PointToPoint


@dataclass(frozen=True, slots=True)
class Meter:
    """Template 2: a meter and its DLMS keys (global encryption = primary, authentication =
    secondary)."""

    serial_number: str
    board_serial: str | None
    mac_address: str | None
    firmware_id: str | None
    hardware_id: str | None
    service_kind: str | None
    tag: str | None
    encryption_key: Secret | None
    authentication_key: Secret | None
    meter_type: MeterType = MeterType.MONOPHASE
    phase: Phase | None = None
    path: CommunicationPath | None = None


@dataclass(frozen=True, slots=True)
class MeterLink:
    """Template 3: a meter installed at a service point from `valid_from` on."""

    meter_serial: str
    service_point_name: str
    valid_from: datetime | None = None


@dataclass(frozen=True, slots=True)
class MeterStatus:
    """What the field tells us about a meter; drives its lifecycle state."""

    linked: bool = False
    commissioned: bool = False
    reachable: bool = False
    in_dc_table: bool = False


def lifecycle_state(status: MeterStatus) -> LifecycleState:
    """The furthest precondition reached without a gap: a meter that is reachable but not
    commissioned is, for work-order purposes, only linked."""
    reached = LifecycleState.REGISTERED
    for flag, state in (
        (status.linked, LifecycleState.LINKED),
        (status.commissioned, LifecycleState.COMMISSIONED),
        (status.reachable, LifecycleState.REACHABLE),
        (status.in_dc_table, LifecycleState.IN_DC_TABLE),
    ):
        if not flag:
            break
        reached = state
    return reached
