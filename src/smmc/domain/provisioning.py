"""The utility's seven provisioning templates (DOMAIN.md §7) and the validation of their rows.

Pure code: it sees a header and rows of text, never a file or a database. Checks that need
the database (does the referenced concentrator exist?) happen in `smmc.store.provisioning`.
Column names are the utility's own (Spanish-era, lower-case) vocabulary: they are the
contract with its export tools, so they are kept verbatim.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from smmc.domain.assets import (
    ConcentratorAttributes,
    ConcentratorComposition,
    ConcentratorSite,
    GeoPoint,
    Meter,
    MeterLink,
    MeterType,
    Phase,
    PointToPoint,
    Secret,
    ServicePoint,
    SupplyStatus,
    Transformer,
    ViaConcentrator,
)
from smmc.domain.geo import ServiceArea, check_coordinates, parse_decimal
from smmc.domain.time import (
    DEFAULT_TIME_ZONE,
    UnknownTimeZone,
    to_utc,
    windows_time_zone_to_iana,
)


class TemplateKind(enum.StrEnum):
    SERVICE_POINT = "service_point"
    METER = "meter"
    METER_LINK = "meter_link"
    CONCENTRATOR_SITE = "concentrator_site"
    TRANSFORMER = "transformer"
    CONCENTRATOR_ATTRIBUTES = "concentrator_attributes"
    CONCENTRATOR_COMPOSITION = "concentrator_composition"


@dataclass(frozen=True, slots=True)
class Template:
    kind: TemplateKind
    number: int
    """The seed's file number: provisioningTemplate (n).csv."""
    required: tuple[str, ...]
    optional: tuple[str, ...]
    key: str
    """The natural key column: re-importing a row with the same key updates the record."""
    secrets: frozenset[str] = frozenset()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


TEMPLATES: tuple[Template, ...] = (
    Template(
        TemplateKind.SERVICE_POINT,
        1,
        ("name", "address", "city", "latitude", "longitude", "altitude", "tag", "isbalance"),
        (
            "comuna",
            "netbilling",
            "tariff",
            "contractedcapacity",
            "supplystatus",
            "transformer",
        ),
        key="name",
    ),
    Template(
        TemplateKind.METER,
        2,
        (
            "serialnumber",
            "serialnumber_board",
            "macaddress",
            "firmwareid",
            "hardwareid",
            "servicekind",
            "tag",
            "primarykey",
            "secondarykey",
        ),
        ("metertype", "phase", "concentrator", "nodeaddress", "ipaddress", "port"),
        key="serialnumber",
        secrets=frozenset({"primarykey", "secondarykey"}),
    ),
    Template(
        TemplateKind.METER_LINK,
        3,
        ("serialnumber", "podname"),
        ("validfrom",),
        key="serialnumber",
    ),
    Template(
        TemplateKind.CONCENTRATOR_SITE,
        4,
        (
            "name",
            "description",
            "address",
            "city",
            "latitude",
            "longitude",
            "altitude",
            "windowstimezoneid",
        ),
        ("comuna",),
        key="name",
    ),
    Template(
        TemplateKind.TRANSFORMER,
        5,
        ("code", "substationname", "description"),
        (),
        key="code",
    ),
    Template(
        TemplateKind.CONCENTRATOR_ATTRIBUTES,
        6,
        (
            "serialnumber",
            "adlvc",
            "ppp_username",
            "ppp_password",
            "maa_username",
            "maa_password",
            "k2_password",
            "tag",
        ),
        ("ipaddress", "port"),
        key="serialnumber",
        secrets=frozenset({"ppp_password", "maa_password", "k2_password"}),
    ),
    Template(
        TemplateKind.CONCENTRATOR_COMPOSITION,
        7,
        (
            "concentratorname",
            "concentratorserialnumber",
            "spontaneousprofile",
            "procedureprofile",
            "substationname",
            "transformername",
            "moduleserialnumber",
            "simserialnumber",
            "ethernetname",
        ),
        (),
        key="concentratorname",
    ),
)

