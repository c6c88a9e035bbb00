"""The simulated data concentrator (LVM): a DLMS server on the DC's own TCP endpoint.

One socket, two kinds of association (see ``docs/protocol/concentrator.md``), one at a time
per TCP connection and any number one after the other (a released association leaves the
connection open for the next AARQ):

* wrapper destination wPort ``1`` — the DC's **management logical device**: its clock, the
  status word, the node table, the gateway acknowledgement log, node commissioning and the
  profiles the DC collected from its meters;
* wrapper destination wPort ``GATEWAY_BASE + node address`` — the **gateway**: every APDU
  is carried over the simulated PLC medium to that meter's own DLMS server and the answer
  carried back, so the association is end to end with the meter's keys. When the DC cannot
  reach the meter it answers itself (a rejected AARE, or an ExceptionResponse) and appends
  the acknowledgement code to the gateway log, where the head-end reads which one it was.

The DC also sends spontaneous power off/on frames and relays meter alarms as DLMS
DataNotifications to a configured head-end address.

Each DC keeps its own `SessionRecord` of what it carried: how many associations were open
at once (the peak), when each was open, and every access to a meter's breaker (disconnect
control) relayed through its gateway. Tests and benchmarks read it as the field's witness,
independent of the head-end's bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, ClassVar, Literal, Protocol

from smmc.dlms.apdu import (
    Aare,
    AcseServiceProviderDiagnostic,
    AcseServiceUserDiagnostic,
    AssociationResult,
    AuthenticationMechanism,
    DataNotification,
    ExceptionResponse,
    ExceptionServiceError,
    StateError,
)
from smmc.dlms.apdu.selective_access import (
    CLOCK_TIME,
    CaptureObjectDefinition,
    RangeDescriptor,
)
from smmc.dlms.axdr import Data, DataTag, EncodedData, StructurePacker, decode_data
from smmc.dlms.connection import (
    AssociationRefused,
    Released,
    ServerAssociation,
    ServerConnection,
)
from smmc.dlms.cosem import (
    AccessResult,
    AccessRights,
    AttributeAccess,
    Clock,
    CosemAccessError,
    CosemObject,
    DataObject,
    DisconnectControl,
    LogicalDevice,
    MethodAccess,
    ProfileGeneric,
    SelectiveAccessDescriptor,
)
from smmc.dlms.cosem.base import expect_bool, expect_bytes
from smmc.dlms.cosem.extended_register import decode_date_time
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import CipheringError, DecodeError, DlmsError, DlmsTimeout
from smmc.dlms.framing.wrapper import WrapperDecoder, WrapperFrame
from smmc.dlms.obis import Obis
from smmc.dlms.server import ServedDevice
from smmc.domain.concentrator_status import encode_status_word
from smmc.domain.error_catalog import ACK_CODES, CATALOG, ErrorKey, format_error
from smmc.domain.spontaneous import (
    DEFAULT_SPONTANEOUS_PORT,
    PowerEvent,
    PowerFrame,
    encode_power_frame,
)
from smmc.domain.time import zone
from smmc.sim.clock import SimClock
from smmc.sim.fleet import ConcentratorSpec, FleetPlan, MeterSpec
from smmc.sim.meter_device import MeterDevices, measurand_values, register_values
from smmc.sim.meter_model import (
    ExtendedWord1,
    ExtendedWord2,
    LoadProfileStatus,
    MeasurandRow,
    MeterModel,
    MeterModelError,
    NormalWord1,
    StatusWords,
)
from smmc.sim.plc import LinkBusy, LinkSettings, PlcLink

__all__ = [
    "ACK_LOG_OBIS",
    "BREAKER_CLASS",
    "COLLECTED_DAILY_OBIS",
    "COLLECTED_LOAD_PROFILE_OBIS",
    "COLLECTED_MEASURANDS_OBIS",
    "COLLECTED_STATUS_OBIS",
    "GATEWAY_BASE",
    "MANAGEMENT_ADDRESS",
    "MANAGEMENT_CLIENT",
    "NODE_MANAGEMENT_CLASS",
    "NODE_MANAGEMENT_OBIS",
    "NODE_TABLE_OBIS",
    "PUBLIC_CLIENT",
    "STATUS_WORD_OBIS",
    "BreakerAccess",
    "ConcentratorFleet",
    "ConcentratorServer",
    "GatewayFailure",
    "HeadEndAddress",
    "Node",
    "SessionRecord",
    "SessionSpan",
    "gateway_address",
]

_LOG = logging.getLogger(__name__)

MANAGEMENT_ADDRESS = 1
"""Wrapper wPort (server logical address) of the DC's management logical device."""
GATEWAY_BASE = 0x1000
"""A meter behind the DC is logical device ``GATEWAY_BASE + node address``."""
PUBLIC_CLIENT = 16
MANAGEMENT_CLIENT = 1

STATUS_WORD_OBIS = Obis(0, 0, 96, 5, 0, 255)
NODE_TABLE_OBIS = Obis(0, 128, 96, 1, 0, 255)
ACK_LOG_OBIS = Obis(0, 128, 96, 2, 0, 255)
NODE_MANAGEMENT_OBIS = Obis(0, 128, 96, 3, 0, 255)
NODE_MANAGEMENT_CLASS = 128
COLLECTED_LOAD_PROFILE_OBIS = Obis(0, 128, 99, 1, 0, 255)
COLLECTED_MEASURANDS_OBIS = Obis(0, 128, 99, 2, 0, 255)
COLLECTED_DAILY_OBIS = Obis(0, 128, 98, 1, 0, 255)
COLLECTED_STATUS_OBIS = Obis(0, 128, 99, 98, 0, 255)
BREAKER_CLASS = DisconnectControl.CLASS_ID

_SERIAL_COLUMN = CaptureObjectDefinition(1, Obis(0, 0, 96, 1, 0, 255), 2)
_READ = AttributeAccess.READ_ONLY
_READ_WRITE = AttributeAccess.READ_WRITE
_ACK_LOG_ENTRIES = 1000
_MAX_READ = 4096
_WATCHED_ALARMS = (  # masks of normal 1, normal 2, extended 1, extended 2
    int(NormalWord1.PUP | NormalWord1.ORD),
    0,
    int(ExtendedWord1.CAPE),
    int(ExtendedWord2.TC_REM),
)


def gateway_address(node_address: int) -> int:
    """The wrapper wPort a head-end addresses to reach the meter at ``node_address``."""
    if not 0 <= node_address <= 0xFFFF - GATEWAY_BASE:
        raise ValueError(f"node address {node_address} outside 0..{0xFFFF - GATEWAY_BASE}")
    return GATEWAY_BASE + node_address


