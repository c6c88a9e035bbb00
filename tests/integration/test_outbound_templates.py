"""Event rows rendered from a per-shape template give exactly the bytes lxml builds, for any
field values (hypothesis, including the characters XML must escape and ones it cannot carry),
and the template-rendered messages validate against the Connexo and the pure-IEC schemas."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_outbox import EVENTS_XSD, schema_check

from smmc.integration.messages import Message
from smmc.integration.outbound import Outgoing, Renderer, RenderError

TEXT_FIELDS = ("device", "acronym", "category", "type", "event_id", "severity")
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ue000\ue001]")
AWKWARD = st.sampled_from(["&", "<", ">", '"', "'", "\r", "\n", "\t", "]]>", "ñ", "€", "\x01"])
TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.lists(st.one_of(AWKWARD, st.text(max_size=3)), max_size=6).map("".join),
)
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=5, minutes=30))]
)
STAMPS = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=ZONES
)


def event_row(
    texts: dict[str, str], *, description: str | None, concentrator: str | None, **shape: Any
) -> dict[str, Any]:
    body: dict[str, Any] = dict(texts)
    body.update(device_kind=shape["device_kind"], isactive=shape["isactive"], date=shape["date"])
    if description is not None:
        body["description"] = description
    if concentrator is not None:
        body["concentrator"] = concentrator
    return {
        "id": 11,
        "message_id": shape["message_id"],
        "kind": "event",
        "priority": shape["priority"],
        "payload": json.dumps(body),
        "created_at": shape["created_at"],
    }


def outcome(render: Callable[[dict[str, Any]], Outgoing], row: dict[str, Any]) -> Outgoing | str:
    try:
        return render(row)
    except RenderError as exc:
        return f"RenderError: {exc}"


@settings(max_examples=300, deadline=None)
@given(
    texts=st.fixed_dictionaries(dict.fromkeys(TEXT_FIELDS, TEXT)),
    description=st.none() | TEXT,
    concentrator=st.none() | TEXT,
    message_id=TEXT,
    priority=st.sampled_from(["high", "normal"]),
    device_kind=st.sampled_from(["meter", "concentrator"]),
    isactive=st.booleans(),
    date=STAMPS,
    created_at=STAMPS,
)
def test_template_rendering_equals_the_lxml_built_message(
    texts: dict[str, str],
    description: str | None,
    concentrator: str | None,
    message_id: str,
    priority: str,
    device_kind: str,
    isactive: bool,
    date: datetime,
    created_at: datetime,
) -> None:
    row = event_row(
        texts,
        description=description,
        concentrator=concentrator,
        message_id=message_id,
        priority=priority,
        device_kind=device_kind,
        isactive=isactive,
        date=date.isoformat(),
        created_at=created_at,
    )
    renderer = Renderer()
    assert outcome(renderer.render, row) == outcome(Renderer().build, row)
    values = [*texts.values(), message_id, "x" if description is None else description]
    if device_kind == "meter" and concentrator:
        values.append(concentrator)
    if all(value and not NOT_XML.search(value) for value in values):
        assert renderer._templates, "a clean row must come from a template"


@pytest.fixture(scope="module")
def validate(shared_dir: Path) -> Callable[[bytes], Message]:
    return schema_check(shared_dir, EVENTS_XSD)


@pytest.mark.parametrize("device_kind", ["meter", "concentrator"])
@pytest.mark.parametrize("described", [True, False])
def test_template_rendered_events_validate_against_both_schema_sets(
    validate: Callable[[bytes], Message], device_kind: str, described: bool
) -> None:
    texts = {
        "device": "M<1> & co",
        "acronym": "TERMINAL_COVER",
        "category": 'tamper "A"',
        "type": "3.12.29.212",
        "event_id": "1234",
        "severity": "alarm",
    }
    row = event_row(
        texts,
        description="cover opened\r\n& closed <again>" if described else None,
        concentrator="DC-1",
        message_id="7c1e6b0a-0f7d-4d4a-9e0f-2b9a6c1d3e5f",
        priority="high",
        device_kind=device_kind,
        isactive=True,
        date="2026-12-02T15:00:00.250000-03:00",
        created_at=datetime(2026, 12, 2, 18, 0, 1, tzinfo=UTC),
    )
    renderer = Renderer()
    item = renderer.render(row)
    assert len(renderer._templates) == 1
    message = validate(item.xml)
    assert message.header.message_id == row["message_id"]
    event = message.payload.events[0]  # type: ignore[union-attr]
    assert event.asset is not None
    assert event.asset.mrid == "M<1> & co"
    assert event.reason == ("cover opened\r\n& closed <again>" if described else None)
    assert item == renderer.build(row)
