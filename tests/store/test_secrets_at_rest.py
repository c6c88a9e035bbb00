"""Meter keys and concentrator passwords exist in clear only in memory: the database holds
`v1:` envelopes, and neither the error report, the logs nor a repr shows a clear value."""

from __future__ import annotations

import base64
import csv
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.config import Settings
from smmc.domain.assets import Secret
from smmc.domain.provisioning import TEMPLATE_BY_KIND, TemplateKind, validate_row
from smmc.store import tables as t
from smmc.store.provisioning import ImportOptions, ImportResult, import_file
from smmc.store.secrets import (
    ENVELOPE_PREFIX,
    SecretBox,
    SecretKeyError,
    load_or_create_key_file,
    parse_master_key,
)

METER_KEYS = ("0123456789ABCDEF0123456789ABCDEF", "FEDCBA9876543210FEDCBA9876543210")
BAD_KEY = "0123456789ABCDEF0123456789ABCDEG"  # 32 characters, one not hexadecimal
PASSWORDS = ("PppClearPass1", "MaaClearPass2", "5761798273554C4A4A52505965287B4B")
BAD_PASSWORD = "has a space"
CLEAR = (*METER_KEYS, BAD_KEY, *PASSWORDS, BAD_PASSWORD)

METER_HEADER = (
    "serialnumber;serialnumber_board;macaddress;firmwareid;hardwareid;servicekind;tag;"
    "primarykey;secondarykey;concentrator"
)
ATTRIBUTES_HEADER = (
    "serialnumber;adlvc;ppp_username;ppp_password;maa_username;maa_password;k2_password;tag"
)


def write_files(tmp_path: Path) -> list[Path]:
    k1, k2 = METER_KEYS
    ppp, maa, k2_password = PASSWORDS
    meters = tmp_path / "meters.csv"
    meters.write_text(
        f"{METER_HEADER}\n"
        f"M1;B1;85055505AA55;11;L1;Electric;t;{k1};{k2};\n"
        f"M2;B2;85055505AA56;11;L1;Electric;t;{k1.lower()};{k2.lower()};\n"
        f"M3;B3;85055505AA57;11;L1;Electric;t;{BAD_KEY};{k2};\n"
        f"M4;B4;85055505AA58;11;L1;Electric;t;{k1};{k2};TD-unknown\n"
        f"M5;B5;85055505AA58;11;L1;Electric;t;{k1};{k2};;{k1}\n",
        encoding="utf-8",
    )
    attributes = tmp_path / "attributes.csv"
    attributes.write_text(
        f"{ATTRIBUTES_HEADER}\n"
        f"SER-1;829614000001;ppp;{ppp};maa;{maa};{k2_password};tag\n"
        f"SER-2;829614000002;ppp;{BAD_PASSWORD};maa;{maa};{BAD_KEY};tag\n",
        encoding="utf-8",
    )
    return [attributes, meters]


def import_all(db: Engine, box: SecretBox, tmp_path: Path) -> list[ImportResult]:
    options = ImportOptions(None, tmp_path / "reports")
    return [import_file(db, box, path, options) for path in write_files(tmp_path)]


def leaks(text: str) -> list[str]:
    folded = text.upper()
    return [value for value in CLEAR if value.upper() in folded]


