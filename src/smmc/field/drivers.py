"""Drivers: DLMS sessions with point-to-point meters, with concentrators' management logical
device, and with meters through a concentrator's gateway.

`FieldDrivers.meter(...)` and `FieldDrivers.concentrator(...)` are async context managers:
each takes its right to a session from the `SessionManager`, opens the credentials, opens
one association and yields a session object on which several operations run (a bundle).
Every failure leaves as `FieldFailure` carrying the utility's catalog row
(`[OPERATION] [ACK CODE] TEXT`): a refused TCP connection to a concentrator is
"Concentrator is unreachable [Open socket is failed]"; a refusal through the gateway is
looked up in the concentrator's acknowledgement log, whose row names the exact code.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from smmc.dlms.apdu import AuthenticationMechanism
from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.client import ClientSettings, DlmsClient, Link, SecurityPolicy
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import (
    AccessDenied,
    AssociationRejected,
    CipheringError,
    DlmsError,
    DlmsTimeout,
    ProtocolError,
    ReplayError,
    ServiceError,
)
from smmc.dlms.obis import Obis
from smmc.dlms.profiles import DecodeMap, load_builtin
from smmc.dlms.security import InvocationCounterGuard
from smmc.domain.error_catalog import ErrorKey, FieldError, parse_error
from smmc.field.batching import Coalescer
from smmc.field.credentials import (
    ConcentratorAccess,
    CounterKey,
    CounterReservation,
    CounterStore,
    CredentialStore,
    MeterAccess,
)
from smmc.field.errors import FieldFailure, UnknownDevice
from smmc.field.links import LinkPool
from smmc.field.sessions import SessionManager
from smmc.store.secrets import SecretBox

__all__ = [
    "ACK_LOG",
    "BREAKER",
    "CLOCK",
    "GATEWAY_BASE",
    "AckRow",
    "ConcentratorSession",
    "DriverSettings",
    "FieldDrivers",
    "MeterSession",
    "NodeRow",
    "Reading",
    "gateway_address",
]

# Addressing of the concentrator (docs/protocol/concentrator.md).
GATEWAY_BASE = 0x1000
MANAGEMENT_ADDRESS = 1
DC_MANAGEMENT_SAP = 1
PUBLIC_SAP = 16
# The meter's logical device and the head-end's HLS association (docs/protocol/device-profiles.md).
METER_ADDRESS = 1
HEAD_END_SAP = 48

CLOCK = Obis(0, 0, 1, 0, 0, 255)
BREAKER = Obis(0, 0, 96, 3, 10, 255)
LOAD_PROFILE = Obis(1, 0, 99, 1, 0, 255)
MEASURAND_PROFILE = Obis(1, 0, 99, 2, 0, 255)
METER_INVOCATION_COUNTER = Obis(0, 0, 43, 1, 3, 255)
STATUS_WORDS = tuple(Obis(0, 0, 96, 5, w, 255) for w in (1, 2, 3, 4))
DC_STATUS_WORD = Obis(0, 0, 96, 5, 0, 255)
NODE_TABLE = Obis(0, 128, 96, 1, 0, 255)
ACK_LOG = Obis(0, 128, 96, 2, 0, 255)
NODE_MANAGEMENT = Obis(0, 128, 96, 3, 0, 255)
NODE_MANAGEMENT_CLASS = 128
COLLECTED_LOAD_PROFILE = Obis(0, 128, 99, 1, 0, 255)
COLLECTED_MEASURANDS = Obis(0, 128, 99, 2, 0, 255)
COLLECTED_DAILY = Obis(0, 128, 98, 1, 0, 255)
COLLECTED_STATUS_WORDS = Obis(0, 128, 99, 98, 0, 255)
MEASURANDS = tuple(
    Obis.parse(text)
    for text in (
        "1.0.1.7.0.255",
        "1.0.32.25.0.255",
        "1.0.31.25.0.255",
        "1.0.52.25.0.255",
        "1.0.51.25.0.255",
        "1.0.72.25.0.255",
        "1.0.71.25.0.255",
    )
)
ACK_LOOKBACK = dt.timedelta(minutes=10)


def gateway_address(node_address: int) -> int:
    """The wrapper wPort that reaches the meter at ``node_address`` through its DC."""
    return GATEWAY_BASE + node_address


@dataclass(frozen=True, slots=True)
class DriverSettings:
    """``system_title`` is this head-end's (one per installation: the meters' replay guards
    key on it); ``gateway_timeout`` covers a PLC medium shared with other sessions.

    ``reuse_connections``: consecutive sessions with a concentrator (gateway or management)
    share one TCP connection (`smmc.field.links`), kept idle at most
    ``idle_connection_timeout`` seconds — below the DC's own idle timeout; the
    concentrators in ``fresh_connections`` (ids) get a new connection per session, for a
    DC that does not take a new association after a release."""

    system_title: bytes = b"SMMC\x00\x00\x00\x01"
    timeout: float = 10.0
    gateway_timeout: float = 60.0
    connect_timeout: float = 5.0
    max_pdu_size: int = 1024
    reuse_connections: bool = True
    idle_connection_timeout: float = 20.0
    fresh_connections: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Reading:
    """One register value in its unit (raw × 10^scaler) and the DLMS unit code."""

    obis: str
    value: float | int
    unit: int | None


@dataclass(frozen=True, slots=True)
class NodeRow:
    serial: str
    node_address: int
    commissioned: bool
    reachable: bool
    phase: str
    repeater_level: int
    last_contact: dt.datetime | None


@dataclass(frozen=True, slots=True)
class AckRow:
    at: dt.datetime
    node_address: int
    serial: str
    operation: str
    code: str
    text: str
    report: str


def _text(value: Data) -> str:
    raw = value.value
    if isinstance(raw, bytes):
        return raw.decode("ascii", "replace")
    if isinstance(raw, str):
        return raw
    return "" if raw is None else str(raw)


def _int(value: Data) -> int:
    raw = value.value
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise FieldFailure(FieldError.of(ErrorKey.UNKNOWN, f"expected an integer, got {value}"))
    return raw


def _stamp(value: Data) -> dt.datetime | None:
    raw = value.value
    if not isinstance(raw, bytes) or len(raw) != 12:
        return None
    try:
        return CosemDateTime.from_bytes(raw).to_datetime()
    except (DlmsError, ValueError):
        return None


def _items(value: Data) -> tuple[Data, ...]:
    if value.tag not in (DataTag.ARRAY, DataTag.STRUCTURE) or not isinstance(value.value, tuple):
        raise FieldFailure(FieldError.of(ErrorKey.UNKNOWN, f"expected a table, got {value.tag}"))
    return value.value


def _date_time(moment: dt.datetime) -> Data:
    return Data.octet_string(CosemDateTime.from_datetime(moment).to_bytes())


def _plain(value: Data) -> Any:
    stamp = _stamp(value) if value.tag is DataTag.OCTET_STRING else None
    if stamp is not None:
        return stamp.isoformat()
    raw = value.value
    if isinstance(raw, bytes):
        return raw.decode("ascii", "replace")
    if isinstance(raw, tuple):
        return [_plain(item) for item in raw]
    return raw


def _unexpected(exc: BaseException, operation: str) -> FieldError:
    """A failure no catalog row describes, named by the operation that met it."""
    return FieldError.of(ErrorKey.UNKNOWN, f"[{operation}] {type(exc).__name__}: {exc}")


class _DeviceGuard(InvocationCounterGuard):
    """Replay guard of one device: the device's counter whatever system title it shows,
    so the stored value (one per device and association) restores it."""

    def __init__(self, last: int | None) -> None:
        super().__init__()
        self.value = last

    def last(self, system_title: bytes) -> int | None:
        return self.value

    def check(self, system_title: bytes, invocation_counter: int) -> None:
        if self.value is not None and invocation_counter <= self.value:
            raise ReplayError(
                f"invocation counter {invocation_counter} not above last accepted {self.value}"
            )
        super().check(system_title, invocation_counter)

    def accept(self, system_title: bytes, invocation_counter: int) -> None:
        self.check(system_title, invocation_counter)
        self.value = invocation_counter


class MeterSession:
    """Operations on one meter inside one association."""

    def __init__(self, client: DlmsClient, access: MeterAccess, decode: DecodeMap) -> None:
        self.client = client
        self.access = access
        self._decode = decode

    async def clock(self) -> dt.datetime:
        value = await self.client.get(8, CLOCK, 2)
        stamp = _stamp(value)
        if stamp is None:
            raise FieldFailure(FieldError.of(ErrorKey.UNKNOWN, "the meter clock is not a date"))
        return stamp

    async def set_clock(self, moment: dt.datetime) -> None:
        await self.client.set(8, CLOCK, 2, _date_time(moment))

    async def breaker_state(self) -> int:
        """Disconnect control state: 0 disconnected, 1 connected, 2 ready for reconnection."""
        return _int(await self.client.get(70, BREAKER, 3))

    async def disconnect(self) -> None:
        await self.client.action(70, BREAKER, 1, Data.integer(0))

    async def reconnect(self) -> None:
        await self.client.action(70, BREAKER, 2, Data.integer(0))

    async def registers(self, obis_codes: Sequence[Obis]) -> list[Reading]:
        """Registers (class 3, attribute 2) in one with-list request, scaled per profile."""
        results = await self.client.get_many([(3, obis, 2) for obis in obis_codes])
        readings = []
        for obis, result in zip(obis_codes, results, strict=True):
            if not isinstance(result, Data):
                raise FieldFailure(
                    FieldError.of(ErrorKey.UNKNOWN, f"[READ] {obis}: {result.name.lower()}")
                )
            info = self._decode.info(obis, 2)
            value = info.scale(result) if info else _int(result)
            readings.append(Reading(str(obis), value, info.unit if info else None))
        return readings

    async def status_words(self) -> tuple[int, int, int, int]:
        results = await self.client.get_many([(1, obis, 2) for obis in STATUS_WORDS])
        words = [r for r in results if isinstance(r, Data)]
        if len(words) != 4:
            raise FieldFailure(FieldError.of(ErrorKey.UNKNOWN, "[READ] status words refused"))
        normal1, normal2, extended1, extended2 = (_int(w) for w in words)
        return normal1, normal2, extended1, extended2

    async def profile(self, obis: Obis, start: dt.datetime, end: dt.datetime) -> list[list[Any]]:
        rows = await self.client.read_profile(obis, start, end)
        return [[_plain(cell) for cell in row] for row in rows]


class ConcentratorSession:
    """Operations on a concentrator's management logical device (LLS, client 1)."""

    def __init__(self, client: DlmsClient, access: ConcentratorAccess) -> None:
        self.client = client
        self.access = access

    async def clock(self) -> dt.datetime:
        stamp = _stamp(await self.client.get(8, CLOCK, 2))
        if stamp is None:
            raise FieldFailure(FieldError.of(ErrorKey.UNKNOWN, "the DC clock is not a date"))
        return stamp

    async def set_clock(self, moment: dt.datetime) -> None:
        await self.client.set(8, CLOCK, 2, _date_time(moment))

    async def status_word(self) -> int:
        return _int(await self.client.get(1, DC_STATUS_WORD, 2))

    async def node_table(self) -> list[NodeRow]:
        rows = []
        for row in _items(await self.client.get(7, NODE_TABLE, 2)):
            cells = _items(row)
            rows.append(
                NodeRow(
                    serial=_text(cells[0]),
                    node_address=_int(cells[1]),
                    commissioned=bool(cells[2].value),
                    reachable=bool(cells[3].value),
                    phase=_text(cells[4]),
                    repeater_level=_int(cells[5]),
                    last_contact=_stamp(cells[6]),
                )
            )
        return rows

    async def ack_log(self, start: dt.datetime, end: dt.datetime) -> list[AckRow]:
        rows = []
        for cells in await self.client.read_profile(ACK_LOG, start, end):
            at = _stamp(cells[0])
            if at is None:
                continue
            rows.append(
                AckRow(
                    at=at,
                    node_address=_int(cells[1]),
                    serial=_text(cells[2]),
                    operation=_text(cells[3]),
                    code=_text(cells[4]),
                    text=_text(cells[5]),
                    report=_text(cells[6]),
                )
            )
        return rows

    async def last_failure(self, node_address: int) -> FieldError | None:
        """The most recent acknowledgement-log row of ``node_address``, as a catalog row."""
        now = await self.clock()
        rows = [
            row
            for row in await self.ack_log(now - ACK_LOOKBACK, now + dt.timedelta(minutes=1))
            if row.node_address == node_address
        ]
        return parse_error(rows[-1].report) if rows else None

    async def _node_method(self, method: int, serial: str) -> tuple[bool, str]:
        result = await self.client.action(
            NODE_MANAGEMENT_CLASS, NODE_MANAGEMENT, method, Data.octet_string(serial.encode())
        )
        if result is None:
            raise FieldFailure(FieldError.of(ErrorKey.UNKNOWN, "commissioning gave no answer"))
        done, text = _items(result)
        return bool(done.value), _text(text)

    async def commission(self, serial: str) -> tuple[bool, str]:
        return await self._node_method(1, serial)

    async def decommission(self, serial: str) -> tuple[bool, str]:
        return await self._node_method(2, serial)

    async def set_procedure_enabled(self, enabled: bool) -> None:
        await self.client.set(NODE_MANAGEMENT_CLASS, NODE_MANAGEMENT, 2, Data.boolean(enabled))

    async def collected(self, obis: Obis, start: dt.datetime, end: dt.datetime) -> list[list[Any]]:
        rows = await self.client.read_profile(obis, start, end)
        return [[_plain(cell) for cell in row] for row in rows]


