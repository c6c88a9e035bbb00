"""assets, time tables and import runs

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:22:02.221246
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import smmc.store.tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "holiday_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("subdivision", sa.String(length=8), nullable=True),
        sa.Column("is_holiday", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holiday_overrides")),
        sa.UniqueConstraint(
            "day", "subdivision", name=op.f("uq_holiday_overrides_day_subdivision")
        ),
    )
    op.create_table(
        "import_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("template", sa.String(length=32), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_accepted", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("error_report", sa.String(length=500), nullable=True),
        sa.Column("started_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    op.create_table(
        "service_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("comuna", sa.String(length=100), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("altitude", sa.Float(), nullable=True),
        sa.Column("tag", sa.String(length=100), nullable=True),
        sa.Column("is_balance", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("net_billing", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("tariff", sa.String(length=32), nullable=True),
        sa.Column("contracted_capacity_kw", sa.Float(), nullable=True),
        sa.Column("supply_status", sa.String(length=16), server_default="unknown", nullable=False),
        sa.Column("created_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_points")),
        sa.UniqueConstraint("name", name=op.f("uq_service_points_name")),
    )
    with op.batch_alter_table("service_points", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_points_comuna"), ["comuna"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_points_tag"), ["tag"], unique=False)

    op.create_table(
        "substations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("created_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_substations")),
        sa.UniqueConstraint("name", name=op.f("uq_substations_name")),
    )
    op.create_table(
        "time_zones",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("standard_offset_minutes", sa.Integer(), nullable=False),
        sa.Column("has_dst", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_time_zones")),
    )
    op.create_table(
        "dst_transitions",
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("at_utc", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("offset_before_minutes", sa.Integer(), nullable=False),
        sa.Column("offset_after_minutes", sa.Integer(), nullable=False),
        sa.Column("is_dst_after", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["time_zone"], ["time_zones.name"], name=op.f("fk_dst_transitions_time_zone_time_zones")
        ),
        sa.PrimaryKeyConstraint("time_zone", "at_utc", name=op.f("pk_dst_transitions")),
    )
    op.create_table(
        "transformers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("substation_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("created_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["substation_id"],
            ["substations.id"],
            name=op.f("fk_transformers_substation_id_substations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transformers")),
        sa.UniqueConstraint("code", name=op.f("uq_transformers_code")),
    )
    with op.batch_alter_table("transformers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transformers_substation_id"), ["substation_id"], unique=False
        )

    op.create_table(
        "concentrators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("serial_number", sa.String(length=64), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("comuna", sa.String(length=100), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("altitude", sa.Float(), nullable=True),
        sa.Column(
            "time_zone", sa.String(length=64), server_default="America/Santiago", nullable=False
        ),
        sa.Column("windows_time_zone_id", sa.String(length=100), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("spontaneous_profile", sa.String(length=100), nullable=True),
        sa.Column("procedure_profile", sa.String(length=100), nullable=True),
        sa.Column("transformer_id", sa.Integer(), nullable=True),
        sa.Column("module_serial", sa.String(length=64), nullable=True),
        sa.Column("sim_serial", sa.String(length=64), nullable=True),
        sa.Column("ethernet_name", sa.String(length=64), nullable=True),
        sa.Column("adlvc", sa.String(length=64), nullable=True),
        sa.Column("tag", sa.String(length=100), nullable=True),
        sa.Column("ppp_username", sa.String(length=100), nullable=True),
        sa.Column("ppp_password_enc", sa.Text(), nullable=True),
        sa.Column("maa_username", sa.String(length=100), nullable=True),
        sa.Column("maa_password_enc", sa.Text(), nullable=True),
        sa.Column("k2_password_enc", sa.Text(), nullable=True),
        sa.Column("reachable", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["transformer_id"],
            ["transformers.id"],
            name=op.f("fk_concentrators_transformer_id_transformers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concentrators")),
        sa.UniqueConstraint("name", name=op.f("uq_concentrators_name")),
        sa.UniqueConstraint("serial_number", name=op.f("uq_concentrators_serial_number")),
    )
    with op.batch_alter_table("concentrators", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_concentrators_comuna"), ["comuna"], unique=False)
        batch_op.create_index(batch_op.f("ix_concentrators_tag"), ["tag"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_concentrators_transformer_id"), ["transformer_id"], unique=False
        )

    op.create_table(
        "meters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial_number", sa.String(length=64), nullable=False),
        sa.Column("board_serial", sa.String(length=64), nullable=True),
        sa.Column("mac_address", sa.String(length=32), nullable=True),
        sa.Column("firmware_id", sa.String(length=64), nullable=True),
        sa.Column("hardware_id", sa.String(length=64), nullable=True),
        sa.Column("service_kind", sa.String(length=32), nullable=True),
        sa.Column("tag", sa.String(length=100), nullable=True),
        sa.Column("meter_type", sa.String(length=16), server_default="monophase", nullable=False),
        sa.Column("phase", sa.String(length=1), nullable=True),
        sa.Column("encryption_key_enc", sa.Text(), nullable=True),
        sa.Column("authentication_key_enc", sa.Text(), nullable=True),
        sa.Column("concentrator_id", sa.Integer(), nullable=True),
        sa.Column("node_address", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("commissioned", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("reachable", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("in_dc_table", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["concentrator_id"],
            ["concentrators.id"],
            name=op.f("fk_meters_concentrator_id_concentrators"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meters")),
        sa.UniqueConstraint("serial_number", name=op.f("uq_meters_serial_number")),
    )
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_meters_concentrator_id"), ["concentrator_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_meters_tag"), ["tag"], unique=False)

    op.create_table(
        "meter_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("service_point_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("valid_to", smmc.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_meter_links_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["service_point_id"],
            ["service_points.id"],
            name=op.f("fk_meter_links_service_point_id_service_points"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_links")),
    )
    with op.batch_alter_table("meter_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meter_links_meter_id"), ["meter_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_meter_links_service_point_id"), ["service_point_id"], unique=False
        )
        batch_op.create_index(
            "uq_meter_links_open_meter",
            ["meter_id"],
            unique=True,
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )
        batch_op.create_index(
            "uq_meter_links_open_service_point",
            ["service_point_id"],
            unique=True,
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )


def downgrade() -> None:

    with op.batch_alter_table("meter_links", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_meter_links_open_service_point",
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )
        batch_op.drop_index(
            "uq_meter_links_open_meter",
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_meter_links_service_point_id"))
        batch_op.drop_index(batch_op.f("ix_meter_links_meter_id"))

    op.drop_table("meter_links")
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meters_tag"))
        batch_op.drop_index(batch_op.f("ix_meters_concentrator_id"))

    op.drop_table("meters")
    with op.batch_alter_table("concentrators", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_concentrators_transformer_id"))
        batch_op.drop_index(batch_op.f("ix_concentrators_tag"))
        batch_op.drop_index(batch_op.f("ix_concentrators_comuna"))

    op.drop_table("concentrators")
    with op.batch_alter_table("transformers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transformers_substation_id"))

    op.drop_table("transformers")
    op.drop_table("dst_transitions")
    op.drop_table("time_zones")
    op.drop_table("substations")
    with op.batch_alter_table("service_points", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_points_tag"))
        batch_op.drop_index(batch_op.f("ix_service_points_comuna"))

    op.drop_table("service_points")
    op.drop_table("import_runs")
    op.drop_table("holiday_overrides")