@dataclass(frozen=True, slots=True)
class HeadEndAddress:
    """Where spontaneous frames and pushes go."""

    host: str
    port: int = DEFAULT_SPONTANEOUS_PORT
    transport: Literal["tcp", "udp"] = "tcp"


@dataclass(slots=True)
class Node:
    """One meter in the DC's node table (the "CE table")."""

    index: int
    serial: str
    node_address: int
    phase: str
    polyphase: bool
    repeater_level: int
    commissioned: bool = True
    reachable: bool = True
    repeater_failed: bool = False
    wrong_key: bool = False
    last_contact: dt.datetime | None = None
    seen_alarms: StatusWords = dataclasses.field(default_factory=StatusWords)


@dataclass(frozen=True, slots=True)
class GatewayFailure:
    """Why the DC could not carry a request to a meter: the catalog row and the DC's
    acknowledgement code (None for the failures the seeds show without one)."""

    key: ErrorKey
    text: str
    ack: str | None = None

    @classmethod
    def of_ack(cls, code: str) -> GatewayFailure:
        found = ACK_CODES[code]
        return cls(found.key, found.text, found.code)

    @classmethod
    def of_key(cls, key: ErrorKey) -> GatewayFailure:
        return cls(key, CATALOG[key].text)

    @property
    def retryable(self) -> bool:
        return CATALOG[self.key].retryable

    def report(self, operation: str) -> str:
        """``[OPERATION] [ACK] TEXT`` as the utility's reports print it; the catalog text
        alone when the DC gives no code (the reports' form for those)."""
        if self.ack is None:
            return self.text
        return format_error(self.text, operation=operation, ack=self.ack)


@dataclass(frozen=True, slots=True)
class SessionSpan:
    """One association the DC carried, to its management device or through its gateway to
    a meter (``address``: the wPort it was opened on), open from its first frame until it
    was released or its connection ended; ``time.monotonic()`` seconds."""

    number: int
    address: int
    opened: float
    closed: float


@dataclass(frozen=True, slots=True)
class BreakerAccess:
    """One access to a meter's disconnect control relayed by the gateway: ``operation`` is
    ``read``, ``set``, or the command (``disconnect``, ``reconnect``); ``before`` and
    ``after`` the breaker's control state (0 disconnected, 1 connected, 2 ready for
    reconnection) around it; ``session`` the association it was sent in."""

    session: int
    serial: str
    operation: str
    before: int
    after: int
    at: float


class SessionRecord:
    """What one DC saw of its associations: ``active`` now, ``peak`` at once since start,
    ``opened`` in all, and the last ``keep`` spans and breaker accesses (bounded, so a
    long-running simulator does not grow)."""

    def __init__(self, keep: int = 4096) -> None:
        self.active = 0
        self.peak = 0
        self.opened = 0
        self.spans: deque[SessionSpan] = deque(maxlen=keep)
        self.breaker: deque[BreakerAccess] = deque(maxlen=keep)

    def open(self) -> tuple[int, float]:
        """An association starts: its number and start time."""
        self.opened += 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        return self.opened, time.monotonic()

    def close(self, number: int, address: int, opened: float) -> None:
        self.active -= 1
        self.spans.append(SessionSpan(number, address, opened, time.monotonic()))

    def overlapping(self) -> int:
        """Most spans in ``spans`` open at the same instant (ends before starts on a tie)."""
        edges = sorted(
            [(span.opened, 1) for span in self.spans] + [(span.closed, -1) for span in self.spans]
        )
        most = current = 0
        for _, step in edges:
            current += step
            most = max(most, current)
        return most


def _repeater_level(serial: str, failed: bool) -> int:
    """Hops through repeaters (0..3), stable per meter; a failing repeater needs one."""
    draw = hashlib.blake2b(serial.encode(), digest_size=2).digest()[0]
    level = 0 if draw < 128 else 1 if draw < 192 else 2 if draw < 230 else 3
    return max(level, 1 + draw % 3) if failed else level


def _node(meter: MeterSpec) -> Node:
    if meter.node_address is None:
        raise ValueError(f"meter {meter.serial} has no node address")
    return Node(
        index=meter.index,
        serial=meter.serial,
        node_address=meter.node_address,
        phase=meter.phase,
        polyphase=meter.polyphase,
        repeater_level=_repeater_level(meter.serial, meter.repeater_failure),
        reachable=not meter.unreachable,
        repeater_failed=meter.repeater_failure,
        wrong_key=meter.wrong_key,
    )


def _date_time(moment: dt.datetime) -> Data:
    return Data.octet_string(CosemDateTime.from_datetime(moment).to_bytes())


@functools.lru_cache(maxsize=4096)
def _keyed_clock_octets(key: tuple[dt.datetime, dt.tzinfo | None, int]) -> bytes:
    return CosemDateTime.from_datetime(key[0]).to_bytes()


def _clock_octets(moment: dt.datetime) -> bytes:
    """The 12 octets of a clock value; the rows of a DC repeat a few hundred of them.

    The cache key holds the zone and ``fold``: aware datetimes of one zone compare equal
    across a DST fold, but their octets differ in deviation and status.
    """
    return _keyed_clock_octets((moment, moment.tzinfo, moment.fold))


@functools.lru_cache(maxsize=64)
def _row_packer(serial_length: int, values: DataTag, count: int, status: bool) -> StructurePacker:
    """Clock · serial (· status) · ``count`` values: the layout of the collected rows."""
    head = [(DataTag.OCTET_STRING, 12), (DataTag.OCTET_STRING, serial_length)]
    if status:
        head.append((DataTag.UNSIGNED, -1))
    return StructurePacker(head + [(values, -1)] * count)


_ENERGY_COLUMNS = (
    "active_import_wh",
    "active_export_wh",
    "reactive_import_varh",
    "reactive_export_varh",
)
_ENERGIES = attrgetter(*_ENERGY_COLUMNS)
"""A load-profile row's A+, A−, R+, R− (one C call a row)."""


class _Captured(Protocol):
    """A model's row of one capture period (load profile or measurands)."""

    @property
    def captured_utc(self) -> dt.datetime: ...
    @property
    def clock(self) -> dt.datetime: ...
    @property
    def status(self) -> LoadProfileStatus: ...


def _l1_measurands(row: MeasurandRow) -> tuple[int, int]:
    """Average voltage and current of phase L1 as the meter's measurand profile has them."""
    volts, amps = measurand_values(row)
    return volts[0], amps[0]


def _billing_values(model: MeterModel, at: dt.datetime) -> list[int]:
    """The meter's billing registers at ``at``, as its own billing profile has them."""
    return register_values(model.registers(at))


def _status_values(model: MeterModel, at: dt.datetime) -> tuple[int, int, int, int]:
    words = model.status_words(at)
    return words.normal1, words.normal2, words.extended1, words.extended2


def _text(value: str) -> Data:
    return Data.visible_string(value)


