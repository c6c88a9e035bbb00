"""Device credentials and invocation counters.

Keys and passwords are opened with the `SecretBox` only when a session needs them and live
in memory for that session; nothing clear is written back. Our sending invocation counter
is reserved from the database in blocks before use, so a crash skips counters but never
reuses one (a reused counter would reuse a GCM nonce). The device's last accepted counter
(our replay guard) is stored when a session ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from smmc.field.errors import UnknownDevice
from smmc.store import tables as t
from smmc.store.secrets import SecretBox, SecretKeyError

__all__ = [
    "COUNTER_BLOCK",
    "ConcentratorAccess",
    "CounterReservation",
    "CounterStore",
    "CredentialStore",
    "MeterAccess",
]

COUNTER_BLOCK = 256
"""Sending counters reserved per session; a longer session reserves another block."""

_MAX_COUNTER = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ConcentratorAccess:
    """What a session with a concentrator's management logical device needs."""

    id: int
    name: str
    serial: str | None
    host: str
    port: int
    password: bytes
    time_zone: str


@dataclass(frozen=True, slots=True)
class MeterAccess:
    """What a session with a meter needs: point to point (``host``/``port`` of the meter)
    or through its concentrator's gateway (``concentrator`` and ``node_address``)."""

    id: int
    serial: str
    encryption_key: bytes
    authentication_key: bytes
    host: str | None
    port: int | None
    concentrator: ConcentratorAccess | None
    node_address: int | None

    @property
    def via_concentrator(self) -> bool:
        return self.concentrator is not None


class CredentialStore:
    """Reads device addresses and opens their sealed secrets (blocking: run in a thread).

    Opened meter credentials are kept in this process's memory for ``ttl`` seconds (0: not
    at all), so a busy worker does not query and decrypt for every order; `forget` drops a
    meter's (after a key failure, so the retry reads the store again).
    """

    def __init__(self, engine: Engine, box: SecretBox, ttl: float = 300.0) -> None:
        self.engine = engine
        self.box = box
        self.ttl = ttl
        self._meters: dict[int, tuple[float, MeterAccess]] = {}

    def forget(self, meter_id: int) -> None:
        self._meters.pop(meter_id, None)

    def concentrator(self, concentrator_id: int) -> ConcentratorAccess:
        with self.engine.connect() as conn:
            return self._concentrator(conn, concentrator_id)

    def _concentrator(self, conn: Connection, concentrator_id: int) -> ConcentratorAccess:
        c = t.concentrators.c
        row = (
            conn.execute(
                sa.select(
                    c.id, c.name, c.serial_number, c.host, c.port, c.maa_password_enc, c.time_zone
                ).where(c.id == concentrator_id)
            )
            .mappings()
            .first()
        )
        if row is None:
            raise UnknownDevice(f"concentrator {concentrator_id} is not registered")
        if not row["host"] or row["port"] is None:
            raise UnknownDevice(f"concentrator {row['name']} has no IP address or port")
        if not row["maa_password_enc"]:
            raise UnknownDevice(f"concentrator {row['name']} has no management password")
        password = self._open(
            row["maa_password_enc"], f"concentrators:{row['serial_number']}:maa_password"
        )
        return ConcentratorAccess(
            id=row["id"],
            name=row["name"],
            serial=row["serial_number"],
            host=row["host"],
            port=row["port"],
            password=password.encode("ascii"),
            time_zone=row["time_zone"],
        )

    def meter(self, meter_id: int) -> MeterAccess:
        cached = self._meters.get(meter_id)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        access = self._read_meter(meter_id)
        if self.ttl > 0:
            self._meters[meter_id] = (time.monotonic(), access)
        return access

    def _read_meter(self, meter_id: int) -> MeterAccess:
        m = t.meters.c
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(
                        m.id,
                        m.serial_number,
                        m.encryption_key_enc,
                        m.authentication_key_enc,
                        m.concentrator_id,
                        m.node_address,
                        m.host,
                        m.port,
                    ).where(m.id == meter_id)
                )
                .mappings()
                .first()
            )
            if row is None:
                raise UnknownDevice(f"meter {meter_id} is not registered")
            serial = row["serial_number"]
            if not row["encryption_key_enc"] or not row["authentication_key_enc"]:
                raise UnknownDevice(f"meter {serial} has no keys")
            concentrator = None
            if row["concentrator_id"] is not None and row["node_address"] is not None:
                concentrator = self._concentrator(conn, row["concentrator_id"])
            elif not row["host"] or row["port"] is None:
                raise UnknownDevice(
                    f"meter {serial} has neither a concentrator node nor an address"
                )
        return MeterAccess(
            id=row["id"],
            serial=serial,
            encryption_key=self._key(row["encryption_key_enc"], f"meters:{serial}:encryption_key"),
            authentication_key=self._key(
                row["authentication_key_enc"], f"meters:{serial}:authentication_key"
            ),
            host=row["host"],
            port=row["port"],
            concentrator=concentrator,
            node_address=row["node_address"],
        )

    def _open(self, envelope: str, context: str) -> str:
        try:
            return self.box.open(envelope, context).reveal()
        except SecretKeyError as exc:
            raise UnknownDevice(str(exc)) from None

    def _key(self, envelope: str, context: str) -> bytes:
        text = self._open(envelope, context)
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise UnknownDevice(f"{context} is not hexadecimal") from None
        if len(key) != 16:
            raise UnknownDevice(f"{context} is {len(key)} bytes, not 16")
        return key


