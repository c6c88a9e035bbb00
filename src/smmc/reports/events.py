"""Daily event files and reports in the seed's formats (DOMAIN.md §4).

* ``SWE_yyyy-mm-dd.csv`` - meter status-word events: a row when a condition rises
  (``isactive TRUE``) and one when it clears (``FALSE``);
* ``HPE_yyyy-mm-dd.csv`` - high-priority work-order results;
* ``LPE_yyyy-mm-dd.csv`` - the other, non status-word events: commissioning, reachability,
  spontaneous concentrator and meter messages;
* ``SpontaneousMessages_yyyy-mm-dd.csv`` - the last message of each type per sender, with the
  ``Offset minutes from UTC`` line and local/UTC stamps;
* ``ConcentratorStatusWordAnalyzedReport_yyyy-mm-dd.csv``.

The day is the local calendar day in the report's zone (America/Santiago by default); the
``date`` columns are local times of that zone, as the seed's files show them; stamps named
``utc`` are UTC.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from smmc.domain.events import CONCENTRATOR_WORD, METER_WORDS
from smmc.domain.time import local_day_bounds, to_local, utc_offset_minutes
from smmc.store import tables as t

__all__ = [
    "CSW_COLUMNS",
    "EVENT_COLUMNS",
    "SPONTANEOUS_COLUMNS",
    "SWE_COLUMNS",
    "hpe_rows",
    "lpe_rows",
    "spontaneous_rows",
    "status_word_rows",
    "swe_rows",
    "write_daily_files",
]

DEFAULT_TZ = "America/Santiago"
SWE_COLUMNS = (
    "concentrator",
    "meter",
    "pod",
    "type",
    "date",
    "severity",
    "isactive",
    "description",
)
EVENT_COLUMNS = (
    "concentrator",
    "meter",
    "pod",
    "type",
    "date",
    "correlationid",
    "severity",
    "description",
    "externalrequest",
    "breakerstate",
)
SPONTANEOUS_COLUMNS = (
    "concentrator name",
    "ipaddress",
    "spontmessagetype",
    "port",
    "last date local",
    "last update utc",
    "last update local",
    "message",
)
CSW_COLUMNS = (
    "concentratorname",
    "serialnumber",
    "isreachable",
    "nrm",
    "csw",
    "laststatuswordupdate_utc",
)
_STATUS_PREFIXES = tuple(f"{word}." for word in METER_WORDS)


def _stamp(moment: datetime, tz: str) -> str:
    """``2021-01-01 19:56:12.536``: local wall time with milliseconds."""
    local = to_local(moment, tz)
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def _us(moment: datetime) -> str:
    """``7/2/2021 8:03:09 PM``: the spontaneous report's stamp format."""
    hour = moment.hour % 12 or 12
    suffix = "PM" if moment.hour >= 12 else "AM"
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} {suffix}"