def _columns(prefix: Obis, count: int) -> list[CaptureObjectDefinition]:
    return [
        CaptureObjectDefinition(1, Obis(prefix.a, prefix.b, prefix.c, prefix.d, n, 255), 2)
        for n in range(1, count + 1)
    ]


# -- management objects -------------------------------------------------------------------


class _ComputedData(CosemObject):
    """IC 1 (Data) whose read-only value the DC computes at each read (the status word)."""

    CLASS_ID: ClassVar[int] = 1
    ATTRIBUTE_COUNT: ClassVar[int] = 2

    def __init__(self, logical_name: Obis, compute: Callable[[], Data]) -> None:
        super().__init__(logical_name)
        self._compute = compute

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        return self._compute()


Window = tuple[dt.datetime, dt.datetime]
Row = tuple[Data, ...]
Keep = Callable[[bytes], bool]
Fetch = Callable[[dt.datetime, dt.datetime, Keep], list[bytes]]
"""The rows captured in ``(start, end]`` whose clock octets ``keep`` accepts, oldest
first, each an encoded structure (rows ``keep`` refuses are never computed in full)."""


def _keep_all(clock: bytes) -> bool:
    return True


def _cells(encoded: bytes) -> Row:
    row = decode_data(encoded)[0].value
    if not isinstance(row, tuple):
        raise TypeError(f"a collected row must be a structure, got {encoded[:1].hex()}")
    return row


class _WindowProfile(ProfileGeneric):
    """A profile whose rows are computed for the asked time range, not stored.

    A range read on the clock column computes only that range and, for all the columns,
    answers the rows as encoded (one ``EncodedData``): the range filter's verdict on each
    distinct clock value is taken once, before the row is computed. A plain read of the
    buffer (and ``entries_in_use``) covers ``default_window`` (the last day).
    """

    def __init__(
        self,
        logical_name: Obis,
        columns: Sequence[CaptureObjectDefinition],
        fetch: Fetch,
        default_window: Callable[[], Window],
        tz: dt.tzinfo,
        capture_period: int = 0,
    ) -> None:
        super().__init__(logical_name, columns, capture_period, profile_entries=0xFFFFFFFF)
        self._fetch = fetch
        self._default_window = default_window
        self._tz = tz
        self._window: Window | None = None

    def rows(self) -> list[Row]:
        start, end = self._window or self._default_window()
        return [_cells(encoded) for encoded in self._fetch(start, end, _keep_all)]

    def _clock_window(self, descriptor: RangeDescriptor) -> Window | None:
        """What to compute for a range on the clock: the models give ``(start, end]`` and
        the range is inclusive, so one second wider; the filter then keeps ``[start, end]``."""
        if descriptor.restricting_object != CLOCK_TIME:
            return None
        try:
            bounds = [
                decode_date_time(value).to_datetime()
                for value in (descriptor.from_value, descriptor.to_value)
            ]
        except (DecodeError, CosemAccessError):
            return None
        start, end = (b if b.tzinfo else b.replace(tzinfo=self._tz) for b in bounds)
        return start - dt.timedelta(seconds=1), end

    def _range_buffer(self, descriptor: RangeDescriptor) -> Data:
        window = self._clock_window(descriptor)
        if window is None or descriptor.selected_values:
            return super()._range_buffer(descriptor)
        accepts = self._range_filter(descriptor.from_value, descriptor.to_value)
        verdicts: dict[bytes, bool] = {}

        def keep(clock: bytes) -> bool:
            verdict = verdicts.get(clock)
            if verdict is None:
                verdict = verdicts[clock] = accepts(Data.octet_string(clock))
            return verdict

        return EncodedData.array_of(self._fetch(*window, keep))

    def _by_range(self, descriptor: RangeDescriptor) -> list[Row]:
        self._window = self._clock_window(descriptor)
        try:
            return super()._by_range(descriptor)
        finally:
            self._window = None


class _NodeManagement(CosemObject):
    """Manufacturer-specific IC 128: ``procedure_enabled`` (2, boolean, the "TB procedure"
    switch); methods commission (1) and decommission (2), each taking the meter serial as
    an octet-string and returning ``structure {boolean done, visible-string text}``."""

    CLASS_ID: ClassVar[int] = NODE_MANAGEMENT_CLASS
    ATTRIBUTE_COUNT: ClassVar[int] = 2
    METHOD_COUNT: ClassVar[int] = 2

    def __init__(self, dc: ConcentratorServer) -> None:
        super().__init__(NODE_MANAGEMENT_OBIS)
        self._dc = dc

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        return Data.boolean(self._dc.procedure_enabled)

    def _set(self, attribute: int, value: Data) -> None:
        self._dc.procedure_enabled = expect_bool(value, "procedure_enabled")

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        if parameters is None:
            raise CosemAccessError(AccessResult.TYPE_UNMATCHED, "a meter serial is required")
        raw = expect_bytes(parameters, "meter serial")
        try:
            serial = raw.decode("ascii")
        except UnicodeDecodeError:
            raise CosemAccessError(AccessResult.TYPE_UNMATCHED, "serial is not ASCII") from None
        if method == 1:
            done, text = self._dc.commission(serial)
        else:
            done, text = self._dc.decommission(serial)
        return Data.structure((Data.boolean(done), _text(text)))


# -- the server ---------------------------------------------------------------------------


