"""ui indexes: the operator pages over 100,000 meters (issue 9)

* ``ix_work_orders_view`` (state, activity, origin, id): the works views' counts and id
  pages read this index alone (an index-only scan on PostgreSQL, a covering index on SQLite)
  instead of the table joined to meters, concentrators and service points.
* ``ix_work_orders_batch_state`` (batch_id, state): the running batches and a batch's live
  progress without visiting the batch's orders.
* ``ix_events_kind_opened`` (device_kind, opened_at): the control room's windows over meter
  events read only the window, not every meter event ever recorded.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 17:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_work_orders_view", "work_orders", ["state", "activity", "origin", "id"], unique=False
    )
    op.create_index(
        "ix_work_orders_batch_state", "work_orders", ["batch_id", "state"], unique=False
    )
    op.create_index("ix_events_kind_opened", "events", ["device_kind", "opened_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_kind_opened", table_name="events")
    op.drop_index("ix_work_orders_batch_state", table_name="work_orders")
    op.drop_index("ix_work_orders_view", table_name="work_orders")
