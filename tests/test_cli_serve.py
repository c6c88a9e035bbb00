"""`smmc db upgrade` and `smmc serve` as a user runs them: a real process, a real port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from typer.testing import CliRunner

from smmc.cli import app
from smmc.store import tables as t
from smmc.store.db import create_engine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_db_upgrade_creates_the_schema_and_time_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'smmc.db'}"
    env = {"SMMC_DATABASE_URL": url, "SMMC_VAR_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    with create_engine(url).connect() as conn:
        zones = set(conn.execute(sa.select(t.time_zones.c.name)).scalars())
        transitions = conn.execute(sa.select(sa.func.count()).select_from(t.dst_transitions))
        assert {"America/Santiago", "America/Punta_Arenas"} <= zones
        assert transitions.scalar_one() > 40


def test_serve_answers_on_the_given_port(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SMMC_DATABASE_URL": f"sqlite:///{tmp_path / 'smmc.db'}",
        "SMMC_VAR_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "smmc.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    raise AssertionError(f"smmc serve did not come up:\n{output}") from None
                time.sleep(0.2)
        assert health.json() == {"status": "ok", "database": "sqlite"}
        anonymous = httpx.get(f"http://127.0.0.1:{port}/api/meters", timeout=5)
        assert anonymous.status_code == 401, "smmc serve guards the API by default"
    finally:
        process.terminate()
        process.wait(timeout=10)