class ConcentratorServer:
    """One simulated DC: ``async with ConcentratorServer(plan, spec, clock) as dc:``.

    ``meters`` builds and caches the meters' DLMS devices and keeps their models; pass the
    fleet runner's shared ``MeterDevices`` so the gateway, the collected profiles and any
    point-to-point access all see the same meters (a private one is made otherwise).
    ``port=None`` listens on the plan's port, ``0`` on an ephemeral one.
    ``collects_measurands=False`` is an older firmware without the collected measurand
    profile (a GET of it answers object-undefined).
    """

    def __init__(
        self,
        plan: FleetPlan,
        spec: ConcentratorSpec,
        clock: SimClock,
        *,
        meters: MeterDevices | None = None,
        host: str | None = None,
        port: int | None = None,
        link: LinkSettings | None = None,
        head_end: HeadEndAddress | None = None,
        idle_timeout: float | None = 120.0,
        alarm_interval_s: float | None = None,
        collects_measurands: bool = True,
    ) -> None:
        self.plan = plan
        self.collects_measurands = collects_measurands
        self.spec = spec
        self.clock = clock
        self.host = spec.host if host is None else host
        self._requested_port = spec.port if port is None else port
        self.link = PlcLink(link)
        self.head_end = head_end
        self.idle_timeout = idle_timeout
        self.procedure_enabled = True
        self.modem_failed = False
        self.extra_letters: set[str] = set()
        self.errors: list[Exception] = []
        self.record = SessionRecord()
        self.meters = meters or MeterDevices(plan, clock)
        self._tz = zone(spec.time_zone)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._bound_port: int | None = None
        self._sequence = 0
        self.alarm_interval_s = alarm_interval_s
        self._alarm_task: asyncio.Task[None] | None = None
        self.nodes: dict[int, Node] = {
            node.node_address: node for node in map(_node, self._meters())
        }
        self.device = self._management_device()
        self.management = ServedDevice(
            self.device,
            self.management_associations(),
            b"LVM" + spec.index.to_bytes(5, "big"),
        )

    def _meters(self) -> Iterable[MeterSpec]:
        per = self.plan.fleet.concentrators.meters_per_concentrator
        first = self.spec.index * per
        for index in range(first, min(first + per, len(self.plan))):
            meter = self.plan.meter(index)
            if meter.concentrator == self.spec.index and meter.node_address is not None:
                yield meter

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> ConcentratorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The DC's TCP port (also when it is down: connecting to it is refused)."""
        if self._server is not None and self._server.sockets:
            port: int = self._server.sockets[0].getsockname()[1]
            return port
        if self._bound_port is not None:
            return self._bound_port
        return self._requested_port

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listen, unless the plan has this DC down (then connections are refused)."""
        if self.spec.down:
            if self._requested_port == 0 and self._bound_port is None:
                self._bound_port = _unused_port(self.host)
            return
        await self._listen()

    async def _listen(self) -> None:
        if self._server is not None:
            raise RuntimeError("the concentrator is already listening")
        port = self._bound_port if self._bound_port is not None else self._requested_port
        self._server = await asyncio.start_server(self._accept, self.host, port)
        self._bound_port = self._server.sockets[0].getsockname()[1]
        if self.alarm_interval_s is not None and self.head_end is not None:
            self._alarm_task = asyncio.get_running_loop().create_task(self._scan_forever())

    async def _scan_forever(self) -> None:
        interval = self.alarm_interval_s or 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                await self.scan_alarms()
            except (DlmsError, OSError, MeterModelError) as exc:
                _LOG.info("DC %s: alarm scan failed: %s", self.spec.name, exc)
                self.errors.append(exc)

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        alarm_task, self._alarm_task = self._alarm_task, None
        if alarm_task is not None:
            alarm_task.cancel()
            await asyncio.gather(alarm_task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def power_off(self) -> None:
        """Lose supply: send the last-gasp frame, then stop answering (connection refused)."""
        await self.send_power_frame(PowerEvent.OFF)
        await self.stop()

    async def power_on(self) -> None:
        """Supply back: listen again and send the power-on frame."""
        await self._listen()
        self.extra_letters.add("A")
        await self.send_power_frame(PowerEvent.ON)

    # -- the DC's own state ----------------------------------------------------------------

    def now(self) -> dt.datetime:
        """The DC clock (the head-end may have set it), aware in the DC's zone."""
        return self._clock_object.local_now()

    def status_letters(self) -> set[str]:
        """The status-word letters that hold now."""
        letters = {"O", "C"} | self.extra_letters
        if any(node.commissioned for node in self.nodes.values()):
            letters.add("B")
        if self.modem_failed:
            letters.add("U")
        else:
            letters.add("E")
        if self._clock_object.get(8).value:
            letters.add("G")
        if self.spec.missing_phase is not None:
            letters.add("IJK"["RST".index(self.spec.missing_phase)])
        return letters

    def status_word(self) -> int:
        return encode_status_word(self.status_letters())

    def node_by_serial(self, serial: str) -> Node | None:
        for node in self.nodes.values():
            if node.serial == serial:
                return node
        return None

    def commission(self, serial: str) -> tuple[bool, str]:
        """Commission a meter of this DC: (done, text) with the catalog's text on failure."""
        node = self.node_by_serial(serial)
        failure: GatewayFailure | None
        if node is None or self._unreachable(node) is not None:
            failure = GatewayFailure.of_key(ErrorKey.NOT_COMMISSIONED_UNREACHABLE)
        elif node.wrong_key:
            failure = GatewayFailure.of_key(ErrorKey.NOT_COMMISSIONED_WRONG_KEYS)
        else:
            node.commissioned = True
            node.last_contact = self.now()
            return True, "Meter commissioned"
        self.log_failure(node.node_address if node else 0, serial, "COMMISSIONING", failure)
        return False, failure.text

    def decommission(self, serial: str) -> tuple[bool, str]:
        """Remove a meter from the CE table (it stays in the node table, not commissioned)."""
        node = self.node_by_serial(serial)
        if node is None or not node.commissioned:
            failure = GatewayFailure.of_key(ErrorKey.CE_NOT_IN_TABLE)
            self.log_failure(node.node_address if node else 0, serial, "DECOMMISSIONING", failure)
            return False, failure.text
        node.commissioned = False
        return True, "Meter decommissioned"

    def _unreachable(self, node: Node) -> GatewayFailure | None:
        if (
            not node.polyphase
            and self.spec.missing_phase is not None
            and node.phase == self.spec.missing_phase
        ):
            return GatewayFailure.of_ack("TB_ACK_50")
        if not node.reachable:
            return GatewayFailure.of_ack("TB_ACK_21")
        if node.repeater_failed:
            # The failing repeater is the last hop; a node edited to fail with no
            # repeater on its path still fails at the first one.
            hop = min(max(node.repeater_level, 1), 3)
            return GatewayFailure.of_ack(f"TB_ACK_{39 + hop}")
        return None

    def gateway_failure(self, node_address: int) -> GatewayFailure | None:
        """Why a request to ``node_address`` cannot go through now (DC faults first)."""
        if not self.procedure_enabled:
            return GatewayFailure.of_key(ErrorKey.TB_PROCEDURE_NOT_ENABLED)
        if self.modem_failed:
            return GatewayFailure.of_key(ErrorKey.MODEM_PLC_FAILURE)
        node = self.nodes.get(node_address)
        if node is None or not node.commissioned:
            return GatewayFailure.of_key(ErrorKey.CE_NOT_IN_TABLE)
        return self._unreachable(node)

    def log_failure(
        self, node_address: int, serial: str, operation: str, failure: GatewayFailure
    ) -> None:
        """Append a row to the gateway acknowledgement log the head-end reads."""
        self._ack_log.append(
            (
                _date_time(self.now()),
                Data.long_unsigned(node_address),
                Data.octet_string(serial.encode("ascii")),
                _text(operation),
                _text(failure.ack or ""),
                _text(failure.text),
                _text(failure.report(operation)),
            )
        )

    def model(self, index: int) -> MeterModel:
        return self.meters.model(index)

    # -- management logical device ---------------------------------------------------------

    def _management_device(self) -> LogicalDevice:
        device = LogicalDevice(self.spec.serial.encode("ascii"))
        self._clock_object = Clock(tz=self._tz, time_source=self.clock.now)
        public = AccessRights({1: _READ, 2: _READ})
        full_read = AccessRights(dict.fromkeys(range(1, 9), _READ))
        device.add(
            self._clock_object,
            {
                PUBLIC_CLIENT: AccessRights(dict.fromkeys(range(1, 10), _READ)),
                MANAGEMENT_CLIENT: AccessRights(
                    {**dict.fromkeys(range(1, 10), _READ), 2: _READ_WRITE, 3: _READ_WRITE},
                    dict.fromkeys(range(1, 7), MethodAccess.ACCESS),
                ),
            },
        )
        serial = Data.octet_string(self.spec.serial.encode("ascii"))
        both = {PUBLIC_CLIENT: public, MANAGEMENT_CLIENT: public}
        device.add(DataObject(Obis(0, 0, 42, 0, 0, 255), serial), both)
        device.add(DataObject(_SERIAL_COLUMN.logical_name, serial), both)
        device.add(
            _ComputedData(STATUS_WORD_OBIS, lambda: Data.double_long_unsigned(self.status_word())),
            both,
        )
        device.add(
            ProfileGeneric(NODE_TABLE_OBIS, _columns(NODE_TABLE_OBIS, 7), 0, 0xFFFF, self._nodes),
            {MANAGEMENT_CLIENT: full_read},
        )
        self._ack_log = device.add(
            ProfileGeneric(
                ACK_LOG_OBIS,
                [CLOCK_TIME, *_columns(ACK_LOG_OBIS, 6)],
                0,
                _ACK_LOG_ENTRIES,
            ),
            {MANAGEMENT_CLIENT: full_read},
        )
        device.add(
            _NodeManagement(self),
            {
                MANAGEMENT_CLIENT: AccessRights(
                    {1: _READ, 2: _READ_WRITE}, {1: MethodAccess.ACCESS, 2: MethodAccess.ACCESS}
                )
            },
        )
        energy = [CaptureObjectDefinition(3, Obis(1, 0, c, 29, 0, 255), 2) for c in (1, 2, 3, 4)]
        status = CaptureObjectDefinition(1, Obis(0, 0, 96, 10, 1, 255), 2)
        # The meter's billing registers, per energy (A+, A−, R+, R−) the total and T1..T6.
        billing = [
            CaptureObjectDefinition(3, Obis(1, 0, c, 8, t, 255), 2)
            for c in (1, 2, 3, 4)
            for t in range(7)
        ]
        words = [CaptureObjectDefinition(1, Obis(0, 0, 96, 5, w, 255), 2) for w in (1, 2, 3, 4)]
        # The meter's own average voltage and current L1 registers (its measurand profile's).
        measurands = [CaptureObjectDefinition(3, Obis(1, 0, c, 25, 0, 255), 2) for c in (32, 31)]
        profiles = [
            (
                COLLECTED_LOAD_PROFILE_OBIS,
                [CLOCK_TIME, _SERIAL_COLUMN, status, *energy],
                self._load_profile_rows,
                900,
            ),
            (
                COLLECTED_MEASURANDS_OBIS,
                [CLOCK_TIME, _SERIAL_COLUMN, status, *measurands],
                self._measurand_rows,
                900,
            ),
            (
                COLLECTED_DAILY_OBIS,
                [CLOCK_TIME, _SERIAL_COLUMN, *billing],
                self._daily_rows,
                86400,
            ),
            (
                COLLECTED_STATUS_OBIS,
                [CLOCK_TIME, _SERIAL_COLUMN, *words],
                self._status_rows,
                86400,
            ),
        ]
        for obis, columns, fetch, period in profiles:
            if obis == COLLECTED_MEASURANDS_OBIS and not self.collects_measurands:
                continue
            device.add(
                _WindowProfile(obis, columns, fetch, self._last_day, self._tz, period),
                {MANAGEMENT_CLIENT: full_read},
            )
        return device

    def management_associations(self) -> dict[int, ServerAssociation]:
        """Public (16, no security, read-only basics) and management (1, LLS with the
        provisioned MAA password)."""
        return {
            PUBLIC_CLIENT: ServerAssociation(),
            MANAGEMENT_CLIENT: ServerAssociation(
                AuthenticationMechanism.LOW, password=self.spec.maa_password.encode("ascii")
            ),
        }

    def _nodes(self) -> list[Row]:
        return [
            (
                Data.octet_string(node.serial.encode("ascii")),
                Data.long_unsigned(node.node_address),
                Data.boolean(node.commissioned),
                Data.boolean(self._unreachable(node) is None),
                _text("RST" if node.polyphase else node.phase),
                Data.unsigned(node.repeater_level),
                Data.null() if node.last_contact is None else _date_time(node.last_contact),
            )
            for node in sorted(self.nodes.values(), key=lambda n: n.node_address)
        ]

    def _last_day(self) -> Window:
        now = self.clock.now()
        return now - dt.timedelta(days=1), now

    def _collected(self) -> list[Node]:
        """Nodes the DC reads on schedule: commissioned and reachable."""
        return [
            node
            for node in sorted(self.nodes.values(), key=lambda n: n.node_address)
            if node.commissioned and self._unreachable(node) is None
        ]

    def _clamp(self, start: dt.datetime, end: dt.datetime) -> Window | None:
        start = max(start, self.plan.history_start)
        end = min(end, self.clock.now())
        return (start, end) if start < end else None

    def _intervals(
        self,
        start: dt.datetime,
        end: dt.datetime,
        keep: Keep,
        captured: Callable[[MeterModel, dt.datetime, dt.datetime], Sequence[_Captured]],
        values: Callable[[Any], tuple[int, ...]],
        tag: DataTag,
        count: int,
    ) -> list[bytes]:
        """A row per capture period of each collected meter in the window whose clock
        ``keep`` accepts, by capture then node address: clock · serial · status · the
        ``count`` ``values`` of the model's row (as ``tag``)."""
        window = self._clamp(start, end)
        if window is None:
            return []
        rows: list[tuple[dt.datetime, int, bytes]] = []
        append = rows.append
        for node in self._collected():
            serial = node.serial.encode("ascii")
            pack = _row_packer(len(serial), tag, count, True).pack
            address = node.node_address
            for row in captured(self.model(node.index), *window):
                clock = _clock_octets(row.clock)
                if keep(clock):
                    encoded = pack(clock, serial, int(row.status), *values(row))
                    append((row.captured_utc, address, encoded))
        rows.sort(key=itemgetter(0, 1))
        return [encoded for _, _, encoded in rows]

    def _load_profile_rows(self, start: dt.datetime, end: dt.datetime, keep: Keep) -> list[bytes]:
        return self._intervals(
            start,
            end,
            keep,
            MeterModel.load_profile,
            _ENERGIES,
            DataTag.DOUBLE_LONG_UNSIGNED,
            len(_ENERGY_COLUMNS),
        )

    def _measurand_rows(self, start: dt.datetime, end: dt.datetime, keep: Keep) -> list[bytes]:
        return self._intervals(
            start, end, keep, MeterModel.measurands, _l1_measurands, DataTag.LONG_UNSIGNED, 2
        )

    def _closures(
        self,
        start: dt.datetime,
        end: dt.datetime,
        keep: Keep,
        values: Callable[[MeterModel, dt.datetime], Sequence[int]],
        tag: DataTag,
    ) -> list[bytes]:
        """A row per daily closure captured by now in the window whose clock ``keep``
        accepts, in capture order: clock · serial · ``values`` of the meter at the capture
        (as ``tag``); a closure the model refuses (before installation) is left out."""
        window = self._clamp(start, end + dt.timedelta(days=1))
        if window is None:
            return []
        now = self.clock.now()
        first = window[0].astimezone(self._tz).date() - dt.timedelta(days=1)
        last = end.astimezone(self._tz).date()
        found: list[tuple[dt.datetime, int, MeterModel, bytes, bytes]] = []
        for node in self._collected():
            model = self.model(node.index)
            serial = node.serial.encode("ascii")
            day = first
            while day <= last:
                capture = model.billing_capture(day)
                if capture is not None and capture[0] <= now:
                    clock = _clock_octets(capture[1])
                    if keep(clock):
                        found.append((capture[0], node.node_address, model, serial, clock))
                day += dt.timedelta(days=1)
        found.sort(key=itemgetter(0, 1))
        rows = []
        for captured, _, model, serial, clock in found:
            try:
                cells = values(model, captured)
            except MeterModelError:
                continue
            packer = _row_packer(len(serial), tag, len(cells), False)
            rows.append(packer.pack(clock, serial, *cells))
        return rows

    def _daily_rows(self, start: dt.datetime, end: dt.datetime, keep: Keep) -> list[bytes]:
        return self._closures(start, end, keep, _billing_values, DataTag.DOUBLE_LONG_UNSIGNED)

    def _status_rows(self, start: dt.datetime, end: dt.datetime, keep: Keep) -> list[bytes]:
        return self._closures(start, end, keep, _status_values, DataTag.LONG_UNSIGNED)

    # -- connections -------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # Only ``stop`` cancels these tasks; ending quietly keeps asyncio from
            # reporting the cancelled connection callback as an error.
            pass
        except DlmsError as exc:
            _LOG.info("DC %s: peer dropped: %s", self.spec.name, exc)
            self.errors.append(exc)
        except (OSError, ConnectionError) as exc:
            _LOG.info("DC %s: transport error: %s", self.spec.name, exc)
        finally:
            writer.close()
            # ``stop`` may cancel the task again while it waits here (a kept-open idle
            # connection ends this way): quiet too.
            with contextlib.suppress(OSError, ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def _read(
        self, reader: asyncio.StreamReader, watch: _IdleWatch | None, idle: bool
    ) -> bytes:
        """The next bytes; ``b""`` when the client closed, or stayed silent for the idle
        timeout on a connection that carries no association (``idle``: the DC closes it)."""
        if watch is None:
            return await reader.read(_MAX_READ)
        watch.since = watch.loop.time()
        data = await reader.read(_MAX_READ)
        watch.since = None
        if not data and watch.expired and not idle:
            raise DlmsTimeout(f"client silent for {self.idle_timeout} s")
        return data

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve the associations of one connection, one after the other: after a release
        the connection carries none until the next AARQ (or the next first frame) opens
        one, to the management device or through the gateway, as its wPorts say."""
        decoder = WrapperDecoder()
        session: _Session | None = None
        timeout = self.idle_timeout
        watch = None if timeout is None else _IdleWatch(timeout, writer.close)
        try:
            while data := await self._read(reader, watch, session is None):
                for frame in decoder.feed(data):
                    if session is None:
                        session = self._open(frame)
                        session.number, session.opened = self.record.open()
                    elif (frame.source_wport, frame.destination_wport) != (
                        session.client_sap,
                        session.address,
                    ):
                        raise DecodeError(
                            f"frame for wPorts {frame.source_wport}->{frame.destination_wport} "
                            f"on an association of {session.client_sap}->{session.address}"
                        )
                    replies, close = await session.handle(frame.payload)
                    if close or session.released:
                        # Before the answer goes out: the head-end may reuse its permit as
                        # soon as it has the answer.
                        self._end(session)
                    writer.write(
                        b"".join(
                            WrapperFrame(1, session.address, session.client_sap, apdu).to_bytes()
                            for apdu in replies
                        )
                    )
                    await writer.drain()
                    if close:
                        return
                    if session.released:
                        session = None
        finally:
            if watch is not None:
                watch.cancel()
            if session is not None:
                self._end(session)
                session.abort()

    def _end(self, session: _Session) -> None:
        if not session.ended:
            session.ended = True
            self.record.close(session.number, session.address, session.opened)

    def _open(self, frame: WrapperFrame) -> _Session:
        address, client_sap = frame.destination_wport, frame.source_wport
        if address == MANAGEMENT_ADDRESS:
            served = self.management
            connection = ServerConnection(
                served.device,
                served.associations,
                client_sap,
                served.system_title,
                guard=served.guard,
                invocation_counter=served.invocation_counter,
            )
            return _ManagementSession(address, client_sap, connection)
        if address >= GATEWAY_BASE:
            return _GatewaySession(self, address, client_sap)
        raise DecodeError(f"no logical device at address {address}")

    # -- spontaneous messages ------------------------------------------------------------------

    async def send_power_frame(self, event: PowerEvent) -> bytes | None:
        """Send a power off/on frame to the head-end (if one is configured); returns it."""
        if self.head_end is None:
            return None
        self._sequence = (self._sequence + 1) & 0xFFFF
        local = self.now().replace(tzinfo=None, microsecond=0)
        frame = encode_power_frame(PowerFrame(self._sequence, local, self.spec.serial, event))
        await self._send(frame)
        return frame

    async def scan_alarms(self) -> list[tuple[Node, StatusWords]]:
        """Relay new meter alarms (last gasp PUP, clock not aligned ORD, cover open CAPE and
        TC_REM) as DataNotifications; returns what was pushed."""
        alarms = self.new_alarms()
        await self.relay_alarms(alarms)
        return alarms

    def new_alarms(self) -> list[tuple[Node, StatusWords]]:
        """The meters whose watched alarm bits rose since the last scan, with their alarm
        registers; from now on those bits count as seen."""
        found = []
        now = self.clock.now()
        for node in self._collected():
            words = self.model(node.index).alarm_register(now)
            watched = words.masked(_WATCHED_ALARMS)
            seen = node.seen_alarms
            new = (
                watched.normal1 & ~seen.normal1,
                watched.normal2 & ~seen.normal2,
                watched.extended1 & ~seen.extended1,
                watched.extended2 & ~seen.extended2,
            )
            node.seen_alarms = watched
            if any(new):
                found.append((node, words))
        return found

    async def relay_alarms(self, alarms: Sequence[tuple[Node, StatusWords]]) -> None:
        """One DataNotification per meter alarm, from the meter's gateway address; a scan's
        notifications share one TCP connection (one datagram each over UDP), as a DC that
        relays a whole feeder's last gasps does not open a connection per meter."""
        if self.head_end is None or not alarms:
            return
        local = self.now().replace(microsecond=0)
        await self._send(
            *(alarm_notification(n.serial, n.node_address, words, local) for n, words in alarms)
        )

    async def _send(self, *payloads: bytes) -> None:
        target = self.head_end
        if target is None:
            return
        if target.transport == "udp":
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=(target.host, target.port)
            )
            try:
                for payload in payloads:
                    transport.sendto(payload)
            finally:
                transport.close()
            return
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(target.host, target.port), 10.0
            )
        except (OSError, TimeoutError) as exc:
            _LOG.info("DC %s: head-end %s unreachable: %s", self.spec.name, target, exc)
            self.errors.append(exc)
            return
        try:
            writer.write(b"".join(payloads))
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()