def test_database_holds_only_envelopes(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    results = import_all(db, secret_box, tmp_path)
    assert [(r.accepted, r.rejected) for r in results] == [(1, 1), (2, 3)]
    dumped: list[str] = []
    with db.connect() as conn:
        for table in t.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                dumped.extend(str(value) for value in row if value is not None)
    assert dumped
    assert leaks("\n".join(dumped)) == []
    with db.connect() as conn:
        meters = conn.execute(sa.select(t.meters).order_by(t.meters.c.serial_number)).all()
        [concentrator] = conn.execute(sa.select(t.concentrators)).all()
    for m in meters:
        for column in ("encryption_key", "authentication_key"):
            envelope = getattr(m, f"{column}_enc")
            assert envelope.startswith(ENVELOPE_PREFIX)
            opened = secret_box.open(envelope, f"meters:{m.serial_number}:{column}")
            assert opened == Secret(METER_KEYS[column == "authentication_key"])
    for column, clear in zip(
        ("ppp_password", "maa_password", "k2_password"), PASSWORDS, strict=True
    ):
        envelope = getattr(concentrator, f"{column}_enc")
        assert envelope.startswith(ENVELOPE_PREFIX)
        assert secret_box.open(envelope, f"concentrators:SER-1:{column}") == Secret(clear)


def test_error_report_redacts_secret_columns(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    results = import_all(db, secret_box, tmp_path)
    reports = [result.report_path for result in results]
    assert None not in reports
    text = "".join(path.read_text(encoding="utf-8") for path in reports if path is not None)
    assert leaks(text) == []
    attributes_report, meters_report = (read_report(path) for path in reports if path is not None)
    assert {(x["row"], x["column"], x["value"]) for x in meters_report} >= {
        ("4", "primarykey", "********"),
        ("5", "concentrator", "TD-unknown"),
        ("6", "", ""),
    }
    redacted = {x["column"]: x["value"] for x in attributes_report if x["level"] == "error"}
    assert redacted == {"ppp_password": "********", "k2_password": "********"}


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_logs_never_show_a_clear_secret(
    db: Engine, secret_box: SecretBox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with caplog.at_level(logging.DEBUG, logger="sqlalchemy.engine"):
        import_all(db, secret_box, tmp_path)
    logged = "\n".join(f"{record.getMessage()} {record.args!r}" for record in caplog.records)
    assert "FROM substations" in logged  # the SQL log was captured
    if db.dialect.name == "sqlite":
        # Parameters are logged with the statements; on PostgreSQL the rows travel by COPY.
        assert "INSERT INTO meters" in logged
        assert ENVELOPE_PREFIX in logged
    assert leaks(logged) == []


def test_repr_of_domain_records_hides_secrets() -> None:
    meter = dict(
        zip(
            TEMPLATE_BY_KIND[TemplateKind.METER].required,
            ["M1", "B1", "85055505AA55", "11", "L1", "E", "t", *METER_KEYS],
            strict=True,
        )
    )
    ppp, maa, k2_password = PASSWORDS
    attributes = {
        "serialnumber": "SER-1",
        "ppp_password": ppp,
        "maa_password": maa,
        "k2_password": k2_password,
    }
    for kind, values in (
        (TemplateKind.METER, meter),
        (TemplateKind.CONCENTRATOR_ATTRIBUTES, attributes),
    ):
        result = validate_row(TEMPLATE_BY_KIND[kind], 2, values, None)
        assert result.record is not None
        assert leaks(repr(result)) == []
        assert leaks(str(result.record)) == []
    assert repr(Secret(METER_KEYS[0])) == "Secret('********')"
    assert f"{Secret(METER_KEYS[0])}" == "Secret('********')"


# --- the box ---------------------------------------------------------------------------------


def test_box_binds_the_context(secret_box: SecretBox) -> None:
    envelope = secret_box.seal(Secret("k"), "meters:M1:encryption_key")
    assert secret_box.open(envelope, "meters:M1:encryption_key") == Secret("k")
    assert envelope != secret_box.seal(Secret("k"), "meters:M1:encryption_key")
    for context in ("meters:M2:encryption_key", "meters:M1:authentication_key"):
        with pytest.raises(SecretKeyError, match="wrong master key or tampered"):
            secret_box.open(envelope, context)


def test_wrong_master_key(secret_box: SecretBox) -> None:
    envelope = secret_box.seal(Secret("k"), "ctx")
    with pytest.raises(SecretKeyError):
        SecretBox(os.urandom(32)).open(envelope, "ctx")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda e: e[:-2] + ("AA" if e[-2:] != "AA" else "BB"),
        lambda e: e[:10] + ("x" if e[10] != "x" else "y") + e[11:],
        lambda e: e[: len(e) // 2],
        lambda e: "v1:",
        lambda e: "v1:!!!not base64",
        lambda e: e.removeprefix("v1:"),
        lambda e: "v2:" + e[3:],
    ],
)
def test_tampered_envelope(secret_box: SecretBox, tamper: Callable[[str], str]) -> None:
    envelope = secret_box.seal(Secret("0123456789ABCDEF0123456789ABCDEF"), "ctx")
    with pytest.raises(SecretKeyError):
        secret_box.open(tamper(envelope), "ctx")


def test_envelope_copied_onto_another_record(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    import_all(db, secret_box, tmp_path)
    with db.begin() as conn:
        m1 = conn.execute(sa.select(t.meters).where(t.meters.c.serial_number == "M1")).one()
        conn.execute(
            t.meters.update()
            .where(t.meters.c.serial_number == "M2")
            .values(encryption_key_enc=m1.encryption_key_enc)
        )
        copied = conn.execute(
            sa.select(t.meters.c.encryption_key_enc).where(t.meters.c.serial_number == "M2")
        ).scalar_one()
    with pytest.raises(SecretKeyError):
        secret_box.open(copied, "meters:M2:encryption_key")


# --- master key ------------------------------------------------------------------------------


def test_key_file_created_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret.key"
    key = load_or_create_key_file(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key_file(path) == key
    box = SecretBox.from_settings(None, path)
    assert SecretBox(key).open(box.seal(Secret("s"), "c"), "c") == Secret("s")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret.key"
    load_or_create_key_file(path)
    path.chmod(mode)
    with pytest.raises(SecretKeyError, match="chmod 600"):
        load_or_create_key_file(path)


def test_secret_key_from_environment_hex_and_base64(tmp_path: Path) -> None:
    raw = os.urandom(32)
    key_file = tmp_path / "never-created.key"
    forms = (raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode(), f" {raw.hex()}\n")
    boxes = []
    for form in forms:
        settings = Settings.from_env({"SMMC_SECRET_KEY": form, "SMMC_VAR_DIR": str(tmp_path)})
        assert settings.secret_key == form
        assert parse_master_key(form) == raw
        boxes.append(SecretBox.from_settings(settings.secret_key, key_file))
    assert not key_file.exists()
    envelope = boxes[0].seal(Secret("s"), "c")
    assert all(box.open(envelope, "c") == Secret("s") for box in boxes)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "00" * 31,
        "zz" * 32,
        base64.b64encode(os.urandom(31)).decode(),
        base64.b64encode(os.urandom(33)).decode(),
        "not a key at all",
    ],
)
def test_malformed_master_key(text: str) -> None:
    with pytest.raises(SecretKeyError):
        parse_master_key(text)


def test_box_refuses_a_short_key() -> None:
    with pytest.raises(SecretKeyError):
        SecretBox(os.urandom(16))
