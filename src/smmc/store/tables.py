"""The central database's tables (SQLAlchemy Core).

Timestamps are stored in UTC; local time is always derived from the concentrator's zone.
Secrets are stored only as AES-GCM envelopes (see `smmc.store.secrets`): the `*_enc`
columns never hold a clear value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite has no time zone type)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored: give it a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", UtcDateTime(), nullable=False, default=_now),
        sa.Column("updated_at", UtcDateTime(), nullable=False, default=_now, onupdate=_now),
    ]


substations = sa.Table(
    "substations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("description", sa.String(255)),
    *_timestamps(),
)

transformers = sa.Table(
    "transformers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(100), nullable=False, unique=True),
    sa.Column("substation_id", sa.ForeignKey("substations.id"), nullable=False, index=True),
    sa.Column("description", sa.String(255)),
    *_timestamps(),
)

concentrators = sa.Table(
    "concentrators",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("serial_number", sa.String(64), unique=True),
    sa.Column("description", sa.String(255)),
    sa.Column("address", sa.String(255)),
    sa.Column("city", sa.String(100)),
    sa.Column("comuna", sa.String(100), index=True),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("altitude", sa.Float),
    sa.Column("time_zone", sa.String(64), nullable=False, server_default="America/Santiago"),
    sa.Column("windows_time_zone_id", sa.String(100)),
    sa.Column("host", sa.String(255)),
    sa.Column("port", sa.Integer),
    sa.Column("spontaneous_profile", sa.String(100)),
    sa.Column("procedure_profile", sa.String(100)),
    sa.Column("transformer_id", sa.ForeignKey("transformers.id"), index=True),
    sa.Column("module_serial", sa.String(64)),
    sa.Column("sim_serial", sa.String(64)),
    sa.Column("ethernet_name", sa.String(64)),
    sa.Column("adlvc", sa.String(64)),
    sa.Column("tag", sa.String(100), index=True),
    sa.Column("ppp_username", sa.String(100)),
    sa.Column("ppp_password_enc", sa.Text),
    sa.Column("maa_username", sa.String(100)),
    sa.Column("maa_password_enc", sa.Text),
    sa.Column("k2_password_enc", sa.Text),
    sa.Column("reachable", sa.Boolean, nullable=False, server_default=sa.false()),
    *_timestamps(),
)

service_points = sa.Table(
    "service_points",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("address", sa.String(255)),
    sa.Column("city", sa.String(100)),
    sa.Column("comuna", sa.String(100), index=True),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("altitude", sa.Float),
    sa.Column("tag", sa.String(100), index=True),
    sa.Column("is_balance", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("net_billing", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("tariff", sa.String(32)),
    sa.Column("contracted_capacity_kw", sa.Float),
    sa.Column("supply_status", sa.String(16), nullable=False, server_default="unknown"),
    *_timestamps(),
)

meters = sa.Table(
    "meters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("serial_number", sa.String(64), nullable=False, unique=True),
    sa.Column("board_serial", sa.String(64)),
    sa.Column("mac_address", sa.String(32)),
    sa.Column("firmware_id", sa.String(64)),
    sa.Column("hardware_id", sa.String(64)),
    sa.Column("service_kind", sa.String(32)),
    sa.Column("tag", sa.String(100), index=True),
    sa.Column("meter_type", sa.String(16), nullable=False, server_default="monophase"),
    sa.Column("phase", sa.String(1)),
    sa.Column("encryption_key_enc", sa.Text),
    sa.Column("authentication_key_enc", sa.Text),
    sa.Column("concentrator_id", sa.ForeignKey("concentrators.id"), index=True),
    sa.Column("node_address", sa.Integer),
    sa.Column("host", sa.String(255)),
    sa.Column("port", sa.Integer),
    sa.Column("commissioned", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reachable", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("in_dc_table", sa.Boolean, nullable=False, server_default=sa.false()),
    *_timestamps(),
)

meter_links = sa.Table(
    "meter_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("meter_id", sa.ForeignKey("meters.id"), nullable=False, index=True),
    sa.Column("service_point_id", sa.ForeignKey("service_points.id"), nullable=False, index=True),
    sa.Column("valid_from", UtcDateTime(), nullable=False),
    sa.Column("valid_to", UtcDateTime()),
    sa.Index(
        "uq_meter_links_open_meter",
        "meter_id",
        unique=True,
        sqlite_where=sa.text("valid_to IS NULL"),
        postgresql_where=sa.text("valid_to IS NULL"),
    ),
    sa.Index(
        "uq_meter_links_open_service_point",
        "service_point_id",
        unique=True,
        sqlite_where=sa.text("valid_to IS NULL"),
        postgresql_where=sa.text("valid_to IS NULL"),
    ),
)

time_zones = sa.Table(
    "time_zones",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("standard_offset_minutes", sa.Integer, nullable=False),
    sa.Column("has_dst", sa.Boolean, nullable=False),
)

dst_transitions = sa.Table(
    "dst_transitions",
    metadata,
    sa.Column("time_zone", sa.ForeignKey("time_zones.name"), primary_key=True),
    sa.Column("at_utc", UtcDateTime(), primary_key=True),
    sa.Column("offset_before_minutes", sa.Integer, nullable=False),
    sa.Column("offset_after_minutes", sa.Integer, nullable=False),
    sa.Column("is_dst_after", sa.Boolean, nullable=False),
)

holiday_overrides = sa.Table(
    "holiday_overrides",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("subdivision", sa.String(8)),
    sa.Column("is_holiday", sa.Boolean, nullable=False),
    sa.Column("name", sa.String(255)),
    sa.UniqueConstraint("day", "subdivision"),
)

import_runs = sa.Table(
    "import_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("template", sa.String(32), nullable=False),
    sa.Column("rows_total", sa.Integer, nullable=False),
    sa.Column("rows_accepted", sa.Integer, nullable=False),
    sa.Column("rows_rejected", sa.Integer, nullable=False),
    sa.Column("error_report", sa.String(500)),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=False),
)

# Work orders (issue 5). `work_order_batches.id` is the seed's `idwork`: one id may cover many
# meters. Each attempt is a row of `work_order_attempts`; a final failure opens a
# `field_work_orders` row for a technician.

work_order_batches = sa.Table(
    "work_order_batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("activity", sa.String(32), nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("external_id", sa.String(100)),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False, default=_now),
)

work_orders = sa.Table(
    "work_orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("batch_id", sa.ForeignKey("work_order_batches.id"), nullable=False, index=True),
    sa.Column("activity", sa.String(32), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("base_priority", sa.Integer, nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("external_id", sa.String(100), index=True),
    sa.Column("meter_id", sa.ForeignKey("meters.id"), index=True),
    sa.Column("concentrator_id", sa.ForeignKey("concentrators.id"), index=True),
    sa.Column("service_point_id", sa.ForeignKey("service_points.id"), index=True),
    sa.Column("reason", sa.String(32)),
    sa.Column("special", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("payload", sa.Text),
    sa.Column("result", sa.Text),
    sa.Column("is_error", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("error_text", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("scheduled_at", UtcDateTime(), nullable=False),
    sa.Column("deadline", UtcDateTime(), nullable=False),
    sa.Column("started_at", UtcDateTime()),
    sa.Column("ended_at", UtcDateTime(), index=True),
    sa.Column("lease_owner", sa.String(100)),
    sa.Column("lease_expires_at", UtcDateTime()),
    sa.Column("schedule_id", sa.Integer),
    *_timestamps(),
    sa.Index("ix_work_orders_queue", "state", "scheduled_at"),
    # Never two RUNNING orders on one meter, whatever the workers believe.
    sa.Index(
        "uq_work_orders_running_meter",
        "meter_id",
        unique=True,
        sqlite_where=sa.text("state = 'RUNNING'"),
        postgresql_where=sa.text("state = 'RUNNING'"),
    ),
)

work_order_attempts = sa.Table(
    "work_order_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("work_order_id", sa.ForeignKey("work_orders.id"), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(100), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("ended_at", UtcDateTime()),
    sa.Column("outcome", sa.String(16)),
    sa.Column("error_text", sa.Text),
    sa.UniqueConstraint("work_order_id", "attempt"),
)

field_work_orders = sa.Table(
    "field_work_orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("work_order_id", sa.ForeignKey("work_orders.id"), nullable=False, unique=True),
    sa.Column("meter_id", sa.ForeignKey("meters.id"), index=True),
    sa.Column("concentrator_id", sa.ForeignKey("concentrators.id"), index=True),
    sa.Column("activity", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
    sa.Column("created_at", UtcDateTime(), nullable=False, default=_now),
)

concentrator_permits = sa.Table(
    "concentrator_permits",
    metadata,
    sa.Column("concentrator_id", sa.ForeignKey("concentrators.id"), primary_key=True),
    sa.Column("max_sessions", sa.Integer, nullable=False),
)

work_order_schedules = sa.Table(
    "work_order_schedules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("activity", sa.String(32), nullable=False),
    sa.Column("cron", sa.String(100), nullable=False),
    sa.Column("time_zone", sa.String(64), nullable=False, server_default="America/Santiago"),
    sa.Column("scope", sa.String(32), nullable=False),
    sa.Column("target", sa.String(100)),
    sa.Column("priority", sa.Integer),
    sa.Column("payload", sa.Text),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("next_run_at", UtcDateTime(), nullable=False),
    sa.Column("last_run_at", UtcDateTime()),
    *_timestamps(),
)