def alarm_notification(
    serial: str, node_address: int, words: StatusWords, local: dt.datetime
) -> bytes:
    """A meter alarm as its DC relays it: a DataNotification of {serial, node address,
    normal 1, normal 2, extended 1, extended 2} stamped with the DC's local time, in a
    wrapper frame from the meter's gateway address to the management client."""
    body = Data.structure(
        (
            Data.octet_string(serial.encode("ascii")),
            Data.long_unsigned(node_address),
            Data.long_unsigned(words.normal1),
            Data.long_unsigned(words.normal2),
            Data.long_unsigned(words.extended1),
            Data.long_unsigned(words.extended2),
        )
    )
    notification = DataNotification(body, CosemDateTime.from_datetime(local))
    return WrapperFrame(
        1, gateway_address(node_address), MANAGEMENT_CLIENT, notification.to_bytes()
    ).to_bytes()


class ConcentratorFleet:
    """Every concentrator of a plan, served while entered: the ``FleetRunner`` hook.

    ``FleetRunner(plan, clock, concentrators=functools.partial(ConcentratorFleet,
    head_end=HeadEndAddress("127.0.0.1")))``. The DCs share the runner's ``MeterDevices``;
    keyword arguments go to each ``ConcentratorServer``.
    """

    def __init__(
        self,
        plan: FleetPlan,
        meters: MeterDevices,
        clock: SimClock,
        *,
        link: LinkSettings | None = None,
        head_end: HeadEndAddress | None = None,
        idle_timeout: float | None = 120.0,
        alarm_interval_s: float | None = None,
        collects_measurands: bool = True,
    ) -> None:
        self.concentrators = [
            ConcentratorServer(
                plan,
                spec,
                clock,
                meters=meters,
                link=link,
                head_end=head_end,
                idle_timeout=idle_timeout,
                alarm_interval_s=alarm_interval_s,
                collects_measurands=collects_measurands,
            )
            for spec in plan.concentrators
        ]

    async def __aenter__(self) -> ConcentratorFleet:
        results = await asyncio.gather(
            *(dc.start() for dc in self.concentrators), return_exceptions=True
        )
        for dc, result in zip(self.concentrators, results, strict=True):
            if isinstance(result, BaseException):
                await self.__aexit__()
                raise OSError(
                    f"concentrator {dc.spec.name} cannot listen on {dc.host}:{dc.port}: {result}"
                ) from result
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(*(dc.stop() for dc in self.concentrators), return_exceptions=True)

    def by_name(self, name: str) -> ConcentratorServer:
        for dc in self.concentrators:
            if dc.spec.name == name:
                return dc
        raise KeyError(name)


