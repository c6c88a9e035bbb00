"""`smmc wo …` end to end on an SQLite file (the CLI opens its own engine from the env)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner
from wo_fixtures import add_fleet

from smmc.engine import cli
from smmc.engine.cli import wo_app, worker_command
from smmc.store.db import create_engine
from smmc.store.migrate import upgrade

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("SMMC_DATABASE_URL", url)
    engine = create_engine(url)
    upgrade(engine)
    add_fleet(engine, {"DC-1": 3})
    engine.dispose()
    return url


def test_submit_list_show_cancel(database: str, tmp_path: Path) -> None:
    result = runner.invoke(wo_app, ["submit", "Reading", "-m", "M-DC-1-0", "-m", "NOPE"])
    assert result.exit_code == 0, result.output
    assert "1 Reading order(s) queued, 1 row(s) rejected" in result.output
    assert "--meter NOPE" in result.output
    bulk = runner.invoke(wo_app, ["submit", "MeterSync", "--concentrator", "DC-1"])
    assert bulk.exit_code == 0, bulk.output
    assert "3 MeterSync order(s) queued" in bulk.output
    listing = runner.invoke(wo_app, ["list", "--activity", "MeterSync"])
    assert listing.exit_code == 0
    assert "3 of 3 work order(s)" in listing.output
    report = tmp_path / "wo.csv"
    assert runner.invoke(wo_app, ["list", "--csv", str(report)]).exit_code == 0
    lines = report.read_text().splitlines()
    assert lines[0].startswith("idwork,concentrator,pod,meter,activity type,startdate utc")
    assert len(lines) == 5
    show = runner.invoke(wo_app, ["show", "1"])
    assert show.exit_code == 0
    assert "M-DC-1-0" in show.output
    assert runner.invoke(wo_app, ["cancel", "1"]).exit_code == 0
    again = runner.invoke(wo_app, ["cancel", "1"])
    assert again.exit_code == 1
    assert "CANCELLED" in again.output
    assert runner.invoke(wo_app, ["show", "999"]).exit_code == 1


def test_submit_from_csv_file(database: str, tmp_path: Path) -> None:
    source = tmp_path / "targets.csv"
    source.write_text("podname;serialnumber\n;M-DC-1-1\n;M-DC-1-2\nbad\n", encoding="utf-8")
    result = runner.invoke(
        wo_app, ["submit", "CORTE", "--csv", str(source), "--reason", "losses", "--special"]
    )
    assert result.exit_code == 0, result.output
    assert "2 Disconnect order(s) queued" in result.output
    assert "targets.csv:4" in result.output


def test_refusals(database: str) -> None:
    assert runner.invoke(wo_app, ["submit", "Dance", "-m", "M-DC-1-0"]).exit_code == 2
    assert runner.invoke(wo_app, ["submit", "Reading"]).exit_code == 2
    none = runner.invoke(wo_app, ["submit", "Reading", "-m", "X"])
    assert none.exit_code == 1
    assert "no work order accepted" in none.output


def test_worker_without_executors_or_scheduler_exits(database: str) -> None:
    app = typer.Typer()
    app.command()(worker_command)
    result = runner.invoke(app, ["--no-scheduler"])
    assert result.exit_code == 1
    assert "no executors registered" in result.output


def test_schedule_add_and_list(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.console, "width", 200)
    added = runner.invoke(
        wo_app,
        ["schedule", "daily-outage", "OutageCheck", "30 2 * * *", "--target", "DC-1"],
    )
    assert added.exit_code == 0, added.output
    duplicate = runner.invoke(
        wo_app, ["schedule", "daily-outage", "OutageCheck", "30 2 * * *", "--target", "DC-1"]
    )
    assert duplicate.exit_code == 2
    assert "already exists" in duplicate.output
    bad_cron = runner.invoke(wo_app, ["schedule", "x", "Reading", "99 * * * *", "--target", "DC-1"])
    assert bad_cron.exit_code == 2
    listing = runner.invoke(wo_app, ["schedules"])
    assert listing.exit_code == 0
    assert "daily-outage" in listing.output
    assert "02:30:00" in listing.output  # next run, local time
