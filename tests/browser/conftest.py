"""Browser fixtures: Debian's chromium driven by Playwright against the app served by uvicorn
on a free loopback port, over the `db` fixture's SQLite database; `field_app` adds the
simulated fleet over TCP and a real work-order worker.

A missing chromium or Playwright skips these tests locally and fails them with CI=true.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from ui_helpers import PASSWORD, LiveApp, LiveFleet

from smmc.domain.access import Role
from smmc.engine.cli import field_registry
from smmc.engine.worker import Worker, WorkerConfig
from smmc.sim.clock import SimClock
from smmc.sim.runner import FleetRunner, serve_concentrators
from smmc.store.secrets import SecretBox
from smmc.store.users import AccessStore
from smmc.store.work_orders import WorkOrderQueue
from smmc.web.app import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "field"))  # the shared harness

from field_sim import make_plan, provision

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


def _users(engine: Engine) -> AccessStore:
    store = AccessStore(engine)
    for role in Role:
        store.create_user(role.value, role, PASSWORD)
    return store


@contextmanager
def _serving(app: FastAPI, main: Callable[[uvicorn.Server], Awaitable[None]]) -> Iterator[str]:
    """``main(server)`` runs on its own event loop in a thread (it must serve ``server``);
    yields the base URL once uvicorn listens, stops it afterwards."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=asyncio.run, args=(main(server),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    # localhost, not 127.0.0.1: chromium keeps Secure cookies on localhost over http.
    yield f"http://localhost:{port}"
    server.should_exit = True
    thread.join(timeout=40)
    if thread.is_alive():
        pytest.fail("the server thread did not stop")


def _sqlite_only(db: Engine) -> None:
    if db.dialect.name != "sqlite":
        pytest.skip("browser tests run on SQLite; the pages' SQL is covered on both backends")


@pytest.fixture
def live_app(db: Engine, tmp_path: Path) -> Iterator[LiveApp]:
    _sqlite_only(db)
    store = _users(db)
    app = create_app(
        db, auth_required=True, secret_box=SecretBox(os.urandom(32)), report_dir=tmp_path
    )

    async def serve(server: uvicorn.Server) -> None:
        await server.serve()

    with _serving(app, serve) as base_url:
        yield LiveApp(base_url, db, store)


@pytest.fixture
def field_app(db: Engine, tmp_path: Path) -> Iterator[LiveFleet]:
    """The app with the head-end's field side running: a simulated fleet (one concentrator
    with three meters, one point-to-point meter) provisioned through the importer and
    served over TCP by a `FleetRunner`, and a `Worker` with the field executors
    (`field_registry`), all on the server's event loop, as `smmc demo` runs them. The
    worker starts when the test calls `start_worker`, so a page can show a batch before
    any of its orders runs."""
    _sqlite_only(db)
    box = SecretBox(os.urandom(32))
    plan = make_plan(concentrators=1, per_concentrator=3, point_to_point=1)
    provision(db, box, plan, tmp_path)
    store = _users(db)
    app = create_app(db, auth_required=True, secret_box=box, report_dir=tmp_path / "reports")
    runner = FleetRunner(
        plan,
        SimClock(plan.epoch, 1.0, plan.fleet.time.history_days),
        concentrators=serve_concentrators,
    )
    worker = Worker(
        WorkOrderQueue(db),
        field_registry(db, box),
        WorkerConfig(name="browser-worker", poll_interval=0.2),
    )
    started: list[Callable[[], None]] = []

    async def serve(server: uvicorn.Server) -> None:
        go = asyncio.Event()
        loop = asyncio.get_running_loop()

        def start_worker() -> None:
            loop.call_soon_threadsafe(go.set)

        started.append(start_worker)

        async def work() -> None:
            await go.wait()
            await worker.run()

        async with runner:
            working = asyncio.create_task(work())
            try:
                await server.serve()
            finally:
                worker.stop()
                go.set()
                await working

    with _serving(app, serve) as base_url:
        yield LiveFleet(base_url, db, store, plan, runner, started[0])


@contextmanager
def _browser_page(browser: Any, base_url: str) -> Iterator[Any]:
    context = browser.new_context(
        base_url=base_url, accept_downloads=True, viewport={"width": 1280, "height": 860}
    )
    opened = context.new_page()
    opened.set_default_timeout(15000)
    yield opened
    context.close()


@pytest.fixture
def page(browser: Any, live_app: LiveApp) -> Iterator[Any]:
    with _browser_page(browser, live_app.base_url) as opened:
        yield opened


@pytest.fixture
def field_page(browser: Any, field_app: LiveFleet) -> Iterator[Any]:
    with _browser_page(browser, field_app.base_url) as opened:
        yield opened