def _unused_port(host: str) -> int:
    """A port nothing listens on (bound then released), for a DC that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class _IdleWatch:
    """The idle timeout of one connection: ``expire`` runs once the client has stayed
    silent (a read pending, ``since`` set) for ``timeout`` seconds.

    One timer per connection, re-armed only when it fires before the deadline: marking a
    read costs a timestamp, where a timer per read was 5 % of the simulator's instructions
    per meter operation.
    """

    def __init__(self, timeout: float, expire: Callable[[], object]) -> None:
        self.loop = asyncio.get_running_loop()
        self.since: float | None = None
        self.expired = False
        self._timeout = timeout
        self._expire = expire
        self._when = self.loop.time() + timeout
        self._timer = self.loop.call_at(self._when, self._check)

    def _check(self) -> None:
        since = self.since
        if since is not None and since + self._timeout <= self._when:
            self.expired = True
            self._expire()
            return
        self._when = (self.loop.time() if since is None else since) + self._timeout
        self._timer = self.loop.call_at(self._when, self._check)

    def cancel(self) -> None:
        self._timer.cancel()


# -- sessions ---------------------------------------------------------------------------------


class _Session:
    """One association of a TCP connection: to the management LD or through the gateway."""

    def __init__(self, address: int, client_sap: int) -> None:
        self.address = address
        self.client_sap = client_sap
        self.number = 0
        self.opened = 0.0
        self.released = False  # the client released the association (RLRQ answered)
        self.ended = False  # closed in the DC's record

    async def handle(self, apdu: bytes) -> tuple[list[bytes], bool]:
        """Replies to send, and whether to close the connection after them."""
        raise NotImplementedError

    def abort(self) -> None:
        """The transport is gone."""


class _ManagementSession(_Session):
    def __init__(self, address: int, client_sap: int, connection: ServerConnection) -> None:
        super().__init__(address, client_sap)
        self.connection = connection

    async def handle(self, apdu: bytes) -> tuple[list[bytes], bool]:
        try:
            event = self.connection.receive_apdu(apdu)
        except DlmsError:
            return self.connection.data_to_send(), True
        self.released = isinstance(event, Released)
        return self.connection.data_to_send(), False

    def abort(self) -> None:
        self.connection.abort()


class _MeterRefused(Exception):
    """The meter's own server failed the request; ``replies`` is what it queued."""

    def __init__(self, replies: list[bytes], wrong_key: bool) -> None:
        super().__init__("meter refused")
        self.replies = replies
        self.wrong_key = wrong_key


