"""Browser fixtures: Debian's chromium driven by Playwright against the app served by uvicorn
on a free loopback port, over the `db` fixture's SQLite database.

A missing chromium or Playwright skips these tests locally and fails them with CI=true.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy.engine import Engine
from ui_helpers import PASSWORD, LiveApp

from smmc.domain.access import Role
from smmc.store.secrets import SecretBox
from smmc.store.users import AccessStore
from smmc.web.app import create_app

CHROMIUM = os.environ.get("SMMC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(message: str) -> None:
    """Skip locally, fail in CI (tests/conftest.py's service_missing rule)."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing service is a failure)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread while
    it is open, which would break every asyncio test that runs after it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install the test extra)")
    if shutil.which(CHROMIUM) is None:
        _missing(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_app(db: Engine, tmp_path: Path) -> Iterator[LiveApp]:
    if db.dialect.name != "sqlite":
        pytest.skip("browser tests run on SQLite; the pages' SQL is covered on both backends")
    store = AccessStore(db)
    for role in Role:
        store.create_user(role.value, role, PASSWORD)
    app = create_app(
        db, auth_required=True, secret_box=SecretBox(os.urandom(32)), report_dir=tmp_path
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    # localhost, not 127.0.0.1: chromium keeps Secure cookies on localhost over http.
    yield LiveApp(f"http://localhost:{port}", db, store)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(browser: Any, live_app: LiveApp) -> Iterator[Any]:
    context = browser.new_context(
        base_url=live_app.base_url, accept_downloads=True, viewport={"width": 1280, "height": 860}
    )
    opened = context.new_page()
    opened.set_default_timeout(15000)
    yield opened
    context.close()
