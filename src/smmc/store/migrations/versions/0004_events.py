"""events, last status words, spontaneous messages, outage incidents and the outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import smmc.store.tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Utc = smmc.store.tables.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("device_kind", sa.String(length=16), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=True),
        sa.Column("concentrator_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("acronym", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("routing", sa.String(length=32), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("opened_at", _Utc(timezone=True), nullable=False),
        sa.Column("closed_at", _Utc(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("correlation_id", sa.String(length=100), nullable=True),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("created_at", _Utc(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["concentrator_id"],
            ["concentrators.id"],
            name=op.f("fk_events_concentrator_id_concentrators"),
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_events_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("message_id", name=op.f("uq_events_message_id")),
    )
    op.create_index(op.f("ix_events_code"), "events", ["code"])
    op.create_index(op.f("ix_events_concentrator_id"), "events", ["concentrator_id"])
    op.create_index(op.f("ix_events_meter_id"), "events", ["meter_id"])
    op.create_index(op.f("ix_events_opened_at"), "events", ["opened_at"])
    op.create_index("ix_events_device", "events", ["device_kind", "device", "key"])
    op.create_index(
        "uq_events_active",
        "events",
        ["device_kind", "device", "key"],
        unique=True,
        sqlite_where=sa.text("is_active"),
        postgresql_where=sa.text("is_active"),
    )
    op.create_table(
        "device_status_words",
        sa.Column("device_kind", sa.String(length=16), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("word", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("observed_at", _Utc(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint(
            "device_kind", "device", "word", name=op.f("pk_device_status_words")
        ),
    )
    op.create_table(
        "spontaneous_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", _Utc(timezone=True), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("peer_host", sa.String(length=64), nullable=False),
        sa.Column("peer_port", sa.Integer(), nullable=False),
        sa.Column("local_port", sa.Integer(), nullable=False),
        sa.Column("message_type", sa.String(length=32), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=True),
        sa.Column("device_time_local", sa.String(length=32), nullable=True),
        sa.Column("decoded", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spontaneous_messages")),
    )
    op.create_index(
        op.f("ix_spontaneous_messages_received_at"), "spontaneous_messages", ["received_at"]
    )
    op.create_index(op.f("ix_spontaneous_messages_device"), "spontaneous_messages", ["device"])
    op.create_table(
        "outage_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_key", sa.String(length=100), nullable=False),
        sa.Column("concentrator_id", sa.Integer(), nullable=True),
        sa.Column("transformer_id", sa.Integer(), nullable=True),
        sa.Column("started_at", _Utc(timezone=True), nullable=False),
        sa.Column("last_event_at", _Utc(timezone=True), nullable=False),
        sa.Column("ended_at", _Utc(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("power_off_events", sa.Integer(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["concentrator_id"],
            ["concentrators.id"],
            name=op.f("fk_outage_incidents_concentrator_id_concentrators"),
        ),
        sa.ForeignKeyConstraint(
            ["transformer_id"],
            ["transformers.id"],
            name=op.f("fk_outage_incidents_transformer_id_transformers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outage_incidents")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outage_incidents_message_id")),
    )
    op.create_index(
        op.f("ix_outage_incidents_concentrator_id"), "outage_incidents", ["concentrator_id"]
    )
    op.create_index(
        op.f("ix_outage_incidents_transformer_id"), "outage_incidents", ["transformer_id"]
    )
    op.create_index(op.f("ix_outage_incidents_started_at"), "outage_incidents", ["started_at"])
    op.create_index(
        "uq_outage_incidents_open",
        "outage_incidents",
        ["scope", "scope_key"],
        unique=True,
        sqlite_where=sa.text("is_open"),
        postgresql_where=sa.text("is_open"),
    )
    op.create_table(
        "outage_members",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("device_kind", sa.String(length=16), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("off_at", _Utc(timezone=True), nullable=False),
        sa.Column("on_at", _Utc(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["outage_incidents.id"],
            name=op.f("fk_outage_members_incident_id_outage_incidents"),
        ),
        sa.PrimaryKeyConstraint(
            "incident_id", "device_kind", "device", name=op.f("pk_outage_members")
        ),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", _Utc(timezone=True), nullable=False),
        sa.Column("delivered_at", _Utc(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
    )
    op.create_index("ix_outbox_pending", "outbox", ["delivered_at", "priority", "id"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("outage_members")
    op.drop_table("outage_incidents")
    op.drop_table("spontaneous_messages")
    op.drop_table("device_status_words")
    op.drop_table("events")
