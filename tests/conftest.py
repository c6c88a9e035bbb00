"""Shared fixtures: every test that takes `db` runs once on SQLite and once on PostgreSQL.

Outside CI a PostgreSQL server that does not answer skips those tests with the reason; with
CI=true it fails them, because CI must prove both backends.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from query_plans import QueryPlans, capture_plans
from sqlalchemy.engine import Engine

from smmc.store.db import create_engine
from smmc.store.migrate import upgrade
from smmc.store.secrets import SecretBox
from smmc.store.tables import metadata

SHARED = Path(__file__).resolve().parents[2] / "shared"
POSTGRES_ADMIN_URL = os.environ.get(
    "SMMC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_missing(message: str) -> None:
    """Skip locally, fail in CI: CI must never go green by skipping a real service."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing service is a failure)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def missing_service() -> Callable[[str], None]:
    """`service_missing` as a fixture: `from conftest import …` in a test module finds
    whichever folder's conftest was imported last, not necessarily this one."""
    return service_missing


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED}: tests read the seeds from there")
    return SHARED


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'smmc.db'}"
        return
    name = f"smmc_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db(migrated_engine: Engine) -> Iterator[Engine]:
    """A migrated database, emptied after each test."""
    yield migrated_engine
    with migrated_engine.begin() as conn:
        if migrated_engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def sqlite_plans(db: Engine) -> QueryPlans:
    """SQLite's query plans of what a block runs (``query_plans.capture_plans``)."""
    if db.dialect.name != "sqlite":
        pytest.skip("the plans checked are SQLite's")
    return functools.partial(capture_plans, db)


@pytest.fixture
def secret_box() -> SecretBox:
    return SecretBox(os.urandom(32))
