"""Device credentials and invocation counters.

Keys and passwords are opened with the `SecretBox` only when a session needs them and live
in memory for that session; nothing clear is written back. Our sending invocation counter
is reserved from the database in blocks before use, so a crash skips counters but never
reuses one (a reused counter would reuse a GCM nonce). The device's last accepted counter
(our replay guard) is stored when a session ends.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from smmc.field.errors import UnknownDevice
from smmc.store import tables as t
from smmc.store.secrets import SecretBox, SecretKeyError

__all__ = [
    "COUNTER_BLOCK",
    "ConcentratorAccess",
    "CounterKey",
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
            access = self._concentrators(conn, [concentrator_id])[concentrator_id]
        if isinstance(access, UnknownDevice):
            raise access
        return access

    def _concentrators(
        self, conn: Connection, concentrator_ids: Sequence[int]
    ) -> dict[int, ConcentratorAccess | UnknownDevice]:
        """Each concentrator's access, or why it cannot have a session; one query."""
        found: dict[int, ConcentratorAccess | UnknownDevice] = {
            dc_id: UnknownDevice(f"concentrator {dc_id} is not registered")
            for dc_id in concentrator_ids
        }
        for row in conn.execute(_CONCENTRATORS_STATEMENT, {"ids": list(found)}).mappings():
            try:
                found[row["id"]] = self._concentrator_access(row)
            except UnknownDevice as exc:
                found[row["id"]] = exc
        return found

    def _concentrator_access(self, row: RowMapping) -> ConcentratorAccess:
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

    def cached(self, meter_id: int) -> MeterAccess | None:
        """The meter's access if this process holds it (never blocks)."""
        cached = self._meters.get(meter_id)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        return None

    def meter(self, meter_id: int) -> MeterAccess:
        (access,) = self.meters([meter_id])
        if isinstance(access, UnknownDevice):
            raise access
        return access

    def meters(self, meter_ids: Sequence[int]) -> list[MeterAccess | UnknownDevice]:
        """`meter` for several meters, those not in memory read in one query: each item is
        the meter's access or the reason it cannot have a session."""
        now = time.monotonic()
        found: dict[int, MeterAccess | UnknownDevice] = {}
        for meter_id in meter_ids:
            cached = self.cached(meter_id)
            if cached is not None:
                found[meter_id] = cached
        missing = sorted(set(meter_ids) - set(found))
        if missing:
            read = self._read_meters(missing)
            for meter_id in missing:
                access = read.get(meter_id) or UnknownDevice(f"meter {meter_id} is not registered")
                found[meter_id] = access
                if self.ttl > 0 and isinstance(access, MeterAccess):
                    self._meters[meter_id] = (now, access)
        return [found[meter_id] for meter_id in meter_ids]

    def _read_meters(self, meter_ids: Sequence[int]) -> dict[int, MeterAccess | UnknownDevice]:
        with self.engine.connect() as conn:
            rows = list(conn.execute(_METERS_STATEMENT, {"ids": list(meter_ids)}).mappings())
            dc_ids = {row["concentrator_id"] for row in rows if row["concentrator_id"] is not None}
            concentrators = self._concentrators(conn, sorted(dc_ids)) if dc_ids else {}
        read: dict[int, MeterAccess | UnknownDevice] = {}
        for row in rows:
            try:
                read[row["id"]] = self._meter_access(row, concentrators)
            except UnknownDevice as exc:
                read[row["id"]] = exc
        return read

    def _meter_access(
        self, row: RowMapping, concentrators: dict[int, ConcentratorAccess | UnknownDevice]
    ) -> MeterAccess:
        serial = row["serial_number"]
        if not row["encryption_key_enc"] or not row["authentication_key_enc"]:
            raise UnknownDevice(f"meter {serial} has no keys")
        concentrator = None
        if row["concentrator_id"] is not None and row["node_address"] is not None:
            dc = concentrators[row["concentrator_id"]]
            if isinstance(dc, UnknownDevice):
                raise dc
            concentrator = dc
        elif not row["host"] or row["port"] is None:
            raise UnknownDevice(f"meter {serial} has neither a concentrator node nor an address")
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


