"""storm indexes: fewer index entries and no parent-row locks per stored event

* ``events.meter_id`` and ``events.concentrator_id`` stay indexed but are no longer foreign
  keys. On PostgreSQL each checked reference locked its meter's and concentrator's row (a
  WAL record per event); an event is history keyed by its device's serial, the ids are
  join hints. Deleting a meter checks for its events explicitly.
* ``outage_members.incident_id`` is no longer a foreign key either: its only writer, the
  outage correlation, writes the incident in the same transaction, and incidents are never
  deleted. The check was ~9 µs of PostgreSQL's work per member (a lock on the same incident
  row, again and again).

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


_REFERENCES = (("meter_id", "meters"), ("concentrator_id", "concentrators"))
_MEMBER_INCIDENT = "fk_outage_members_incident_id_outage_incidents"


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        for column, parent in _REFERENCES:
            batch.drop_constraint(op.f(f"fk_events_{column}_{parent}"), type_="foreignkey")
    if op.get_bind().dialect.name == "sqlite":
        _active_index_last()
    with op.batch_alter_table("outage_members") as batch:
        batch.drop_constraint(_MEMBER_INCIDENT, type_="foreignkey")
    op.drop_index(op.f("ix_events_code"), table_name="events")
    op.drop_index("ix_outbox_dead_at", table_name="outbox")
    op.create_index(
        "ix_outbox_dead",
        "outbox",
        ["dead_at", "id"],
        sqlite_where=_DEAD,
        postgresql_where=_DEAD,
    )


def _active_index_last() -> None:
    """SQLite rebuilt the table and its indexes in another order. Without statistics its
    planner breaks the tie between ``uq_events_active`` and ``ix_events_device`` (same
    columns) for the index created last, so the partial one, the active events' lookup, is
    created again after the other."""
    op.drop_index("uq_events_active", table_name="events")
    op.create_index(
        "uq_events_active",
        "events",
        ["device_kind", "device", "key"],
        unique=True,
        sqlite_where=sa.text("is_active"),
    )


def downgrade() -> None:
    with op.batch_alter_table("outage_members") as batch:
        batch.create_foreign_key(_MEMBER_INCIDENT, "outage_incidents", ["incident_id"], ["id"])
    op.drop_index("ix_outbox_dead", table_name="outbox")
    op.create_index("ix_outbox_dead_at", "outbox", ["dead_at"])
    op.create_index(op.f("ix_events_code"), "events", ["code"])
    with op.batch_alter_table("events") as batch:
        for column, parent in _REFERENCES:
            batch.create_foreign_key(op.f(f"fk_events_{column}_{parent}"), parent, [column], ["id"])
