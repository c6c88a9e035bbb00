"""events: per-transformer outages and the meter's status words in one row

* ``service_points.transformer_id``: the transformer feeding the point. A concentrator's
  meters may hang off more than one transformer; ``NULL`` assumes the concentrator's.
* ``meter_status_words``: a meter's four last words in one row (one upsert per push instead
  of four); the meters' rows of ``device_status_words`` move there, which keeps the
  concentrators' word.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import smmc.store.tables

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WORDS = ("normal1", "normal2", "extended1", "extended2")


def upgrade() -> None:
    with op.batch_alter_table("service_points") as batch:
        batch.add_column(sa.Column("transformer_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_service_points_transformer_id_transformers"),
            "transformers",
            ["transformer_id"],
            ["id"],
        )
        batch.create_index(op.f("ix_service_points_transformer_id"), ["transformer_id"])
    op.create_table(
        "meter_status_words",
        sa.Column("meter", sa.String(length=64), nullable=False),
        *(sa.Column(word, sa.Integer(), nullable=True) for word in _WORDS),
        sa.Column("observed_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("meter", name=op.f("pk_meter_status_words")),
    )
    picked = ", ".join(f"MAX(CASE WHEN word = '{w}' THEN value END)" for w in _WORDS)
    op.execute(
        # the word names are this module's constants
        f"INSERT INTO meter_status_words (meter, {', '.join(_WORDS)}, observed_at, source) "  # noqa: S608
        f"SELECT device, {picked}, MAX(observed_at), MAX(source) FROM device_status_words "
        "WHERE device_kind = 'meter' GROUP BY device"
    )
    op.execute("DELETE FROM device_status_words WHERE device_kind = 'meter'")


def downgrade() -> None:
    for word in _WORDS:
        op.execute(
            "INSERT INTO device_status_words (device_kind, device, word, value, observed_at, "  # noqa: S608
            f"source) SELECT 'meter', meter, '{word}', {word}, observed_at, source "
            f"FROM meter_status_words WHERE {word} IS NOT NULL"
        )
    op.drop_table("meter_status_words")
    with op.batch_alter_table("service_points") as batch:
        batch.drop_index(op.f("ix_service_points_transformer_id"))
        batch.drop_constraint(
            op.f("fk_service_points_transformer_id_transformers"), type_="foreignkey"
        )
        batch.drop_column("transformer_id")