TEMPLATE_BY_KIND: Mapping[TemplateKind, Template] = {t.kind: t for t in TEMPLATES}

IMPORT_ORDER: tuple[TemplateKind, ...] = (
    TemplateKind.TRANSFORMER,
    TemplateKind.CONCENTRATOR_SITE,
    TemplateKind.CONCENTRATOR_COMPOSITION,
    TemplateKind.CONCENTRATOR_ATTRIBUTES,
    TemplateKind.SERVICE_POINT,
    TemplateKind.METER,
    TemplateKind.METER_LINK,
)
"""Referenced records first, so that one `provision import` of all seven files just works."""

DEFAULT_METER_PORT = 4059
"""The IANA port of DLMS/COSEM over TCP (IEC 62056-47)."""


class UnknownTemplate(ValueError):
    """The header matches none of the seven templates."""


def normalise_column(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def detect_template(header: list[str]) -> Template:
    columns = {normalise_column(c) for c in header}
    matches = [t for t in TEMPLATES if set(t.required) <= columns]
    if matches:
        return max(matches, key=lambda t: len(t.required))
    closest = max(TEMPLATES, key=lambda t: len(set(t.required) & columns))
    missing = [c for c in closest.required if c not in columns]
    raise UnknownTemplate(
        "the header matches no provisioning template; closest is template "
        f"{closest.number} ({closest.kind}), which also needs: {', '.join(missing)}"
    )


def sniff_delimiter(header_line: str) -> str:
    """The seeds' files use `;`, `,` or tabs; the header row tells which."""
    counts = {sep: header_line.count(sep) for sep in (";", "\t", ",")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


Level = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class RowIssue:
    row: int
    column: str | None
    value: str | None
    reason: str
    level: Level = "error"


Record = (
    ServicePoint
    | Meter
    | MeterLink
    | ConcentratorSite
    | Transformer
    | ConcentratorAttributes
    | ConcentratorComposition
)


@dataclass(frozen=True, slots=True)
class RowResult:
    row: int
    record: Record | None
    issues: tuple[RowIssue, ...]

    @property
    def accepted(self) -> bool:
        return self.record is not None


REDACTED = "********"
_TRUE = frozenset({"true", "t", "1", "yes", "y", "si", "sí", "s", "verdadero", "x"})
_FALSE = frozenset({"false", "f", "0", "no", "n", "falso", ""})
_DIGITS = re.compile(r"[0-9]{1,9}")
"""Bounded, so int() never meets Python's 4300-digit conversion guard."""
_HEX_KEY = re.compile(r"[0-9A-Fa-f]{32}")
_MAC = re.compile(r"[0-9A-Fa-f]{12}")
_IDENTIFIER = re.compile(r"\w[\w.\-/ ]*")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*"
)
_METER_TYPES = {
    "monophase": MeterType.MONOPHASE,
    "mono": MeterType.MONOPHASE,
    "monofasico": MeterType.MONOPHASE,
    "monofásico": MeterType.MONOPHASE,
    "1": MeterType.MONOPHASE,
    "polyphase": MeterType.POLYPHASE,
    "poly": MeterType.POLYPHASE,
    "polifasico": MeterType.POLYPHASE,
    "polifásico": MeterType.POLYPHASE,
    "trifasico": MeterType.POLYPHASE,
    "trifásico": MeterType.POLYPHASE,
    "3": MeterType.POLYPHASE,
}


class _Row:
    """Reads typed fields from one row, collecting every problem instead of stopping at the
    first, so the error report tells the operator all that is wrong with a row at once."""

    def __init__(self, template: Template, row: int, values: Mapping[str, str]) -> None:
        self.template = template
        self.row = row
        self.values = values
        self.issues: list[RowIssue] = []

    @property
    def failed(self) -> bool:
        return any(issue.level == "error" for issue in self.issues)

    def _raw(self, column: str) -> str:
        return (self.values.get(column) or "").strip()

    def error(self, column: str | None, reason: str, *, level: Level = "error") -> None:
        value: str | None = None
        if column is not None:
            value = REDACTED if column in self.template.secrets else self._raw(column)
        self.issues.append(RowIssue(self.row, column, value, reason, level))

    def text(self, column: str, *, required: bool = False, max_length: int = 100) -> str | None:
        raw = self._raw(column)
        if not raw:
            if required:
                self.error(column, "is required")
            return None
        if len(raw) > max_length:
            self.error(column, f"is longer than {max_length} characters")
            return None
        return raw

    def identifier(self, column: str, *, max_length: int = 64) -> str | None:
        raw = self.text(column, required=True, max_length=max_length)
        if raw is not None and not _IDENTIFIER.fullmatch(raw):
            self.error(column, "must be letters, digits, spaces and . _ - / only")
            return None
        return raw

    def boolean(self, column: str, *, default: bool = False) -> bool:
        raw = self._raw(column).lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return default if raw == "" else False
        self.error(column, "must be TRUE or FALSE")
        return default

    def number(
        self,
        column: str,
        *,
        required: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float | None:
        raw = self._raw(column)
        if not raw:
            if required:
                self.error(column, "is required")
            return None
        try:
            value = parse_decimal(raw)
        except ValueError:
            self.error(column, "must be a decimal number (a decimal comma is fine)")
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.error(column, f"must be between {minimum} and {maximum}")
            return None
        return value

    def integer(self, column: str, *, minimum: int, maximum: int) -> int | None:
        raw = self._raw(column)
        if not raw:
            return None
        # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses.
        if not _DIGITS.fullmatch(raw) or not minimum <= int(raw) <= maximum:
            self.error(column, f"must be a whole number from {minimum} to {maximum}")
            return None
        return int(raw)

    def location(self, area: ServiceArea | None) -> GeoPoint | None:
        latitude = self.number("latitude", required=True, minimum=-90, maximum=90)
        longitude = self.number("longitude", required=True, minimum=-180, maximum=180)
        altitude = self.number("altitude", minimum=-500, maximum=9000)
        if latitude is None or longitude is None:
            return None
        if area is not None:
            problem = check_coordinates(latitude, longitude, area)
            if problem is not None:
                hint = f" ({problem.hint})" if problem.hint else ""
                self.error("latitude", f"{problem.reason}{hint}")
                return None
        return GeoPoint(latitude, longitude, altitude)

    def hex_key(self, column: str) -> Secret | None:
        raw = self._raw(column)
        if not raw:
            return None
        if not _HEX_KEY.fullmatch(raw):
            self.error(column, "must be 32 hexadecimal digits (a 16-byte key)")
            return None
        return Secret(raw.upper())

    def password(self, column: str) -> Secret | None:
        raw = self._raw(column)
        if not raw:
            return None
        if not 4 <= len(raw) <= 128 or any(c.isspace() or not c.isprintable() for c in raw):
            self.error(column, "must be 4 to 128 printable characters without spaces")
            return None
        return Secret(raw)

    def network_address(self, default_port: int | None) -> tuple[str | None, int | None]:
        host = self.text("ipaddress", max_length=255)
        port = self.integer("port", minimum=1, maximum=65535)
        if host is None:
            if port is not None:
                self.error("port", "is given without ipaddress")
            return None, None
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            # An all-digit last label is a mistyped IPv4 address (256.1.1.1), not a name.
            if not _HOSTNAME.fullmatch(host) or host.rsplit(".", 1)[-1].isdigit():
                self.error("ipaddress", "must be an IPv4/IPv6 address or a host name")
                return None, None
        return host, port if port is not None else default_port


def _service_point(row: _Row, area: ServiceArea | None) -> ServicePoint | None:
    name = row.identifier("name", max_length=100)
    location = row.location(area)
    capacity = row.number("contractedcapacity", minimum=0, maximum=100_000)
    raw_status = row.text("supplystatus") or SupplyStatus.UNKNOWN.value
    try:
        status = SupplyStatus(raw_status.lower())
    except ValueError:
        row.error("supplystatus", "must be connected, disconnected or unknown")
        status = SupplyStatus.UNKNOWN
    city = row.text("city")
    transformer = None
    if row.text("transformer") is not None:
        transformer = row.identifier("transformer", max_length=100)
    record = ServicePoint(
        name=name or "",
        address=row.text("address", max_length=255),
        city=city,
        comuna=row.text("comuna") or city,
        location=location or GeoPoint(0.0, 0.0),
        tag=row.text("tag"),
        is_balance=row.boolean("isbalance"),
        net_billing=row.boolean("netbilling"),
        tariff=row.text("tariff", max_length=32),
        contracted_capacity_kw=capacity,
        supply_status=status,
        transformer_code=transformer,
    )
    return None if row.failed else record


def _meter(row: _Row, _area: ServiceArea | None) -> Meter | None:
    serial = row.identifier("serialnumber")
    mac = row.text("macaddress", max_length=32)
    if mac is not None:
        compact = re.sub(r"[:\-.]", "", mac)
        if not _MAC.fullmatch(compact):
            row.error("macaddress", "must be 12 hexadecimal digits")
        mac = compact.upper()
    meter_type = MeterType.MONOPHASE
    raw_type = row.text("metertype")
    if raw_type is not None:
        if raw_type.lower() not in _METER_TYPES:
            row.error("metertype", "must be monophase or polyphase")
        else:
            meter_type = _METER_TYPES[raw_type.lower()]
    phase: Phase | None = None
    raw_phase = row.text("phase")
    if raw_phase is not None:
        try:
            phase = Phase(raw_phase.upper())
        except ValueError:
            row.error("phase", "must be R, S or T")
    concentrator = row.text("concentrator")
    node_address = row.integer("nodeaddress", minimum=0, maximum=65535)
    host, port = row.network_address(DEFAULT_METER_PORT)
    path: ViaConcentrator | PointToPoint | None = None
    if concentrator is not None and host is not None:
        row.error("ipaddress", "a meter is either behind a concentrator or point-to-point")
    elif concentrator is not None:
        path = ViaConcentrator(concentrator, node_address)
    elif host is not None and port is not None:
        path = PointToPoint(host, port)
    elif node_address is not None:
        row.error("nodeaddress", "is given without concentrator")
    record = Meter(
        serial_number=serial or "",
        board_serial=row.text("serialnumber_board", max_length=64),
        mac_address=mac,
        firmware_id=row.text("firmwareid", max_length=64),
        hardware_id=row.text("hardwareid", max_length=64),
        service_kind=row.text("servicekind", max_length=32),
        tag=row.text("tag"),
        encryption_key=row.hex_key("primarykey"),
        authentication_key=row.hex_key("secondarykey"),
        meter_type=meter_type,
        phase=phase,
        path=path,
    )
    return None if row.failed else record


def _meter_link(row: _Row, _area: ServiceArea | None) -> MeterLink | None:
    serial = row.identifier("serialnumber")
    pod = row.identifier("podname", max_length=100)
    valid_from: datetime | None = None
    raw = row.text("validfrom")
    if raw is not None:
        try:
            parsed = datetime.fromisoformat(raw)
            valid_from = (
                parsed.astimezone(UTC)
                if parsed.tzinfo
                else to_utc(parsed, DEFAULT_TIME_ZONE, strict=False)
            )
        except ValueError:
            row.error("validfrom", "must be an ISO date or date-time, e.g. 2025-03-01T10:00")
        except OverflowError:
            # Year 1 or 9999 near midnight has no UTC equivalent inside datetime's range.
            row.error("validfrom", "is out of the supported date range")
    record = MeterLink(serial or "", pod or "", valid_from)
    return None if row.failed else record


def _concentrator_site(row: _Row, area: ServiceArea | None) -> ConcentratorSite | None:
    name = row.identifier("name", max_length=100)
    location = row.location(area)
    windows_id = row.text("windowstimezoneid")
    time_zone = DEFAULT_TIME_ZONE
    if windows_id is not None:
        try:
            time_zone = windows_time_zone_to_iana(windows_id)
        except UnknownTimeZone as exc:
            row.error("windowstimezoneid", str(exc))
    city = row.text("city")
    record = ConcentratorSite(
        name=name or "",
        description=row.text("description", max_length=255),
        address=row.text("address", max_length=255),
        city=city,
        comuna=row.text("comuna") or city,
        location=location or GeoPoint(0.0, 0.0),
        time_zone=time_zone,
        windows_time_zone_id=windows_id,
    )
    return None if row.failed else record


def _transformer(row: _Row, _area: ServiceArea | None) -> Transformer | None:
    record = Transformer(
        code=row.identifier("code", max_length=100) or "",
        substation_name=row.identifier("substationname", max_length=100) or "",
        description=row.text("description", max_length=255),
    )
    return None if row.failed else record


def _concentrator_attributes(row: _Row, _area: ServiceArea | None) -> ConcentratorAttributes | None:
    adlvc = row.text("adlvc", max_length=64)
    if adlvc is not None and re.fullmatch(r"\d+([.,]\d+)?[Ee]\+\d+", adlvc):
        row.error(
            "adlvc",
            "looks like a number a spreadsheet turned into scientific notation; "
            "digits may be lost: export the column as text",
            level="warning",
        )
    k2 = row.hex_key("k2_password")
    host, port = row.network_address(None)
    record = ConcentratorAttributes(
        serial_number=row.identifier("serialnumber") or "",
        adlvc=adlvc,
        ppp_username=row.text("ppp_username"),
        ppp_password=row.password("ppp_password"),
        maa_username=row.text("maa_username"),
        maa_password=row.password("maa_password"),
        k2_password=k2,
        tag=row.text("tag"),
        host=host,
        port=port,
    )
    return None if row.failed else record


def _concentrator_composition(
    row: _Row, _area: ServiceArea | None
) -> ConcentratorComposition | None:
    record = ConcentratorComposition(
        name=row.identifier("concentratorname", max_length=100) or "",
        serial_number=row.identifier("concentratorserialnumber") or "",
        spontaneous_profile=row.text("spontaneousprofile"),
        procedure_profile=row.text("procedureprofile"),
        substation_name=row.identifier("substationname", max_length=100) or "",
        transformer_code=row.identifier("transformername", max_length=100) or "",
        module_serial=row.text("moduleserialnumber", max_length=64),
        sim_serial=row.text("simserialnumber", max_length=64),
        ethernet_name=row.text("ethernetname", max_length=64),
    )
    return None if row.failed else record


_VALIDATORS: Mapping[TemplateKind, Callable[[_Row, ServiceArea | None], Record | None]] = {
    TemplateKind.SERVICE_POINT: _service_point,
    TemplateKind.METER: _meter,
    TemplateKind.METER_LINK: _meter_link,
    TemplateKind.CONCENTRATOR_SITE: _concentrator_site,
    TemplateKind.TRANSFORMER: _transformer,
    TemplateKind.CONCENTRATOR_ATTRIBUTES: _concentrator_attributes,
    TemplateKind.CONCENTRATOR_COMPOSITION: _concentrator_composition,
}


def validate_row(
    template: Template, row: int, values: Mapping[str, str], area: ServiceArea | None
) -> RowResult:
    """Validate one row (its values keyed by normalised column name). `row` is the line's
    number in the file as a spreadsheet shows it (the header is row 1)."""
    reader = _Row(template, row, values)
    record = _VALIDATORS[template.kind](reader, area)
    return RowResult(row, record, tuple(reader.issues))
