"""work orders, attempts, field work orders, concentrator permits and schedules

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:50:51.539538
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import smmc.store.tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "work_order_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activity", sa.String(length=32), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_batches")),
    )
    op.create_table(
        "work_order_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("activity", sa.String(length=32), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column(
            "time_zone", sa.String(length=64), server_default="America/Santiago", nullable=False
        ),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=100), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("next_run_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_work_order_schedules_name")),
    )
    op.create_table(
        "concentrator_permits",
        sa.Column("concentrator_id", sa.Integer(), nullable=False),
        sa.Column("max_sessions", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["concentrator_id"],
            ["concentrators.id"],
            name=op.f("fk_concentrator_permits_concentrator_id_concentrators"),
        ),
        sa.PrimaryKeyConstraint("concentrator_id", name=op.f("pk_concentrator_permits")),
    )
    op.create_table(
        "work_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("activity", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("base_priority", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("meter_id", sa.Integer(), nullable=True),
        sa.Column("concentrator_id", sa.Integer(), nullable=True),
        sa.Column("service_point_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("special", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("is_error", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("error_text", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("scheduled_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("deadline", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("started_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("schedule_id", sa.Integer(), nullable=True),
        sa.Column("created_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["work_order_batches.id"],
            name=op.f("fk_work_orders_batch_id_work_order_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["concentrator_id"],
            ["concentrators.id"],
            name=op.f("fk_work_orders_concentrator_id_concentrators"),
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_work_orders_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["service_point_id"],
            ["service_points.id"],
            name=op.f("fk_work_orders_service_point_id_service_points"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders")),
    )
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_orders_activity"), ["activity"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_orders_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_work_orders_concentrator_id"), ["concentrator_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_work_orders_ended_at"), ["ended_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_work_orders_external_id"), ["external_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_work_orders_meter_id"), ["meter_id"], unique=False)
        batch_op.create_index("ix_work_orders_queue", ["state", "scheduled_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_work_orders_service_point_id"), ["service_point_id"], unique=False
        )
        batch_op.create_index(
            "uq_work_orders_running_meter",
            ["meter_id"],
            unique=True,
            sqlite_where=sa.text("state = 'RUNNING'"),
            postgresql_where=sa.text("state = 'RUNNING'"),
        )

    op.create_table(
        "field_work_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("work_order_id", sa.Integer(), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=True),
        sa.Column("concentrator_id", sa.Integer(), nullable=True),
        sa.Column("activity", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("created_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["concentrator_id"],
            ["concentrators.id"],
            name=op.f("fk_field_work_orders_concentrator_id_concentrators"),
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_field_work_orders_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_field_work_orders_work_order_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_field_work_orders")),
        sa.UniqueConstraint("work_order_id", name=op.f("uq_field_work_orders_work_order_id")),
    )
    with op.batch_alter_table("field_work_orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_field_work_orders_concentrator_id"), ["concentrator_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_field_work_orders_meter_id"), ["meter_id"], unique=False
        )

    op.create_table(
        "work_order_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("work_order_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("started_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("error_text", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_work_order_attempts_work_order_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_attempts")),
        sa.UniqueConstraint(
            "work_order_id", "attempt", name=op.f("uq_work_order_attempts_work_order_id_attempt")
        ),
    )
    with op.batch_alter_table("work_order_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_work_order_attempts_work_order_id"), ["work_order_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("work_order_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_order_attempts_work_order_id"))

    op.drop_table("work_order_attempts")
    with op.batch_alter_table("field_work_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_field_work_orders_meter_id"))
        batch_op.drop_index(batch_op.f("ix_field_work_orders_concentrator_id"))

    op.drop_table("field_work_orders")
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_work_orders_running_meter",
            sqlite_where=sa.text("state = 'RUNNING'"),
            postgresql_where=sa.text("state = 'RUNNING'"),
        )
        batch_op.drop_index(batch_op.f("ix_work_orders_service_point_id"))
        batch_op.drop_index("ix_work_orders_queue")
        batch_op.drop_index(batch_op.f("ix_work_orders_meter_id"))
        batch_op.drop_index(batch_op.f("ix_work_orders_external_id"))
        batch_op.drop_index(batch_op.f("ix_work_orders_ended_at"))
        batch_op.drop_index(batch_op.f("ix_work_orders_concentrator_id"))
        batch_op.drop_index(batch_op.f("ix_work_orders_batch_id"))
        batch_op.drop_index(batch_op.f("ix_work_orders_activity"))

    op.drop_table("work_orders")
    op.drop_table("concentrator_permits")
    op.drop_table("work_order_schedules")
    op.drop_table("work_order_batches")