CounterKey = tuple[str, int, int]
"""(device kind, device id, client SAP): one invocation counter pair."""


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
        self._blocks: dict[CounterKey, CounterReservation] = {}

    def give_back(
        self, kind: str, device_id: int, client_sap: int, reservation: CounterReservation
    ) -> None:
        """The counters ``[first, limit)`` a session left unused, and the device's last
        accepted counter, for the next session of this process."""
        if reservation.limit - reservation.first >= self.min_left:
            self._blocks[(kind, device_id, client_sap)] = reservation

    def holds(self, key: CounterKey) -> bool:
        """Whether this process keeps unused counters for ``key``."""
        return key in self._blocks

    def prefetch(self, keys: Sequence[CounterKey]) -> None:
        """Reserve a block now (one transaction) for the sessions about to start on ``keys``
        and keep it for them; a block kept meanwhile wins (the fetched one is skipped)."""
        for key, reservation in zip(keys, self.reserve_many(keys), strict=True):
            if isinstance(reservation, CounterReservation):
                self._blocks.setdefault(key, reservation)

    def take_kept(self, key: CounterKey) -> CounterReservation | None:
        """The rest of this process's block for ``key``, if any (never blocks)."""
        return self._blocks.pop(key, None)

    def forget(self, kind: str, device_id: int, client_sap: int) -> None:
        self._blocks.pop((kind, device_id, client_sap), None)

    def reserve(self, kind: str, device_id: int, client_sap: int) -> CounterReservation:
        """Counters for one session: the rest of this process's block, or the next block
        from the store (atomically: the row is updated before it is read, so two workers
        never get the same block)."""
        (reservation,) = self.reserve_many([(kind, device_id, client_sap)])
        if isinstance(reservation, UnknownDevice):
            raise reservation
        return reservation

    def reserve_many(self, keys: Sequence[CounterKey]) -> list[CounterReservation | UnknownDevice]:
        """`reserve` for several sessions, the blocks from the store in one transaction; a
        key given twice gets two disjoint blocks. An item is UnknownDevice when the device's
        counters are exhausted."""
        results: list[CounterReservation | UnknownDevice | None] = []
        wanted: dict[CounterKey, int] = {}
        for key in keys:
            kept = self.take_kept(key)
            results.append(kept)
            if kept is None:
                wanted[key] = wanted.get(key, 0) + 1
        if wanted:
            fresh = self._next_blocks(wanted)
            for index, key in enumerate(keys):
                if results[index] is None:
                    results[index] = fresh[key].pop(0)
        return [result for result in results if result is not None]

    def _next_blocks(
        self, wanted: dict[CounterKey, int]
    ) -> dict[CounterKey, list[CounterReservation | UnknownDevice]]:
        now = datetime.now(UTC)
        params = {
            key: {
                "b_kind": key[0],
                "b_id": key[1],
                "b_sap": key[2],
                "b_grow": count * self.block,
                "b_now": now,
            }
            for key, count in wanted.items()
        }
        with self.engine.begin() as conn:
            present = self._rows(conn, list(wanted))
            if present:
                conn.execute(_GROW_STATEMENT, [params[key] for key in wanted if key in present])
            first_rows = {
                key: {
                    "device_kind": key[0],
                    "device_id": key[1],
                    "client_sap": key[2],
                    "next_send": 1 + count * self.block,
                    "updated_at": now,
                }
                for key, count in wanted.items()
                if key not in present
            }
            if first_rows:
                self._create(conn, first_rows, params)
            rows = self._rows(conn, list(wanted))
        blocks: dict[CounterKey, list[CounterReservation | UnknownDevice]] = {}
        for key, count in wanted.items():
            limit, last_received = rows[key]
            if limit > _MAX_COUNTER:
                exhausted = UnknownDevice(
                    f"{key[0]} {key[1]}: invocation counters exhausted; rekey it"
                )
                blocks[key] = [exhausted] * count
                continue
            first = limit - count * self.block
            blocks[key] = [
                CounterReservation(
                    first + i * self.block, first + (i + 1) * self.block, last_received
                )
                for i in range(count)
            ]
        return blocks

    @staticmethod
    def _create(
        conn: Connection,
        first_rows: dict[CounterKey, dict[str, object]],
        params: dict[CounterKey, dict[str, object]],
    ) -> None:
        """Insert the rows of the devices contacted for the first time, in one statement; if
        another worker created some meanwhile, one by one (theirs grow instead)."""
        try:
            with conn.begin_nested():
                conn.execute(_CREATE_STATEMENT, list(first_rows.values()))
        except sa.exc.IntegrityError:
            for key, row in first_rows.items():
                try:
                    with conn.begin_nested():
                        conn.execute(_CREATE_STATEMENT, [row])
                except sa.exc.IntegrityError:
                    conn.execute(_GROW_STATEMENT, [params[key]])

    @staticmethod
    def _rows(
        conn: Connection, keys: Sequence[CounterKey]
    ) -> dict[CounterKey, tuple[int, int | None]]:
        """(next_send, last_received) of the stored keys among ``keys``."""
        found: dict[CounterKey, tuple[int, int | None]] = {}
        by_group: dict[tuple[str, int], list[int]] = {}
        for kind, device_id, client_sap in keys:
            by_group.setdefault((kind, client_sap), []).append(device_id)
        for (kind, client_sap), ids in by_group.items():
            for row in conn.execute(_ROWS_STATEMENT, {"kind": kind, "sap": client_sap, "ids": ids}):
                found[(kind, row.device_id, client_sap)] = (int(row.next_send), row.last_received)
        return found

    def extend(self, kind: str, device_id: int, client_sap: int) -> int:
        """Reserve one more block for a long session; returns the new limit."""
        return self.reserve(kind, device_id, client_sap).limit

    def save_received(
        self, kind: str, device_id: int, client_sap: int, last_received: int | None
    ) -> None:
        """Store the device's last accepted counter (None forgets it: resynchronisation)."""
        self.save_received_many([((kind, device_id, client_sap), last_received)])

    def save_received_many(self, items: Sequence[tuple[CounterKey, int | None]]) -> list[None]:
        """`save_received` for several devices in one transaction (later items win)."""
        now = datetime.now(UTC)
        latest = dict(items)
        with self.engine.begin() as conn:
            conn.execute(
                _SAVE_RECEIVED_STATEMENT,
                [
                    {"b_kind": kind, "b_id": device_id, "b_sap": sap, "b_last": last, "b_now": now}
                    for (kind, device_id, sap), last in latest.items()
                ],
            )
        return [None] * len(items)


