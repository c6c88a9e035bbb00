"""storm indexes: two index entries fewer per stored event

* ``ix_events_code`` goes. A catalog code names a few dozen kinds of event over millions of
  rows, so it was never the selective index: the events list walks ``ix_events_opened_at``
  (or ``uq_events_active``, ``ix_events_device``) and filters the code there, and the by-type
  aggregate reads ``ix_events_kind_opened``. Every event insert paid for it all the same.
* ``ix_outbox_dead_at`` becomes ``ix_outbox_dead`` (dead_at, id) over the dead letters only:
  the dead-letter list and count read exactly those rows, and the live rows (every event's
  message) no longer add a NULL entry.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 13:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEAD = sa.text("dead_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index(op.f("ix_events_code"), table_name="events")
    op.drop_index("ix_outbox_dead_at", table_name="outbox")
    op.create_index(
        "ix_outbox_dead",
        "outbox",
        ["dead_at", "id"],
        sqlite_where=_DEAD,
        postgresql_where=_DEAD,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_dead", table_name="outbox")
    op.create_index("ix_outbox_dead_at", "outbox", ["dead_at"])
    op.create_index(op.f("ix_events_code"), "events", ["code"])
