"""The event catalog: the seed's Legacy codes exactly, every documented bit and letter, and
operator overrides without code changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from smmc.domain.concentrator_status import LETTERS
from smmc.domain.events import (
    CONCENTRATOR_WORD,
    Catalog,
    CatalogError,
    Category,
    Priority,
    Routing,
    load_catalog,
)

SEED_CODES = {
    # (word, bit): (code, description) exactly as the seed's SWE file spells them
    ("normal1", 0): ("3.26.0.85", "Voltage interruption (PUP)"),
    ("extended2", 4): ("3.12.29.79", "Terminal cover removed (TC_REM)"),
    ("normal1", 1): ("3.36.17.85", "Clock not aligned (ORD)"),
    ("extended1", 0): ("3.37.0.85", "Watch dog alarm (WDOG)"),
    ("extended1", 3): ("3.12.29.212", "Meter Case Opening(CAPE)"),
    ("normal1", 3): ("3.23.1.79", "Alarm on communication line (AFC)"),
}

DOMAIN_BITS = {
    "normal1": {0: "PUP", 1: "ORD", 2: "ONSI", 3: "AFC", 4: "PIC", 5: "SGR", 6: "C1_SCE1",
                7: "C1_SCE2", 9: "ALL", 10: "PAD", 11: "CPF1_1", 12: "CPF2_1", 13: "CPF3_1",
                14: "CPF4_1", 15: "FVP"},
    "normal2": {2: "EG1_F", 3: "EG2_F", 4: "ELI_F", 5: "SMST", 6: "NPR", 7: "NPW",
                8: "CPF1_2", 9: "CPF2_2", 10: "CPF3_2", 11: "CPF4_2", 12: "SGR_OCC",
                14: "C2_SCE1", 15: "C2_SCE2"},
    "extended1": {0: "WDOG", 1: "INTA", 3: "CAPE", 4: "DRAM", 5: "DEEP", 6: "DFLA", 7: "DZCR",
                  9: "DMIS", 10: "UNLOCKED", 11: "DDSP", 13: "OLU", 14: "KP_ON"},
    "extended2": {0: "ICP", 1: "NCO", 2: "POP", 3: "BAT_LOW", 4: "TC_REM", 5: "CUT_OPEN_P",
                  6: "WRNTHD"},
}  # fmt: skip


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.mark.parametrize(("position", "expected"), sorted(SEED_CODES.items()))
def test_seed_codes_and_descriptions_are_exact(
    catalog: Catalog, position: tuple[str, int], expected: tuple[str, str]
) -> None:
    entry = catalog.bit(*position)
    assert (entry.code, entry.description) == expected
    assert entry.severity == 0


def test_every_domain_bit_has_its_acronym(catalog: Catalog) -> None:
    for word, bits in DOMAIN_BITS.items():
        for bit, acronym in bits.items():
            entry = catalog.bit(word, bit)
            assert entry.acronym == acronym, (word, bit)
            assert catalog.mapped(word, bit)


def test_every_concentrator_letter_sits_on_its_bit(catalog: Catalog) -> None:
    for letter, spec in LETTERS.items():
        entry = catalog.bit(CONCENTRATOR_WORD, spec.bit)
        assert entry.key == f"concentrator.{letter}"
        assert entry.acronym == letter
        assert entry.code.startswith("10.")


def test_unmapped_bits_are_still_events(catalog: Catalog) -> None:
    entry = catalog.bit("normal1", 8)
    assert not catalog.mapped("normal1", 8)
    assert entry.description == "Unmapped status bit normal1.8"
    assert entry.code == "3.0.17.0"
    assert entry.priority is Priority.NORMAL
    reserved = catalog.bit(CONCENTRATOR_WORD, 17)
    assert reserved.code == "10.0.17.0"


def test_priorities_and_routing_of_key_alarms(catalog: Catalog) -> None:
    pup = catalog.bit("normal1", 0)
    assert (pup.priority, pup.category, pup.routing) == (
        Priority.HIGH,
        Category.POWER,
        Routing.EMERGENCY_DISPATCH,
    )
    cape = catalog.bit("extended1", 3)
    assert (cape.priority, cape.category, cape.routing) == (
        Priority.HIGH,
        Category.TAMPER,
        Routing.FIELD_OPERATIONS,
    )
    assert catalog["LVC_POWER_OFF"].priority is Priority.HIGH
    assert catalog["METER_COMMISSIONED"].code == "3.39.74.42"
    assert catalog["WO_FAILED"].category is Category.WORK_ORDER_RESULT


def test_operator_override_changes_fields_and_adds_entries(tmp_path: Path) -> None:
    override = tmp_path / "catalog.yaml"
    override.write_text(
        "meter:\n"
        "  normal1:\n"
        "    1: {priority: high, routing: emergency dispatch}\n"
        "    8: {acronym: NEW8, description: New bit, code: 3.0.17.24, priority: normal,"
        " category: diagnostics, routing: none}\n"
        "other:\n"
        "  SIM_TRAFFIC: {acronym: SIM, description: Traffic limit, code: 10.1.0.93,"
        " priority: high, category: communication, routing: field operations}\n",
        encoding="utf-8",
    )
    catalog = load_catalog(override)
    ord_bit = catalog.bit("normal1", 1)
    assert ord_bit.priority is Priority.HIGH
    assert ord_bit.routing is Routing.EMERGENCY_DISPATCH
    assert ord_bit.description == "Clock not aligned (ORD)"
    assert catalog.bit("normal1", 8).acronym == "NEW8"
    assert catalog.mapped("normal1", 8)
    assert catalog["SIM_TRAFFIC"].code == "10.1.0.93"
    assert catalog.bit("extended1", 3).code == "3.12.29.212"
    assert catalog.bit(CONCENTRATOR_WORD, LETTERS["L"].bit).acronym == "L"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("meter: {normal1: {1: {priority: urgent}}}", "normal1.1"),
        ("meter: {normal1: {16: {priority: high}}}", "bit outside"),
        ("meter: {normal3: {}}", "normal3"),
        ("concentrator: {Q: {priority: high}}", "'Q'"),
        ("meter: {normal1: {1: {code: 3.36}}}", "code"),
        ("meter: {normal1: {1: {colour: red}}}", "colour"),
        ("meter: [1, 2", "not valid YAML"),
    ],
)
def test_bad_override_names_the_entry_and_field(tmp_path: Path, text: str, message: str) -> None:
    override = tmp_path / "bad.yaml"
    override.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=message):
        load_catalog(override)