# `CounterStore`'s statements, built once: every session's end saves its device's last
# received counter, and building a statement cost more than running it. ``_GROW_STATEMENT``
# reserves ``b_grow`` more counters of one device; ``_ROWS_STATEMENT`` reads the devices
# ``ids`` of one kind and client SAP.
_IDS: sa.BindParameter[list[int]] = sa.bindparam("ids", expanding=True)
_C = t.invocation_counters.c
_GROW_STATEMENT = (
    t.invocation_counters.update()
    .where(
        _C.device_kind == sa.bindparam("b_kind"),
        _C.device_id == sa.bindparam("b_id"),
        _C.client_sap == sa.bindparam("b_sap"),
    )
    .values(next_send=_C.next_send + sa.bindparam("b_grow"), updated_at=sa.bindparam("b_now"))
)
_CREATE_STATEMENT = t.invocation_counters.insert()
_ROWS_STATEMENT = sa.select(_C.device_id, _C.next_send, _C.last_received).where(
    _C.device_kind == sa.bindparam("kind"),
    _C.client_sap == sa.bindparam("sap"),
    _C.device_id.in_(_IDS),
)
_SAVE_RECEIVED_STATEMENT = (
    t.invocation_counters.update()
    .where(
        _C.device_kind == sa.bindparam("b_kind"),
        _C.device_id == sa.bindparam("b_id"),
        _C.client_sap == sa.bindparam("b_sap"),
    )
    .values(last_received=sa.bindparam("b_last"), updated_at=sa.bindparam("b_now"))
)


# `CredentialStore`'s reads, built once: a worker reads the credentials of each batch of
# meters it has no access for, and building a statement cost more than running it.
_CONCENTRATORS_STATEMENT = sa.select(
    t.concentrators.c.id,
    t.concentrators.c.name,
    t.concentrators.c.serial_number,
    t.concentrators.c.host,
    t.concentrators.c.port,
    t.concentrators.c.maa_password_enc,
    t.concentrators.c.time_zone,
).where(t.concentrators.c.id.in_(_IDS))
_METERS_STATEMENT = sa.select(
    t.meters.c.id,
    t.meters.c.serial_number,
    t.meters.c.encryption_key_enc,
    t.meters.c.authentication_key_enc,
    t.meters.c.concentrator_id,
    t.meters.c.node_address,
    t.meters.c.host,
    t.meters.c.port,
).where(t.meters.c.id.in_(_IDS))
