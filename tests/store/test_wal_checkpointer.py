"""The SQLite engine's WAL checkpointer: the writers' commits leave the checkpoint to a
thread of its own, which stops with its engine."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from smmc.store.db import create_engine


def checkpointers() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "sqlite-checkpoint")


def write(engine: sa.Engine, rows: int) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS blob (id INTEGER PRIMARY KEY, b BLOB)")
        conn.exec_driver_sql(
            "INSERT INTO blob (b) VALUES (?)", [(bytes(1024),) for _ in range(rows)]
        )


def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_committed_pages_reach_the_database_file_without_a_commit_checkpointing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        write(engine, 1)
        size = path.stat().st_size
        write(engine, 2000)  # ~2 MB: far below the commits' own 256 MB backstop
        assert Path(f"{path}-wal").stat().st_size > 2_000_000
        assert until(lambda: path.stat().st_size > size + 2_000_000)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM blob").scalar() == 2001
    finally:
        engine.dispose()


def test_the_checkpointer_stops_with_its_engine_and_comes_back_if_it_connects_again(
    tmp_path: Path,
) -> None:
    before = checkpointers()
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    assert checkpointers() == before  # nothing until the first connection
    write(engine, 1)
    assert checkpointers() == before + 1
    engine.dispose()
    assert checkpointers() == before
    write(engine, 1)
    assert checkpointers() == before + 1
    del engine
    gc.collect()
    assert until(lambda: checkpointers() == before)


def test_an_in_memory_database_has_no_checkpointer() -> None:
    before = checkpointers()
    engine = create_engine("sqlite://")
    write(engine, 1)
    assert checkpointers() == before
    engine.dispose()
