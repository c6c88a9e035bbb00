"""leasable index: the lease reads the head of each concentrator's queue

* ``ix_work_orders_leasable`` (coalesce(concentrator_id, -meter_id), priority DESC,
  scheduled_at, id) over the queued orders (PENDING, RETRY) only: each concentrator's queue
  (a point-to-point meter's, by its negative id) best first. The lease walks each one with a
  free permit from its best order and stops after as many orders as it has free permits,
  instead of ranking the whole queue with a window function per lease (≈ 4 ms with 2,000
  orders queued on SQLite). Leased and finished orders leave the index.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEASABLE = sa.text("state IN ('PENDING', 'RETRY')")


def upgrade() -> None:
    op.create_index(
        "ix_work_orders_leasable",
        "work_orders",
        [
            sa.text("coalesce(concentrator_id, -meter_id)"),
            sa.text("priority DESC"),
            "scheduled_at",
            "id",
        ],
        sqlite_where=_LEASABLE,
        postgresql_where=_LEASABLE,
    )


def downgrade() -> None:
    op.drop_index("ix_work_orders_leasable", table_name="work_orders")
