"""SQLite's query plans of the statements a block runs (the ``sqlite_plans`` fixture).

SQLite has no statistics in the tests' databases, so it picks indexes by their terms alone;
tests pin the choices that matter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

QueryPlans = Callable[[str], AbstractContextManager[list[str]]]


@contextmanager
def capture_plans(db: Engine, fragment: str) -> Iterator[list[str]]:
    """``with capture_plans(db, "FROM events") as plans:`` runs the block, then fills
    ``plans`` with the plan (details joined by " | ") of each statement it ran that contains
    ``fragment``."""
    seen: list[tuple[str, Any]] = []

    def log(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if fragment in statement:
            seen.append((statement, parameters))

    plans: list[str] = []
    sa.event.listen(db, "before_cursor_execute", log)
    try:
        yield plans
    finally:
        sa.event.remove(db, "before_cursor_execute", log)
    with db.connect() as conn:
        plans.extend(
            " | ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, args))
            for sql, args in seen
        )
