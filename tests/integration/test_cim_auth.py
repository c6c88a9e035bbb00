"""`/cim/*` behind authentication: with ``auth_required`` a SOAP call needs an API token whose
role holds the service's permission; a missing or bad token gets HTTP 401 with a SOAP fault
(7.2 / 7.4), a role without the permission 403 (7.5), and nothing is acted on. WSDLs stay
open. Without ``auth_required`` (tests, embedded use) no token is asked for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy.engine import Engine
from test_soap_endpoints import (
    EDC,
    MSG,
    SOAP_NS,
    add_meter,
    disconnect,
    fault_code,
    meter_config,
    orders,
)

from smmc.domain.access import Role
from smmc.store import tables as t
from smmc.store.users import AccessStore
from smmc.web.app import create_app


@pytest.fixture
def secured(db: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(db, auth_required=True)) as client:
        yield client


@pytest.fixture
def tokens(db: Engine) -> dict[str, str]:
    store = AccessStore(db)
    store.create_user("legacy", Role.INTEGRATION)
    store.create_user("warehouse", Role.WAREHOUSE_READER)
    return {
        "legacy": store.issue_token("legacy", "soap"),
        "warehouse": store.issue_token("warehouse", "dwh"),
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "content-type": "text/xml"}


def fault_string(body: bytes) -> str:
    root = etree.fromstring(body)
    found = root.find(f"{{{SOAP_NS}}}Body/{{{SOAP_NS}}}Fault/faultstring")
    assert found is not None
    return str(found.text)


def audited(engine: Engine) -> list[tuple[str | None, str, str | None]]:
    a = t.audit_log.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(a.username, a.action, a.target).order_by(a.id)).all()
    return [(r[0], r[1], r[2]) for r in rows]


def test_missing_token_is_401_with_a_soap_fault(db: Engine, secured: TestClient) -> None:
    add_meter(db, "M-1")
    response = secured.post(EDC, content=disconnect(["M-1"]), headers={"content-type": "text/xml"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/xml")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert fault_code(response.content) == "7.2"
    assert fault_string(response.content) == "7.2 Authentication required"
    assert orders(db) == []
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.cim_messages)).scalar() == 0


@pytest.mark.parametrize("header", ["Bearer smmc_not-a-token", "Basic bGVnYWN5OnB3", "Bearer "])
def test_invalid_token_is_401(
    db: Engine, secured: TestClient, tokens: dict[str, str], header: str
) -> None:
    add_meter(db, "M-1")
    response = secured.post(
        EDC,
        content=disconnect(["M-1"]),
        headers={"Authorization": header, "content-type": "text/xml"},
    )
    assert response.status_code == 401
    expected = "7.4" if header.startswith("Bearer smmc") else "7.2"
    assert fault_code(response.content) == expected
    assert orders(db) == []


def test_integration_token_is_served_and_audited(
    db: Engine, secured: TestClient, tokens: dict[str, str]
) -> None:
    add_meter(db, "M-1")
    response = secured.post(EDC, content=disconnect(["M-1"]), headers=bearer(tokens["legacy"]))
    assert response.status_code == 200, response.text
    result = etree.fromstring(response.content).find(f".//{{{MSG}}}Result")
    assert result is not None
    assert result.text == "OK"
    assert [o["serial_number"] for o in orders(db)] == ["M-1"]
    assert audited(db) == [("legacy", "cim.call", "ExecuteEndDeviceControls")]


def test_revoked_token_is_refused(db: Engine, secured: TestClient, tokens: dict[str, str]) -> None:
    add_meter(db, "M-1")
    store = AccessStore(db)
    store.revoke_token("legacy", store.tokens("legacy")[0]["id"])
    response = secured.post(EDC, content=disconnect(["M-1"]), headers=bearer(tokens["legacy"]))
    assert response.status_code == 401
    assert fault_code(response.content) == "7.4"
    assert orders(db) == []


def test_role_without_the_permission_is_403(
    db: Engine, secured: TestClient, tokens: dict[str, str]
) -> None:
    add_meter(db, "M-1")
    read_only = secured.post(EDC, content=disconnect(["M-1"]), headers=bearer(tokens["warehouse"]))
    assert read_only.status_code == 403
    assert fault_code(read_only.content) == "7.5"
    assert "workorders:write" in read_only.text
    # Meter master data is provisioning: Legacy (I6) may send it, the warehouse (I7) may not.
    refused = secured.post(
        "/cim/ExecuteMeterConfig",
        content=meter_config("create", [("M-2", "monophase")], "mc-1"),
        headers=bearer(tokens["warehouse"]),
    )
    assert refused.status_code == 403
    assert fault_code(refused.content) == "7.5"
    assert orders(db) == []
    with db.connect() as conn:
        serials = conn.execute(sa.select(t.meters.c.serial_number)).scalars().all()
    assert serials == ["M-1"]


def test_legacy_sends_meter_master_data(
    db: Engine, secured: TestClient, tokens: dict[str, str]
) -> None:
    add_meter(db, "M-1")
    config = secured.post(
        "/cim/ExecuteMeterConfig",
        content=meter_config("create", [("M-2", "monophase")], "mc-2"),
        headers=bearer(tokens["legacy"]),
    )
    assert config.status_code == 200, config.text
    with db.connect() as conn:
        serials = conn.execute(sa.select(t.meters.c.serial_number)).scalars().all()
    assert sorted(serials) == ["M-1", "M-2"]


def test_wsdl_stays_open(secured: TestClient) -> None:
    response = secured.get(f"{EDC}?wsdl")
    assert response.status_code == 200
    assert b"CreateEndDeviceControls" in response.content


def test_without_auth_required_no_token_is_needed(db: Engine) -> None:
    add_meter(db, "M-1")
    with TestClient(create_app(db)) as open_client:
        response = open_client.post(EDC, content=disconnect(["M-1"]))
    assert response.status_code == 200
    assert [o["serial_number"] for o in orders(db)] == ["M-1"]
