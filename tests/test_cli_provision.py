"""`smmc provision import` through the CLI: exit 0 all accepted, 2 some rows rejected (with
the report's path printed), 1 a file could not be read."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from smmc.cli import app
from smmc.sim.fleet import default_fleet
from smmc.sim.provisioning_files import write_provisioning_files
from smmc.store import tables as t
from smmc.store.db import create_engine


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    var = tmp_path / "var"
    return {
        "SMMC_VAR_DIR": str(var),
        "SMMC_DATABASE_URL": f"sqlite:///{tmp_path / 'smmc.db'}",
        "SMMC_SECRET_KEY": "",
        "SMMC_SECRET_KEY_FILE": str(var / "secret.key"),
        "SMMC_SERVICE_AREA": "chile",
    }


def provision(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["provision", "import", *args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def squeeze(text: str) -> str:
    """Rich wraps long lines to the terminal width; compare without whitespace."""
    return "".join(text.split())


def count(env: dict[str, str], table: sa.Table) -> int:
    engine = create_engine(env["SMMC_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def test_generated_fleet_imports_with_exit_0(env: dict[str, str], tmp_path: Path) -> None:
    fleet = default_fleet().sized(concentrators=2, meters_per_concentrator=4, point_to_point=2)
    files = write_provisioning_files(fleet, tmp_path / "fleet")
    # Given in the worst order: the command sorts them.
    code, output = provision(env, *sorted((str(p) for p in files.values()), reverse=True))
    assert code == 0, output
    assert "error report" not in output
    assert count(env, t.meters) == 10
    assert count(env, t.meter_links) == 10
    assert count(env, t.concentrators) == 2
    key_file = Path(env["SMMC_SECRET_KEY_FILE"])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # A second run updates the same records and still succeeds with the same key file.
    code, output = provision(env, *(str(p) for p in files.values()))
    assert code == 0, output
    assert count(env, t.meter_links) == 10


def test_mixed_file_exits_2_and_prints_the_report_path(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "transformers.csv"
    path.write_text("code;substationname;description\nTR-1;SE-1;ok\n;SE-1;no code\n", "utf-8")
    code, output = provision(env, str(path))
    assert code == 2, output
    reports = list((Path(env["SMMC_VAR_DIR"]) / "reports").glob("transformers.*.errors.csv"))
    assert len(reports) == 1
    assert squeeze(f"error report at {reports[0]}") in squeeze(output)
    assert "3,code,,error,is required" in reports[0].read_text("utf-8")
    assert count(env, t.transformers) == 1


def test_area_check_can_be_switched_off(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "pods.csv"
    path.write_text(
        "name;address;city;latitude;longitude;altitude;tag;isbalance\n"
        "POD01;Duomo Square;Milan;45,46373;9,1911;121;MyTag;TRUE\n",
        "utf-8",
    )
    assert provision(env, str(path))[0] == 2
    assert provision(env, "--no-area-check", str(path))[0] == 0
    assert count(env, t.service_points) == 1


def test_unreadable_file_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    good = tmp_path / "transformers.csv"
    good.write_text("code,substationname,description\nTR-1,SE-1,d\n", "utf-8")
    binary = tmp_path / "export.csv"
    binary.write_bytes(b"PK\x03\x04\x00\x00\x00")
    bad = tmp_path / "pods.csv"
    bad.write_text(
        "name;address;city;latitude;longitude;altitude;tag;isbalance\n;;;;;;;\nX;a;c;1;1;1;t;no\n"
    )
    code, output = provision(env, str(binary), str(good), str(bad), "--no-area-check")
    assert code == 1, output
    assert "binary" in squeeze(output)
    # The readable files are imported all the same.
    assert count(env, t.transformers) == 1
    assert count(env, t.service_points) == 1


def test_unknown_service_area_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "transformers.csv"
    path.write_text("code,substationname,description\nTR-1,SE-1,d\n", "utf-8")
    code, output = provision({**env, "SMMC_SERVICE_AREA": "atlantis"}, str(path))
    assert code == 1
    assert "atlantis" in output
