"""Outbox endpoints (issue 8): delivery counts and the dead letters — outbound CIM messages
the publisher gave up on after its configured number of attempts."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from smmc.integration.outbox import pending_summary
from smmc.store.outbox import dead_letters
from smmc.web.api.deps import EngineDep, PageDep

router = APIRouter(prefix="/api/outbox", tags=["outbox"])


class OutboxSummary(BaseModel):
    pending: dict[str, int]
    dead: int
    delivered: int
    legacy_inbox: int


class DeadLetterOut(BaseModel):
    id: int
    message_id: str
    kind: str
    priority: str
    created_at: datetime
    attempts: int
    last_error: str | None
    dead_at: datetime
    payload: str


@router.get("", response_model=OutboxSummary)
def summary(engine: EngineDep) -> OutboxSummary:
    """Rows waiting per queue, dead letters, rows delivered, messages in the Legacy inbox."""
    return OutboxSummary(**pending_summary(engine))


@router.get("/dead-letters", response_model=list[DeadLetterOut])
def list_dead_letters(engine: EngineDep, page: PageDep) -> list[DeadLetterOut]:
    """Messages given up on, newest first, with their attempts and last error
    (re-queue with ``smmc outbox retry``)."""
    with engine.connect() as conn:
        rows = dead_letters(conn, limit=page.limit, offset=page.offset)
    return [DeadLetterOut(**row) for row in rows]
