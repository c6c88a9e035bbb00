"""Helpers for the access-control and page tests: an app that enforces authentication, users
of every role, and a login that goes through the real form (CSRF included)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from smmc.domain.access import Role
from smmc.store.secrets import SecretBox
from smmc.store.users import AccessStore
from smmc.web.app import create_app

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    if found is None:
        raise AssertionError("no CSRF field in the page")
    return found.group(1)


def add_users(engine: Engine) -> AccessStore:
    """One user per role, named after the role, all with PASSWORD."""
    store = AccessStore(engine)
    for role in Role:
        store.create_user(role.value, role, PASSWORD)
    return store


@contextmanager
def secured_client(
    engine: Engine, secret_box: SecretBox | None = None, report_dir: Path | None = None
) -> Iterator[TestClient]:
    app = create_app(engine, auth_required=True, secret_box=secret_box, report_dir=report_dir)
    # https: the session cookie is Secure, so a plain-http client would never send it back.
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=True) as client:
        yield client


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token, read from a page."""
    form = client.get("/login")
    response = client.post(
        "/login",
        data={
            "csrf_token": csrf_of(form.text),
            "username": username,
            "password": password,
            "next": "/",
        },
        follow_redirects=False,
    )
    if response.status_code != 303 or "failed" in response.headers["location"]:
        raise AssertionError(f"login of {username} failed: {response.headers.get('location')}")
    page = client.get("/assets/service-points")
    return csrf_of(page.text)
