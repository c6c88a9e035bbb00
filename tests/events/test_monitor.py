"""Concentrator-state monitoring: silence raises DC_NOT_REPORTING once; a report closes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.events.monitor import check_concentrators
from smmc.store import tables as t
from smmc.store.events import SpontaneousRecord, record_spontaneous

T0 = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)


def _alarms(db: Engine) -> list[tuple[str, bool]]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(t.events.c.device, t.events.c.is_active)
            .where(t.events.c.key == "DC_NOT_REPORTING")
            .order_by(t.events.c.id)
        )
        return [(device, active) for device, active in rows]


def test_silent_concentrator_alarms_once_and_closes_when_it_reports(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(
            t.concentrators.insert(),
            [
                {"name": "TD-QUIET", "serial_number": "SER-QUIET", "created_at": T0},
                {"name": "TD-TALK", "serial_number": "SER-TALK", "created_at": T0},
            ],
        )
        record_spontaneous(
            conn,
            [SpontaneousRecord(T0 + timedelta(minutes=50), "tcp", "127.0.0.1", 1, 58700,
                               "LVC_POWER_ON", b"\x01\x13", True, device="SER-TALK")],
        )  # fmt: skip
    window = timedelta(hours=1)
    assert check_concentrators(db, window, T0 + timedelta(minutes=30)).opened == []
    first = check_concentrators(db, window, T0 + timedelta(minutes=70))
    assert [row["device"] for row in first.opened] == ["SER-QUIET"]
    assert first.opened[0]["priority"] == "high"
    assert check_concentrators(db, window, T0 + timedelta(minutes=80)).opened == []
    with db.begin() as conn:
        record_spontaneous(
            conn,
            [SpontaneousRecord(T0 + timedelta(minutes=90), "udp", "127.0.0.1", 1, 58700,
                               "LVC_POWER_ON", b"\x01\x13", True, device="SER-QUIET")],
        )  # fmt: skip
    back = check_concentrators(db, window, T0 + timedelta(minutes=95))
    assert [row["device"] for row in back.closed] == ["SER-QUIET"]
    assert _alarms(db) == [("SER-QUIET", False)]
    late = check_concentrators(db, window, T0 + timedelta(minutes=200))
    assert sorted(row["device"] for row in late.opened) == ["SER-QUIET", "SER-TALK"]
