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


def aware(value: datetime) -> datetime:
    """``value``, refused if naive: a stored instant needs its time zone."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} cannot be stored: give it a time zone")
    return value


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite has no time zone type)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = aware(value).astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _index_where(name: str, condition: str, *columns: str, unique: bool = False) -> sa.Index:
    """A partial index, the same on SQLite and PostgreSQL: only the rows that match
    ``condition`` are in it (and, ``unique``, unique among themselves)."""
    where = sa.text(condition)
    return sa.Index(name, *columns, unique=unique, sqlite_where=where, postgresql_where=where)


def _unique_where(name: str, condition: str, *columns: str) -> sa.Index:
    """Uniqueness only among the rows that match ``condition`` (the open link, the running
    order, the active event)."""
    return _index_where(name, condition, *columns, unique=True)


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
    # the transformer feeding this point (outages are correlated per transformer); when
    # unset, the meter's concentrator's transformer is assumed
    sa.Column("transformer_id", sa.ForeignKey("transformers.id"), index=True),
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
    _unique_where("uq_meter_links_open_meter", "valid_to IS NULL", "meter_id"),
    _unique_where("uq_meter_links_open_service_point", "valid_to IS NULL", "service_point_id"),
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
    # The works views' counts and id pages, and a batch's progress (migration 0009).
    sa.Index("ix_work_orders_view", "state", "activity", "origin", "id"),
    sa.Index("ix_work_orders_batch_state", "batch_id", "state"),
    # Never two RUNNING orders on one meter, whatever the workers believe.
    _unique_where("uq_work_orders_running_meter", "state = 'RUNNING'", "meter_id"),
)
# Each concentrator's queue (a point-to-point meter's, keyed by its negative id) best first,
# queued orders only: the lease reads the head of each (`WorkOrderQueue._candidates`,
# migration 0012) and the index stays the size of the queue, not of the history.
# SQLite reads a partial or expression index only for a term written as the index's (the
# states: `smmc.domain.work_orders.LEASABLE_STATES`).
LEASABLE_INDEX = "ix_work_orders_leasable"
LEASABLE_CONDITION = "state IN ('PENDING', 'RETRY')"
QUEUE_GROUP = "coalesce(concentrator_id, -meter_id)"
sa.Index(
    LEASABLE_INDEX,
    sa.text(QUEUE_GROUP),
    work_orders.c.priority.desc(),
    work_orders.c.scheduled_at,
    work_orders.c.id,
    sqlite_where=sa.text(LEASABLE_CONDITION),
    postgresql_where=sa.text(LEASABLE_CONDITION),
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

# -- field layer (issue 5) -------------------------------------------------------------------

invocation_counters = sa.Table(
    "invocation_counters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("device_kind", sa.String(16), nullable=False),
    sa.Column("device_id", sa.Integer, nullable=False),
    sa.Column("client_sap", sa.Integer, nullable=False),
    # Our next sending counter, reserved in blocks ahead of use: never reused after a crash.
    sa.Column("next_send", sa.BigInteger, nullable=False),
    # The device's last accepted counter (replay guard), None before the first session.
    sa.Column("last_received", sa.BigInteger),
    sa.Column("updated_at", UtcDateTime(), nullable=False, default=_now, onupdate=_now),
    sa.UniqueConstraint("device_kind", "device_id", "client_sap"),
)

work_order_events = sa.Table(
    "work_order_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("work_order_id", sa.ForeignKey("work_orders.id"), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("meter_id", sa.ForeignKey("meters.id"), index=True),
    sa.Column("concentrator_id", sa.ForeignKey("concentrators.id"), index=True),
    sa.Column("occurred_at", UtcDateTime(), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("breaker_state", sa.Integer),
    sa.Column("routed_at", UtcDateTime()),
    sa.UniqueConstraint("work_order_id", "attempt"),
)

# -- access control (issue 9) ----------------------------------------------------------------

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(255)),
    sa.Column("role", sa.String(32), nullable=False),
    # scrypt, self-describing (``scrypt$n$r$p$salt$hash``); None: token-only service account.
    sa.Column("password_hash", sa.String(255)),
    sa.Column("language", sa.String(2), nullable=False, default="es"),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    *_timestamps(),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("name", sa.String(64), nullable=False),
    # SHA-256 of the token: the clear token is shown once and never stored.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime(), nullable=False, default=_now),
    sa.Column("expires_at", UtcDateTime()),
    sa.Column("revoked_at", UtcDateTime()),
    sa.Column("last_used_at", UtcDateTime()),
)

web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id"), nullable=False, index=True),
    # SHA-256 of the cookie value, so a leaked table does not hand out sessions.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False, default=_now),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
)

stakeholder_grants = sa.Table(
    "stakeholder_grants",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id"), nullable=False),
    sa.Column("service_point_id", sa.ForeignKey("service_points.id"), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime(), nullable=False, default=_now),
    sa.UniqueConstraint("user_id", "service_point_id"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UtcDateTime(), nullable=False, default=_now, index=True),
    # The user id is kept even if the row is later deactivated; the name is a snapshot.
    sa.Column("user_id", sa.Integer),
    sa.Column("username", sa.String(64)),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(255)),
    sa.Column("detail", sa.Text),
)

# Events and alarms (issue 6). `events` rows carry the catalog fields as they were when the
# event was raised (the catalog may change later); at most one active row per device and
# catalog key. Every opened or closed event and every outage change is written to `outbox`
# in the same transaction: the outbox is the only way out to the integration layer.

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.String(36), nullable=False, unique=True),
    sa.Column("device_kind", sa.String(16), nullable=False),
    sa.Column("device", sa.String(64), nullable=False),
    # Join hints, not foreign keys (migration 0011): an event is history keyed by the
    # device's serial, and a storm paid a parent-row lock per event for the constraint.
    # Deleting a meter checks its events itself (``CimService._delete_meter``).
    sa.Column("meter_id", sa.Integer, index=True),
    sa.Column("concentrator_id", sa.Integer, index=True),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("code", sa.String(32), nullable=False),
    sa.Column("acronym", sa.String(32), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("severity", sa.Integer, nullable=False),
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("routing", sa.String(32), nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False),
    sa.Column("opened_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("closed_at", UtcDateTime()),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("correlation_id", sa.String(100)),
    sa.Column("raw", sa.Text),
    sa.Column("created_at", UtcDateTime(), nullable=False, default=_now),
    sa.Index("ix_events_device", "device_kind", "device", "key"),
    # The control room's time windows over meter events (migration 0009).
    sa.Index("ix_events_kind_opened", "device_kind", "opened_at"),
    _unique_where("uq_events_active", "is_active", "device_kind", "device", "key"),
)

device_status_words = sa.Table(
    "device_status_words",
    metadata,
    sa.Column("device_kind", sa.String(16), primary_key=True),
    sa.Column("device", sa.String(64), primary_key=True),
    sa.Column("word", sa.String(16), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
    sa.Column("observed_at", UtcDateTime(), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
)

# A meter's four words in one row (NULL: never reported); `device_status_words` keeps the
# concentrators' word. One row per meter is one upsert per push instead of four.
meter_status_words = sa.Table(
    "meter_status_words",
    metadata,
    sa.Column("meter", sa.String(64), primary_key=True),
    sa.Column("normal1", sa.Integer),
    sa.Column("normal2", sa.Integer),
    sa.Column("extended1", sa.Integer),
    sa.Column("extended2", sa.Integer),
    sa.Column("observed_at", UtcDateTime(), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
)

spontaneous_messages = sa.Table(
    "spontaneous_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("received_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("transport", sa.String(8), nullable=False),
    sa.Column("peer_host", sa.String(64), nullable=False),
    sa.Column("peer_port", sa.Integer, nullable=False),
    sa.Column("local_port", sa.Integer, nullable=False),
    sa.Column("message_type", sa.String(32), nullable=False),
    sa.Column("device", sa.String(64), index=True),
    sa.Column("device_time_local", sa.String(32)),
    sa.Column("decoded", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("raw", sa.LargeBinary, nullable=False),
)

outage_incidents = sa.Table(
    "outage_incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.String(36), nullable=False, unique=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("scope_key", sa.String(100), nullable=False),
    sa.Column("concentrator_id", sa.ForeignKey("concentrators.id"), index=True),
    sa.Column("transformer_id", sa.ForeignKey("transformers.id"), index=True),
    sa.Column("started_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("last_event_at", UtcDateTime(), nullable=False),
    sa.Column("ended_at", UtcDateTime()),
    sa.Column("duration_s", sa.Float),
    sa.Column("power_off_events", sa.Integer, nullable=False),
    sa.Column("is_open", sa.Boolean, nullable=False),
    _unique_where("uq_outage_incidents_open", "is_open", "scope", "scope_key"),
)

outage_members = sa.Table(
    "outage_members",
    metadata,
    # No foreign key (migration 0011): the correlation that writes a member has written its
    # incident in the same transaction, and incidents are never deleted; the check cost a
    # parent-row lock per member, the largest server cost of a storm after the events.
    sa.Column("incident_id", sa.Integer, primary_key=True),
    sa.Column("device_kind", sa.String(16), primary_key=True),
    sa.Column("device", sa.String(64), primary_key=True),
    sa.Column("off_at", UtcDateTime(), nullable=False),
    sa.Column("on_at", UtcDateTime()),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.String(36), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("delivered_at", UtcDateTime()),
    # Delivery bookkeeping (issue 8): failed attempts, the last error, when to try again,
    # and when the row was given up on (dead letter: kept, visible, never sent again).
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", UtcDateTime()),
    sa.Column("dead_at", UtcDateTime()),
    sa.Index("ix_outbox_pending", "delivered_at", "priority", "id"),
    # Only the dead letters (migration 0011): a live row, the storm's, pays for no entry.
    _index_where("ix_outbox_dead", "dead_at IS NOT NULL", "dead_at", "id"),
)

# The embedded backend's "Legacy integration database": every outbound CIM message as the
# commercial system reads it (one row per MessageID; a redelivery does not add a row).
legacy_inbox = sa.Table(
    "legacy_inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.String(36), nullable=False, unique=True),
    sa.Column("correlation_id", sa.String(100), index=True),
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("noun", sa.String(64), nullable=False),
    sa.Column("meter", sa.String(64), index=True),
    sa.Column("xml", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("read_at", UtcDateTime()),
)

# -- meter data (issue 7) --------------------------------------------------------------------

reading_types = sa.Table(
    "reading_types",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("code", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("unit", sa.String(8), nullable=False),
)

# One value per meter, reading type and interval end: the key makes late and repeated data
# idempotent. On PostgreSQL the table is range-partitioned by day on `interval_end` (the
# partitions are created on demand by `smmc.store.readings`); no foreign key, so COPY stays
# fast (meters are never deleted).
interval_readings = sa.Table(
    "interval_readings",
    metadata,
    sa.Column("meter_id", sa.Integer, nullable=False),
    sa.Column("reading_type_id", sa.SmallInteger, nullable=False),
    sa.Column("interval_end", UtcDateTime(), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("quality", sa.SmallInteger, nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("meter_id", "reading_type_id", "interval_end"),
    postgresql_partition_by="RANGE (interval_end)",
    sqlite_with_rowid=False,  # the key is the row: one B-tree per insert, not two
)

register_reads = sa.Table(
    "register_reads",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("meter_id", sa.ForeignKey("meters.id"), nullable=False),
    sa.Column("reading_type_id", sa.SmallInteger, nullable=False),
    sa.Column("captured_at", UtcDateTime(), nullable=False, index=True),
    *(sa.Column(f"t{n}", sa.BigInteger, nullable=False) for n in range(1, 7)),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("energy_type", sa.SmallInteger, nullable=False),
    sa.Column("quality", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("received_at", UtcDateTime(), nullable=False, default=_now),
    sa.UniqueConstraint("meter_id", "reading_type_id", "captured_at"),
)

# The first time any value of a meter's local day arrived: the read-success KPI's input.
meter_read_days = sa.Table(
    "meter_read_days",
    metadata,
    sa.Column("meter_id", sa.ForeignKey("meters.id"), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("first_read_at", UtcDateTime(), nullable=False),
    sa.Index("ix_meter_read_days_day", "day"),
)

meter_energy_profiles = sa.Table(
    "meter_energy_profiles",
    metadata,
    sa.Column("meter_id", sa.ForeignKey("meters.id"), primary_key=True),
    sa.Column("daily_closure_profile", sa.String(100)),
    sa.Column("load_profile_profile", sa.String(100)),
    sa.Column("is_upload", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("is_daily_closure", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("updated_at", UtcDateTime(), nullable=False, default=_now, onupdate=_now),
)

# Inbound CIM requests by MessageID: a repeated MessageID replays the stored answer.
cim_messages = sa.Table(
    "cim_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.String(100), nullable=False, unique=True),
    sa.Column("correlation_id", sa.String(100)),
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("source", sa.String(100)),
    sa.Column("reply_address", sa.String(500)),
    sa.Column("result", sa.String(8)),
    # The SOAP response body exactly as first sent; NULL while the request is being handled.
    sa.Column("answer", sa.Text),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("answered_at", UtcDateTime()),
)