def _socket_failure(exc: BaseException, via_concentrator: bool) -> FieldError:
    if via_concentrator:
        if isinstance(exc, DlmsTimeout):
            return FieldError.of(ErrorKey.CONCENTRATOR_UNREACHABLE, "Connection timed out")
        return FieldError.of(ErrorKey.CONCENTRATOR_SOCKET_FAILED)
    return FieldError.of(ErrorKey.NODE_NOT_REACHABLE, "Open socket is failed")


K = TypeVar("K")
V = TypeVar("V")


async def _batched(coalescer: Coalescer[K, V | UnknownDevice], item: K) -> V:
    found = await coalescer.submit(item)
    if isinstance(found, UnknownDevice):
        raise UnknownDevice(str(found))
    return found


class FieldDrivers:
    """Entry point of the field layer for executors (one per worker process)."""

    def __init__(
        self,
        engine: Engine,
        box: SecretBox,
        sessions: SessionManager | None = None,
        settings: DriverSettings | None = None,
    ) -> None:
        self.engine = engine
        self.credentials = CredentialStore(engine, box)
        self.counters = CounterStore(engine)
        self.sessions = sessions or SessionManager()
        self.settings = settings or DriverSettings()
        self.decode = DecodeMap(load_builtin("nexy_m"))
        self._accesses = Coalescer(self._open_meters)
        self._reservations = Coalescer(self.counters.reserve_many)
        self._guards = Coalescer(self.counters.save_received_many)
        self.links = LinkPool(self.settings.idle_connection_timeout)
        self.resynchronised = 0

    def close(self) -> None:
        """Close the idle connections kept for the next sessions (the worker stops)."""
        self.links.close()

    @asynccontextmanager
    async def _dlms(
        self,
        host: str,
        port: int,
        settings: ClientSettings,
        concentrator: ConcentratorAccess | None,
        guard: InvocationCounterGuard | None = None,
        on_invocation_counter: Callable[[int], None] | None = None,
    ) -> AsyncIterator[DlmsClient]:
        """One association at ``host:port``; with a concentrator (``concentrator``, whose
        permit the caller holds) over a connection kept from its previous session when
        the settings allow, and kept for its next one after a clean release."""
        endpoint = (host, port)
        keep = 0  # idle connections kept for the endpoint: up to the DC's permits, or none
        if (
            concentrator is not None
            and self.settings.reuse_connections
            and concentrator.id not in self.settings.fresh_connections
        ):
            keep = self.sessions.permits_of(concentrator.id)
        timeout = settings.connect_timeout
        link = await (self.links.take(endpoint, timeout) if keep else Link.open(*endpoint, timeout))
        try:
            async with DlmsClient.over(
                link,
                settings,
                guard=guard,
                on_invocation_counter=on_invocation_counter,
                keep=keep > 0,
            ) as client:
                yield client
        finally:
            if keep:
                self.links.give_back(endpoint, link, keep)

    # -- concentrators ------------------------------------------------------------------------

    def _management_settings(self, access: ConcentratorAccess) -> ClientSettings:
        return ClientSettings(
            client_sap=DC_MANAGEMENT_SAP,
            server_logical_address=MANAGEMENT_ADDRESS,
            mechanism=AuthenticationMechanism.LOW,
            password=access.password,
            timeout=self.settings.timeout,
            connect_timeout=self.settings.connect_timeout,
            max_pdu_size=self.settings.max_pdu_size,
        )

    @asynccontextmanager
    async def concentrator(
        self, concentrator_id: int, priority: int = 0
    ) -> AsyncIterator[ConcentratorSession]:
        """One management session with a concentrator (counts against its permits)."""
        async with self.sessions.session(concentrator_id=concentrator_id, priority=priority):
            access = await asyncio.to_thread(self.credentials.concentrator, concentrator_id)
            async with self._management(access) as session:
                yield session

    @asynccontextmanager
    async def _management(self, access: ConcentratorAccess) -> AsyncIterator[ConcentratorSession]:
        async with AsyncExitStack() as stack:
            try:
                client = await stack.enter_async_context(
                    self._dlms(access.host, access.port, self._management_settings(access), access)
                )
            except (OSError, DlmsTimeout) as exc:
                raise FieldFailure(_socket_failure(exc, True)) from exc
            except DlmsError as exc:
                raise FieldFailure(_unexpected(exc, "ASSOCIATE")) from exc
            try:
                yield ConcentratorSession(client, access)
            except (OSError, DlmsTimeout) as exc:
                raise FieldFailure(
                    FieldError.of(ErrorKey.CONCENTRATOR_UNREACHABLE, "Connection lost")
                ) from exc
            except DlmsError as exc:
                raise FieldFailure(_unexpected(exc, "MANAGEMENT")) from exc

    async def concentrator_time(self, access: ConcentratorAccess) -> dt.datetime:
        """The DC clock, read while a gateway session through it holds its permit."""
        async with self._management(access) as management:
            return await management.clock()

    # -- meters -------------------------------------------------------------------------------

    async def meter_access(self, meter_id: int) -> MeterAccess:
        """The meter's address and opened keys: from memory, else read with those of the
        other sessions starting now (`_open_meters`)."""
        if (cached := self.credentials.cached(meter_id)) is not None:
            return cached
        return await _batched(self._accesses, meter_id)

    def _open_meters(self, meter_ids: list[int]) -> list[MeterAccess | UnknownDevice]:
        """Blocking: the credentials of meters about to have a session (one query) and, for
        those this process keeps no counters of, a counter block each (one transaction), so
        a session's start costs one thread hop, not two."""
        accesses = self.credentials.meters(meter_ids)
        keys = [
            key
            for meter_id, access in zip(meter_ids, accesses, strict=True)
            if isinstance(access, MeterAccess)
            and not self.counters.holds(key := ("meter", meter_id, HEAD_END_SAP))
        ]
        if keys:
            self.counters.prefetch(keys)
        return accesses

    async def _reserve_counters(self, key: CounterKey) -> CounterReservation:
        """Sending counters for one session: the rest of this process's block, else a block
        reserved with those of the other sessions starting now (one transaction)."""
        if (kept := self.counters.take_kept(key)) is not None:
            return kept
        return await _batched(self._reservations, key)

    def _meter_settings(
        self, access: MeterAccess, next_counter: int, public: bool
    ) -> ClientSettings:
        address = (
            gateway_address(access.node_address or 0) if access.via_concentrator else METER_ADDRESS
        )
        timeout = (
            self.settings.gateway_timeout if access.via_concentrator else self.settings.timeout
        )
        if public:
            return ClientSettings(
                client_sap=PUBLIC_SAP,
                server_logical_address=address,
                timeout=timeout,
                connect_timeout=self.settings.connect_timeout,
            )
        return ClientSettings(
            client_sap=HEAD_END_SAP,
            server_logical_address=address,
            mechanism=AuthenticationMechanism.HIGH_GMAC,
            encryption_key=access.encryption_key,
            authentication_key=access.authentication_key,
            system_title=self.settings.system_title,
            security=SecurityPolicy(authenticated=True, encrypted=True),
            invocation_counter=next_counter,
            max_pdu_size=self.settings.max_pdu_size,
            timeout=timeout,
            connect_timeout=self.settings.connect_timeout,
        )

    @staticmethod
    def _endpoint(access: MeterAccess) -> tuple[str, int]:
        if access.concentrator is not None:
            return access.concentrator.host, access.concentrator.port
        if access.host is None or access.port is None:
            raise FieldFailure(
                FieldError.of(ErrorKey.UNKNOWN, f"meter {access.serial} has no address")
            )
        return access.host, access.port

    @asynccontextmanager
    async def meter(
        self, meter_id: int, concentrator_id: int | None = None, priority: int = 0
    ) -> AsyncIterator[MeterSession]:
        """One HLS-GMAC association with a meter, point to point or through its DC."""
        access = await self.meter_access(meter_id)
        dc_id = access.concentrator.id if access.concentrator is not None else concentrator_id
        async with self.sessions.session(
            meter_id=meter_id, concentrator_id=dc_id, priority=priority
        ):
            key: CounterKey = ("meter", meter_id, HEAD_END_SAP)
            reservation = await self._reserve_counters(key)
            guard = _DeviceGuard(reservation.last_received)
            limit = reservation.limit

            def on_counter(next_value: int) -> None:
                nonlocal limit
                if next_value >= limit:  # a long session: reserve the next block first
                    limit = self.counters.extend("meter", meter_id, HEAD_END_SAP)

            stack = AsyncExitStack()
            client: DlmsClient | None = None
            try:
                client = await self._associate(stack, access, reservation.first, guard, on_counter)
                try:
                    yield MeterSession(client, access, self.decode)
                except (OSError, DlmsError) as exc:
                    raise FieldFailure(await self._meter_failure(exc, access, "RELAY")) from exc
            except FieldFailure as failure:
                if failure.error.key is ErrorKey.WRONG_KEY:
                    self.credentials.forget(meter_id)
                raise
            finally:
                with contextlib.suppress(DlmsError, OSError):
                    await stack.aclose()
                if client is not None:  # else the counters the AARQ used are unknown: skip
                    self.counters.give_back(
                        "meter",
                        meter_id,
                        HEAD_END_SAP,
                        CounterReservation(client.invocation_counter, limit, guard.value),
                    )
                await self._guards.submit((key, guard.value))

    async def _associate(
        self,
        stack: AsyncExitStack,
        access: MeterAccess,
        first_counter: int,
        guard: _DeviceGuard,
        on_counter: Callable[[int], None],
    ) -> DlmsClient:
        host, port = self._endpoint(access)
        resync_left = True
        while True:
            try:
                return await stack.enter_async_context(
                    self._dlms(
                        host,
                        port,
                        self._meter_settings(access, first_counter, public=False),
                        access.concentrator,
                        guard,
                        on_counter,
                    )
                )
            except ReplayError as exc:
                # Our stored copy of the meter's counter is ahead of the meter (a replaced
                # or reset meter): read its counter publicly and try once more.
                if not resync_left:
                    raise FieldFailure(await self._meter_failure(exc, access, "ASSOCIATE")) from exc
                guard.value = await self._meter_counter(access)
                resync_left = False
                self.resynchronised += 1
                first_counter += 1  # the refused AARQ may have used this one
            except (OSError, DlmsError) as exc:
                raise FieldFailure(await self._meter_failure(exc, access, "ASSOCIATE")) from exc

    async def _meter_counter(self, access: MeterAccess) -> int | None:
        """The meter's current sending counter, read by the public client (so the next APDU
        it sends, with this counter, is accepted)."""
        host, port = self._endpoint(access)
        try:
            async with self._dlms(
                host, port, self._meter_settings(access, 1, public=True), access.concentrator
            ) as public:
                value = _int(await public.get(1, METER_INVOCATION_COUNTER, 2))
        except (OSError, DlmsError) as exc:
            raise FieldFailure(await self._meter_failure(exc, access, "RESYNC")) from exc
        return value - 1 if value > 0 else None

    async def _meter_failure(
        self, exc: BaseException, access: MeterAccess, stage: str
    ) -> FieldError:
        """The catalog row of a failed meter session."""
        dc = access.concentrator
        if isinstance(exc, OSError) and stage == "ASSOCIATE":
            return _socket_failure(exc, dc is not None)
        if isinstance(exc, DlmsTimeout) and stage == "ASSOCIATE" and dc is None:
            return FieldError.of(ErrorKey.NODE_NOT_REACHABLE, "no answer")
        if dc is not None and isinstance(exc, DlmsError | OSError):
            logged = await self._gateway_failure(dc, access.node_address or 0)
            if logged is not None:
                return logged
            if isinstance(exc, DlmsTimeout):
                return FieldError.of(ErrorKey.RESPONSE_NOT_PRESENT_YET)
        if isinstance(exc, AssociationRejected) and exc.diagnostic == 13:
            return FieldError.of(ErrorKey.WRONG_KEY)
        if isinstance(exc, ProtocolError) and stage == "ASSOCIATE" and dc is None:
            # A meter drops a ciphered AARQ it cannot decipher without answering: the
            # head-end's keys are not the meter's (the TCP connection itself was accepted).
            return FieldError.of(ErrorKey.WRONG_KEY, "association request dropped by the meter")
        if isinstance(exc, CipheringError) and not isinstance(exc, ReplayError):
            return FieldError.of(ErrorKey.WRONG_KEY)
        if isinstance(exc, AccessDenied | ServiceError):
            return _unexpected(exc, stage)
        if isinstance(exc, DlmsTimeout | OSError):
            return FieldError.of(ErrorKey.NODE_NOT_REACHABLE, "no answer")
        if isinstance(exc, ProtocolError):
            # The association broke mid-session (most often the connection dropped): the
            # outcome of the last request is unknown, so it is worth a retry that reads
            # the device state first.
            return FieldError.of(ErrorKey.NODE_NOT_REACHABLE, f"association lost: {exc}")
        return _unexpected(exc, stage)

    async def _gateway_failure(
        self, dc: ConcentratorAccess, node_address: int
    ) -> FieldError | None:
        """Ask the DC why: its acknowledgement log has the row of our node (the permit of
        this session covers the extra management connection)."""
        try:
            async with self._management(dc) as management:
                return await management.last_failure(node_address)
        except FieldFailure as failure:
            if failure.error.key is ErrorKey.CONCENTRATOR_SOCKET_FAILED:
                return failure.error
            return None
