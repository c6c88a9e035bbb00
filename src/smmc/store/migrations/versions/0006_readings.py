"""meter data: reading types, interval readings (partitioned by day on PostgreSQL), register
reads, meter read days and energy-profile assignments

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 03:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import smmc.store.tables
from smmc.domain.readings import READING_TYPES

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    reading_types = op.create_table(
        "reading_types",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("unit", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reading_types")),
        sa.UniqueConstraint("code", name=op.f("uq_reading_types_code")),
    )
    op.bulk_insert(
        reading_types,
        [
            {"id": t.id, "code": t.code, "name": t.name, "kind": t.kind.value, "unit": t.unit}
            for t in READING_TYPES
        ],
    )
    op.create_table(
        "interval_readings",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("reading_type_id", sa.SmallInteger(), nullable=False),
        sa.Column("interval_end", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("quality", sa.SmallInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "meter_id", "reading_type_id", "interval_end", name=op.f("pk_interval_readings")
        ),
        postgresql_partition_by="RANGE (interval_end)",
        sqlite_with_rowid=False,
    )
    op.create_table(
        "register_reads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("reading_type_id", sa.SmallInteger(), nullable=False),
        sa.Column("captured_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        *(sa.Column(f"t{n}", sa.BigInteger(), nullable=False) for n in range(1, 7)),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("energy_type", sa.SmallInteger(), nullable=False),
        sa.Column("quality", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("received_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_register_reads_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_reads")),
        sa.UniqueConstraint(
            "meter_id",
            "reading_type_id",
            "captured_at",
            name=op.f("uq_register_reads_meter_id_reading_type_id_captured_at"),
        ),
    )
    op.create_index(
        op.f("ix_register_reads_captured_at"), "register_reads", ["captured_at"], unique=False
    )
    op.create_table(
        "meter_read_days",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("first_read_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_meter_read_days_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("meter_id", "day", name=op.f("pk_meter_read_days")),
    )
    op.create_index("ix_meter_read_days_day", "meter_read_days", ["day"], unique=False)
    op.create_table(
        "meter_energy_profiles",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("daily_closure_profile", sa.String(length=100), nullable=True),
        sa.Column("load_profile_profile", sa.String(length=100), nullable=True),
        sa.Column("is_upload", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("is_daily_closure", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("updated_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_meter_energy_profiles_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("meter_id", name=op.f("pk_meter_energy_profiles")),
    )


def downgrade() -> None:
    op.drop_table("meter_energy_profiles")
    op.drop_index("ix_meter_read_days_day", table_name="meter_read_days")
    op.drop_table("meter_read_days")
    op.drop_index(op.f("ix_register_reads_captured_at"), table_name="register_reads")
    op.drop_table("register_reads")
    op.drop_table("interval_readings")
    op.drop_table("reading_types")