_AARQ_TAG = 0x60


def _is_aarq(apdu: bytes) -> bool:
    return apdu[:1] == bytes((_AARQ_TAG,))


class _GatewaySession(_Session):
    """End-to-end association with a meter, relayed over the PLC link."""

    def __init__(self, dc: ConcentratorServer, address: int, client_sap: int) -> None:
        super().__init__(address, client_sap)
        self.dc = dc
        self.node_address = address - GATEWAY_BASE
        self.connection: ServerConnection | None = None

    async def handle(self, apdu: bytes) -> tuple[list[bytes], bool]:
        dc = self.dc
        operation = "GATEWAY_ASSOCIATE" if _is_aarq(apdu) else "GATEWAY_RELAY"
        node = dc.nodes.get(self.node_address)
        failure = dc.gateway_failure(self.node_address)
        if node is not None and failure is None:
            try:
                replies = await dc.link.exchange(
                    self.node_address, apdu, self._answer, node.repeater_level
                )
            except LinkBusy:
                failure = GatewayFailure.of_key(ErrorKey.RESPONSE_NOT_PRESENT_YET)
            except _MeterRefused as refused:
                if not refused.wrong_key:
                    return refused.replies, True
                dc.log_failure(self.node_address, node.serial, operation, _WRONG_KEY)
                return refused.replies or [_refusal(apdu, _WRONG_KEY)], True
            else:
                node.last_contact = dc.now()
                return replies, False
        elif node is not None and failure is not None and failure.ack in _TRIED_CODES:
            # The DC really tried to reach the node: the attempt holds the medium.
            await dc.link.attempt(self.node_address, apdu, node.repeater_level)
        if failure is None:  # unreachable: gateway_failure covers a missing node
            raise ValueError(f"node {self.node_address} neither served nor failed")
        dc.log_failure(self.node_address, node.serial if node else "", operation, failure)
        return [_refusal(apdu, failure)], True

    def _answer(self, apdu: bytes) -> list[bytes]:
        node = self.dc.nodes[self.node_address]
        connection = self.connection
        if connection is None:
            served = self.dc.meters.served(node.index)
            connection = self.connection = ServerConnection(
                _BreakerWitness(served.device, self._note_breaker),
                served.associations,
                self.client_sap,
                served.system_title,
                guard=served.guard,
                invocation_counter=served.invocation_counter,
            )
        try:
            event = connection.receive_apdu(apdu)
        except DlmsError as exc:
            # A glo-InitiateRequest the meter cannot decipher: the head-end's keys are not
            # the meter's.
            wrong_key = isinstance(exc, CipheringError) and _is_aarq(apdu)
            raise _MeterRefused(connection.data_to_send(), wrong_key) from exc
        replies = connection.data_to_send()
        self.released = isinstance(event, Released)
        if (
            isinstance(event, AssociationRefused)
            and event.diagnostic is AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE
            and not _is_aarq(apdu)
        ):
            # HLS pass 3 failed: the head-end's GMAC key is not the meter's. (An AARQ
            # refused for a wrong LLS password is the meter's own answer, not a key fault.)
            self.dc.log_failure(self.node_address, node.serial, "GATEWAY_ASSOCIATE", _WRONG_KEY)
        return replies

    def _note_breaker(self, operation: str, before: int, after: int) -> None:
        node = self.dc.nodes[self.node_address]
        self.dc.record.breaker.append(
            BreakerAccess(self.number, node.serial, operation, before, after, time.monotonic())
        )

    def abort(self) -> None:
        if self.connection is not None:
            self.connection.abort()


