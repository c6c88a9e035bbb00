"""The simulated fleet: a YAML description and the compact plan built from it.

The YAML says how many concentrators and meters there are, where they stand, which shares
have net billing, polyphase supply or a point-to-point link, the fault and anomaly rates,
clock drift, time mode and seeds. ``Fleet.build()`` turns it into a ``FleetPlan``: per-meter
facts live in flat arrays (about 100 bytes per meter) and a ``MeterSpec`` is materialised
only when asked for, so 100,000 meters build in seconds and fit in a few tens of MB.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import random
import types
import typing
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from smmc.domain.time import UnknownTimeZone, zone
from smmc.sim.anomalies import Anomaly, AnomalyKind, AnomalyRates, assign_anomalies
from smmc.sim.clock import SimClock, TimeMode
from smmc.sim.consumption import HOUSEHOLD_TYPES, mix
from smmc.sim.meter_model import MeterModel

__all__ = [
    "ClockDrift",
    "Comuna",
    "ConcentratorSpec",
    "ConcentratorsSection",
    "FaultRates",
    "Fleet",
    "FleetError",
    "FleetPlan",
    "MeterSpec",
    "PointToPointSection",
    "Seeds",
    "Shares",
    "TimeSection",
    "concentrator_name",
    "concentrator_serial",
    "default_fleet",
    "load_fleet",
    "meter_serial",
    "pod_name",
]


class FleetError(ValueError):
    """An invalid fleet description; the message starts with the dotted field path."""

    def __init__(self, field_path: str, reason: str) -> None:
        super().__init__(f"{field_path}: {reason}")
        self.field = field_path


def meter_serial(index: int) -> str:
    return f"UAAEEDN{17700000000 + index:011d}"


def concentrator_name(index: int) -> str:
    return f"TD-{10000 + index}"


def concentrator_serial(index: int) -> str:
    return f"21LVM50A{10000000 + index:08d}"


def pod_name(index: int) -> str:
    return f"POD{3000000 + index}"


@dataclass(frozen=True, slots=True)
class Comuna:
    name: str
    latitude: float
    longitude: float


# Comunas of the Santiago metropolitan area with an approximate centre.
SANTIAGO_COMUNAS: tuple[Comuna, ...] = (
    Comuna("Santiago", -33.4378, -70.6505),
    Comuna("Providencia", -33.4314, -70.6093),
    Comuna("Las Condes", -33.4087, -70.5670),
    Comuna("Ñuñoa", -33.4569, -70.5979),
    Comuna("Maipú", -33.5110, -70.7580),
    Comuna("La Florida", -33.5227, -70.5980),
    Comuna("Puente Alto", -33.6117, -70.5758),
    Comuna("Recoleta", -33.4055, -70.6397),
    Comuna("Independencia", -33.4160, -70.6650),
    Comuna("San Miguel", -33.4970, -70.6510),
    Comuna("Estación Central", -33.4590, -70.6990),
    Comuna("Peñalolén", -33.4860, -70.5430),
)


@dataclass(frozen=True, slots=True)
class ConcentratorsSection:
    count: int = 5
    meters_per_concentrator: int = 20
    host: str = "127.0.0.1"
    first_port: int = 20000
    windows_time_zone: str = "Pacific SA Standard Time"
    time_zone: str = "America/Santiago"


@dataclass(frozen=True, slots=True)
class PointToPointSection:
    """Meters reached directly over TCP; ``share`` (of all meters), when set, wins over
    ``count``."""

    count: int = 5
    first_host: str = "127.0.1.1"
    port: int = 4059
    share: float | None = None

    def resolved_count(self, concentrator_meters: int) -> int:
        """Number of point-to-point meters next to ``concentrator_meters`` others."""
        if self.share is None:
            return self.count
        return round(self.share * concentrator_meters / (1.0 - self.share))


@dataclass(frozen=True, slots=True)
class Shares:
    """Shares (0..1) of service points with net billing (and PV) and of polyphase meters."""

    net_billing: float = 0.1
    polyphase: float = 0.15


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Shares (0..1) of meters or concentrators with a field fault."""

    node_unreachable: float = 0.01
    repeater_failure: float = 0.005
    phase_missing: float = 0.0
    wrong_key: float = 0.002
    concentrator_down: float = 0.0


