"""Provisioning files written from a fleet import cleanly and match the simulated truth."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.domain.geo import CHILE
from smmc.domain.provisioning import TemplateKind
from smmc.sim.fleet import (
    ConcentratorsSection,
    Fleet,
    PointToPointSection,
    Shares,
    default_fleet,
)
from smmc.sim.provisioning_files import write_provisioning_files
from smmc.store import tables as t
from smmc.store.provisioning import ImportOptions, import_file, import_order
from smmc.store.secrets import SecretBox

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def small_fleet() -> Fleet:
    return Fleet(
        concentrators=ConcentratorsSection(count=3, meters_per_concentrator=4, first_port=20500),
        point_to_point=PointToPointSection(count=3, first_host="127.0.3.250", port=4061),
        shares=Shares(net_billing=0.5, polyphase=0.5),
    )


def import_all(db: Engine, box: SecretBox, paths: list[Path], reports: Path) -> None:
    for path in import_order(paths):
        result = import_file(db, box, path, ImportOptions(CHILE, reports))
        assert result.fatal is None, path
        assert result.rejected == 0, (path, result.issues)
        assert not result.issues, (path, result.issues)


def test_fleet_files_import_and_match_the_plan(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    fleet = small_fleet()
    plan = fleet.build(NOW)
    files = write_provisioning_files(plan, tmp_path / "files")
    assert set(files) == set(TemplateKind)
    import_all(db, secret_box, list(files.values()), tmp_path / "reports")

    with db.connect() as conn:
        dcs = {r.id: r for r in conn.execute(sa.select(t.concentrators))}
        meters = {r.serial_number: r for r in conn.execute(sa.select(t.meters))}
        pods = {r.id: r for r in conn.execute(sa.select(t.service_points))}
        links = {r.meter_id: r for r in conn.execute(sa.select(t.meter_links))}
        transformers = dict(
            conn.execute(sa.select(t.transformers.c.id, t.transformers.c.code)).all()
        )
    by_name = {r.name: r for r in dcs.values()}
    assert len(by_name) == len(plan.concentrators)
    for dc in plan.concentrators:
        row = by_name[dc.name]
        assert row.serial_number == dc.serial
        assert (row.host, row.port) == (dc.host, dc.port)
        assert row.time_zone == dc.time_zone
        assert (row.latitude, row.longitude) == (dc.latitude, dc.longitude)
        assert row.comuna == dc.comuna
    assert len(meters) == len(plan) == 15
    for spec in plan.meters():
        row = meters[spec.serial]
        key = secret_box.open(row.encryption_key_enc, f"meters:{spec.serial}:encryption_key")
        assert key.reveal().upper() == spec.encryption_key.hex().upper()
        auth = secret_box.open(
            row.authentication_key_enc, f"meters:{spec.serial}:authentication_key"
        )
        assert auth.reveal().upper() == spec.authentication_key.hex().upper()
        assert row.meter_type == ("polyphase" if spec.polyphase else "monophase")
        assert row.phase == spec.phase
        if spec.concentrator is None:
            assert row.concentrator_id is None
            assert (row.host, row.port) == (spec.host, spec.port)
        else:
            assert dcs[row.concentrator_id].name == plan.concentrators[spec.concentrator].name
            assert row.node_address == spec.node_address
            assert row.host is None
        pod = pods[links[row.id].service_point_id]
        assert pod.name == spec.pod
        assert pod.net_billing == spec.net_billing
        assert (pod.latitude, pod.longitude) == (spec.latitude, spec.longitude)
        assert pod.comuna == spec.comuna
        if spec.concentrator is None:
            assert pod.transformer_id is None
        else:
            transformer = transformers[pod.transformer_id]
            assert transformer == plan.concentrators[spec.concentrator].transformer
            assert dcs[row.concentrator_id].transformer_id == pod.transformer_id
    hosts = [meters[m.serial].host for m in plan.meters() if m.concentrator is None]
    assert hosts == ["127.0.3.250", "127.0.3.251", "127.0.3.252"]
    assert {pod.net_billing for pod in pods.values()} == {True, False}


def test_files_are_reproducible_and_follow_the_seeds(tmp_path: Path) -> None:
    fleet = small_fleet()
    one = write_provisioning_files(fleet, tmp_path / "one")
    two = write_provisioning_files(fleet, tmp_path / "two")
    for kind in TemplateKind:
        assert one[kind].read_bytes() == two[kind].read_bytes()
    other = dataclasses.replace(fleet, seeds=dataclasses.replace(fleet.seeds, keys=77))
    three = write_provisioning_files(other, tmp_path / "three")
    assert three[TemplateKind.METER].read_bytes() != one[TemplateKind.METER].read_bytes()
    assert (
        three[TemplateKind.SERVICE_POINT].read_bytes()
        == one[TemplateKind.SERVICE_POINT].read_bytes()
    )


def test_sized_fleet_writes_its_counts(tmp_path: Path) -> None:
    fleet = default_fleet().sized(concentrators=2, meters_per_concentrator=3, point_to_point=2)
    files = write_provisioning_files(fleet, tmp_path)
    lines = files[TemplateKind.METER].read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 2 * 3 + 2
    plan = fleet.build(NOW)
    serials = [line.split(";")[0] for line in lines[1:]]
    assert serials == [m.serial for m in plan.meters()]
