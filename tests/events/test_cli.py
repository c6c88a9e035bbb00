"""`smmc events report` writes the day's five files; bad input is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from smmc.events.cli import events_app


def test_report_writes_the_five_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMMC_DATABASE_URL", f"sqlite:///{tmp_path / 'smmc.db'}")
    out = tmp_path / "out"
    result = CliRunner().invoke(events_app, ["report", "--day", "2021-07-03", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "ConcentratorStatusWordAnalyzedReport_2021-07-03.csv",
        "HPE_2021-07-03.csv",
        "LPE_2021-07-03.csv",
        "SWE_2021-07-03.csv",
        "SpontaneousMessages_2021-07-03.csv",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--day", "03/07/2021"], "Invalid isoformat"),
        (["report", "--day", "2021-07-03", "--tz", "Mars/Olympus"], "Mars/Olympus"),
        (["listen", "--catalog", "/nonexistent/catalog.yaml"], "event catalog"),
    ],
)
def test_bad_input_exits_2_with_the_reason(args: list[str], message: str) -> None:
    result = CliRunner().invoke(events_app, args)
    assert result.exit_code == 2
    assert message in result.output