class _BreakerWitness(LogicalDevice):
    """A meter's logical device as the gateway relays to it: every access to its disconnect
    control goes to ``note(operation, state before, state after)``; everything is served by
    ``inner``."""

    def __init__(self, inner: LogicalDevice, note: Callable[[str, int, int], None]) -> None:
        super().__init__(inner.name, inner.clock_source)
        self._inner = inner
        self._note = note

    def _breaker(self, class_id: int, obis: Obis) -> DisconnectControl | None:
        if class_id != BREAKER_CLASS:
            return None
        try:
            found = self._inner.find(class_id, obis)
        except CosemAccessError:
            return None
        return found if isinstance(found, DisconnectControl) else None

    @contextlib.contextmanager
    def _noting(self, class_id: int, obis: Obis, operation: str) -> Iterator[None]:
        breaker = self._breaker(class_id, obis)
        before = int(breaker.control_state) if breaker is not None else 0
        try:
            yield
        finally:
            if breaker is not None:
                self._note(operation, before, int(breaker.control_state))

    def get(
        self,
        class_id: int,
        obis: Obis,
        attribute: int,
        selective_access: SelectiveAccessDescriptor | None = None,
        *,
        client_sap: int | None = None,
        authenticated: bool = False,
    ) -> Data:
        with self._noting(class_id, obis, "read"):
            return self._inner.get(
                class_id,
                obis,
                attribute,
                selective_access,
                client_sap=client_sap,
                authenticated=authenticated,
            )

    def set(
        self,
        class_id: int,
        obis: Obis,
        attribute: int,
        value: Data,
        *,
        client_sap: int | None = None,
        authenticated: bool = False,
    ) -> None:
        with self._noting(class_id, obis, "set"):
            self._inner.set(
                class_id, obis, attribute, value, client_sap=client_sap, authenticated=authenticated
            )

    def action(
        self,
        class_id: int,
        obis: Obis,
        method: int,
        parameters: Data | None = None,
        *,
        client_sap: int | None = None,
        authenticated: bool = False,
    ) -> Data | None:
        operation = _BREAKER_METHODS.get(method, f"method {method}")
        with self._noting(class_id, obis, operation):
            return self._inner.action(
                class_id,
                obis,
                method,
                parameters,
                client_sap=client_sap,
                authenticated=authenticated,
            )


_BREAKER_METHODS = {1: "disconnect", 2: "reconnect"}
_WRONG_KEY = GatewayFailure.of_key(ErrorKey.WRONG_KEY)
_TRIED_CODES = frozenset({"TB_ACK_21", "TB_ACK_40", "TB_ACK_41", "TB_ACK_42"})


def _refusal(apdu: bytes, failure: GatewayFailure) -> bytes:
    """The DC's own answer: a rejected AARE to an AARQ, else an ExceptionResponse."""
    if _is_aarq(apdu):
        result = (
            AssociationResult.REJECTED_TRANSIENT
            if failure.retryable
            else AssociationResult.REJECTED_PERMANENT
        )
        diagnostic: AcseServiceUserDiagnostic | AcseServiceProviderDiagnostic
        if failure.key is ErrorKey.WRONG_KEY:
            diagnostic = AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE
        else:
            diagnostic = AcseServiceProviderDiagnostic.NO_REASON_GIVEN
        return Aare(result, diagnostic).to_bytes()
    return ExceptionResponse(
        StateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.OPERATION_NOT_POSSIBLE
    ).to_bytes()
