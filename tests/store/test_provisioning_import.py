"""`import_file` end to end on SQLite and PostgreSQL: upserts, references, the error report,
links and their history, unreadable files, chunking and the import order."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from smmc.domain.assets import Secret
from smmc.domain.geo import CHILE
from smmc.domain.provisioning import TEMPLATE_BY_KIND, TemplateKind
from smmc.sim.fleet import default_fleet
from smmc.sim.provisioning_files import write_provisioning_files
from smmc.store import tables as t
from smmc.store.events import CONCENTRATOR, Occurrence, apply_events
from smmc.store.provisioning import (
    REPORT_COLUMNS,
    ImportOptions,
    ImportResult,
    UnreadableFile,
    import_file,
    import_order,
    parse_file,
)
from smmc.store.secrets import SecretBox

K = TemplateKind
KEY_A = "E53BD3DD52C03494B1616CD30A45E176"
KEY_B = "8D26F0F110D09F76D569F3A798D9BE00"

POD_HEADER = ["name", "address", "city", "latitude", "longitude", "altitude", "tag", "isbalance"]
METER_HEADER = [
    "serialnumber",
    "serialnumber_board",
    "macaddress",
    "firmwareid",
    "hardwareid",
    "servicekind",
    "tag",
    "primarykey",
    "secondarykey",
]
LINK_HEADER = ["serialnumber", "podname", "validfrom"]
SITE_HEADER = [
    "name",
    "description",
    "address",
    "city",
    "latitude",
    "longitude",
    "altitude",
    "windowstimezoneid",
]
TRANSFORMER_HEADER = ["code", "substationname", "description"]
ATTRIBUTES_HEADER = [
    "serialnumber",
    "adlvc",
    "ppp_username",
    "ppp_password",
    "maa_username",
    "maa_password",
    "k2_password",
    "tag",
]
COMPOSITION_HEADER = list(TEMPLATE_BY_KIND[K.CONCENTRATOR_COMPOSITION].required)


def write(
    path: Path, header: Sequence[str], rows: Sequence[Sequence[object]], sep: str = ";"
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=sep)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(
    db: Engine, box: SecretBox, path: Path, *, chunk_rows: int = 5000, area: bool = False
) -> ImportResult:
    options = ImportOptions(CHILE if area else None, path.parent / "reports", chunk_rows)
    return import_file(db, box, path, options)


def report(result: ImportResult) -> list[dict[str, str]]:
    assert result.report_path is not None
    with result.report_path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def errors(result: ImportResult) -> dict[int, dict[str, str]]:
    """Row number → {column: reason} of the errors in the written report."""
    found: dict[int, dict[str, str]] = {}
    for line in report(result):
        if line["level"] == "error":
            found.setdefault(int(line["row"]), {})[line["column"]] = line["reason"]
    return found


def rows_of(db: Engine, table: sa.Table, order: str = "id") -> list[dict[str, Any]]:
    with db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(table.c[order]))]


def one(db: Engine, table: sa.Table, **where: object) -> dict[str, Any]:
    query = sa.select(table).where(*(table.c[k] == v for k, v in where.items()))
    with db.connect() as conn:
        return dict(conn.execute(query).one()._mapping)


def pod(name: str, lat: str = "-33.4314", lon: str = "-70.6093") -> list[str]:
    return [name, "Calle 1", "Santiago", lat, lon, "570", "t", "FALSE"]


def meter(serial: str, key: str = KEY_A) -> list[str]:
    return [serial, serial, "85055505AA55", "11", "L01207", "Electric", "t", key, KEY_B]


def site(name: str) -> list[str]:
    return [
        name,
        "d",
        "Calle 2",
        "Santiago",
        "-33.4378",
        "-70.6505",
        "560",
        "Pacific SA Standard Time",
    ]


def composition(
    name: str, serial: str, substation: str = "SE-1", transformer: str = "TR-1"
) -> list[str]:
    return [name, serial, "Wake_up", "profile_cedata", substation, transformer, "1", "2", "eth0"]


def attributes(serial: str, password: str = "PPPsecret1") -> list[str]:
    return [serial, "829614000001", "ppp", password, "maa", "MAAsecret1", KEY_A, "tag1"]


def count(db: Engine, table: sa.Table) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# --- each template's good file ---------------------------------------------------------------


def test_each_template_good_file(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    files = [
        write(tmp_path / "5.csv", TRANSFORMER_HEADER, [["TR-1", "SE-1", "500 kVA"]], sep=","),
        write(tmp_path / "4.csv", SITE_HEADER, [site("TD-1000")]),
        write(tmp_path / "7.csv", COMPOSITION_HEADER, [composition("TD-1000", "20LVM50A1")], "\t"),
        write(tmp_path / "6.csv", ATTRIBUTES_HEADER, [attributes("20LVM50A1")]),
        write(tmp_path / "1.csv", POD_HEADER, [pod("POD01"), pod("POD02")]),
        write(
            tmp_path / "2.csv",
            [*METER_HEADER, "concentrator", "nodeaddress", "ipaddress", "port"],
            [[*meter("M1"), "TD-1000", "5", "", ""], [*meter("M2"), "", "", "10.0.0.9", "4060"]],
        ),
        write(
            tmp_path / "3.csv",
            LINK_HEADER,
            [["M1", "POD01", ""], ["M2", "POD02", "2025-03-01T10:00"]],
        ),
    ]
    results = [run(db, secret_box, path, area=True) for path in files]
    for result in results:
        assert result.fatal is None, result.fatal
        assert (result.exit_code, result.rejected, result.report_path) == (0, 0, None)
        assert result.accepted == result.rows_total == result.created + result.updated
    # The composition completes the site's record and the attributes the composition's.
    assert [r.updated for r in results] == [0, 0, 1, 1, 0, 0, 0]
    assert one(db, t.transformers, code="TR-1")["description"] == "500 kVA"
    concentrator = one(db, t.concentrators, name="TD-1000")
    assert concentrator["serial_number"] == "20LVM50A1"
    assert concentrator["time_zone"] == "America/Santiago"
    assert concentrator["adlvc"] == "829614000001"
    assert concentrator["latitude"] == pytest.approx(-33.4378)
    assert one(db, t.transformers, id=concentrator["transformer_id"])["code"] == "TR-1"
    m1, m2 = one(db, t.meters, serial_number="M1"), one(db, t.meters, serial_number="M2")
    assert (m1["concentrator_id"], m1["node_address"], m1["host"]) == (concentrator["id"], 5, None)
    assert (m2["concentrator_id"], m2["host"], m2["port"]) == (None, "10.0.0.9", 4060)
    links = rows_of(db, t.meter_links)
    assert [(x["meter_id"], x["valid_to"]) for x in links] == [(m1["id"], None), (m2["id"], None)]
    assert links[1]["valid_from"] == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    runs = rows_of(db, t.import_runs)
    assert [r["template"] for r in runs] == [
        "transformer",
        "concentrator_site",
        "concentrator_composition",
        "concentrator_attributes",
        "service_point",
        "meter",
        "meter_link",
    ]
    assert all(r["rows_rejected"] == 0 and r["error_report"] is None for r in runs)


# --- mixed file and the error report ---------------------------------------------------------


def test_mixed_file_keeps_good_rows_and_reports_bad_ones(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "pods.csv",
        POD_HEADER,
        [
            pod("POD01"),
            pod("POD02", lat="33.4314"),
            ["POD03", "a", "c", "-33,5", "-70,6", "abc", "t", "maybe"],
            pod("POD04"),
            ["", "a", "c", "-33.5", "-70.6", "1", "t", "TRUE"],
        ],
    )
    result = run(db, secret_box, path, area=True)
    assert (result.rows_total, result.accepted, result.rejected, result.exit_code) == (5, 2, 3, 2)
    assert [r["name"] for r in rows_of(db, t.service_points)] == ["POD01", "POD04"]
    assert result.report_path is not None
    assert result.report_path.parent == tmp_path / "reports"
    with result.report_path.open(newline="") as handle:
        assert tuple(next(csv.reader(handle))) == REPORT_COLUMNS
    found = errors(result)
    assert set(found) == {3, 4, 6}
    assert "latitude is missing its minus sign" in found[3]["latitude"]
    assert found[4] == {
        "altitude": "must be a decimal number (a decimal comma is fine)",
        "isbalance": "must be TRUE or FALSE",
    }
    assert found[6] == {"name": "is required"}
    values = {(line["row"], line["column"]): line["value"] for line in report(result)}
    assert values[("4", "altitude")] == "abc"
    [run_row] = rows_of(db, t.import_runs)
    assert (run_row["rows_total"], run_row["rows_accepted"], run_row["rows_rejected"]) == (5, 2, 3)
    assert run_row["error_report"] == str(result.report_path)


# --- idempotence and partial updates ---------------------------------------------------------


def fleet(tmp_path: Path) -> list[Path]:
    files = write_provisioning_files(
        default_fleet().sized(concentrators=2, meters_per_concentrator=3, point_to_point=2),
        tmp_path / "fleet",
    )
    return import_order(list(files.values()))


def snapshot(db: Engine) -> dict[str, list[tuple[Any, ...]]]:
    skip = {"created_at", "updated_at", "encryption_key_enc", "authentication_key_enc"}
    skip |= {"ppp_password_enc", "maa_password_enc", "k2_password_enc", "started_at"}
    skip |= {"finished_at"}
    tables = (t.substations, t.transformers, t.concentrators, t.service_points, t.meters)
    out = {}
    for table in (*tables, t.meter_links):
        cols = [c for c in table.c if c.name not in skip]
        with db.connect() as conn:
            out[table.name] = [
                tuple(row) for row in conn.execute(sa.select(*cols).order_by(table.c.id))
            ]
    return out


def test_reimport_is_idempotent(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    paths = fleet(tmp_path)
    first = [run(db, secret_box, p, area=True) for p in paths]
    assert [r.exit_code for r in first] == [0] * 7, [r.issues for r in first]
    assert [r.updated for r in first] == [0, 0, 2, 2, 0, 0, 0]
    before = snapshot(db)
    second = [run(db, secret_box, p, area=True) for p in paths]
    assert [r.exit_code for r in second] == [0] * 7
    for a, b in zip(first, second, strict=True):
        assert (b.created, b.updated, b.accepted) == (0, a.accepted, a.accepted), b.path
    assert snapshot(db) == before
    assert count(db, t.meter_links) == 8
    for m in rows_of(db, t.meters):
        context = f"meters:{m['serial_number']}"
        key = secret_box.open(m["encryption_key_enc"], f"{context}:encryption_key").reveal()
        assert len(key) == 32
        int(key, 16)
    for c in rows_of(db, t.concentrators):
        context = f"concentrators:{c['serial_number']}"
        assert secret_box.open(c["k2_password_enc"], f"{context}:k2_password").reveal()


def test_absent_optional_columns_leave_values_untouched(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    full_header = [
        *POD_HEADER,
        "comuna",
        "netbilling",
        "tariff",
        "contractedcapacity",
        "supplystatus",
    ]
    run(
        db,
        secret_box,
        write(
            tmp_path / "a.csv",
            full_header,
            [[*pod("P1"), "Ñuñoa", "TRUE", "BT1", "6", "connected"]],
        ),
    )
    changed = pod("P1")
    changed[2] = "Providencia"
    changed[1] = "New street 9"
    result = run(db, secret_box, write(tmp_path / "b.csv", POD_HEADER, [changed]))
    assert (result.updated, result.created) == (1, 0)
    p = one(db, t.service_points, name="P1")
    assert (p["address"], p["city"]) == ("New street 9", "Providencia")
    assert (p["comuna"], p["net_billing"], p["tariff"]) == ("Ñuñoa", True, "BT1")
    assert (p["contracted_capacity_kw"], p["supply_status"]) == (6.0, "connected")

    meter_header = [*METER_HEADER, "metertype", "phase", "ipaddress", "port"]
    run(
        db,
        secret_box,
        write(
            tmp_path / "m1.csv",
            meter_header,
            [[*meter("M1"), "polyphase", "T", "10.1.1.1", "4061"]],
        ),
    )
    run(db, secret_box, write(tmp_path / "m2.csv", METER_HEADER, [meter("M1", key=KEY_B)]))
    m = one(db, t.meters, serial_number="M1")
    assert (m["meter_type"], m["phase"], m["host"], m["port"]) == (
        "polyphase",
        "T",
        "10.1.1.1",
        4061,
    )
    opened = secret_box.open(m["encryption_key_enc"], "meters:M1:encryption_key")
    assert opened == Secret(KEY_B)


# --- references -----------------------------------------------------------------------------


def test_meter_with_unknown_concentrator(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    header = [*METER_HEADER, "concentrator", "nodeaddress"]
    path = write(
        tmp_path / "m.csv", header, [[*meter("M1"), "TD-404", "3"], [*meter("M2"), "", ""]]
    )
    result = run(db, secret_box, path)
    assert (result.accepted, result.rejected, result.created) == (1, 1, 1)
    assert errors(result) == {2: {"concentrator": "no such concentrator: provision it first"}}
    assert [m["serial_number"] for m in rows_of(db, t.meters)] == ["M2"]


def test_pod_transformer_resolves_or_is_rejected(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    run(db, secret_box, write(tmp_path / "t.csv", TRANSFORMER_HEADER, [["TR-1", "SE-1", "d"]]))
    header = [*POD_HEADER, "transformer"]
    rows = [[*pod("P1"), "TR-1"], [*pod("P2"), "TR-404"], [*pod("P3"), ""], [*pod("P4"), "T@1"]]
    result = run(db, secret_box, write(tmp_path / "p.csv", header, rows))
    assert (result.accepted, result.rejected, result.created) == (2, 2, 2)
    assert errors(result) == {
        3: {"transformer": "no such transformer: provision it first (template 5)"},
        5: {"transformer": "must be letters, digits, spaces and . _ - / only"},
    }
    tr1 = one(db, t.transformers, code="TR-1")["id"]
    points = {p["name"]: p["transformer_id"] for p in rows_of(db, t.service_points)}
    assert points == {"P1": tr1, "P3": None}
    # a file without the column leaves the transformer alone; an empty cell clears it
    run(db, secret_box, write(tmp_path / "q.csv", POD_HEADER, [pod("P1")]))
    assert one(db, t.service_points, name="P1")["transformer_id"] == tr1
    run(db, secret_box, write(tmp_path / "r.csv", header, [[*pod("P1"), ""]]))
    assert one(db, t.service_points, name="P1")["transformer_id"] is None


def test_link_with_unknown_meter_or_pod(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    run(db, secret_box, write(tmp_path / "p.csv", POD_HEADER, [pod("POD01")]))
    run(db, secret_box, write(tmp_path / "m.csv", METER_HEADER, [meter("M1")]))
    path = write(
        tmp_path / "l.csv",
        LINK_HEADER,
        [["M9", "POD01", ""], ["M1", "POD9", ""], ["M8", "POD8", ""]],
    )
    result = run(db, secret_box, path)
    assert (result.accepted, result.rejected) == (0, 3)
    found = errors(result)
    assert found[2] == {"serialnumber": "no such meter: import the meter template (2) first"}
    assert found[3] == {"podname": "no such POD: import the POD template (1) first"}
    assert set(found[4]) == {"serialnumber", "podname"}
    assert count(db, t.meter_links) == 0


def test_composition_serial_owned_by_another_concentrator(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    run(
        db,
        secret_box,
        write(tmp_path / "a.csv", COMPOSITION_HEADER, [composition("TD-1", "SER-1")]),
    )
    result = run(
        db,
        secret_box,
        write(tmp_path / "b.csv", COMPOSITION_HEADER, [composition("TD-2", "SER-1")]),
    )
    assert errors(result) == {
        2: {"concentratorserialnumber": "already belongs to concentrator TD-1"}
    }
    assert [c["name"] for c in rows_of(db, t.concentrators)] == ["TD-1"]


def test_composition_serial_twice_in_one_file(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "c.csv",
        COMPOSITION_HEADER,
        [composition("TD-1", "SER-1"), composition("TD-2", "SER-1"), composition("TD-3", "SER-3")],
    )
    result = run(db, secret_box, path)
    assert (result.accepted, result.rejected, result.exit_code) == (2, 1, 2)
    assert errors(result) == {
        3: {"concentratorserialnumber": "already belongs to concentrator TD-1"}
    }
    assert [c["name"] for c in rows_of(db, t.concentrators)] == ["TD-1", "TD-3"]


def test_composition_transformer_under_another_substation(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    run(db, secret_box, write(tmp_path / "t.csv", TRANSFORMER_HEADER, [["TR-1", "SE-1", "d"]]))
    path = write(
        tmp_path / "c.csv",
        COMPOSITION_HEADER,
        [composition("TD-1", "S1", "SE-2", "TR-1"), composition("TD-2", "S2", "SE-2", "TR-2")],
    )
    result = run(db, secret_box, path)
    assert errors(result) == {2: {"transformername": "belongs to another substation than SE-2"}}
    warnings = [line for line in report(result) if line["level"] == "warning"]
    assert [(w["row"], w["column"]) for w in warnings] == [
        ("3", "transformername"),
        ("3", "concentratorname"),
    ]
    tr2 = one(db, t.transformers, code="TR-2")
    assert one(db, t.substations, id=tr2["substation_id"])["name"] == "SE-2"
    assert [c["name"] for c in rows_of(db, t.concentrators)] == ["TD-2"]


# --- attributes before composition -----------------------------------------------------------


def test_attributes_before_composition_then_rename(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    result = run(
        db, secret_box, write(tmp_path / "6.csv", ATTRIBUTES_HEADER, [attributes("SER-1")])
    )
    assert (result.exit_code, result.created) == (0, 1)
    assert [w["column"] for w in report(result)] == ["serialnumber"]
    placeholder = one(db, t.concentrators, name="SER-1")
    result = run(
        db,
        secret_box,
        write(tmp_path / "7.csv", COMPOSITION_HEADER, [composition("TD-1", "SER-1")]),
    )
    assert result.exit_code == 0
    [c] = rows_of(db, t.concentrators)
    assert (c["id"], c["name"], c["serial_number"], c["adlvc"]) == (
        placeholder["id"],
        "TD-1",
        "SER-1",
        "829614000001",
    )
    assert c["transformer_id"] is not None
    assert secret_box.open(c["ppp_password_enc"], "concentrators:SER-1:ppp_password") == Secret(
        "PPPsecret1"
    )


def test_attributes_before_composition_merge_into_site(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    run(db, secret_box, write(tmp_path / "4.csv", SITE_HEADER, [site("TD-1")]))
    run(db, secret_box, write(tmp_path / "6.csv", ATTRIBUTES_HEADER, [attributes("SER-1")]))
    # A meter provisioned against the placeholder must follow it into the site record.
    run(
        db,
        secret_box,
        write(tmp_path / "2.csv", [*METER_HEADER, "concentrator"], [[*meter("M1"), "SER-1"]]),
    )
    # So must an event the placeholder raised (events hold no foreign key to refuse it).
    with db.begin() as conn:
        at = datetime(2026, 4, 10, 12, tzinfo=UTC)
        apply_events(conn, occurrences=[Occurrence(CONCENTRATOR, "SER-1", "LVC_POWER_ON", at, "t")])
    assert count(db, t.concentrators) == 2
    result = run(
        db,
        secret_box,
        write(tmp_path / "7.csv", COMPOSITION_HEADER, [composition("TD-1", "SER-1")]),
    )
    assert result.exit_code == 0, result.issues
    [c] = rows_of(db, t.concentrators)
    assert (c["name"], c["serial_number"], c["adlvc"], c["city"]) == (
        "TD-1",
        "SER-1",
        "829614000001",
        "Santiago",
    )
    assert c["latitude"] == pytest.approx(-33.4378)
    assert one(db, t.meters, serial_number="M1")["concentrator_id"] == c["id"]
    assert one(db, t.events, device="SER-1")["concentrator_id"] == c["id"]
    assert secret_box.open(c["maa_password_enc"], "concentrators:SER-1:maa_password") == Secret(
        "MAAsecret1"
    )


def test_composition_replacing_serial_clears_credentials(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    run(
        db,
        secret_box,
        write(tmp_path / "7a.csv", COMPOSITION_HEADER, [composition("TD-1", "SER-1")]),
    )
    run(db, secret_box, write(tmp_path / "6.csv", ATTRIBUTES_HEADER, [attributes("SER-1")]))
    assert one(db, t.concentrators, name="TD-1")["ppp_password_enc"] is not None
    result = run(
        db,
        secret_box,
        write(tmp_path / "7b.csv", COMPOSITION_HEADER, [composition("TD-1", "SER-2")]),
    )
    assert result.exit_code == 0
    assert "replaces serial number SER-1" in report(result)[0]["reason"]
    c = one(db, t.concentrators, name="TD-1")
    assert c["serial_number"] == "SER-2"
    assert (c["ppp_password_enc"], c["maa_password_enc"], c["k2_password_enc"]) == (
        None,
        None,
        None,
    )


# --- meter links and their history -----------------------------------------------------------


def links(db: Engine) -> list[tuple[str, str, datetime, datetime | None]]:
    query = (
        sa.select(
            t.meters.c.serial_number,
            t.service_points.c.name,
            t.meter_links.c.valid_from,
            t.meter_links.c.valid_to,
        )
        .join(t.meters, t.meters.c.id == t.meter_links.c.meter_id)
        .join(t.service_points, t.service_points.c.id == t.meter_links.c.service_point_id)
        .order_by(t.meter_links.c.id)
    )
    with db.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


@pytest.fixture
def linked(db: Engine, secret_box: SecretBox, tmp_path: Path) -> Engine:
    run(
        db,
        secret_box,
        write(tmp_path / "p.csv", POD_HEADER, [pod("POD1"), pod("POD2"), pod("POD3")]),
    )
    run(
        db,
        secret_box,
        write(tmp_path / "m.csv", METER_HEADER, [meter("M1"), meter("M2"), meter("M3")]),
    )
    rows = [["M1", "POD1", "2025-01-01T00:00Z"], ["M2", "POD2", "2025-01-01T00:00Z"]]
    assert run(db, secret_box, write(tmp_path / "l0.csv", LINK_HEADER, rows)).exit_code == 0
    return db


T0 = datetime(2025, 1, 1, tzinfo=UTC)
T1 = datetime(2025, 6, 1, 12, tzinfo=UTC)


def test_meter_exchange_closes_old_link(
    linked: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    result = run(
        linked,
        secret_box,
        write(tmp_path / "l.csv", LINK_HEADER, [["M3", "POD1", "2025-06-01T12:00Z"]]),
    )
    assert (result.exit_code, result.created) == (0, 1)
    assert links(linked) == [
        ("M1", "POD1", T0, T1),
        ("M2", "POD2", T0, None),
        ("M3", "POD1", T1, None),
    ]


def test_meter_moved_to_another_pod(linked: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    result = run(
        linked,
        secret_box,
        write(tmp_path / "l.csv", LINK_HEADER, [["M1", "POD3", "2025-06-01T12:00Z"]]),
    )
    assert result.exit_code == 0
    assert links(linked) == [
        ("M1", "POD1", T0, T1),
        ("M2", "POD2", T0, None),
        ("M1", "POD3", T1, None),
    ]


def test_meter_moved_onto_an_occupied_pod(
    linked: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    result = run(
        linked,
        secret_box,
        write(tmp_path / "l.csv", LINK_HEADER, [["M1", "POD2", "2025-06-01T12:00Z"]]),
    )
    assert result.exit_code == 0
    assert links(linked) == [
        ("M1", "POD1", T0, T1),
        ("M2", "POD2", T0, T1),
        ("M1", "POD2", T1, None),
    ]


def test_link_without_valid_from_starts_now_and_reimport_is_a_no_op(
    linked: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    before = datetime.now(UTC)
    path = write(tmp_path / "l.csv", LINK_HEADER, [["M3", "POD3", ""]])
    assert run(linked, secret_box, path).created == 1
    started = links(linked)[-1][2]
    assert before.replace(microsecond=0) <= started <= datetime.now(UTC)
    again = run(linked, secret_box, path)
    assert (again.exit_code, again.created, again.updated) == (0, 0, 1)
    assert len(links(linked)) == 3


def test_link_earlier_than_the_link_it_replaces(
    linked: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    result = run(
        linked,
        secret_box,
        write(tmp_path / "l.csv", LINK_HEADER, [["M3", "POD1", "2024-12-31T00:00Z"]]),
    )
    assert errors(result) == {2: {"validfrom": "is before the start of the link it replaces"}}
    assert [x[3] for x in links(linked)] == [None, None]


def test_pod_linked_twice_in_one_file(
    linked: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    path = write(tmp_path / "l.csv", LINK_HEADER, [["M3", "POD3", ""], ["M2", "POD3", ""]])
    result = run(linked, secret_box, path)
    assert (result.accepted, result.rejected) == (1, 1)
    assert errors(result) == {
        3: {"podname": "row 2 of this file already links a meter to this POD"}
    }
    assert links(linked)[-1][:2] == ("M3", "POD3")


def test_pod_linked_twice_when_the_first_row_is_already_linked(
    linked: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    path = write(tmp_path / "l.csv", LINK_HEADER, [["M1", "POD1", ""], ["M3", "POD1", ""]])
    result = run(linked, secret_box, path)
    assert errors(result) == {
        3: {"podname": "row 2 of this file already links a meter to this POD"}
    }
    assert [x[3] for x in links(linked)] == [None, None]


# --- duplicates, stray fields ----------------------------------------------------------------


def test_duplicate_keys_within_a_file(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", POD_HEADER, [pod("P1"), pod("P2"), pod("P1", lat="-34")])
    result = run(db, secret_box, path)
    assert (result.accepted, result.rejected, result.created) == (2, 1, 2)
    assert errors(result) == {4: {"name": "repeats row 2 in this file; ignored"}}
    assert one(db, t.service_points, name="P1")["latitude"] == pytest.approx(-33.4314)


def test_more_fields_than_the_header(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.csv",
        TRANSFORMER_HEADER,
        [["TR-1", "SE", "d", "oops"], ["TR-2", "SE", "d", ""]],
    )
    result = run(db, secret_box, path)
    assert (result.accepted, result.rejected) == (1, 1)
    assert errors(result) == {2: {"": "has 1 more fields than the header"}}
    assert [r["code"] for r in rows_of(db, t.transformers)] == ["TR-2"]


def test_unknown_extra_column_is_a_warning(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    path = write(tmp_path / "t.csv", [*TRANSFORMER_HEADER, "Colour"], [["TR-1", "SE", "d", "red"]])
    result = run(db, secret_box, path)
    assert (result.exit_code, result.accepted, result.warnings) == (0, 1, 1)
    [line] = report(result)
    assert (line["row"], line["column"], line["level"]) == ("1", "colour", "warning")


# --- unreadable files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\n  \n\r\n", "the file is empty"),
        (b"PK\x03\x04\x00\x00binary", "a binary file"),
        (b"foo;bar\n1;2\n", "matches no provisioning template"),
    ],
)
def test_unreadable_files(
    db: Engine, secret_box: SecretBox, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    result = run(db, secret_box, path)
    assert result.exit_code == 1
    assert result.fatal is not None
    assert message in result.fatal
    assert result.template is None
    assert count(db, t.import_runs) == 0


def test_missing_file(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    result = run(db, secret_box, tmp_path / "absent.csv")
    assert result.exit_code == 1
    assert result.fatal is not None


def test_cp1252_file_is_read_with_a_warning(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    path = tmp_path / "p.csv"
    text = ";".join(POD_HEADER) + "\r\n" + ";".join(pod("POD-Ñuñoa")) + "\r\n"
    path.write_bytes(text.replace("Calle 1", "Peñalolén").encode("cp1252"))
    result = run(db, secret_box, path)
    assert (result.exit_code, result.accepted, result.warnings) == (0, 1, 1)
    assert "read as Windows-1252" in report(result)[0]["reason"]
    p = one(db, t.service_points, name="POD-Ñuñoa")
    assert p["address"] == "Peñalolén"


def test_utf8_bom_and_crlf(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffCODE,SubstationName,Description\r\nTR-1,SE-Ñ,d\r\n".encode())
    result = run(db, secret_box, path)
    assert (result.exit_code, result.accepted) == (0, 1)
    assert rows_of(db, t.substations)[0]["name"] == "SE-Ñ"


def test_fewer_fields_than_the_header(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("code,substationname,description\nTR-1\nTR-2,SE\n", encoding="utf-8")
    result = run(db, secret_box, path)
    assert errors(result) == {2: {"substationname": "is required"}}
    assert [r["code"] for r in rows_of(db, t.transformers)] == ["TR-2"]


# --- chunks ----------------------------------------------------------------------------------


def test_file_over_several_chunks(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    rows = [pod(f"P{i:02d}") for i in range(11)]
    rows[4] = pod("BAD", lat="x")
    rows[7] = pod("P01")
    path = write(tmp_path / "p.csv", POD_HEADER, rows)
    progress: list[tuple[int, int]] = []
    options = ImportOptions(None, tmp_path / "reports", chunk_rows=3)
    result = import_file(
        db, secret_box, path, options, lambda done, total: progress.append((done, total))
    )
    assert (result.rows_total, result.accepted, result.rejected, result.created) == (11, 9, 2, 9)
    assert count(db, t.service_points) == 9
    assert set(errors(result)) == {6, 9}
    assert len(progress) == 4
    assert progress[-1] == (11, 11)
    again = run(db, secret_box, path, chunk_rows=2)
    assert (again.accepted, again.created, again.updated) == (9, 0, 9)


def test_links_over_several_chunks(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    run(db, secret_box, write(tmp_path / "p.csv", POD_HEADER, [pod(f"P{i}") for i in range(5)]))
    run(db, secret_box, write(tmp_path / "m.csv", METER_HEADER, [meter(f"M{i}") for i in range(5)]))
    rows = [[f"M{i}", f"P{i}", ""] for i in range(5)] + [["M9", "P0", ""]]
    rows.append(["M4", "P0", ""])
    result = run(db, secret_box, write(tmp_path / "l.csv", LINK_HEADER, rows), chunk_rows=2)
    assert (result.accepted, result.rejected, result.created) == (5, 2, 5)
    assert count(db, t.meter_links) == 5


# --- import order ----------------------------------------------------------------------------


def test_import_order_sorts_the_seven_files(tmp_path: Path) -> None:
    files = write_provisioning_files(
        default_fleet().sized(concentrators=1, meters_per_concentrator=1, point_to_point=5),
        tmp_path,
    )
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n", encoding="utf-8")
    shuffled = [junk, *sorted(files.values(), key=lambda p: p.name, reverse=True)]
    ordered = import_order(shuffled)
    assert ordered == [
        files[K.TRANSFORMER],
        files[K.CONCENTRATOR_SITE],
        files[K.CONCENTRATOR_COMPOSITION],
        files[K.CONCENTRATOR_ATTRIBUTES],
        files[K.SERVICE_POINT],
        files[K.METER],
        files[K.METER_LINK],
        junk,
    ]


def test_composition_new_transformer_claimed_by_two_substations(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "c.csv",
        COMPOSITION_HEADER,
        [composition("TD-1", "S1", "SE-A", "TR-X"), composition("TD-2", "S2", "SE-B", "TR-X")],
    )
    result = run(db, secret_box, path)
    assert errors(result) == {3: {"transformername": "belongs to another substation than SE-B"}}
    tr = one(db, t.transformers, code="TR-X")
    assert one(db, t.substations, id=tr["substation_id"])["name"] == "SE-A"
    assert [c["name"] for c in rows_of(db, t.concentrators)] == ["TD-1"]


def test_row_numbers_are_the_spreadsheet_rows(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "\n"  # row 1: blank
        "code,substationname,description,colour\n"  # row 2: header
        'TR-1,SE,"two\nlines",\n'  # row 3, one record over two lines
        "\n"  # row 4: blank
        ",SE,missing code,\n",  # row 5
        encoding="utf-8",
    )
    result = run(db, secret_box, path)
    assert (result.accepted, result.rejected) == (1, 1)
    assert errors(result) == {5: {"code": "is required"}}
    assert [(x["row"], x["column"]) for x in report(result) if x["level"] == "warning"] == [
        ("2", "colour")
    ]
    assert one(db, t.transformers, code="TR-1")["description"] == "two\nlines"


@pytest.mark.parametrize("chunk_rows", [1, 5000])
def test_composition_name_equal_to_serial_is_not_a_placeholder_within_a_file(
    db: Engine, secret_box: SecretBox, tmp_path: Path, chunk_rows: int
) -> None:
    rows = [composition("SER-1", "SER-1"), composition("TD-1", "SER-1")]
    path = write(tmp_path / "c.csv", COMPOSITION_HEADER, rows)
    result = run(db, secret_box, path, chunk_rows=chunk_rows)
    assert errors(result) == {
        3: {"concentratorserialnumber": "already belongs to concentrator SER-1"}
    }
    assert [c["name"] for c in rows_of(db, t.concentrators)] == ["SER-1"]


def test_cp1252_file_with_a_utf8_bom(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbfcode;substationname;description\nTR-1;SE-\xd1uble;d\n")
    result = run(db, secret_box, path)
    assert (result.exit_code, result.accepted, result.warnings) == (0, 1, 1)
    assert rows_of(db, t.substations)[0]["name"] == "SE-Ñuble"


def test_reports_of_the_same_second_do_not_overwrite_each_other(
    db: Engine, secret_box: SecretBox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> FrozenClock:
            return cls(2025, 6, 1, 12, 0, 0, tzinfo=tz)

    monkeypatch.setattr("smmc.store.provisioning.datetime", FrozenClock)
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    first = write(first_dir / "pods.csv", POD_HEADER, [pod("", lat="1")])
    second = write(second_dir / "pods.csv", POD_HEADER, [pod("P2", lat="x")])
    options = ImportOptions(None, tmp_path / "reports")
    paths = [import_file(db, secret_box, p, options).report_path for p in (first, second, first)]
    assert len({str(p) for p in paths}) == 3
    contents = [p.read_text("utf-8") for p in paths if p is not None]
    assert "name,,error,is required" in contents[0]
    assert "latitude,x,error" in contents[1]
    assert contents[2] == contents[0]
    assert sorted(r["error_report"] for r in rows_of(db, t.import_runs)) == sorted(map(str, paths))


# --- arbitrary input -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_parse_file_reads_anything_or_says_why(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    path = tmp_path_factory.mktemp("parse") / "x.csv"
    path.write_bytes(content)
    try:
        parsed = parse_file(path)
        rows = list(parsed.rows)
    except UnreadableFile as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert message.startswith(str(path))
        return
    assert all(row >= 2 for row, _, _ in rows)
    assert [row for row, _, _ in rows] == sorted({row for row, _, _ in rows})


FIELD = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12),
    st.sampled_from(["", "SER-1", "TD-1", "M1", "P1", "TR-1", "SE-1", "-33.4", "-70.6", KEY_A]),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(list(TemplateKind)),
    rows=st.lists(st.lists(FIELD, min_size=0, max_size=16), min_size=1, max_size=6),
    chunk_rows=st.sampled_from([1, 2, 5000]),
)
def test_arbitrary_rows_never_break_an_import(
    db: Engine,
    secret_box: SecretBox,
    tmp_path_factory: pytest.TempPathFactory,
    kind: TemplateKind,
    rows: list[list[str]],
    chunk_rows: int,
) -> None:
    folder = tmp_path_factory.mktemp("rows")
    path = write(folder / "x.csv", TEMPLATE_BY_KIND[kind].columns, rows)
    result = run(db, secret_box, path, chunk_rows=chunk_rows, area=True)
    if result.fatal is not None:
        # Only a row the csv module cannot split (e.g. a stray quote) may stop the file.
        assert "line" in result.fatal
        return
    assert result.accepted + result.rejected == result.rows_total
    assert result.created + result.updated <= result.accepted
    assert result.exit_code == (2 if result.rejected else 0)


@pytest.mark.parametrize("separator", ["\x0b", "\x0c", "\x1c", "\u2028", "\x85"])
def test_other_unicode_line_separators_are_not_line_breaks(tmp_path: Path, separator: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        f"{separator}\ncode,substationname,description\nTR-1,SE,a{separator}b\n", "utf-8"
    )
    parsed = parse_file(path)
    assert parsed.template.kind is K.TRANSFORMER
    [(row, values, extra)] = list(parsed.rows)
    assert (row, values["description"], extra) == (3, f"a{separator}b", 0)


def test_a_field_over_the_csv_limit_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("code," + "x" * 200_000 + "\n", "utf-8")
    with pytest.raises(UnreadableFile, match="line 1"):
        parse_file(path)


def test_good_rows_before_an_unsplittable_line_are_kept(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    path = tmp_path / "t.csv"
    lines = [
        "code,substationname,description",
        "TR-1,SE,d",
        "TR-2,SE,d",
        "TR-3,SE," + "x" * 200_000,
    ]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    result = run(db, secret_box, path)
    assert result.exit_code == 1
    assert result.fatal is not None
    assert "line 4" in result.fatal
    assert (result.rows_total, result.accepted, result.created) == (2, 2, 2)
    assert [r["code"] for r in rows_of(db, t.transformers)] == ["TR-1", "TR-2"]
    [run_row] = rows_of(db, t.import_runs)
    assert (run_row["rows_total"], run_row["rows_accepted"]) == (2, 2)


def test_serial_freed_by_a_replacement_in_the_same_file(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    run(db, secret_box, write(tmp_path / "a.csv", COMPOSITION_HEADER, [composition("TD-1", "S1")]))
    rows = [composition("TD-1", "S2"), composition("TD-9", "S1")]
    result = run(db, secret_box, write(tmp_path / "b.csv", COMPOSITION_HEADER, rows))
    assert (result.exit_code, result.accepted) == (0, 2), result.issues
    serials = {c["name"]: c["serial_number"] for c in rows_of(db, t.concentrators)}
    assert serials == {"TD-1": "S2", "TD-9": "S1"}


@pytest.mark.parametrize("holder", ["composition", "site"])
def test_attributes_placeholder_name_taken_by_another_concentrator(
    db: Engine, secret_box: SecretBox, tmp_path: Path, holder: str
) -> None:
    if holder == "composition":
        first = write(tmp_path / "7.csv", COMPOSITION_HEADER, [composition("SER-1", "SER-2")])
    else:
        first = write(tmp_path / "4.csv", SITE_HEADER, [site("SER-1")])
    run(db, secret_box, first)
    result = run(
        db, secret_box, write(tmp_path / "6.csv", ATTRIBUTES_HEADER, [attributes("SER-1")])
    )
    assert (result.accepted, result.rejected) == (0, 1)
    assert "the concentrator named so has another one" in errors(result)[2]["serialnumber"]
    [c] = rows_of(db, t.concentrators)
    assert (c["name"], c["ppp_password_enc"], c["adlvc"]) == ("SER-1", None, None)
