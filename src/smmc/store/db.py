"""Engines for the two supported databases: an SQLite file (embedded default) and
PostgreSQL (production), behind one SQLAlchemy URL."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

_LOG = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    """Accept the plain `postgresql://` form operators write and pick the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # The engine's checkpointer thread (`WalCheckpointer`) moves the WAL into the database
    # file beside the writers; a commit checkpoints itself only past 256 MB, if that thread
    # has fallen behind or is gone. A commit that checkpointed paid for copying the pages and
    # two fsyncs on the writer's own thread: a tenth of a storm's time.
    cursor.execute(f"PRAGMA wal_autocheckpoint={_BACKSTOP_PAGES}")
    cursor.execute(f"PRAGMA journal_size_limit={_WAL_KEEP_BYTES}")
    cursor.close()


_BACKSTOP_PAGES = 65536
_WAL_KEEP_BYTES = 64 * 1024 * 1024
"""A WAL that grew in a burst is cut back to this size when it restarts."""


class WalCheckpointer:
    """Checkpoints an SQLite file's WAL from a thread of its own, every ``interval`` seconds
    (``PASSIVE``: never waits for, never blocks, a reader or a writer). SQLite's checkpoint
    runs without the GIL, so on a second core it overlaps the writers instead of stalling
    the commit that crossed the threshold. Stops with its engine (disposed or collected)."""

    def __init__(self, path: str, interval: float = 0.5) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        except sqlite3.Error as exc:
            _LOG.warning(
                "%s: no WAL checkpointer (%s); commits checkpoint past 256 MB", self.path, exc
            )
            return
        try:
            while not self._stop.wait(self.interval):
                with contextlib.suppress(sqlite3.Error):  # the next pass tries again
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()


class _Checkpointing:
    """An engine's `WalCheckpointer`: started by its first connection, stopped when the
    engine is disposed or collected, started again if a disposed engine connects again."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._running: WalCheckpointer | None = None

    def attach(self, engine: Engine) -> None:
        sa.event.listen(engine, "connect", self._connected)
        sa.event.listen(engine, "engine_disposed", self._stop)
        weakref.finalize(engine, self._stop)

    def _connected(self, *_args: Any) -> None:
        with self._lock:
            if self._running is None:
                self._running = WalCheckpointer(self.path)

    def _stop(self, *_args: Any) -> None:
        with self._lock:
            running, self._running = self._running, None
        if running is not None:
            running.stop()


def create_engine(url: str) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        if parsed.database and parsed.database != ":memory:":
            _Checkpointing(parsed.database).attach(engine)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
