"""Events, last known status words, spontaneous messages, outage incidents and the outbox.

Everything here runs inside the caller's transaction, batch first: a storm of pushes is a
handful of statements per batch, not a handful per message. Every opened or closed event and
every outage change is written to ``outbox`` in that same transaction, so an event is either
stored *and* on its way out, or neither.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.engine import Connection

from smmc.domain.events import (
    CONCENTRATOR_WORD,
    METER_WORDS,
    Catalog,
    CatalogEntry,
    MeterWords,
    Priority,
    detect_changes,
    load_catalog,
)
from smmc.store import tables as t
from smmc.store.tables import aware

__all__ = [
    "ACTIVE",
    "OUTAGE_WINDOW",
    "Applied",
    "DeviceLinks",
    "Observation",
    "Occurrence",
    "SpontaneousRecord",
    "apply_events",
    "collector_paused",
    "default_catalog",
    "device_links",
    "mark_delivered",
    "new_ids",
    "outage_scope",
    "pending_outbox",
    "record_spontaneous",
    "record_status_words",
    "work_order_occurrence",
]

METER = "meter"
CONCENTRATOR = "concentrator"
OUTAGE_WINDOW = timedelta(seconds=60)
"""Power-offs of a scope within this time of its incident's restoration reopen that
incident (a flickering supply is one outage, not many)."""
TRANSFORMER = "transformer"
POWER_OFF_KEYS = frozenset({"normal1.0", "LVC_POWER_OFF"})
"""Status bits whose change is a power change (PUP rising is a last gasp)."""
POWER_KEYS = frozenset({"LVC_POWER_OFF", "LVC_POWER_ON"})
"""Occurrences that are a power change (the concentrator's spontaneous frames)."""
_CHUNK = 5000
ACTIVE: sa.ColumnElement[bool] = sa.literal_column("events.is_active")
"""The active events. They have a partial index (``… WHERE is_active``) that SQLite uses
only for that very term, and SQLAlchemy writes a Boolean column as ``is_active = 1`` there."""


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The shipped catalog, loaded once per process."""
    return load_catalog()


class Observation(NamedTuple):
    """Status words seen on one device (``words`` may hold only some of its words)."""

    device_kind: str
    device: str
    words: Mapping[str, int]
    observed_at: datetime
    source: str
    raw: str | None = None


class Occurrence(NamedTuple):
    """An event that is not a status bit (spontaneous frame, monitoring, work-order result).

    ``active`` opens an alarm that stays active (de-duplicated like a bit); ``closes`` names
    the catalog key of an active event of the same device that this occurrence ends;
    ``record=False`` only closes (a condition that stopped holding raises no event itself).
    """

    device_kind: str
    device: str
    key: str
    at: datetime
    source: str
    raw: str | None = None
    description: str | None = None
    correlation_id: str | None = None
    active: bool = False
    closes: str | None = None
    record: bool = True


@dataclass(slots=True)
class Applied:
    """What a batch changed: the event rows opened, the ones closed, outage incidents."""

    opened: list[dict[str, Any]] = field(default_factory=list)
    closed: list[dict[str, Any]] = field(default_factory=list)
    incidents_opened: list[int] = field(default_factory=list)
    incidents_closed: list[int] = field(default_factory=list)
    outbox: int = 0


class SpontaneousRecord(NamedTuple):
    """One received message, decoded or not (``reason`` says why not)."""

    received_at: datetime
    transport: str
    peer_host: str
    peer_port: int
    local_port: int
    message_type: str
    raw: bytes
    decoded: bool
    device: str | None = None
    device_time_local: str | None = None
    reason: str | None = None


class DeviceLinks(NamedTuple):
    """Where a device hangs in the network, as ``device_links`` reads it."""

    meter_id: int | None
    concentrator_id: int | None
    concentrator: str | None
    transformer_id: int | None
    """The meter's service point's transformer, else its concentrator's (a concentrator:
    its own)."""


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else _iso_text(moment)


@lru_cache(maxsize=16384)
def _iso_text(moment: datetime) -> str:
    """``moment`` in UTC, ISO 8601: the outbox payload's form. Cached across calls: a
    push's instant is stamped on its message, its event, its status words, its outage
    membership and its outbox message, by writers that share nothing else."""
    return (moment if moment.tzinfo is UTC else aware(moment).astimezone(UTC)).isoformat()


@lru_cache(maxsize=16384)
def _stored_text(moment: datetime) -> str:
    """``moment`` as ``UtcDateTime`` stores it on SQLite, from its ISO text."""
    iso = _iso_text(moment)
    fraction = iso[19:26] if iso[19] == "." else ".000000"
    return f"{iso[:10]} {iso[11:19]}{fraction}"


_JSON = json.JSONEncoder(sort_keys=True, default=str)
"""``json.dumps(…, sort_keys=True, default=str)`` without building an encoder per call."""


class _TimeOrderedIds:
    """Version 7 UUIDs (RFC 9562) as text, increasing within the process: a 48-bit
    millisecond clock, 26 random bits drawn each millisecond (12 after the version, 14 after
    the variant), then a 48-bit counter seeded at random each millisecond. ``events`` and
    ``outbox`` index their message ids as unique: increasing ids append at the index's
    right edge, where random version 4 ids touched a random page per row (a third of an
    event's insert on SQLite). With the counter last, an id is its millisecond's prefix and
    one 12-digit number: formatting costs a fraction of a random id's."""

    _COUNTER_BITS = 48

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ms = 0
        self._prefix = ""
        self._counter = 0

    def take(self, count: int) -> list[str]:
        with self._lock:
            now = time.time_ns() // 1_000_000
            if now > self._ms:
                self._start(now)
            if self._counter + count > 1 << self._COUNTER_BITS:
                self._start(self._ms + 1)
            prefix, first = self._prefix, self._counter
            self._counter += count
        return [f"{prefix}{n:012x}" for n in range(first, first + count)]

    def _start(self, ms: int) -> None:
        """A new millisecond: its random bits, and its counter seeded below half its range
        (room for any burst)."""
        seed = int.from_bytes(os.urandom(10))
        spread = seed >> 54  # 26 bits
        self._ms, self._counter = ms, seed & ((1 << (self._COUNTER_BITS - 1)) - 1)
        self._prefix = (
            f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7{spread >> 14:03x}-{0x8000 | spread & 0x3FFF:04x}-"
        )


new_ids = _TimeOrderedIds().take
"""``new_ids(count)``: message ids for rows written now, in increasing order."""


def _stamps(dialect: str) -> Callable[[datetime | None], Any]:
    """Datetimes as the dialect's driver takes them for ``UtcDateTime`` columns: aware
    datetimes for PostgreSQL, ``UtcDateTime``'s text form for SQLite (a plain function, not
    a callable object: it runs several times per event)."""
    return _aware_stamp if dialect == "postgresql" else _text_stamp


def _text_stamp(value: datetime | None) -> str | None:
    return None if value is None else _stored_text(value)


def _aware_stamp(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)


def _among(dialect: str, column: sa.ColumnElement[str], name: str) -> Any:
    """``column IN :name``, with ``:name`` bound to one JSON array (`_listed`) read by
    ``json_array_elements_text`` on PostgreSQL and ``json_each`` on SQLite: one statement
    whatever the size, built once (`_per_dialect`), and text is what both drivers pass
    cheapest (psycopg adapts a list element by element)."""
    listed = sa.bindparam(name, type_=sa.Text)
    if dialect == "postgresql":
        return column.in_(sa.select(sa.func.json_array_elements_text(sa.cast(listed, JSON))))
    return column.in_(sa.select(sa.func.json_each(listed).table_valued("value").c.value))


def _listed(values: Iterable[str]) -> str:
    """The bound value of an `_among` parameter."""
    return json.dumps(list(values))


_per_dialect = lru_cache(maxsize=2)
"""A statement builder run once per dialect: constructing a statement costs more than
running it on the small batches work orders write (SQLAlchemy caches the compilation, not
the construction)."""


@_per_dialect
def _meter_links(dialect: str) -> sa.Executable:
    c, m, link, sp = t.concentrators.c, t.meters.c, t.meter_links.c, t.service_points.c
    joined = (
        t.meters.outerjoin(t.concentrators)
        .outerjoin(t.meter_links, sa.and_(link.meter_id == m.id, link.valid_to.is_(None)))
        .outerjoin(t.service_points, sp.id == link.service_point_id)
    )
    return (
        sa.select(
            m.serial_number,
            m.id,
            c.id,
            c.name,
            sa.func.coalesce(sp.transformer_id, c.transformer_id),
        )
        .select_from(joined)
        .where(_among(dialect, m.serial_number, "devices"))
    )


@_per_dialect
def _concentrator_links(dialect: str) -> sa.Executable:
    c = t.concentrators.c
    return sa.select(c.serial_number, c.name, c.id, c.transformer_id).where(
        sa.or_(_among(dialect, c.serial_number, "devices"), _among(dialect, c.name, "devices"))
    )


def device_links(
    conn: Connection, keys: Collection[tuple[str, str]]
) -> dict[tuple[str, str], DeviceLinks]:
    """Each known ``(device_kind, device)``'s meter id, concentrator and transformer (one
    query per kind; unknown devices are left out). ``apply_events`` takes them back as
    ``links``, so a caller that needed them first does not read them twice."""
    meters = sorted({device for kind, device in keys if kind == METER})
    dcs = sorted({device for kind, device in keys if kind == CONCENTRATOR})
    found: dict[tuple[str, str], DeviceLinks] = {}
    dialect = conn.dialect.name
    if meters:
        rows = conn.execute(_meter_links(dialect), {"devices": _listed(meters)})
        for serial, meter_id, dc_id, dc_name, transformer in rows:
            found[(METER, serial)] = DeviceLinks(meter_id, dc_id, dc_name, transformer)
    if dcs:
        dc_rows = conn.execute(_concentrator_links(dialect), {"devices": _listed(dcs)})
        wanted = set(dcs)
        for serial, name, dc_id, transformer in dc_rows:
            device = DeviceLinks(None, dc_id, name, transformer)
            for label in (serial, name):
                if label in wanted:
                    found[(CONCENTRATOR, label)] = device
    return found


def _by_kind(keys: set[tuple[str, str]]) -> Iterable[tuple[str, Sequence[str]]]:
    """The devices of each kind, in one pass (the lookups bind them as one list: their
    order does not matter)."""
    split: dict[str, list[str]] = {METER: [], CONCENTRATOR: []}
    for kind, device in keys:
        split[kind].append(device)
    return [(kind, devices) for kind, devices in split.items() if devices]


@_per_dialect
def _meter_words(dialect: str) -> sa.Executable:
    mw = t.meter_status_words.c
    return sa.select(mw.meter, mw.normal1, mw.normal2, mw.extended1, mw.extended2).where(
        _among(dialect, mw.meter, "devices")
    )


@_per_dialect
def _device_words(dialect: str) -> sa.Executable:
    w = t.device_status_words.c
    return sa.select(w.device, w.word, w.value).where(
        w.device_kind == sa.bindparam("kind"), _among(dialect, w.device, "devices")
    )


def _last_words(
    conn: Connection, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, int]]:
    """The last words known per device (a meter's never-reported words left out)."""
    words: dict[tuple[str, str], dict[str, int]] = {}
    dialect = conn.dialect.name
    for kind, devices in _by_kind(keys):
        if kind == METER:
            meter_rows = conn.execute(_meter_words(dialect), {"devices": _listed(devices)})
            for meter, *values in meter_rows:
                words[(METER, meter)] = {
                    name: value
                    for name, value in zip(METER_WORDS, values, strict=True)
                    if value is not None
                }
            continue
        rows = conn.execute(_device_words(dialect), {"kind": kind, "devices": _listed(devices)})
        for device, word, value in rows:
            words.setdefault((kind, device), {})[word] = value
    return words