@dataclass(frozen=True, slots=True)
class ClockDrift:
    """Normal distribution of meter clock drift (ppm; 1 ppm = 86.4 ms/day)."""

    mean_ppm: float = 0.0
    sd_ppm: float = 5.0
    tolerance_s: float = 60.0


@dataclass(frozen=True, slots=True)
class TimeSection:
    """``start`` (UTC) fixes the simulated "now" at start-up; None means the wall clock."""

    mode: TimeMode = TimeMode.FAST_FORWARD
    factor: float = 1.0
    history_days: int = 7
    start: datetime | None = None
    anomaly_window_days: int = 7


@dataclass(frozen=True, slots=True)
class Seeds:
    layout: int = 1
    consumption: int = 2
    faults: int = 3
    anomalies: int = 4
    keys: int = 5


def _default_mix() -> dict[str, float]:
    return {"small_apartment": 0.4, "family_house": 0.45, "commercial": 0.15}


@dataclass(frozen=True)
class Fleet:
    """The whole fleet description (the YAML file, one section per field)."""

    name: str = "default"
    concentrators: ConcentratorsSection = field(default_factory=ConcentratorsSection)
    point_to_point: PointToPointSection = field(default_factory=PointToPointSection)
    comunas: tuple[Comuna, ...] = SANTIAGO_COMUNAS
    shares: Shares = field(default_factory=Shares)
    household_mix: dict[str, float] = field(default_factory=_default_mix)
    faults: FaultRates = field(default_factory=FaultRates)
    clock_drift: ClockDrift = field(default_factory=ClockDrift)
    anomalies: AnomalyRates = field(default_factory=AnomalyRates)
    time: TimeSection = field(default_factory=TimeSection)
    seeds: Seeds = field(default_factory=Seeds)

    def __post_init__(self) -> None:
        _validate(self)

    def sized(self, concentrators: int, meters_per_concentrator: int, point_to_point: int) -> Fleet:
        """The same fleet with other counts (benchmarks and tests scale the default)."""
        return dataclasses.replace(
            self,
            concentrators=dataclasses.replace(
                self.concentrators,
                count=concentrators,
                meters_per_concentrator=meters_per_concentrator,
            ),
            point_to_point=dataclasses.replace(
                self.point_to_point, count=point_to_point, share=None
            ),
        )

    def without_faults(self) -> Fleet:
        """The same fleet with no anomalies and no field faults: for benchmarks and tests
        that measure or check the head-end, not the fleet's flaws."""
        return dataclasses.replace(
            self,
            anomalies=AnomalyRates(**{f.name: 0.0 for f in dataclasses.fields(AnomalyRates)}),
            faults=FaultRates(**{f.name: 0.0 for f in dataclasses.fields(FaultRates)}),
        )

    @property
    def meter_count(self) -> int:
        section = self.concentrators
        behind = section.count * section.meters_per_concentrator
        return behind + self.point_to_point.resolved_count(behind)

    @classmethod
    def from_yaml(cls, text: str, source: str = "fleet") -> Fleet:
        """Parse and validate a YAML fleet; errors name the field (``FleetError``)."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FleetError(source, f"not valid YAML: {exc}") from exc
        fleet = _convert(Fleet, {} if data is None else data, "")
        if not isinstance(fleet, Fleet):
            raise FleetError(source, "top level must be a mapping")
        return fleet

    def clock(self) -> SimClock:
        """The simulation time source this fleet asks for."""
        factor = self.time.factor if self.time.mode is TimeMode.ACCELERATED else 1.0
        days = self.time.history_days if self.time.mode is TimeMode.FAST_FORWARD else 0
        return SimClock(self.time.start, factor, days)

    def build(self, now: datetime | None = None) -> FleetPlan:
        """Every concentrator and meter of the fleet; ``now`` defaults to ``time.start``."""
        return _build(self, now or self.time.start or datetime.now(UTC))


def _fail(path: str, reason: str) -> typing.NoReturn:
    raise FleetError(path or "fleet", reason)


def _check_share(path: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        _fail(path, f"must be a share between 0 and 1, got {value}")


def _validate(fleet: Fleet) -> None:
    c = fleet.concentrators
    for name in ("count", "meters_per_concentrator"):
        if getattr(c, name) < 0:
            _fail(f"concentrators.{name}", "must not be negative")
    if c.meters_per_concentrator > 1022:
        _fail("concentrators.meters_per_concentrator", "node addresses 2..1023 allow 1022")
    if fleet.point_to_point.count < 0:
        _fail("point_to_point.count", "must not be negative")
    share = fleet.point_to_point.share
    if share is not None and not 0.0 <= share < 1.0:
        _fail("point_to_point.share", f"must be a share in 0..1 (1 excluded), got {share}")
    if fleet.meter_count == 0:
        _fail("concentrators.count", "the fleet has no meter")
    for path, port in (
        ("concentrators.first_port", c.first_port),
        ("concentrators.first_port", c.first_port + max(c.count - 1, 0)),
        ("point_to_point.port", fleet.point_to_point.port),
    ):
        if not 1 <= port <= 65535:
            _fail(path, f"port {port} is outside 1..65535")
    for path, host in (
        ("concentrators.host", c.host),
        ("point_to_point.first_host", fleet.point_to_point.first_host),
    ):
        parts = host.split(".")
        if len(parts) != 4 or not all(p.isascii() and p.isdigit() and int(p) < 256 for p in parts):
            _fail(path, f"expected an IPv4 address such as 127.0.1.1, got {host!r}")
    try:
        zone(c.time_zone)
    except UnknownTimeZone as exc:
        _fail("concentrators.time_zone", str(exc))
    if not fleet.comunas:
        _fail("comunas", "at least one comuna is needed")
    for n, comuna in enumerate(fleet.comunas):
        if not -56.0 <= comuna.latitude <= -17.0 or not -76.0 <= comuna.longitude <= -66.0:
            _fail(f"comunas[{n}]", f"{comuna.name!r} is not inside Chile")
    for section in ("shares", "faults", "anomalies"):
        values = getattr(fleet, section)
        for item in dataclasses.fields(values):
            _check_share(f"{section}.{item.name}", getattr(values, item.name))
    for name, weight in fleet.household_mix.items():
        if name not in HOUSEHOLD_TYPES:
            known = ", ".join(HOUSEHOLD_TYPES)
            _fail(f"household_mix.{name}", f"unknown household type (known: {known})")
        if weight < 0:
            _fail(f"household_mix.{name}", f"weight must not be negative, got {weight}")
    if sum(fleet.household_mix.values()) <= 0:
        _fail("household_mix", "needs at least one positive weight")
    if fleet.clock_drift.sd_ppm < 0:
        _fail("clock_drift.sd_ppm", "must not be negative")
    if fleet.clock_drift.tolerance_s <= 0:
        _fail("clock_drift.tolerance_s", "must be positive")
    t = fleet.time
    if t.factor <= 0:
        _fail("time.factor", f"must be positive, got {t.factor}")
    if t.history_days < 0:
        _fail("time.history_days", "must not be negative")
    if t.anomaly_window_days < 1:
        _fail("time.anomaly_window_days", "must be at least 1")
    if t.start is not None and t.start.tzinfo is None:
        _fail("time.start", "must carry a UTC offset, e.g. 2026-06-01T00:00:00Z")


def _convert(kind: Any, value: Any, path: str) -> Any:
    """Turn YAML data into ``kind`` (a dataclass, scalar, tuple, dict or optional)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return None if value is None else _convert(options[0], value, path)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(value, Mapping):
            _fail(path, f"expected a mapping, got {type(value).__name__}")
        hints = typing.get_type_hints(kind)
        names = {f.name for f in dataclasses.fields(kind)}
        unknown = sorted(str(k) for k in value if k not in names)
        if unknown:
            _fail(f"{path}.{unknown[0]}" if path else unknown[0], "unknown field")
        converted = {
            name: _convert(hints[name], item, f"{path}.{name}" if path else name)
            for name, item in value.items()
        }
        for item in dataclasses.fields(kind):
            missing = item.default is dataclasses.MISSING
            if missing and item.default_factory is dataclasses.MISSING and item.name not in value:
                _fail(f"{path}.{item.name}" if path else item.name, "is required")
        return kind(**converted)
    if origin is tuple:
        if not isinstance(value, list):
            _fail(path, f"expected a list, got {type(value).__name__}")
        item_kind = typing.get_args(kind)[0]
        return tuple(_convert(item_kind, item, f"{path}[{n}]") for n, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            _fail(path, f"expected a mapping, got {type(value).__name__}")
        return {str(k): _convert(float, v, f"{path}.{k}") for k, v in value.items()}
    return _scalar(kind, value, path)


def _scalar(kind: Any, value: Any, path: str) -> Any:
    if kind is bool or isinstance(value, bool):
        _fail(path, f"expected {getattr(kind, '__name__', kind)}, got {value!r}")
    if kind is int:
        if not isinstance(value, int):
            _fail(path, f"expected an integer, got {value!r}")
        return value
    if kind is float:
        if not isinstance(value, int | float):
            _fail(path, f"expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str | int):
            _fail(path, f"expected text, got {value!r}")
        return str(value)
    if kind is datetime:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                _fail(path, f"expected an ISO 8601 instant, got {value!r}")
        else:
            _fail(path, f"expected an ISO 8601 instant, got {value!r}")
        if moment.tzinfo is None:
            _fail(path, "must carry a UTC offset, e.g. 2026-06-01T00:00:00Z")
        return moment.astimezone(UTC)
    if kind is TimeMode:
        try:
            return TimeMode(value)
        except ValueError:
            allowed = ", ".join(m.value for m in TimeMode)
            _fail(path, f"expected one of {allowed}, got {value!r}")
    _fail(path, f"unsupported field type {kind!r}")


def load_fleet(path: Path | None) -> Fleet:
    """Read a fleet YAML file; None gives the built-in default fleet."""
    if path is None:
        return default_fleet()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetError(str(path), f"cannot read: {exc.strerror}") from exc
    return Fleet.from_yaml(text, str(path))


def default_fleet() -> Fleet:
    """The built-in fleet (package data ``default_fleet.yaml``)."""
    text = importlib.resources.files("smmc.sim").joinpath("default_fleet.yaml").read_text("utf-8")
    return Fleet.from_yaml(text, "default_fleet.yaml")


# --- the plan -----------------------------------------------------------------------------

_HOUSEHOLDS = tuple(HOUSEHOLD_TYPES)
_FOR_EVER = timedelta(days=36500)
_POLYPHASE = 1
_NET_BILLING = 2
_UNREACHABLE = 4
_REPEATER_FAILURE = 8
_WRONG_KEY = 16


@dataclass(frozen=True, slots=True)
class ConcentratorSpec:
    index: int
    name: str
    serial: str
    comuna: str
    latitude: float
    longitude: float
    host: str
    port: int
    time_zone: str
    windows_time_zone: str
    transformer: str
    substation: str
    down: bool
    missing_phase: str | None
    ppp_password: str
    maa_password: str
    k2_password: str


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """Everything the simulator and the provisioning files know about one meter."""

    index: int
    serial: str
    pod: str
    concentrator: int | None
    node_address: int | None
    host: str | None
    port: int | None
    household: str
    polyphase: bool
    phase: str
    net_billing: bool
    pv_kwp: float
    comuna: str
    latitude: float
    longitude: float
    drift_ppm: float
    seed: int
    encryption_key: bytes
    authentication_key: bytes
    time_zone: str
    unreachable: bool
    repeater_failure: bool
    wrong_key: bool
    anomalies: tuple[Anomaly, ...]

    @property
    def device_keys(self) -> tuple[bytes, bytes]:
        """Keys the simulated device really uses: not the provisioned ones on a wrong key."""
        if not self.wrong_key:
            return self.encryption_key, self.authentication_key
        return (
            hashlib.blake2b(self.encryption_key, digest_size=16).digest(),
            hashlib.blake2b(self.authentication_key, digest_size=16).digest(),
        )

    @property
    def keys(self) -> tuple[bytes, bytes]:
        return self.encryption_key, self.authentication_key


def _host(first: str, offset: int) -> str:
    a, b, c, d = (int(part) for part in first.split("."))
    value = (b << 16 | c << 8 | d) + offset
    return f"{a}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


class FleetPlan:
    """Concentrators as objects (few), meters as parallel arrays (many)."""

    def __init__(
        self,
        fleet: Fleet,
        epoch: datetime,
        concentrators: list[ConcentratorSpec],
        arrays: dict[str, array[Any]],
        keys: bytes,
        anomalies: dict[int, tuple[Anomaly, ...]],
    ) -> None:
        self.fleet = fleet
        self.epoch = epoch
        self.concentrators = concentrators
        self._a = arrays
        self._keys = keys
        self.anomalies = anomalies

    @property
    def history_start(self) -> datetime:
        """Where simulated history begins; meter clocks are set right at this instant."""
        return self.epoch - timedelta(days=self.fleet.time.history_days)

    def __len__(self) -> int:
        return len(self._a["flags"])

    def meter(self, index: int) -> MeterSpec:
        """The spec of meter ``index`` (0-based; concentrator meters first)."""
        a = self._a
        if not 0 <= index < len(self):
            raise IndexError(f"meter index {index} outside 0..{len(self) - 1}")
        flags = a["flags"][index]
        c = a["concentrator"][index]
        node = a["node"][index]
        p2p = self.fleet.point_to_point
        comuna = self.fleet.comunas[a["comuna"][index]].name
        key = self._keys[index * 32 : index * 32 + 32]
        return MeterSpec(
            index=index,
            serial=meter_serial(index),
            pod=pod_name(index),
            concentrator=None if c < 0 else c,
            node_address=None if c < 0 else node,
            host=_host(p2p.first_host, node) if c < 0 else None,
            port=p2p.port if c < 0 else None,
            household=_HOUSEHOLDS[a["household"][index]],
            polyphase=bool(flags & _POLYPHASE),
            phase="RST"[a["phase"][index]],
            net_billing=bool(flags & _NET_BILLING),
            pv_kwp=round(a["pv"][index], 1),
            comuna=comuna,
            latitude=a["latitude"][index],
            longitude=a["longitude"][index],
            drift_ppm=a["drift"][index],
            seed=mix(self.fleet.seeds.consumption, index),
            encryption_key=key[:16],
            authentication_key=key[16:],
            time_zone=self.fleet.concentrators.time_zone,
            unreachable=bool(flags & _UNREACHABLE),
            repeater_failure=bool(flags & _REPEATER_FAILURE),
            wrong_key=bool(flags & _WRONG_KEY),
            anomalies=self.anomalies.get(index, ()),
        )

    def meter_model(self, index: int) -> MeterModel:
        """The metrology of meter ``index``: installed and clock-set at ``history_start``.

        A monophase meter on its concentrator's missing phase has no supply at all.
        """
        spec = self.meter(index)
        model = MeterModel(
            spec.serial,
            spec.seed,
            spec.household,
            installed_at=self.history_start,
            polyphase=spec.polyphase,
            pv_kwp=spec.pv_kwp,
            time_zone=spec.time_zone,
            drift_ppm=spec.drift_ppm,
            clock_tolerance_s=self.fleet.clock_drift.tolerance_s,
            anomalies=spec.anomalies,
        )
        if spec.concentrator is not None and not spec.polyphase:
            missing = self.concentrators[spec.concentrator].missing_phase
            if missing == spec.phase:
                # The phase is lost at the transformer for the whole simulation.
                model.power_outage(self.history_start, self.history_start + _FOR_EVER)
        return model

    def meters(self) -> Iterator[MeterSpec]:
        return (self.meter(index) for index in range(len(self)))

    def labels(self) -> Iterator[tuple[str, Anomaly]]:
        """Ground truth for ``write_labels``: (serial, anomaly), by meter index."""
        for index in sorted(self.anomalies):
            for anomaly in self.anomalies[index]:
                yield meter_serial(index), anomaly


def _build(fleet: Fleet, now: datetime) -> FleetPlan:
    now = now.astimezone(UTC)
    layout = random.Random(fleet.seeds.layout)
    faults = random.Random(fleet.seeds.faults)
    section = fleet.concentrators
    comunas = fleet.comunas
    concentrators = []
    for i in range(section.count):
        comuna = comunas[i % len(comunas)]
        down = faults.random() < fleet.faults.concentrator_down
        phase = "RST"[faults.randrange(3)] if faults.random() < fleet.faults.phase_missing else None
        secrets = (
            hashlib.blake2b(f"{fleet.seeds.keys}:dc:{i}".encode(), digest_size=48)
            .hexdigest()
            .upper()
        )
        concentrators.append(
            ConcentratorSpec(
                index=i,
                name=concentrator_name(i),
                serial=concentrator_serial(i),
                comuna=comuna.name,
                latitude=round(comuna.latitude + layout.uniform(-0.02, 0.02), 6),
                longitude=round(comuna.longitude + layout.uniform(-0.02, 0.02), 6),
                host=section.host,
                port=section.first_port + i,
                time_zone=section.time_zone,
                windows_time_zone=section.windows_time_zone,
                transformer=f"TR-{10000 + i}",
                substation=f"SE-{comuna.name}",
                down=down,
                missing_phase=phase,
                ppp_password=secrets[:32],
                maa_password=secrets[32:64],
                k2_password=secrets[64:],
            )
        )
    total = fleet.meter_count
    households = list(HOUSEHOLD_TYPES)
    weights = [fleet.household_mix.get(name, 0.0) for name in households]
    arrays: dict[str, array[Any]] = {
        "concentrator": array("i"),
        "node": array("i"),
        "comuna": array("H"),
        "household": array("B"),
        "phase": array("B"),
        "flags": array("B"),
        "pv": array("f"),
        "latitude": array("d"),
        "longitude": array("d"),
        "drift": array("f"),
    }
    uniform, rand, gauss = layout.uniform, layout.random, layout.gauss
    shares, rates, drift = fleet.shares, fleet.faults, fleet.clock_drift
    cumulative = [sum(weights[: n + 1]) for n in range(len(weights))]
    household_choice = layout.choices
    for index in range(total):
        if index < section.count * section.meters_per_concentrator:
            c, node = divmod(index, section.meters_per_concentrator)
            site = concentrators[c]
            lat, lon, comuna_index, spread = site.latitude, site.longitude, c % len(comunas), 0.004
            node += 2
        else:
            c, node = -1, index - section.count * section.meters_per_concentrator
            comuna_index = node % len(comunas)
            lat, lon = comunas[comuna_index].latitude, comunas[comuna_index].longitude
            spread = 0.03
        flags = 0
        if rand() < shares.polyphase:
            flags |= _POLYPHASE
        if rand() < shares.net_billing:
            flags |= _NET_BILLING
        if rand() < rates.node_unreachable:
            flags |= _UNREACHABLE
        if rand() < rates.repeater_failure:
            flags |= _REPEATER_FAILURE
        if rand() < rates.wrong_key:
            flags |= _WRONG_KEY
        arrays["concentrator"].append(c)
        arrays["node"].append(node)
        arrays["comuna"].append(comuna_index)
        arrays["household"].append(
            household_choice(range(len(households)), cum_weights=cumulative)[0]
        )
        arrays["phase"].append(int(rand() * 3))
        arrays["flags"].append(flags)
        arrays["pv"].append(uniform(1.5, 5.0) if flags & _NET_BILLING else 0.0)
        arrays["latitude"].append(round(lat + uniform(-spread, spread), 6))
        arrays["longitude"].append(round(lon + uniform(-spread, spread), 6))
        arrays["drift"].append(gauss(drift.mean_ppm, drift.sd_ppm))
    keys = random.Random(fleet.seeds.keys).randbytes(32 * total)
    history_start = now - timedelta(days=fleet.time.history_days)
    window = (history_start, now + timedelta(days=fleet.time.anomaly_window_days))
    flag_array = arrays["flags"]
    anomalies = assign_anomalies(
        fleet.anomalies,
        total,
        fleet.seeds.anomalies,
        window,
        lambda i: bool(flag_array[i] & _NET_BILLING),
        drift.tolerance_s,
    )
    for index, found in anomalies.items():
        for anomaly in found:
            if anomaly.kind is AnomalyKind.CLOCK_DRIFT:
                arrays["drift"][index] = float(anomaly.magnitude)
    return FleetPlan(fleet, now, concentrators, arrays, keys, anomalies)
