"""outbox delivery: attempts, last error, backoff and dead letters; the Legacy inbox table

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import smmc.store.tables

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column(
                "next_attempt_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch.add_column(
            sa.Column("dead_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=True)
        )
        batch.create_index("ix_outbox_dead_at", ["dead_at"])
    op.create_table(
        "legacy_inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("correlation_id", sa.String(length=100), nullable=True),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("noun", sa.String(length=64), nullable=False),
        sa.Column("meter", sa.String(length=64), nullable=True),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("created_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("read_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legacy_inbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_legacy_inbox_message_id")),
    )
    op.create_index("ix_legacy_inbox_correlation_id", "legacy_inbox", ["correlation_id"])
    op.create_index("ix_legacy_inbox_meter", "legacy_inbox", ["meter"])


def downgrade() -> None:
    op.drop_index("ix_legacy_inbox_meter", table_name="legacy_inbox")
    op.drop_index("ix_legacy_inbox_correlation_id", table_name="legacy_inbox")
    op.drop_table("legacy_inbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_dead_at")
        batch.drop_column("dead_at")
        batch.drop_column("next_attempt_at")
        batch.drop_column("last_error")
        batch.drop_column("attempts")
