"""Access control: the KDF, sessions, CSRF, API tokens, role permissions, the audit log and
the stakeholder (I8) restriction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from access_helpers import PASSWORD, add_users, csrf_of, login, secured_client
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from smmc.domain.access import (
    ROLES,
    WRITE_PERMISSIONS,
    Permission,
    Role,
    UnknownRole,
    allows,
    parse_role,
)
from smmc.store.tables import api_tokens, audit_log, web_sessions
from smmc.store.users import AccessError, AccessStore, hash_password, verify_password
from smmc.web.app import create_app

FAST = {"n": 2**4, "r": 1, "p": 1}  # cheap scrypt parameters for property tests only


# -- KDF ---------------------------------------------------------------------------------------


def test_password_hash_is_salted_scrypt_and_verifies() -> None:
    first, second = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert first.startswith("scrypt$16384$8$1$")
    assert first != second  # a fresh salt every time
    assert verify_password("s3cret-pass", first)
    assert not verify_password("s3cret-pasS", first)


@settings(max_examples=40, deadline=None)
@given(password=st.text(min_size=1, max_size=40), other=st.text(min_size=1, max_size=40))
def test_only_the_same_password_verifies(password: str, other: str) -> None:
    stored = hash_password(password, **FAST)
    assert verify_password(password, stored)
    assert verify_password(other, stored) == (other == password)


@settings(max_examples=60, deadline=None)
@given(garbage=st.text(max_size=80))
def test_malformed_hash_never_verifies(garbage: str) -> None:
    assert not verify_password("anything", garbage)
    assert not verify_password("anything", None)


# -- roles ---------------------------------------------------------------------------------------


def test_read_only_roles_hold_no_write_permission() -> None:
    for role in (Role.WAREHOUSE_READER, Role.STAKEHOLDER):
        assert ROLES[role].read_only
        assert not ROLES[role].permissions & WRITE_PERMISSIONS


def test_roles_map_to_the_regulation_interfaces() -> None:
    assert ROLES[Role.INTEGRATION].interface == "I6"
    assert ROLES[Role.WAREHOUSE_READER].interface == "I7"
    assert ROLES[Role.STAKEHOLDER].interface == "I8"
    assert ROLES[Role.STAKEHOLDER].restricted_to_grants
    assert allows(Role.INTEGRATION, Permission.SUBMIT_WORK_ORDERS)
    assert allows(Role.SPECIALIST, Permission.PROVISION)
    assert not allows(Role.OPERATOR, Permission.PROVISION)
    assert allows(Role.ADMINISTRATOR, Permission.MANAGE_USERS)
    assert not allows(Role.SPECIALIST, Permission.MANAGE_USERS)


def test_parse_role() -> None:
    assert parse_role(" Stakeholder ") is Role.STAKEHOLDER
    with pytest.raises(UnknownRole):
        parse_role("root")


# -- store -------------------------------------------------------------------------------------


def test_users_authenticate_and_passwords_change(db: Engine) -> None:
    store = AccessStore(db)
    store.create_user("ana", Role.OPERATOR, PASSWORD)
    with pytest.raises(AccessError):
        store.create_user("ana", Role.OPERATOR, PASSWORD)
    with pytest.raises(AccessError):
        store.create_user("bob", Role.OPERATOR, "short")
    principal = store.authenticate("ana", PASSWORD)
    assert principal is not None
    assert principal.role is Role.OPERATOR
    assert store.authenticate("ana", "wrong password") is None
    assert store.authenticate("nobody", PASSWORD) is None
    cookie, _ = store.open_session(principal)
    store.set_password("ana", "another password")
    assert store.session(cookie) is None  # a password change ends the open sessions
    assert store.authenticate("ana", PASSWORD) is None
    assert store.authenticate("ana", "another password") is not None


def test_sessions_expire_and_are_stored_hashed(db: Engine) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store = AccessStore(db, clock=lambda: now)
    store.create_user("ana", Role.OPERATOR, PASSWORD)
    principal = store.authenticate("ana", PASSWORD)
    assert principal is not None
    cookie, csrf = store.open_session(principal, ttl=timedelta(minutes=5))
    with db.connect() as conn:
        stored = conn.execute(sa.select(web_sessions.c.token_hash)).scalar_one()
    assert cookie not in stored
    found = store.session(cookie)
    assert found is not None
    assert found.csrf_token == csrf
    later = AccessStore(db, clock=lambda: now + timedelta(minutes=6))
    assert later.session(cookie) is None


def test_tokens_resolve_until_revoked_or_expired(db: Engine) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store = AccessStore(db, clock=lambda: now)
    store.create_user("legacy", Role.INTEGRATION)
    token = store.issue_token("legacy", "soap")
    short = store.issue_token("legacy", "short", expires_at=now + timedelta(hours=1))
    with db.connect() as conn:
        hashes = set(conn.execute(sa.select(api_tokens.c.token_hash)).scalars())
    assert token not in hashes
    assert short not in hashes
    found = store.principal_for_token(token)
    assert found is not None
    assert found.role is Role.INTEGRATION
    assert store.principal_for_token(token + "x") is None
    token_id = store.tokens("legacy")[0]["id"]
    store.revoke_token("legacy", token_id)
    assert store.principal_for_token(token) is None
    with pytest.raises(AccessError):
        store.revoke_token("legacy", token_id)
    later = AccessStore(db, clock=lambda: now + timedelta(hours=2))
    assert later.principal_for_token(short) is None


# -- over HTTP ---------------------------------------------------------------------------------


def test_login_sets_a_secure_httponly_lax_cookie(db: Engine) -> None:
    add_users(db)
    with secured_client(db) as client:
        form = client.get("/login")
        response = client.post(
            "/login",
            data={"csrf_token": csrf_of(form.text), "username": "operator", "password": PASSWORD},
            follow_redirects=False,
        )
    assert response.status_code == 303
    cookie = next(h for h in response.headers.get_list("set-cookie") if "smmc_session=" in h)
    lowered = cookie.lower()
    assert "secure" in lowered
    assert "httponly" in lowered
    assert "samesite=lax" in lowered


def test_login_without_the_form_csrf_token_is_refused(db: Engine) -> None:
    add_users(db)
    with secured_client(db) as client:
        client.get("/login")
        response = client.post(
            "/login",
            data={"csrf_token": "forged", "username": "operator", "password": PASSWORD},
            follow_redirects=False,
        )
        assert response.status_code == 403
        assert client.get("/works", follow_redirects=False).status_code == 303


def test_wrong_password_and_service_accounts_cannot_log_in(db: Engine) -> None:
    add_users(db)
    with secured_client(db) as client:
        with pytest.raises(AssertionError, match="login of operator failed"):
            login(client, "operator", "not the password")
        with pytest.raises(AssertionError, match="login of integration failed"):
            login(client, "integration")


def test_pages_redirect_to_login_and_api_answers_401(db: Engine) -> None:
    with secured_client(db) as client:
        page = client.get("/works?view=pending", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fworks%3Fview%3Dpending"
        api = client.get("/api/meters")
        assert api.status_code == 401
        assert api.headers["content-type"].startswith("application/problem+json")
        assert client.get("/api/health").status_code == 200


def test_form_post_without_csrf_is_rejected(db: Engine, fleet: object) -> None:
    add_users(db)
    with secured_client(db) as client:
        csrf = login(client, "operator")
        data = {"activity": "MeterSync", "meter": "UAA001"}
        assert client.post("/operations", data=data).status_code == 403
        assert (
            client.post("/operations", data={**data, "csrf_token": "x" + csrf}).status_code == 403
        )
        ok = client.post("/operations", data={**data, "csrf_token": csrf})
        assert ok.status_code == 200, ok.text
        assert 'data-testid="batch-created"' in ok.text


def test_api_write_with_cookie_needs_the_csrf_header(db: Engine, fleet: object) -> None:
    add_users(db)
    with secured_client(db) as client:
        csrf = login(client, "operator")
        body = {"activity": "MeterSync", "meters": ["UAA001"]}
        assert client.post("/api/workorders", json=body).status_code == 403
        ok = client.post("/api/workorders", json=body, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 201, ok.text


def test_bearer_tokens_for_the_api_and_revocation(db: Engine, fleet: object) -> None:
    store = add_users(db)
    token = store.issue_token("integration", "legacy")
    reader = store.issue_token("warehouse_reader", "warehouse")
    with secured_client(db) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/meters", headers=auth).json()["total"] == 4
        body = {"activity": "MeterSync", "meters": ["UAA001"]}
        assert client.post("/api/workorders", json=body, headers=auth).status_code == 201
        read_only = {"Authorization": f"Bearer {reader}"}
        assert client.get("/api/meters", headers=read_only).status_code == 200
        assert client.post("/api/workorders", json=body, headers=read_only).status_code == 403
        store.revoke_token("integration", store.tokens("integration")[0]["id"])
        assert client.get("/api/meters", headers=auth).status_code == 401


def test_stakeholder_sees_only_granted_service_points(db: Engine, fleet: object) -> None:
    store = add_users(db)
    store.grant("stakeholder", "POD-1")
    token = store.issue_token("stakeholder", "portal")
    with secured_client(db) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/service-points/POD-1", headers=auth).status_code == 200
        assert client.get("/api/meters/UAA001", headers=auth).status_code == 200
        assert client.get("/api/service-points/POD-2", headers=auth).status_code == 403
        assert client.get("/api/meters/UAA002", headers=auth).status_code == 403
        assert client.get("/api/meters", headers=auth).status_code == 403
        login(client, "stakeholder")
        listing = client.get("/assets/service-points")
        assert "POD-1" in listing.text
        assert "POD-2" not in listing.text
        assert client.get("/assets/service-points/POD-1").status_code == 200
        assert client.get("/assets/service-points/POD-2").status_code == 403
        assert client.get("/assets/meters/UAA001").status_code == 200
        assert client.get("/assets/meters/UAA002").status_code == 403
        assert client.get("/assets/meters").status_code == 403
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(audit_log.c.action, audit_log.c.target, audit_log.c.username).where(
                audit_log.c.action.like("i8.%")
            )
        ).all()
    assert ("i8.read", "POD-1", "stakeholder") in rows
    assert ("i8.denied", "/api/service-points/POD-2", "stakeholder") in rows
    assert ("i8.denied", "service point POD-2", "stakeholder") in rows
    assert ("i8.read", "meter UAA001", "stakeholder") in rows


def test_every_write_is_audited(db: Engine, fleet: object) -> None:
    add_users(db)
    with secured_client(db) as client:
        csrf = login(client, "operator")
        client.post(
            "/operations", data={"activity": "Reading", "meter": "UAA001", "csrf_token": csrf}
        )
        page = client.get("/works?meter=UAA001")
        order_id = int(page.text.split('action="/works/')[1].split("/cancel")[0])
        cancelled = client.post(
            f"/works/{order_id}/cancel", data={"csrf_token": csrf}, follow_redirects=False
        )
        assert cancelled.status_code == 303
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(audit_log.c.username, audit_log.c.action, audit_log.c.target, audit_log.c.at)
        ).all()
    actions = {(r.username, r.action) for r in rows}
    assert ("operator", "login") in actions
    assert ("operator", "workorder.submit") in actions
    assert ("operator", "workorder.cancel") in actions
    assert all(r.at is not None for r in rows)
    assert any(r.target == str(order_id) for r in rows if r.action == "workorder.cancel")
    with secured_client(db) as client:
        login(client, "administrator")
        page = client.get("/audit").text
    assert "workorder.cancel" in page
    assert "<td>operator</td>" in page


def test_logout_ends_the_session(db: Engine) -> None:
    add_users(db)
    with secured_client(db) as client:
        csrf = login(client, "operator")
        assert (
            client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code
            == 303
        )
        assert client.get("/works", follow_redirects=False).status_code == 303
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(web_sessions)).scalar() == 0


def test_cookie_secure_can_be_switched_off_for_plain_http(db: Engine) -> None:
    add_users(db)
    app = create_app(db, cookie_secure=False)
    with TestClient(app, base_url="http://intranet.example") as client:
        form = client.get("/login")
        response = client.post(
            "/login",
            data={"csrf_token": csrf_of(form.text), "username": "operator", "password": PASSWORD},
            follow_redirects=False,
        )
        cookie = next(h for h in response.headers.get_list("set-cookie") if "smmc_session=" in h)
        assert "secure" not in cookie.lower()
        assert "httponly" in cookie.lower()
        assert client.get("/works").status_code == 200