@dataclass(frozen=True, slots=True)
class CounterReservation:
    """Sending counters ``[first, limit)`` reserved for one session, and the device's last
    accepted counter as stored."""

    first: int
    limit: int
    last_received: int | None


_Key = tuple[str, int, int]


class CounterStore:
    """Invocation counters per (device kind, device id, client SAP). Blocking.

    The unused rest of a session's block is kept in memory (`give_back`) for the next
    session to the same device in this process: blocks are disjoint between processes, so
    several workers never share a counter, and the database is written once per block.
    """

    def __init__(self, engine: Engine, block: int = COUNTER_BLOCK, min_left: int = 16) -> None:
        if block < 1:
            raise ValueError("the counter block must be positive")
        self.engine = engine
        self.block = block
        self.min_left = min(min_left, block)
        self._blocks: dict[_Key, CounterReservation] = {}

    def give_back(
        self, kind: str, device_id: int, client_sap: int, reservation: CounterReservation
    ) -> None:
        """The counters ``[first, limit)`` a session left unused, and the device's last
        accepted counter, for the next session of this process."""
        if reservation.limit - reservation.first >= self.min_left:
            self._blocks[(kind, device_id, client_sap)] = reservation

    def forget(self, kind: str, device_id: int, client_sap: int) -> None:
        self._blocks.pop((kind, device_id, client_sap), None)

    @staticmethod
    def _where(kind: str, device_id: int, client_sap: int) -> sa.ColumnElement[bool]:
        c = t.invocation_counters.c
        return sa.and_(c.device_kind == kind, c.device_id == device_id, c.client_sap == client_sap)

    def reserve(self, kind: str, device_id: int, client_sap: int) -> CounterReservation:
        """Counters for one session: the rest of this process's block, or the next block
        from the store (atomically: the row is updated before it is read, so two workers
        never get the same block)."""
        kept = self._blocks.pop((kind, device_id, client_sap), None)
        if kept is not None:
            return kept
        table = t.invocation_counters
        where = self._where(kind, device_id, client_sap)
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            updated = conn.execute(
                table.update()
                .where(where)
                .values(next_send=table.c.next_send + self.block, updated_at=now)
            ).rowcount
            if not updated:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            table.insert().values(
                                device_kind=kind,
                                device_id=device_id,
                                client_sap=client_sap,
                                next_send=1 + self.block,
                                updated_at=now,
                            )
                        )
                except sa.exc.IntegrityError:
                    conn.execute(
                        table.update()
                        .where(where)
                        .values(next_send=table.c.next_send + self.block, updated_at=now)
                    )
            row = conn.execute(
                sa.select(table.c.next_send, table.c.last_received).where(where)
            ).one()
        limit = int(row.next_send)
        if limit > _MAX_COUNTER:
            raise UnknownDevice(f"{kind} {device_id}: invocation counters exhausted; rekey it")
        return CounterReservation(limit - self.block, limit, row.last_received)

    def extend(self, kind: str, device_id: int, client_sap: int) -> int:
        """Reserve one more block for a long session; returns the new limit."""
        return self.reserve(kind, device_id, client_sap).limit

    def save_received(
        self, kind: str, device_id: int, client_sap: int, last_received: int | None
    ) -> None:
        """Store the device's last accepted counter (None forgets it: resynchronisation)."""
        with self.engine.begin() as conn:
            conn.execute(
                t.invocation_counters.update()
                .where(self._where(kind, device_id, client_sap))
                .values(last_received=last_received, updated_at=datetime.now(UTC))
            )
