"""Events, last known status words, spontaneous messages, outage incidents and the outbox.

Everything here runs inside the caller's transaction, batch first: a storm of pushes is a
handful of statements per batch, not a handful per message. Every opened or closed event and
every outage change is written to ``outbox`` in that same transaction, so an event is either
stored *and* on its way out, or neither.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
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

__all__ = [
    "OUTAGE_WINDOW",
    "Applied",
    "Observation",
    "Occurrence",
    "SpontaneousRecord",
    "apply_events",
    "default_catalog",
    "mark_delivered",
    "pending_outbox",
    "record_spontaneous",
    "record_status_words",
    "record_work_order_result",
]

METER = "meter"
CONCENTRATOR = "concentrator"
OUTAGE_WINDOW = timedelta(seconds=60)
"""Power-offs of a scope within this time of its incident's restoration reopen that
incident (a flickering supply is one outage, not many)."""
POWER_OFF_KEYS = frozenset({"normal1.0", "LVC_POWER_OFF"})
_CHUNK = 5000


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The shipped catalog, loaded once per process."""
    return load_catalog()


@dataclass(frozen=True, slots=True)
class Observation:
    """Status words seen on one device (``words`` may hold only some of its words)."""

    device_kind: str
    device: str
    words: Mapping[str, int]
    observed_at: datetime
    source: str
    raw: str | None = None


@dataclass(frozen=True, slots=True)
class Occurrence:
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


@dataclass(frozen=True, slots=True)
class SpontaneousRecord:
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


@dataclass(frozen=True, slots=True)
class _Device:
    meter_id: int | None
    concentrator_id: int | None
    concentrator: str | None
    transformer_id: int | None


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _resolve(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], _Device]:
    meters = sorted({device for kind, device in keys if kind == METER})
    dcs = sorted({device for kind, device in keys if kind == CONCENTRATOR})
    found: dict[tuple[str, str], _Device] = {}
    c = t.concentrators.c
    for chunk in _chunks(meters):
        rows = conn.execute(
            sa.select(t.meters.c.serial_number, t.meters.c.id, c.id, c.name, c.transformer_id)
            .select_from(t.meters.outerjoin(t.concentrators))
            .where(t.meters.c.serial_number.in_(chunk))
        )
        for serial, meter_id, dc_id, dc_name, transformer in rows:
            found[(METER, serial)] = _Device(meter_id, dc_id, dc_name, transformer)
    for chunk in _chunks(dcs):
        dc_rows = conn.execute(
            sa.select(c.serial_number, c.name, c.id, c.transformer_id).where(
                sa.or_(c.serial_number.in_(chunk), c.name.in_(chunk))
            )
        )
        for serial, name, dc_id, transformer in dc_rows:
            device = _Device(None, dc_id, name, transformer)
            for label in (serial, name):
                if label in chunk:
                    found[(CONCENTRATOR, label)] = device
    return found


def _last_words(
    conn: Connection, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, int]]:
    words: dict[tuple[str, str], dict[str, int]] = {}
    w = t.device_status_words.c
    for kind in (METER, CONCENTRATOR):
        devices = sorted(device for k, device in keys if k == kind)
        for chunk in _chunks(devices):
            rows = conn.execute(
                sa.select(w.device, w.word, w.value).where(
                    w.device_kind == kind, w.device.in_(chunk)
                )
            )
            for device, word, value in rows:
                words.setdefault((kind, device), {})[word] = value
    return words


def _active_events(
    conn: Connection, keys: set[tuple[str, str]]
) -> dict[tuple[str, str, str], dict[str, Any]]:
    active: dict[tuple[str, str, str], dict[str, Any]] = {}
    e = t.events.c
    for kind in (METER, CONCENTRATOR):
        devices = sorted(device for k, device in keys if k == kind)
        for chunk in _chunks(devices):
            rows = conn.execute(
                sa.select(t.events).where(e.is_active, e.device_kind == kind, e.device.in_(chunk))
            ).mappings()
            for row in rows:
                active[(kind, row["device"], row["key"])] = dict(row)
    return active