@_per_dialect
def _active_of_devices(dialect: str) -> sa.Executable:
    e = t.events.c
    return sa.select(t.events).where(
        ACTIVE, e.device_kind == sa.bindparam("kind"), _among(dialect, e.device, "devices")
    )


def _active_events(
    conn: Connection, keys: set[tuple[str, str]]
) -> dict[tuple[str, str, str], dict[str, Any]]:
    active: dict[tuple[str, str, str], dict[str, Any]] = {}
    query = _active_of_devices(conn.dialect.name)
    for kind, devices in _by_kind(keys):
        rows = conn.execute(query, {"kind": kind, "devices": _listed(devices)}).mappings()
        for row in rows:
            active[(kind, row["device"], row["key"])] = dict(row)
    return active


_EVENT_COLUMNS = (
    "message_id", "device_kind", "device", "meter_id", "concentrator_id", "key", "code",
    "acronym", "description", "severity", "priority", "category", "routing", "is_active",
    "opened_at", "closed_at", "source", "correlation_id", "raw", "created_at",
)  # fmt: skip
_OUTBOX_COLUMNS = ("message_id", "kind", "priority", "payload", "created_at", "delivered_at")
_WORD_COLUMNS = ("device_kind", "device", "word", "value", "observed_at", "source")
_METER_WORD_COLUMNS = ("meter", *METER_WORDS, "observed_at", "source")
_WORD_SLOT = {word: index for index, word in enumerate(METER_WORDS, start=1)}
_METER_WORD_NAMES = frozenset(METER_WORDS)
_CONCENTRATOR_WORD_NAMES = frozenset({CONCENTRATOR_WORD})
_MEMBER_COLUMNS = ("incident_id", "device_kind", "device", "off_at", "on_at")
_SPONTANEOUS_COLUMNS = (
    "received_at", "transport", "peer_host", "peer_port", "local_port", "message_type",
    "device", "device_time_local", "decoded", "reason", "raw",
)  # fmt: skip


