"""The SOAP side uses the code book configured with ``SMMC_CIM_CODES`` (the one the outbox
publisher renders outcomes with), not the built-in defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from starlette.requests import Request

from smmc.domain.work_orders import ActivityType
from smmc.web.api.cim import cim_service
from smmc.web.app import create_app


def test_soap_service_uses_the_configured_code_book(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codes = tmp_path / "h8c-codes.yaml"
    codes.write_text(
        "controls:\n  '3.31.0.99': Disconnect\nevent_codes:\n  disconnected: '3.31.17.99'\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SMMC_CIM_CODES", str(codes))
    app = create_app(db)
    service = cim_service(Request({"type": "http", "app": app}))
    assert service.codes.activity("3.31.0.99") is ActivityType.DISCONNECT
    assert service.codes.event_code("disconnected") == "3.31.17.99"


def test_soap_service_defaults_without_a_configured_code_book(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMMC_CIM_CODES", raising=False)
    service = cim_service(Request({"type": "http", "app": create_app(db)}))
    assert service.codes.activity("3.31.0.99") is None
    assert service.codes.event_code("disconnected") == "3.31.17.68"