def _flag(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def _events_query(start: datetime, end: datetime) -> sa.Select[Any]:
    e, c, sp, link = t.events.c, t.concentrators.c, t.service_points.c, t.meter_links.c
    in_day = sa.or_(
        sa.and_(e.opened_at >= start, e.opened_at < end),
        sa.and_(e.closed_at >= start, e.closed_at < end),
    )
    return (
        sa.select(
            t.events,
            c.name.label("concentrator_name"),
            sp.name.label("pod"),
        )
        .select_from(t.events)
        .outerjoin(t.concentrators, c.id == e.concentrator_id)
        .outerjoin(t.meter_links, sa.and_(link.meter_id == e.meter_id, link.valid_to.is_(None)))
        .outerjoin(t.service_points, sp.id == link.service_point_id)
        .where(in_day)
        .order_by(e.opened_at, e.id)
    )


def _moments(
    row: Any, start: datetime, end: datetime, *, stateful: bool
) -> list[tuple[datetime, bool]]:
    """When the event appears in the day: its opening, and its closing for conditions."""
    found: list[tuple[datetime, bool]] = []
    if start <= row.opened_at < end:
        found.append((row.opened_at, stateful))
    if stateful and row.closed_at is not None and start <= row.closed_at < end:
        found.append((row.closed_at, False))
    return found


def _concentrator(row: Any) -> str:
    if row.concentrator_name:
        return str(row.concentrator_name)
    return str(row.device) if row.device_kind == CONCENTRATOR_WORD else ""


def swe_rows(conn: Connection, day: date, tz: str = DEFAULT_TZ) -> list[list[str]]:
    """Status-word events of meters in the local ``day``."""
    start, end = local_day_bounds(day, tz)
    rows: list[tuple[datetime, list[str]]] = []
    for row in conn.execute(_events_query(start, end)):
        if row.device_kind != "meter" or not row.key.startswith(_STATUS_PREFIXES):
            continue
        for moment, active in _moments(row, start, end, stateful=True):
            rows.append(
                (
                    moment,
                    [
                        _concentrator(row),
                        row.device,
                        row.pod or "",
                        row.code,
                        _stamp(moment, tz),
                        str(row.severity),
                        _flag(active),
                        row.description,
                    ],
                )
            )
    return [line for _, line in sorted(rows, key=lambda item: item[0])]


def _extra(row: Any) -> tuple[str, str]:
    """``externalrequest`` and ``breakerstate`` of a work-order result, when its raw payload
    (a JSON object written by the work-order side) carries them."""
    try:
        raw = json.loads(row.raw) if row.raw else None
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        return "", ""
    external = raw.get("externalrequest")
    breaker = raw.get("breakerstate")
    return (
        "" if external is None else _flag(bool(external)),
        "" if breaker is None else str(breaker),
    )


def _event_file(conn: Connection, day: date, tz: str, *, high: bool) -> list[list[str]]:
    start, end = local_day_bounds(day, tz)
    lines: list[list[str]] = []
    for row in conn.execute(_events_query(start, end)):
        if row.key.startswith(_STATUS_PREFIXES) and row.device_kind == "meter":
            continue
        is_result = row.category == "work-order result"
        if is_result != high:
            continue
        for moment, _active in _moments(row, start, end, stateful=False):
            external, breaker = _extra(row)
            lines.append(
                [
                    _concentrator(row),
                    row.device if row.device_kind == "meter" else "",
                    row.pod or "",
                    row.code,
                    _stamp(moment, tz),
                    row.correlation_id or "",
                    str(row.severity),
                    row.description,
                    external,
                    breaker,
                ]
            )
    return lines


def hpe_rows(conn: Connection, day: date, tz: str = DEFAULT_TZ) -> list[list[str]]:
    """High-priority work-order results of the local ``day``."""
    return _event_file(conn, day, tz, high=True)


def lpe_rows(conn: Connection, day: date, tz: str = DEFAULT_TZ) -> list[list[str]]:
    """Normal-priority events that are not status words: commissioning, reachability,
    spontaneous concentrator and meter messages."""
    return _event_file(conn, day, tz, high=False)


def spontaneous_rows(conn: Connection, day: date, tz: str = DEFAULT_TZ) -> list[list[str]]:
    """The last message of each type from each sender received in the local ``day``."""
    start, end = local_day_bounds(day, tz)
    s, c = t.spontaneous_messages.c, t.concentrators.c
    names = {
        label: name
        for name, serial in conn.execute(sa.select(c.name, c.serial_number))
        for label in (name, serial)
        if label
    }
    last: dict[tuple[str, str], Any] = {}
    rows = conn.execute(
        sa.select(t.spontaneous_messages)
        .where(s.received_at >= start, s.received_at < end)
        .order_by(s.received_at, s.id)
    )
    for row in rows:
        sender = row.device or row.peer_host
        last[(sender, row.message_type)] = row
    lines = []
    for (sender, kind), row in sorted(last.items()):
        device_local = ""
        if row.device_time_local:
            device_local = _us(datetime.fromisoformat(row.device_time_local))
        lines.append(
            [
                names.get(sender, sender) if row.device else "",
                row.peer_host,
                kind,
                str(row.local_port),
                device_local,
                _us(row.received_at.astimezone(UTC)),
                _us(to_local(row.received_at, tz)),
                bytes(row.raw).hex().upper(),
            ]
        )
    return lines


def status_word_rows(conn: Connection) -> list[list[str]]:
    """Every concentrator with its last status word (hex) and how many meters it has."""
    c, w, m = t.concentrators.c, t.device_status_words.c, t.meters.c
    words = {
        device: (value, observed)
        for device, value, observed in conn.execute(
            sa.select(w.device, w.value, w.observed_at).where(
                w.device_kind == "concentrator", w.word == CONCENTRATOR_WORD
            )
        )
    }
    counts: dict[int | None, int] = dict(
        conn.execute(
            sa.select(m.concentrator_id, sa.func.count()).group_by(m.concentrator_id)
        ).all()
    )
    lines = []
    for dc_id, name, serial, reachable in conn.execute(
        sa.select(c.id, c.name, c.serial_number, c.reachable).order_by(c.name)
    ):
        found = words.get(serial) or words.get(name)
        lines.append(
            [
                name,
                serial or "",
                _flag(reachable),
                str(counts.get(dc_id, 0)),
                "" if found is None else f"{found[0]:06X}",
                "" if found is None else found[1].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            ]
        )
    return lines


def _write(stream: TextIO, header: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def write_daily_files(
    engine: Engine, day: date, directory: Path, tz: str = DEFAULT_TZ
) -> dict[Path, int]:
    """Write the five files of ``day`` into ``directory``; returns each path and its rows."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = day.isoformat()
    written: dict[Path, int] = {}
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    with engine.connect() as conn:
        files: list[tuple[str, Sequence[str], list[list[str]], str | None]] = [
            (f"SWE_{stamp}.csv", SWE_COLUMNS, swe_rows(conn, day, tz), None),
            (f"HPE_{stamp}.csv", EVENT_COLUMNS, hpe_rows(conn, day, tz), None),
            (f"LPE_{stamp}.csv", EVENT_COLUMNS, lpe_rows(conn, day, tz), None),
            (
                f"SpontaneousMessages_{stamp}.csv",
                SPONTANEOUS_COLUMNS,
                spontaneous_rows(conn, day, tz),
                f"Offset minutes from UTC: {utc_offset_minutes(noon, tz)}",
            ),
            (
                f"ConcentratorStatusWordAnalyzedReport_{stamp}.csv",
                CSW_COLUMNS,
                status_word_rows(conn),
                None,
            ),
        ]
    for name, header, rows, preamble in files:
        path = directory / name
        with path.open("w", encoding="utf-8", newline="") as stream:
            if preamble is not None:
                stream.write(preamble + "\n")
            written[path] = _write(stream, header, rows)
    return written
