"""events: the transformer feeding a service point, for per-transformer outage incidents

A concentrator's meters may hang off more than one transformer; the meter's service point
names its own (``NULL``: the concentrator's transformer is assumed).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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


def downgrade() -> None:
    with op.batch_alter_table("service_points") as batch:
        batch.drop_index(op.f("ix_service_points_transformer_id"))
        batch.drop_constraint(
            op.f("fk_service_points_transformer_id_transformers"), type_="foreignkey"
        )
        batch.drop_column("transformer_id")