_text = json.encoder.encode_basestring_ascii


def _js(value: str | bool | int | None) -> str:
    """One value as ``json.dumps`` writes it (str, bool, int or None)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return _text(value) if isinstance(value, str) else str(value)


@lru_cache(maxsize=4096)
def _catalog_part(
    code: str,
    acronym: str,
    description: str,
    severity: int,
    priority: str,
    category: str,
    routing: str,
) -> tuple[str, ...]:
    return (
        _js(acronym), _js(category), _js(description), _js(priority), _js(routing),
        _js(severity), _js(code),
    )  # fmt: skip


def _event_payload(message_id: str, row: Mapping[str, Any], where: DeviceLinks | None) -> str:
    """The event's outbox message: exactly ``json.dumps(message, sort_keys=True)`` of the
    event's fields, assembled from pre-encoded catalog parts (a storm repeats a handful of
    catalog entries and differs only in device, time and ids)."""
    acronym, category, description, priority, routing, severity, code = _catalog_part(
        row["code"],
        row["acronym"],
        row["description"],
        row["severity"],
        row["priority"],
        row["category"],
        row["routing"],
    )
    kind, device, active = row["device_kind"], row["device"], row["is_active"]
    moment = row["opened_at"] if active else row["closed_at"] or row["opened_at"]
    concentrator = _js(where.concentrator if where else device)
    meter = _text(device) if kind == METER else "null"
    return (
        f'{{"acronym": {acronym}, "category": {category}, '
        f'"concentrator": {concentrator}, "correlation_id": {_js(row["correlation_id"])}, '
        f'"date": {_js(_iso(moment))}, "description": {description}, '
        f'"device": {_text(device)}, "device_kind": {_text(kind)}, '
        f'"event_id": {_text(row["message_id"])}, "isactive": {"true" if active else "false"}, '
        f'"kind": "event", "message_id": {_text(message_id)}, "meter": {meter}, '
        f'"priority": {priority}, "routing": {routing}, "severity": {severity}, '
        f'"source": {_text(row["source"])}, "type": {code}}}'
    )


def _upsert(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    conflict: str,
    rows: list[tuple[Any, ...]],
) -> None:
    """Insert rows, ``conflict`` deciding what an existing key becomes: staged by COPY and
    one ``INSERT … SELECT`` on PostgreSQL, one executemany on SQLite. ``rows`` are in
    ``columns`` order with stamps already in the driver's form."""
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        stage = f"{table}_stage"
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DELETE ROWS"
        )
        _bulk_insert(conn, stage, columns, rows)
        # identifiers are constants of this module; every value is bound
        insert = f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {conflict}"  # noqa: S608
        conn.exec_driver_sql(insert)
        # several batches may share one transaction: the stage must be empty for the next
        conn.exec_driver_sql(f"DELETE FROM {stage}")  # noqa: S608
        return
    marks = ", ".join("?" for _ in columns)
    insert = f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}"  # noqa: S608
    conn.exec_driver_sql(insert, rows)


