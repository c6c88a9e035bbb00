"""`smmc sim …` and `smmc demo` as a user runs them: real processes, real sockets."""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from smmc.cli import app
from smmc.dlms.client import ClientSettings, DlmsClient
from smmc.dlms.obis import Obis
from smmc.sim.concentrator import PUBLIC_CLIENT
from smmc.sim.fleet import load_fleet
from smmc.store import tables as t
from smmc.store.db import create_engine
from smmc.store.users import AccessStore

SERIAL = Obis(0, 0, 96, 1, 0, 255)
CLOCK = Obis(0, 0, 1, 0, 0, 255)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def fleet_file(tmp_path: Path, first_host: str) -> Path:
    port = free_port(first_host)
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "name: cli-test\n"
        "concentrators: {count: 1, meters_per_concentrator: 3, first_port: "
        f"{free_port()}}}\n"
        f"point_to_point: {{count: 2, first_host: {first_host}, port: {port}}}\n"
        "time: {history_days: 2}\n",
        encoding="utf-8",
    )
    return path


def read_serial(host: str, port: int) -> bytes:
    async def read() -> bytes:
        settings = ClientSettings(client_sap=16, timeout=5.0, connect_timeout=1.0)
        async with DlmsClient.connect(host, port, settings) as client:
            value = (await client.get(1, SERIAL, 2)).value
        assert isinstance(value, bytes)
        return value

    return asyncio.run(read())


def read_concentrator_clock(host: str, port: int) -> bytes:
    async def read() -> bytes:
        settings = ClientSettings(client_sap=PUBLIC_CLIENT, timeout=5.0, connect_timeout=1.0)
        async with DlmsClient.connect(host, port, settings) as client:
            value = (await client.get(8, CLOCK, 2)).value
        assert isinstance(value, bytes)
        return value

    return asyncio.run(read())


def wait_for_meter(process: subprocess.Popen[bytes], host: str, port: int) -> bytes:
    deadline = time.monotonic() + 60
    while True:
        try:
            return read_serial(host, port)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.communicate()[0].decode()
                raise AssertionError(f"no meter at {host}:{port}:\n{output}") from None
            time.sleep(0.3)


def test_provisioning_files_command_writes_the_templates(tmp_path: Path) -> None:
    fleet = fleet_file(tmp_path, "127.79.0.1")
    result = CliRunner().invoke(
        app, ["sim", "provisioning-files", "--fleet", str(fleet), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").glob("provisioningTemplate (*).csv"))) == 7


def test_a_bad_fleet_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("shares: {net_billing: 1.5}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["sim", "run", "--fleet", str(bad)])
    assert result.exit_code == 1
    assert "shares.net_billing" in result.output


def test_sim_run_serves_until_interrupted(tmp_path: Path) -> None:
    fleet = fleet_file(tmp_path, "127.79.1.1")
    description = load_fleet(fleet)
    labels = tmp_path / "labels.csv"
    command = [
        sys.executable,
        "-m",
        "smmc.cli",
        "sim",
        "run",
        "--fleet",
        str(fleet),
        "--labels",
        str(labels),
        "--accelerate",
        "60",
        "--history-days",
        "3",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    port = description.point_to_point.port
    try:
        first = wait_for_meter(process, "127.79.1.1", port)
        second = read_serial("127.79.1.2", port)
        dc = description.concentrators
        dc_clock = read_concentrator_clock(dc.host, dc.first_port)
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert first == b"UAAEEDN17700000003"
    assert second == b"UAAEEDN17700000004"
    assert len(dc_clock) == 12
    assert "127.79.1.1" in output
    assert "1 concentrators with 3 meters behind them" in output
    assert "60× real time" in output
    assert "Stopped." in output
    with labels.open(encoding="utf-8") as handle:
        assert next(csv.reader(handle))[0] == "serialnumber"


def test_demo_serves_the_api_and_the_fleet_it_provisioned(tmp_path: Path) -> None:
    fleet = fleet_file(tmp_path, "127.79.2.1")
    description = load_fleet(fleet)
    api_port = free_port()
    events_port = free_port()
    env = {**os.environ, "SMMC_VAR_DIR": str(tmp_path / "var")}
    env.pop("SMMC_DATABASE_URL", None)
    env.pop("SMMC_OUTBOX_BACKEND", None)
    command = [
        sys.executable,
        "-m",
        "smmc.cli",
        "demo",
        "--port",
        str(api_port),
        "--fleet",
        str(fleet),
        "--events-port",
        str(events_port),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        serial = wait_for_meter(process, "127.79.2.2", description.point_to_point.port)
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{api_port}/api/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the API did not come up"
                time.sleep(0.2)
        base = f"http://127.0.0.1:{api_port}"
        assert httpx.get(f"{base}/api/meters", timeout=5).status_code == 401
        demo_db = create_engine(f"sqlite:///{tmp_path / 'var' / 'demo' / 'smmc.db'}")
        headers = {"Authorization": f"Bearer {AccessStore(demo_db).issue_token('demo', 't', None)}"}
        meters = httpx.get(f"{base}/api/meters", headers=headers, timeout=5).json()
        # The demo's worker runs orders against the fleet it serves.
        submitted = httpx.post(
            f"{base}/api/workorders",
            json={"activity": "MeterSync", "meters": [serial.decode()]},
            headers=headers,
            timeout=10,
        ).json()
        assert submitted["accepted"] == 1, submitted
        order = {}
        deadline = time.monotonic() + 60
        while order.get("state") not in ("COMPLETED", "FAILED", "EXPIRED"):
            assert time.monotonic() < deadline, f"the demo worker did not finish: {order}"
            time.sleep(0.5)
            listed = httpx.get(
                f"{base}/api/workorders",
                params={"idwork": submitted["batch_id"]},
                headers=headers,
                timeout=5,
            ).json()
            order = listed["items"][0]
        # The order's high-priority event leaves through the outbox publisher into the
        # embedded Legacy inbox.
        deadline = time.monotonic() + 30
        while not inbox_nouns(demo_db):
            assert time.monotonic() < deadline, "the demo's publisher delivered nothing"
            time.sleep(0.5)
        legacy = AccessStore(demo_db).user("legacy")
        with socket.create_connection(("127.0.0.1", events_port), timeout=5):
            pass  # the spontaneous-message listener is up
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert health.json()["status"] == "ok"
    assert meters["total"] == description.meter_count == 5
    assert order["state"] == "COMPLETED", order
    assert serial == b"UAAEEDN17700000004"
    assert "127.79.2.1" in output
    assert (tmp_path / "var" / "demo" / "anomaly_labels.csv").is_file()
    assert inbox_nouns(demo_db) == {"EndDeviceEvents"}
    assert legacy["role"] == "integration"
    assert legacy["password_hash"] is None
    assert f"tcp+udp 127.0.0.1:{events_port}" in output
    assert "smmc_" in output  # the Legacy token is printed


def inbox_nouns(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(t.legacy_inbox.c.noun)).scalars())
