"""CIM integration: inbound message ids and their stored answers (idempotent replay)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import smmc.store.tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cim_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("correlation_id", sa.String(length=100), nullable=True),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("reply_address", sa.String(length=500), nullable=True),
        sa.Column("result", sa.String(length=8), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("received_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", smmc.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cim_messages")),
        sa.UniqueConstraint("message_id", name=op.f("uq_cim_messages_message_id")),
    )


def downgrade() -> None:
    op.drop_table("cim_messages")
