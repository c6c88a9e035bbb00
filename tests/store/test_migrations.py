import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.store.migrate import current_revision, upgrade
from smmc.store.tables import metadata


def test_upgrade_creates_every_table_and_is_repeatable(db: Engine) -> None:
    upgrade(db)
    assert current_revision(db) is not None
    names = set(sa.inspect(db).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= names


def test_sqlite_uses_wal(db: Engine) -> None:
    if db.dialect.name != "sqlite":
        pytest.skip("WAL is an SQLite setting")
    with db.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 65536
        assert conn.exec_driver_sql("PRAGMA journal_size_limit").scalar() == 64 * 1024 * 1024


def test_one_linear_chain_matches_the_tables(db: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from smmc.store.migrate import alembic_config, managed_by_migrations

    assert len(ScriptDirectory.from_config(alembic_config(db)).get_heads()) == 1
    with db.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": managed_by_migrations})
        differences = compare_metadata(context, metadata)
    assert differences == []
