"""field layer: invocation counters and work-order events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import smmc.store.tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invocation_counters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_kind", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("client_sap", sa.Integer(), nullable=False),
        sa.Column("next_send", sa.BigInteger(), nullable=False),
        sa.Column("last_received", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invocation_counters")),
        sa.UniqueConstraint(
            "device_kind",
            "device_id",
            "client_sap",
            name=op.f("uq_invocation_counters_device_kind_device_id_client_sap"),
        ),
    )
    op.create_table(
        "work_order_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("work_order_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=True),
        sa.Column("concentrator_id", sa.Integer(), nullable=True),
        sa.Column("occurred_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("breaker_state", sa.Integer(), nullable=True),
        sa.Column("routed_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_work_order_events_work_order_id_work_orders"),
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_work_order_events_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["concentrator_id"],
            ["concentrators.id"],
            name=op.f("fk_work_order_events_concentrator_id_concentrators"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_events")),
        sa.UniqueConstraint(
            "work_order_id", "attempt", name=op.f("uq_work_order_events_work_order_id_attempt")
        ),
    )
    with op.batch_alter_table("work_order_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_work_order_events_work_order_id"), ["work_order_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_work_order_events_meter_id"), ["meter_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_work_order_events_concentrator_id"), ["concentrator_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("work_order_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_order_events_concentrator_id"))
        batch_op.drop_index(batch_op.f("ix_work_order_events_meter_id"))
        batch_op.drop_index(batch_op.f("ix_work_order_events_work_order_id"))
    op.drop_table("work_order_events")
    op.drop_table("invocation_counters")
