"""Schema management: `smmc db upgrade` and the test fixtures go through here."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def managed_by_migrations(name: str | None, type_: str, _parents: object = None) -> bool:
    """Day partitions of the readings table are created at run time, not by migrations:
    schema comparisons (autogenerate, tests) leave them out."""
    return not (type_ == "table" and name is not None and name.startswith("interval_readings_p"))


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Upgrade to every head: features developed side by side may add branches before a
    merge revision joins them."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