def _event_row(
    entry: CatalogEntry,
    kind: str,
    device: str,
    where: _Device | None,
    at: datetime,
    source: str,
    *,
    active: bool,
    raw: str | None,
    description: str | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    return {
        "message_id": str(uuid.uuid4()),
        "device_kind": kind,
        "device": device,
        "meter_id": where.meter_id if where else None,
        "concentrator_id": where.concentrator_id if where else None,
        "key": entry.key,
        "code": entry.code,
        "acronym": entry.acronym,
        "description": entry.description if description is None else description,
        "severity": entry.severity,
        "priority": entry.priority.value,
        "category": entry.category.value,
        "routing": entry.routing.value,
        "is_active": active,
        "opened_at": at,
        "closed_at": None,
        "source": source,
        "correlation_id": correlation_id,
        "raw": raw,
        "created_at": at,
    }


def _outbox_row(kind: str, priority: str, body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    message_id = str(uuid.uuid4())
    payload = {"message_id": message_id, "kind": kind, **body}
    return {
        "message_id": message_id,
        "kind": kind,
        "priority": priority,
        "payload": json.dumps(payload, sort_keys=True, default=str),
        "created_at": now,
        "delivered_at": None,
    }


def _event_message(row: Mapping[str, Any], where: _Device | None) -> dict[str, Any]:
    return {
        "event_id": row["message_id"],
        "type": row["code"],
        "acronym": row["acronym"],
        "device_kind": row["device_kind"],
        "device": row["device"],
        "meter": row["device"] if row["device_kind"] == METER else None,
        "concentrator": where.concentrator if where else row["device"],
        "severity": row["severity"],
        "priority": row["priority"],
        "category": row["category"],
        "routing": row["routing"],
        "isactive": row["is_active"],
        "date": _iso(
            row["opened_at"] if row["is_active"] else row["closed_at"] or row["opened_at"]
        ),
        "description": row["description"],
        "source": row["source"],
        "correlation_id": row["correlation_id"],
    }


def _upsert_words(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert or replace the last words: staged by COPY on PostgreSQL, one executemany of
    ``INSERT … ON CONFLICT`` on SQLite."""
    update = "value = excluded.value, observed_at = excluded.observed_at, source = excluded.source"
    columns = "device_kind, device, word, value, observed_at, source"
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE IF NOT EXISTS status_words_stage "
            "(LIKE device_status_words) ON COMMIT DELETE ROWS"
        )
        _bulk_insert(conn, sa.table("status_words_stage"), rows)
        conn.exec_driver_sql(
            # identifiers are constants of this module; every value is bound
            f"INSERT INTO device_status_words ({columns}) SELECT {columns} "  # noqa: S608
            "FROM status_words_stage ON CONFLICT (device_kind, device, word) "
            f"DO UPDATE SET {update}"
        )
        # several batches may share one transaction: the stage must be empty for the next
        conn.exec_driver_sql("DELETE FROM status_words_stage")
        return
    cache: dict[datetime, str] = {}
    conn.exec_driver_sql(
        f"INSERT INTO device_status_words ({columns}) VALUES (?, ?, ?, ?, ?, ?) "  # noqa: S608
        f"ON CONFLICT (device_kind, device, word) DO UPDATE SET {update}",
        [
            (r["device_kind"], r["device"], r["word"], r["value"],
             _sqlite_stamp(r["observed_at"], cache), r["source"])
            for r in rows
        ],
    )  # fmt: skip


def _sqlite_stamp(value: datetime | None, cache: dict[datetime, str]) -> str | None:
    """``UtcDateTime``'s SQLite form; a batch repeats few instants, so they are cached."""
    if value is None:
        return None
    text = cache.get(value)
    if text is None:
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        cache[value] = text
    return text


def _bulk_insert(
    conn: Connection, table: sa.TableClause, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert many rows through the driver: COPY on PostgreSQL, one prepared executemany
    on SQLite. SQLAlchemy's per-row parameter processing costs more than the database does
    at storm rates; the values here are already plain (aware UTC datetimes, str, int, bool,
    bytes), stored exactly as ``UtcDateTime`` would store them."""
    if not rows:
        return
    columns = list(rows[0])
    names = ", ".join(f'"{name}"' for name in columns)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        if raw is None:
            raise RuntimeError("the connection has no driver connection to COPY through")
        statement = f"COPY {table.name} ({names}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[name] for name in columns])
        return
    marks = ", ".join("?" for _ in columns)
    stamps = [name for name in columns if any(isinstance(row[name], datetime) for row in rows)]
    cache: dict[datetime, str] = {}
    values = [[row[name] for name in columns] for row in rows]
    for name in stamps:
        index = columns.index(name)
        for line in values:
            line[index] = _sqlite_stamp(line[index], cache)
    conn.exec_driver_sql(
        # identifiers come from the table definitions; every value is bound
        f"INSERT INTO {table.name} ({names}) VALUES ({marks})",  # noqa: S608
        [tuple(line) for line in values],
    )


@dataclass(frozen=True, slots=True)
class _Power:
    kind: str
    device: str
    at: datetime
    off: bool
    where: _Device | None


def apply_events(
    conn: Connection,
    observations: Sequence[Observation] = (),
    occurrences: Sequence[Occurrence] = (),
    *,
    catalog: Catalog | None = None,
    now: datetime | None = None,
) -> Applied:
    """Turn a batch of status words and occurrences into events, outage changes and outbox
    messages, in ``conn``'s transaction. Observations of one device apply in order."""
    book = catalog or default_catalog()
    stamp = now or datetime.now(UTC)
    keys = {(o.device_kind, o.device) for o in observations}
    keys |= {(o.device_kind, o.device) for o in occurrences}
    for kind, _ in keys:
        if kind not in (METER, CONCENTRATOR):
            raise ValueError(f"device kind {kind!r} is neither meter nor concentrator")
    devices = _resolve(conn, keys)
    words = _last_words(conn, {(o.device_kind, o.device) for o in observations})
    active = _active_events(conn, keys)
    applied = Applied()
    new_events: list[dict[str, Any]] = []
    closes: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    word_rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    power: list[_Power] = []

    def open_event(row: dict[str, Any], where: _Device | None) -> None:
        new_events.append(row)
        if row["is_active"]:
            active[(row["device_kind"], row["device"], row["key"])] = row
        outbox.append(_outbox_row("event", row["priority"], _event_message(row, where), stamp))

    def close_event(kind: str, device: str, key: str, at: datetime) -> None:
        row = active.pop((kind, device, key), None)
        if row is None:
            return
        row = {**row, "is_active": False, "closed_at": at}
        closes.append(row)
        where = devices.get((kind, device))
        outbox.append(_outbox_row("event", row["priority"], _event_message(row, where), stamp))

    for seen in observations:
        device_key = (seen.device_kind, seen.device)
        where = devices.get(device_key)
        previous = words.get(device_key)
        current = dict(seen.words)
        if seen.device_kind == METER:
            MeterWords(**{name: current.get(name, 0) for name in METER_WORDS})
            unknown = set(current) - set(METER_WORDS)
        else:
            unknown = set(current) - {CONCENTRATOR_WORD}
        if unknown:
            raise ValueError(f"{seen.device_kind} {seen.device}: unknown word(s) {unknown}")
        for change in detect_changes(book, previous, current):
            entry = change.entry
            if change.opened:
                if (seen.device_kind, seen.device, entry.key) in active:
                    continue
                open_event(
                    _event_row(
                        entry,
                        seen.device_kind,
                        seen.device,
                        where,
                        seen.observed_at,
                        seen.source,
                        active=True,
                        raw=seen.raw,
                    ),
                    where,
                )
            else:
                close_event(seen.device_kind, seen.device, entry.key, seen.observed_at)
            if entry.key in POWER_OFF_KEYS:
                power.append(
                    _Power(seen.device_kind, seen.device, seen.observed_at, change.opened, where)
                )
        merged = {**(previous or {}), **current}
        words[device_key] = merged
        for word, value in current.items():
            word_rows[(seen.device_kind, seen.device, word)] = {
                "device_kind": seen.device_kind,
                "device": seen.device,
                "word": word,
                "value": value,
                "observed_at": seen.observed_at,
                "source": seen.source,
            }

    for event in occurrences:
        entry = book[event.key]
        where = devices.get((event.device_kind, event.device))
        if event.closes is not None:
            close_event(event.device_kind, event.device, event.closes, event.at)
        if not event.record:
            continue
        if event.active and (event.device_kind, event.device, entry.key) in active:
            continue
        open_event(
            _event_row(
                entry,
                event.device_kind,
                event.device,
                where,
                event.at,
                event.source,
                active=event.active,
                raw=event.raw,
                description=event.description,
                correlation_id=event.correlation_id,
            ),
            where,
        )
        if entry.key == "LVC_POWER_OFF":
            power.append(_Power(event.device_kind, event.device, event.at, True, where))
        elif entry.key == "LVC_POWER_ON":
            power.append(_Power(event.device_kind, event.device, event.at, False, where))

    _bulk_insert(conn, t.events, new_events)
    if closes:
        e = t.events.c
        statement = (
            t.events.update()
            .where(e.message_id == sa.bindparam("m_id"))
            .values(is_active=False, closed_at=sa.bindparam("c_at"))
        )
        for chunk in _chunks(closes):
            conn.execute(
                statement, [{"m_id": r["message_id"], "c_at": r["closed_at"]} for r in chunk]
            )
    if word_rows:
        _upsert_words(conn, list(word_rows.values()))
    if power:
        _correlate(conn, power, stamp, outbox, applied)
    _bulk_insert(conn, t.outbox, outbox)
    applied.opened = new_events
    applied.closed = closes
    applied.outbox = len(outbox)
    return applied


def _scope(power: _Power) -> tuple[str, str]:
    where = power.where
    if where is not None and where.transformer_id is not None:
        return "transformer", str(where.transformer_id)
    if where is not None and where.concentrator is not None:
        return CONCENTRATOR, where.concentrator
    if power.kind == CONCENTRATOR:
        return CONCENTRATOR, power.device
    return METER, power.device


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


def _correlate(
    conn: Connection,
    power: Sequence[_Power],
    stamp: datetime,
    outbox: list[dict[str, Any]],
    applied: Applied,
) -> None:
    """Group power-offs into one incident per transformer (or concentrator without one);
    restoration of the concentrator, or of every member, closes it with its duration."""
    i = t.outage_incidents.c
    m = t.outage_members.c
    scopes = {_scope(p) for p in power}
    incidents: dict[tuple[str, str], dict[str, Any]] = {}
    earliest = min(p.at for p in power) - OUTAGE_WINDOW
    for scope_name, key in scopes:
        found = (
            conn.execute(
                sa.select(t.outage_incidents)
                .where(
                    i.scope == scope_name,
                    i.scope_key == key,
                    sa.or_(i.is_open, i.ended_at >= earliest),
                )
                .order_by(i.is_open.desc(), i.ended_at.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
        if found is not None:
            incidents[(scope_name, key)] = dict(found)
    members: dict[int, dict[tuple[str, str], dict[str, Any]]] = {}
    for known in incidents.values():
        members[known["id"]] = {
            (r["device_kind"], r["device"]): dict(r)
            for r in conn.execute(
                sa.select(t.outage_members).where(m.incident_id == known["id"])
            ).mappings()
        }
    touched: set[int] = set()
    new_members: dict[tuple[int, str, str], dict[str, Any]] = {}
    for event in sorted(power, key=lambda p: p.at):
        scope = _scope(event)
        incident: dict[str, Any] | None = incidents.get(scope)
        if event.off:
            reopen = (
                incident is not None
                and not incident["is_open"]
                and incident["ended_at"] is not None
                and event.at - incident["ended_at"] <= OUTAGE_WINDOW
            )
            if incident is None or (not incident["is_open"] and not reopen):
                where = event.where
                incident = {
                    "message_id": str(uuid.uuid4()),
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
                members[incident["id"]] = {}
                applied.incidents_opened.append(incident["id"])
                outbox.append(
                    _outbox_row("outage", Priority.HIGH.value, _incident_message(incident), stamp)
                )
            elif reopen:
                incident.update(is_open=True, ended_at=None, duration_s=None)
                touched.add(incident["id"])
            incident["power_off_events"] += 1
            incident["last_event_at"] = max(incident["last_event_at"], event.at)
            touched.add(incident["id"])
            member = {
                "incident_id": incident["id"],
                "device_kind": event.kind,
                "device": event.device,
                "off_at": event.at,
                "on_at": None,
            }
            members[incident["id"]][(event.kind, event.device)] = member
            new_members[(incident["id"], event.kind, event.device)] = member
            continue
        if incident is None or not incident["is_open"]:
            continue
        group = members[incident["id"]]
        member_row = group.get((event.kind, event.device))
        if member_row is not None:
            member_row["on_at"] = event.at
            new_members[(incident["id"], event.kind, event.device)] = member_row
        restored = event.kind == CONCENTRATOR or all(r["on_at"] is not None for r in group.values())
        if restored:
            incident.update(
                is_open=False,
                ended_at=event.at,
                duration_s=(event.at - incident["started_at"]).total_seconds(),
            )
            touched.add(incident["id"])
            applied.incidents_closed.append(incident["id"])
            outbox.append(
                _outbox_row("outage", Priority.HIGH.value, _incident_message(incident), stamp)
            )
    if new_members:
        keys = list(new_members)
        for incident_id in {k[0] for k in keys}:
            devices = [k for k in keys if k[0] == incident_id]
            for chunk in _chunks(devices):
                conn.execute(
                    t.outage_members.delete().where(
                        m.incident_id == incident_id,
                        sa.tuple_(m.device_kind, m.device).in_([(k[1], k[2]) for k in chunk]),
                    )
                )
        _bulk_insert(conn, t.outage_members, list(new_members.values()))
    for incident in incidents.values():
        if incident["id"] in touched:
            conn.execute(
                t.outage_incidents.update()
                .where(i.id == incident["id"])
                .values(
                    is_open=incident["is_open"],
                    ended_at=incident["ended_at"],
                    duration_s=incident["duration_s"],
                    power_off_events=incident["power_off_events"],
                    last_event_at=incident["last_event_at"],
                )
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


def record_work_order_result(
    conn: Connection,
    meter: str,
    *,
    ok: bool,
    at: datetime,
    correlation_id: str | None,
    description: str,
    disconnected: bool = False,
    external_request: bool | None = None,
    breaker_state: int | None = None,
) -> Applied:
    """A work order's outcome as a high-priority event (the seed's HPE rows): 3.21.87.30 OK,
    3.21.87.85 failed with the error text, 3.31.17.68 for a completed disconnection. The
    activity executors call it in their own transaction, next to ``work_order_events``."""
    key = "WO_DISCONNECTED" if ok and disconnected else "WO_OK" if ok else "WO_FAILED"
    extra = {"externalrequest": external_request, "breakerstate": breaker_state}
    raw = json.dumps({k: v for k, v in extra.items() if v is not None}) or None
    return apply_events(
        conn,
        occurrences=[
            Occurrence(
                METER,
                meter,
                key,
                at,
                "work-order",
                raw=raw,
                description=description,
                correlation_id=correlation_id,
            )
        ],
    )


def record_spontaneous(conn: Connection, records: Sequence[SpontaneousRecord]) -> None:
    """Store received messages raw, decoded or not, in one batch."""
    rows = [
        {
            "received_at": r.received_at,
            "transport": r.transport,
            "peer_host": r.peer_host,
            "peer_port": r.peer_port,
            "local_port": r.local_port,
            "message_type": r.message_type,
            "device": r.device,
            "device_time_local": r.device_time_local,
            "decoded": r.decoded,
            "reason": r.reason,
            "raw": r.raw,
        }
        for r in records
    ]
    _bulk_insert(conn, t.spontaneous_messages, rows)


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
