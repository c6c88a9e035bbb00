"""Warehouse export (Parquet by local date) and the `export` CLI."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from smmc.domain.readings import Energy, QualityFlag, interval_type
from smmc.domain.time import interval_ends, to_local
from smmc.reports.cli import export_app
from smmc.reports.warehouse import WarehouseDay, export_warehouse
from smmc.sim.meter_model import MeterModel
from smmc.store.readings import IntervalValue, RegisterRead, ingest_intervals, ingest_register_reads
from smmc.store.tables import concentrators, meters

pa = pytest.importorskip("pyarrow", reason="the warehouse export needs pyarrow (not installed)")
pq = pytest.importorskip("pyarrow.parquet", reason="the warehouse export needs pyarrow")

INSTALLED = datetime(2026, 1, 1, tzinfo=UTC)
FALL_BACK = date(2026, 4, 4)
NEXT = date(2026, 4, 5)
A15 = interval_type(Energy.ACTIVE_FORWARD)


def _setup(db: Engine) -> dict[str, MeterModel]:
    models = {
        "UAAEEDN18700000001": MeterModel("UAAEEDN18700000001", 1, installed_at=INSTALLED),
        "UAAEEDN18700000002": MeterModel(
            "UAAEEDN18700000002", 2, installed_at=INSTALLED, time_zone="America/Punta_Arenas"
        ),
    }
    values, reads = [], []
    with db.begin() as conn:
        for serial, model in models.items():
            dc = conn.execute(
                concentrators.insert()
                .values(name=f"TD-{serial[-1]}", time_zone=model.time_zone)
                .returning(concentrators.c.id)
            ).scalar_one()
            meter_id = conn.execute(
                meters.insert()
                .values(serial_number=serial, concentrator_id=dc)
                .returning(meters.c.id)
            ).scalar_one()
            for day in (FALL_BACK, NEXT):
                values += [
                    IntervalValue(meter_id, A15.id, r.captured_utc, float(r.active_import_wh))
                    for r in model.load_profile_day(day)
                ]
                billing = model.billing_row(day)
                assert billing is not None
                reg = billing.registers.active_import
                reads.append(
                    RegisterRead(
                        meter_id, Energy.ACTIVE_FORWARD, billing.captured_utc, reg.tiers, reg.total
                    )
                )
        ingest_intervals(conn, values)
        ingest_register_reads(conn, reads)
    return models


def test_parquet_partitioned_by_local_date_with_the_stored_values(
    db: Engine, tmp_path: Path
) -> None:
    models = _setup(db)
    heard: list[WarehouseDay] = []
    result = export_warehouse(db, FALL_BACK, NEXT, tmp_path, progress=heard.append)
    assert [d.day for d in heard] == [FALL_BACK, NEXT]
    assert result == heard
    assert (result[0].interval_rows, result[1].interval_rows) == (100 + 96, 96 + 96)
    assert [d.register_rows for d in result] == [2, 2]
    for day in (FALL_BACK, NEXT):
        table = pq.read_table(
            tmp_path / "interval_readings" / f"date={day.isoformat()}" / "part-0.parquet"
        )
        for serial, model in models.items():
            mine = table.filter(pa.compute.equal(table["serialnumber"], serial)).to_pylist()
            lp = model.load_profile_day(day)
            assert [r["interval_end_utc"] for r in mine] == [x.captured_utc for x in lp]
            assert [r["value"] for r in mine] == [float(x.active_import_wh) for x in lp]
            assert [r["sampledate"] for r in mine] == [
                to_local(x.captured_utc, model.time_zone).replace(tzinfo=None) for x in lp
            ]
            assert {r["cimcode"] for r in mine} == {A15.code}
            dst = day == FALL_BACK and model.time_zone == "America/Santiago"
            assert {r["quality"] for r in mine} == {int(QualityFlag.DST_DAY) if dst else 0}
            assert len(mine) == len(interval_ends(day, model.time_zone))
        registers = pq.read_table(
            tmp_path / "register_reads" / f"date={day.isoformat()}" / "part-0.parquet"
        ).to_pylist()
        for serial, model in models.items():
            billing = model.billing_row(day)
            assert billing is not None
            (row,) = [r for r in registers if r["serialnumber"] == serial]
            assert [row[f"t{n}"] for n in range(1, 7)] == list(
                billing.registers.active_import.tiers
            )
            assert row["tot"] == billing.registers.active_import.total
            assert row["captured_at_utc"] == billing.captured_utc


def test_an_empty_day_still_gets_its_partition(db: Engine, tmp_path: Path) -> None:
    _setup(db)
    (day,) = export_warehouse(db, date(2026, 6, 1), date(2026, 6, 1), tmp_path)
    assert (day.interval_rows, day.register_rows) == (0, 0)
    table = pq.read_table(tmp_path / "interval_readings" / "date=2026-06-01" / "part-0.parquet")
    assert table.num_rows == 0
    assert "value" in table.column_names


def test_export_refuses_a_reversed_range(db: Engine, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty range"):
        export_warehouse(db, NEXT, FALL_BACK, tmp_path)


def test_cli_writes_files_and_warehouse(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setup(db)
    monkeypatch.setenv("SMMC_DATABASE_URL", db.url.render_as_string(hide_password=False))
    runner = CliRunner()
    files = runner.invoke(
        export_app, ["files", "--day", FALL_BACK.isoformat(), "--out", str(tmp_path / "f")]
    )
    assert files.exit_code == 0, files.output
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [
        "DC_2026-04-04.csv",
        "M_2026-04-04.csv",
        "S_2026-04-04.csv",
    ]
    assert "196 rows" in files.output
    warehouse = runner.invoke(
        export_app,
        ["warehouse", "--from", "2026-04-04", "--to", "2026-04-05", "--out", str(tmp_path / "w")],
    )
    assert warehouse.exit_code == 0, warehouse.output
    assert re.search(r"2026-04-05\s+192 interval values\s+2 register reads", warehouse.output)
    bad = runner.invoke(export_app, ["files", "--day", "2026-13-01", "--out", str(tmp_path)])
    assert bad.exit_code == 2


def test_export_only_reads(db: Engine, tmp_path: Path) -> None:
    _setup(db)
    with db.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM interval_readings")).scalar()
    export_warehouse(db, FALL_BACK, FALL_BACK, tmp_path)
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM interval_readings")).scalar() == before