_STAMP_UPDATE = "observed_at = excluded.observed_at, source = excluded.source"
_WORD_CONFLICT = (
    f"ON CONFLICT (device_kind, device, word) DO UPDATE SET value = excluded.value, {_STAMP_UPDATE}"
)
_METER_WORD_CONFLICT = "ON CONFLICT (meter) DO UPDATE SET " + ", ".join(
    [f"{w} = COALESCE(excluded.{w}, meter_status_words.{w})" for w in METER_WORDS] + [_STAMP_UPDATE]
)
"""A word the push did not carry keeps its stored value."""


def _bulk_insert(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert many rows through the driver: binary COPY on PostgreSQL, one prepared
    executemany on SQLite. SQLAlchemy's per-row parameter processing costs more than the
    database does at storm rates; the values here are already plain (str, int, bool, bytes
    and stamps from ``_stamps``), stored exactly as ``UtcDateTime`` would store them."""
    if not rows:
        return
    names = ", ".join(f'"{name}"' for name in columns)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        if raw is None:
            raise RuntimeError("the connection has no driver connection to COPY through")
        copy_sql = f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)"
        driver_error = conn.dialect.loaded_dbapi.Error
        try:
            with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                copy.set_types(_copy_types(table, tuple(columns)))
                for row in rows:
                    copy.write_row(row)
        except driver_error as exc:
            # as SQLAlchemy's own statements raise it: a refused value is an IntegrityError
            # or DataError, a lost server an OperationalError (callers tell them apart)
            raise sa.exc.DBAPIError.instance(copy_sql, None, exc, driver_error) from exc
        return
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(
        # identifiers come from the table definitions; every value is bound
        f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608
        rows,
    )


_COPY_TYPES: tuple[tuple[type[sa.types.TypeEngine[Any]], str], ...] = (
    (t.UtcDateTime, "timestamptz"),
    (sa.Boolean, "bool"),
    (sa.Integer, "int4"),
    (sa.LargeBinary, "bytea"),
    (sa.String, "text"),
)


@lru_cache(maxsize=32)
def _copy_types(table: str, columns: tuple[str, ...]) -> list[str]:
    """The PostgreSQL types of ``columns`` for a binary COPY (a stage: its table's). Binary
    spares the server parsing every value from text, and the driver formatting it."""
    source = t.metadata.tables[table.removesuffix("_stage")]
    found = []
    for name in columns:
        kind = source.c[name].type
        pg = next((pg for base, pg in _COPY_TYPES if isinstance(kind, base)), None)
        if pg is None:
            raise TypeError(f"{table}.{name}: no binary COPY type for {kind!r}")
        found.append(pg)
    return found


class _Batch:
    """The rows one ``apply_events`` call writes, kept as driver-ready tuples."""

    def __init__(
        self, conn: Connection, devices: dict[tuple[str, str], DeviceLinks], now: datetime
    ):
        self.stamp = _stamps(conn.dialect.name)
        self.devices = devices
        self.now_stamp = self.stamp(now)
        self.events: list[dict[str, Any]] = []
        self.event_rows: list[tuple[Any, ...]] = []
        self.closes: list[dict[str, Any]] = []
        self.outbox: list[tuple[Any, ...]] = []
        self.words: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        self.meter_words: dict[str, list[Any]] = {}
        self.power: list[_Power] = []
        self._ids: Iterator[str] = iter(())
        self._static: dict[str, tuple[str, str, str, int, str, str, str]] = {}

    def new_id(self) -> str:
        found = next(self._ids, None)
        if found is None:
            self._ids = iter(new_ids(128))
            found = next(self._ids)
        return found

    def message(self, kind: str, priority: str, body: Mapping[str, Any]) -> None:
        message_id = self.new_id()
        payload = _JSON.encode({"message_id": message_id, "kind": kind, **body})
        self.outbox.append((message_id, kind, priority, payload, self.now_stamp, None))

    def event_message(self, row: Mapping[str, Any]) -> None:
        message_id = self.new_id()
        where = self.devices.get((row["device_kind"], row["device"]))
        payload = _event_payload(message_id, row, where)
        self.outbox.append((message_id, "event", row["priority"], payload, self.now_stamp, None))

    def open(
        self,
        entry: CatalogEntry,
        kind: str,
        device: str,
        at: datetime,
        source: str,
        *,
        active: bool,
        raw: str | None,
        description: str | None = None,
        correlation_id: str | None = None,
    ) -> dict[str, Any]:
        where = self.devices.get((kind, device))
        static = self._static.get(entry.key)
        if static is None:
            static = self._static[entry.key] = (
                entry.code, entry.acronym, entry.description, entry.severity,
                entry.priority.value, entry.category.value, entry.routing.value,
            )  # fmt: skip
        code, acronym, text, severity, priority, category, routing = static
        if description is not None:
            text = description
        meter_id = where.meter_id if where else None
        concentrator_id = where.concentrator_id if where else None
        message_id = self.new_id()
        row = {
            "message_id": message_id, "device_kind": kind, "device": device,
            "meter_id": meter_id, "concentrator_id": concentrator_id, "key": entry.key,
            "code": code, "acronym": acronym, "description": text, "severity": severity,
            "priority": priority, "category": category, "routing": routing,
            "is_active": active, "opened_at": at, "closed_at": None, "source": source,
            "correlation_id": correlation_id, "raw": raw, "created_at": at,
        }  # fmt: skip
        self.events.append(row)
        stamp = self.stamp(at)
        self.event_rows.append(
            (
                message_id, kind, device, meter_id, concentrator_id, entry.key, code, acronym,
                text, severity, priority, category, routing, active, stamp, None, source,
                correlation_id, raw, stamp,
            )
        )  # fmt: skip
        self.event_message(row)
        return row

    def close(self, row: dict[str, Any], at: datetime) -> None:
        closed = {**row, "is_active": False, "closed_at": at}
        self.closes.append(closed)
        self.event_message(closed)


class _Power(NamedTuple):
    """A device losing (``off``) or regaining supply, and the outage scope it belongs to."""

    at: datetime
    kind: str
    device: str
    off: bool
    where: DeviceLinks | None
    scope: tuple[str, str]


def _power(kind: str, device: str, at: datetime, off: bool, where: DeviceLinks | None) -> _Power:
    return _Power(at, kind, device, off, where, outage_scope(kind, device, where))


def outage_scope(kind: str, device: str, where: DeviceLinks | None) -> tuple[str, str]:
    """The key a device's power changes are correlated under: its transformer, else its
    concentrator, else the device alone. Writers that share a stream (the listener's lanes)
    split it by scope, so every event of one incident applies in arrival order."""
    if where is not None and where.transformer_id is not None:
        return (TRANSFORMER, str(where.transformer_id))
    if where is not None and where.concentrator is not None:
        return (CONCENTRATOR, where.concentrator)
    return (kind, device)


def apply_events(
    conn: Connection,
    observations: Sequence[Observation] = (),
    occurrences: Sequence[Occurrence] = (),
    *,
    catalog: Catalog | None = None,
    now: datetime | None = None,
    links: Mapping[tuple[str, str], DeviceLinks] | None = None,
) -> Applied:
    """Turn a batch of status words and occurrences into events, outage changes and outbox
    messages, in ``conn``'s transaction. Observations of one device apply in order.
    ``links``: devices already looked up (``device_links``); only the others are read.

    Set-based: the devices, their last words and their active events are read with one
    query per kind and 5,000 devices; every row is then decided in memory and written with
    one driver-level insert per table (COPY on PostgreSQL, executemany on SQLite)."""
    with collector_paused():
        book = catalog or default_catalog()
        return _apply(conn, observations, occurrences, book, now, links or {})


class _CollectorPause:
    """Pauses counted across threads: the collector comes back when the last overlapping
    batch ends (the listener's lanes and its decoder run batches side by side)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._restore = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._restore = gc.isenabled()
                gc.disable()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0 and self._restore:
                    gc.enable()


collector_paused = _CollectorPause()
"""Python's cyclic garbage collector paused for one batch (``with collector_paused():``). A
batch allocates tens of thousands of short-lived rows that reference counting frees anyway;
the collections they trigger cost ~8 µs per event (a sixth of the whole path) scanning
long-lived objects. A caller that paused it already keeps it paused."""


def _apply(
    conn: Connection,
    observations: Sequence[Observation],
    occurrences: Sequence[Occurrence],
    book: Catalog,
    now: datetime | None,
    links: Mapping[tuple[str, str], DeviceLinks],
) -> Applied:
    observed = {(o.device_kind, o.device) for o in observations}
    keys = observed | {(o.device_kind, o.device) for o in occurrences}
    for kind, _ in keys:
        if kind not in (METER, CONCENTRATOR):
            raise ValueError(f"device kind {kind!r} is neither meter nor concentrator")
    devices = {**links, **device_links(conn, keys - links.keys())}
    batch = _Batch(conn, devices, now or datetime.now(UTC))
    words = _last_words(conn, observed)
    active = _active_events(conn, keys)
    for seen in observations:
        _observe(book, batch, words, active, seen)
    for event in occurrences:
        _occur(book, batch, active, event)
    _write(conn, batch)
    applied = Applied(opened=batch.events, closed=batch.closes)
    if batch.power:
        _correlate(conn, batch, applied)
    _bulk_insert(conn, "outbox", _OUTBOX_COLUMNS, batch.outbox)
    applied.outbox = len(batch.outbox)
    return applied


def _observe(
    book: Catalog,
    batch: _Batch,
    words: dict[tuple[str, str], dict[str, int]],
    active: dict[tuple[str, str, str], dict[str, Any]],
    seen: Observation,
) -> None:
    kind, device, at = seen.device_kind, seen.device, seen.observed_at
    current = seen.words
    allowed = _METER_WORD_NAMES if kind == METER else _CONCENTRATOR_WORD_NAMES
    if not allowed.issuperset(current):
        raise ValueError(f"{kind} {device}: unknown word(s) {set(current) - allowed}")
    previous = words.get((kind, device))
    for change in detect_changes(book, previous, current):
        entry = change.entry
        if change.opened:
            if (kind, device, entry.key) in active:
                continue
            row = batch.open(entry, kind, device, at, seen.source, active=True, raw=seen.raw)
            active[(kind, device, entry.key)] = row
        else:
            closing = active.pop((kind, device, entry.key), None)
            if closing is not None:
                batch.close(closing, at)
        if entry.key in POWER_OFF_KEYS:
            where = batch.devices.get((kind, device))
            batch.power.append(_power(kind, device, at, change.opened, where))
    words[(kind, device)] = {**previous, **current} if previous else dict(current)
    stamp = batch.stamp(at)
    if kind == METER:
        slots = batch.meter_words.get(device)
        if slots is None:
            slots = batch.meter_words[device] = [device, None, None, None, None, stamp, ""]
        for word, value in current.items():
            slots[_WORD_SLOT[word]] = value
        slots[5], slots[6] = stamp, seen.source
        return
    for word, value in current.items():
        batch.words[(kind, device, word)] = (kind, device, word, value, stamp, seen.source)


def _occur(
    book: Catalog,
    batch: _Batch,
    active: dict[tuple[str, str, str], dict[str, Any]],
    event: Occurrence,
) -> None:
    entry = book[event.key]
    kind, device = event.device_kind, event.device
    if event.closes is not None:
        closing = active.pop((kind, device, event.closes), None)
        if closing is not None:
            batch.close(closing, event.at)
    if not event.record or (event.active and (kind, device, entry.key) in active):
        return
    row = batch.open(
        entry,
        kind,
        device,
        event.at,
        event.source,
        active=event.active,
        raw=event.raw,
        description=event.description,
        correlation_id=event.correlation_id,
    )
    if event.active:
        active[(kind, device, entry.key)] = row
    if entry.key in POWER_KEYS:
        where = batch.devices.get((kind, device))
        batch.power.append(_power(kind, device, event.at, entry.key == "LVC_POWER_OFF", where))


def _write(conn: Connection, batch: _Batch) -> None:
    _bulk_insert(conn, "events", _EVENT_COLUMNS, batch.event_rows)
    if batch.closes:
        e = t.events.c
        conn.execute(
            t.events.update()
            .where(e.message_id == sa.bindparam("m_id"))
            .values(is_active=False, closed_at=sa.bindparam("c_at")),
            [{"m_id": r["message_id"], "c_at": r["closed_at"]} for r in batch.closes],
        )
    if batch.meter_words:
        rows = [tuple(row) for row in batch.meter_words.values()]
        _upsert(conn, "meter_status_words", _METER_WORD_COLUMNS, _METER_WORD_CONFLICT, rows)
    if batch.words:
        rows = list(batch.words.values())
        _upsert(conn, "device_status_words", _WORD_COLUMNS, _WORD_CONFLICT, rows)


def _incident_message(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "incident_id": row["id"],
        "incident": row["message_id"],
        "scope": row["scope"],
        "scope_key": row["scope_key"],
        "started_at": _iso(row["started_at"]),
        "ended_at": _iso(row["ended_at"]),
        "duration_s": row["duration_s"],
        "power_off_events": row["power_off_events"],
        "is_open": row["is_open"],
    }


def _incidents(
    conn: Connection, scopes: set[tuple[str, str]], earliest: datetime
) -> dict[tuple[str, str], dict[str, Any]]:
    """Per scope, its open incident, else the one restored latest since ``earliest`` (a
    power-off within the window reopens it)."""
    i = t.outage_incidents.c
    found: dict[tuple[str, str], dict[str, Any]] = {}
    ordered = sorted(scopes)
    for chunk in _chunks(ordered):
        rows = conn.execute(
            sa.select(t.outage_incidents).where(
                sa.tuple_(i.scope, i.scope_key).in_(chunk),
                sa.or_(i.is_open, i.ended_at >= earliest),
            )
        ).mappings()
        for row in rows:
            scope = (row["scope"], row["scope_key"])
            best = found.get(scope)
            if best is None or (row["is_open"], row["ended_at"] or earliest) > (
                best["is_open"],
                best["ended_at"] or earliest,
            ):
                found[scope] = dict(row)
    return found


@dataclass(slots=True)
class _Member:
    off_at: datetime
    on_at: datetime | None
    stored: bool
    changed: bool = True


@_per_dialect
def _members_of_devices(dialect: str) -> sa.Executable:
    m = t.outage_members.c
    return sa.select(m.incident_id, m.device, m.off_at, m.on_at).where(
        m.incident_id.in_(sa.bindparam("incidents", expanding=True)),
        m.device_kind == sa.bindparam("kind"),
        _among(dialect, m.device, "devices"),
    )


_STILL_OFF = (
    sa.select(t.outage_members.c.incident_id, sa.func.count())
    .where(
        t.outage_members.c.incident_id.in_(sa.bindparam("incidents", expanding=True)),
        t.outage_members.c.on_at.is_(None),
    )
    .group_by(t.outage_members.c.incident_id)
)
"""Per incident among ``incidents``, its members still off."""


def _members(
    conn: Connection, incident_ids: list[int], devices: set[tuple[str, str]]
) -> tuple[dict[tuple[int, str, str], _Member], dict[int, int]]:
    """The stored members among ``devices`` of these incidents, and per incident how many
    of its members are still off."""
    known: dict[tuple[int, str, str], _Member] = {}
    still_off: dict[int, int] = dict.fromkeys(incident_ids, 0)
    if not incident_ids:
        return known, still_off
    dialect = conn.dialect.name
    for kind, names in _by_kind(devices):
        rows = conn.execute(
            _members_of_devices(dialect),
            {"incidents": incident_ids, "kind": kind, "devices": _listed(names)},
        )
        for incident_id, device, off_at, on_at in rows:
            known[(incident_id, kind, device)] = _Member(off_at, on_at, True, False)
    counts = conn.execute(_STILL_OFF, {"incidents": incident_ids})
    for incident_id, count in counts:
        still_off[incident_id] = count
    return known, still_off


def _correlate(conn: Connection, batch: _Batch, applied: Applied) -> None:
    """Group power-offs into one incident per scope (transformer, else concentrator);
    restoration of the concentrator, or of every member, closes it with its duration."""
    power = sorted(batch.power, key=itemgetter(0))
    scopes = {p.scope for p in power}
    if conn.dialect.name == "postgresql":
        _lock_scopes(conn, scopes)
    incidents = _incidents(conn, scopes, power[0].at - OUTAGE_WINDOW)
    members, still_off = _members(
        conn, sorted(r["id"] for r in incidents.values()), {(p.kind, p.device) for p in power}
    )
    touched: set[int] = set()
    i = t.outage_incidents.c
    for event in power:
        scope = event.scope
        incident = incidents.get(scope)
        if event.off:
            if incident is not None and not incident["is_open"]:
                if event.at - incident["ended_at"] <= OUTAGE_WINDOW:
                    incident.update(is_open=True, ended_at=None, duration_s=None)
                else:
                    if incident["id"] in touched:
                        # closed in this batch: stored closed before its successor opens
                        _save_incidents(conn, [incident])
                        touched.discard(incident["id"])
                    incident = None
            if incident is None:
                where = event.where
                incident = {
                    "message_id": batch.new_id(),
                    "scope": scope[0],
                    "scope_key": scope[1],
                    "concentrator_id": where.concentrator_id if where else None,
                    "transformer_id": where.transformer_id if where else None,
                    "started_at": event.at,
                    "last_event_at": event.at,
                    "ended_at": None,
                    "duration_s": None,
                    "power_off_events": 0,
                    "is_open": True,
                }
                incident["id"] = conn.execute(
                    t.outage_incidents.insert().values(incident).returning(i.id)
                ).scalar_one()
                incidents[scope] = incident
                still_off[incident["id"]] = 0
                applied.incidents_opened.append(incident["id"])
                batch.message("outage", Priority.HIGH.value, _incident_message(incident))
            incident["power_off_events"] += 1
            incident["last_event_at"] = max(incident["last_event_at"], event.at)
            touched.add(incident["id"])
            key = (incident["id"], event.kind, event.device)
            member = members.get(key)
            if member is None:
                members[key] = _Member(event.at, None, False)
                still_off[incident["id"]] += 1
            elif member.on_at is not None:
                member.off_at, member.on_at, member.changed = event.at, None, True
                still_off[incident["id"]] += 1
            continue
        if incident is None or not incident["is_open"]:
            continue
        member = members.get((incident["id"], event.kind, event.device))
        if member is None:
            continue
        if member.on_at is None:
            member.on_at, member.changed = event.at, True
            still_off[incident["id"]] -= 1
        if event.kind == CONCENTRATOR or still_off[incident["id"]] == 0:
            incident.update(
                is_open=False,
                ended_at=event.at,
                duration_s=(event.at - incident["started_at"]).total_seconds(),
            )
            touched.add(incident["id"])
            applied.incidents_closed.append(incident["id"])
            batch.message("outage", Priority.HIGH.value, _incident_message(incident))
    _write_members(conn, batch, members)
    _save_incidents(conn, [r for r in incidents.values() if r["id"] in touched])


_LOCK_OUTAGE_SCOPE = 3
"""Advisory lock namespace of an outage scope (the first key of ``pg_advisory_xact_lock(int,
int)``; ``smmc.store.work_orders`` uses 1 and 2)."""


def _lock_scopes(conn: Connection, scopes: set[tuple[str, str]]) -> None:
    """Hold each scope's advisory lock until commit, taken in one order (no deadlock).
    Another writer correlating the same scope (a second lane, an activity executor) waits
    here and then, under READ COMMITTED, reads this transaction's incident instead of
    opening a second one."""
    keys = sorted({zlib.crc32(f"{scope}:{key}".encode()) - 2**31 for scope, key in scopes})
    conn.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock(:space, k.key) "
            "FROM unnest(CAST(:keys AS int[])) WITH ORDINALITY AS k(key, n) ORDER BY k.n"
        ),
        {"space": _LOCK_OUTAGE_SCOPE, "keys": keys},
    )


def _save_incidents(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    i = t.outage_incidents.c
    conn.execute(
        t.outage_incidents.update()
        .where(i.id == sa.bindparam("i_id"))
        .values(
            is_open=sa.bindparam("is_open"),
            ended_at=sa.bindparam("ended_at"),
            duration_s=sa.bindparam("duration_s"),
            power_off_events=sa.bindparam("power_off_events"),
            last_event_at=sa.bindparam("last_event_at"),
        ),
        [
            {
                "i_id": r["id"],
                "is_open": r["is_open"],
                "ended_at": r["ended_at"],
                "duration_s": r["duration_s"],
                "power_off_events": r["power_off_events"],
                "last_event_at": r["last_event_at"],
            }
            for r in rows
        ],
    )


def _write_members(
    conn: Connection, batch: _Batch, members: dict[tuple[int, str, str], _Member]
) -> None:
    stamp = batch.stamp
    new = [
        (incident_id, kind, device, stamp(m.off_at), stamp(m.on_at))
        for (incident_id, kind, device), m in members.items()
        if not m.stored
    ]
    _bulk_insert(conn, "outage_members", _MEMBER_COLUMNS, new)
    updated = [
        {"m_id": incident_id, "m_kind": kind, "m_device": device, "off": m.off_at, "on": m.on_at}
        for (incident_id, kind, device), m in members.items()
        if m.stored and m.changed
    ]
    if updated:
        m = t.outage_members.c
        conn.execute(
            t.outage_members.update()
            .where(
                m.incident_id == sa.bindparam("m_id"),
                m.device_kind == sa.bindparam("m_kind"),
                m.device == sa.bindparam("m_device"),
            )
            .values(off_at=sa.bindparam("off"), on_at=sa.bindparam("on")),
            updated,
        )


def record_status_words(
    conn: Connection,
    meter: str,
    words: MeterWords | Mapping[str, int],
    observed_at: datetime,
    source: str,
) -> Applied:
    """Status words read from ``meter`` (serial) in a work order, a self-diagnostic or a
    collection: opens and closes its events and writes them to the outbox, in ``conn``'s
    transaction. The entry point for the field layer and the activity executors."""
    values = words.as_mapping() if isinstance(words, MeterWords) else dict(words)
    return apply_events(conn, [Observation(METER, meter, values, observed_at, source)])


def work_order_occurrence(
    meter: str,
    *,
    ok: bool,
    at: datetime,
    correlation_id: str | None,
    description: str,
    disconnected: bool = False,
    external_request: bool | None = None,
    breaker_state: int | None = None,
) -> Occurrence:
    """A work order's outcome as a high-priority event (the seed's HPE rows): 3.21.87.30 OK,
    3.21.87.85 failed with the error text, 3.31.17.68 for a completed disconnection. The
    activity executors apply theirs in batches (one `apply_events` per transaction, next to
    ``work_order_events``)."""
    key = "WO_DISCONNECTED" if ok and disconnected else "WO_OK" if ok else "WO_FAILED"
    extra = {"externalrequest": external_request, "breakerstate": breaker_state}
    raw = json.dumps({k: v for k, v in extra.items() if v is not None}) or None
    return Occurrence(
        METER,
        meter,
        key,
        at,
        "work-order",
        raw=raw,
        description=description,
        correlation_id=correlation_id,
    )


def record_spontaneous(conn: Connection, records: Sequence[SpontaneousRecord]) -> None:
    """Store received messages raw, decoded or not, in one batch."""
    stamp = _stamps(conn.dialect.name)
    rows = [
        (
            stamp(r.received_at), r.transport, r.peer_host, r.peer_port, r.local_port,
            r.message_type, r.device, r.device_time_local, r.decoded, r.reason, r.raw,
        )
        for r in records
    ]  # fmt: skip
    _bulk_insert(conn, "spontaneous_messages", _SPONTANEOUS_COLUMNS, rows)


def pending_outbox(conn: Connection, priority: Priority, limit: int = 1000) -> list[dict[str, Any]]:
    """Undelivered messages of one queue, oldest first: what the publisher sends next."""
    o = t.outbox.c
    rows = conn.execute(
        sa.select(t.outbox)
        .where(o.delivered_at.is_(None), o.priority == priority.value)
        .order_by(o.id)
        .limit(limit)
    ).mappings()
    return [dict(row) for row in rows]


def mark_delivered(conn: Connection, message_ids: Sequence[str], at: datetime) -> int:
    """Mark messages delivered (the publisher calls this after the queue confirmed them)."""
    o = t.outbox.c
    done = 0
    for chunk in _chunks(list(message_ids)):
        result = conn.execute(
            t.outbox.update()
            .where(o.message_id.in_(chunk), o.delivered_at.is_(None))
            .values(delivered_at=at)
        )
        done += result.rowcount
    return done
