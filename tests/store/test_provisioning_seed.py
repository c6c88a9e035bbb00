"""The seed's literal example rows (tests/fixtures/seed/, one file per template) import as
they are; their placeholder coordinates (Milan, the sea off China) fail the area check."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.domain.geo import CHILE
from smmc.domain.provisioning import IMPORT_ORDER, TemplateKind
from smmc.store import tables as t
from smmc.store.provisioning import (
    ImportOptions,
    ImportResult,
    import_file,
    import_order,
    parse_file,
)
from smmc.store.secrets import SecretBox

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed"
K = TemplateKind


def import_seed(db: Engine, box: SecretBox, tmp_path: Path, *, area: bool) -> list[ImportResult]:
    files = import_order(sorted(SEED.glob("*.csv")))
    options = ImportOptions(CHILE if area else None, tmp_path / "reports")
    return [import_file(db, box, path, options) for path in files]


def report(result: ImportResult) -> list[dict[str, str]]:
    if result.report_path is None:
        return []
    with result.report_path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def by_kind(results: list[ImportResult]) -> dict[TemplateKind, ImportResult]:
    found = {}
    for result in results:
        assert result.template is not None, result.fatal
        found[result.template.kind] = result
    return found


def names(db: Engine, table: sa.Table, column: str) -> list[str]:
    with db.connect() as conn:
        return list(conn.execute(sa.select(table.c[column]).order_by(table.c.id)).scalars())


def test_seed_files_are_the_seven_templates_in_import_order() -> None:
    files = import_order(sorted(SEED.glob("*.csv")))
    assert [parse_file(path).template.kind for path in files] == list(IMPORT_ORDER)


def test_seed_imports_without_area_check(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    results = by_kind(import_seed(db, secret_box, tmp_path, area=False))
    assert set(results) == set(TemplateKind)
    for result in results.values():
        assert (result.exit_code, result.rows_total, result.accepted) == (0, 1, 1), result.issues
    assert names(db, t.service_points, "name") == ["POD01"]
    assert names(db, t.meters, "serial_number") == ["UAAEEDN11100000000"]
    assert names(db, t.transformers, "code") == ["Transformer1", "TD-5464"]
    concentrators = names(db, t.concentrators, "name")
    assert sorted(concentrators) == ["20LVM50A10006010", "TD-27997", "fakeName"]
    with db.connect() as conn:
        [(lat, lon)] = conn.execute(
            sa.select(t.service_points.c.latitude, t.service_points.c.longitude)
        ).all()
        [link] = conn.execute(sa.select(t.meter_links)).all()
    assert (lat, lon) == pytest.approx((45.46373, 9.1911))
    assert link.valid_to is None
    with db.connect() as conn:
        site = conn.execute(
            sa.select(t.concentrators).where(t.concentrators.c.name == "fakeName")
        ).one()
    # CLDR maps "Greenwich Standard Time" to Reykjavik (UTC all year), not to London.
    assert (site.time_zone, site.windows_time_zone_id) == (
        "Atlantic/Reykjavik",
        "Greenwich Standard Time",
    )
    assert (site.latitude, site.longitude, site.altitude) == (33.12, 124.54, 124.0)
    # The seed's adlvc is a spreadsheet's scientific notation: kept, with a warning.
    warnings = report(results[K.CONCENTRATOR_ATTRIBUTES])
    assert [(w["column"], w["level"]) for w in warnings] == [
        ("adlvc", "warning"),
        ("serialnumber", "warning"),
    ]


def test_seed_placeholder_coordinates_fail_the_area_check(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    results = by_kind(import_seed(db, secret_box, tmp_path, area=True))
    for kind in (K.SERVICE_POINT, K.CONCENTRATOR_SITE):
        result = results[kind]
        assert (result.exit_code, result.accepted, result.rejected) == (2, 0, 1)
    [pod] = report(results[K.SERVICE_POINT])
    assert (pod["row"], pod["column"], pod["level"]) == ("2", "latitude", "error")
    assert "(45.46373, 9.1911) lie outside the service area Chile" in pod["reason"]
    [site] = report(results[K.CONCENTRATOR_SITE])
    assert (site["row"], site["column"]) == ("2", "latitude")
    assert "(33.12, 124.54) lie outside the service area Chile" in site["reason"]
    # Without its POD the link is refused too; the rest of the seed still imports.
    link = results[K.METER_LINK]
    assert [line["column"] for line in report(link)] == ["podname"]
    assert link.exit_code == 2
    for kind in (K.METER, K.TRANSFORMER, K.CONCENTRATOR_ATTRIBUTES, K.CONCENTRATOR_COMPOSITION):
        assert results[kind].exit_code == 0
    assert names(db, t.service_points, "name") == []
    assert "fakeName" not in names(db, t.concentrators, "name")
