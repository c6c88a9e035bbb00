"""Device profiles: the shipped NEXY-M profile, the loader's errors, the builder, decode map."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.association_ln import AssociationLN
from smmc.dlms.cosem.base import AttributeAccess, CosemAccessError
from smmc.dlms.cosem.clock import Clock
from smmc.dlms.cosem.disconnect_control import DisconnectControl
from smmc.dlms.cosem.profile_generic import ProfileGeneric
from smmc.dlms.cosem.register import Unit
from smmc.dlms.obis import Obis
from smmc.dlms.profiles import (
    DecodeMap,
    ProfileError,
    build_device,
    check_device,
    load_builtin,
    load_profile,
    parse_profile,
)

PUBLIC, MANAGEMENT, HES = 16, 1, 48
P = Obis.parse


def _raw() -> dict[str, Any]:
    text = resources.files("smmc.dlms.profiles").joinpath("nexy_m.json").read_text("utf-8")
    raw = json.loads(text)
    assert isinstance(raw, dict)
    return raw


RAW = _raw()
PROFILE = load_builtin()


def _by_name(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(o for o in raw["objects"] if o["name"] == name)


# -- the shipped profile ---------------------------------------------------------------------


def test_profile_has_the_domain_objects() -> None:
    keys = {(o.class_id, str(o.obis)) for o in PROFILE.objects}
    expected = {
        (8, "0.0.1.0.0.255"),
        (1, "0.0.42.0.0.255"),
        (1, "0.0.96.1.0.255"),
        (1, "1.0.0.2.0.255"),
        (70, "0.0.96.3.10.255"),
        (7, "1.0.99.1.0.255"),
        (7, "1.0.98.1.0.255"),
        (1, "0.0.97.98.0.255"),
        (40, "0.0.25.9.0.255"),
        (18, "0.0.44.0.0.255"),
        (20, "0.0.13.0.0.255"),
        (64, "0.0.43.0.3.255"),
        (1, "0.0.43.1.3.255"),
        (71, "0.0.17.0.0.255"),
        (15, "0.0.40.0.0.255"),
    }
    expected |= {(3, f"1.0.{c}.8.{e}.255") for c in (1, 2, 3, 4) for e in range(7)}
    expected |= {(1, f"0.0.96.5.{n}.255") for n in (1, 2, 3, 4)}
    expected |= {(7, f"0.0.99.98.{x}.255") for x in (0, 1, 2, 4)}
    assert expected <= keys
    assert [(a.name, a.client_sap) for a in PROFILE.associations] == [
        ("public", 16),
        ("management", 1),
        ("head-end", 48),
    ]


def test_load_profile_has_six_columns() -> None:
    device = build_device(PROFILE)
    lp = device.find(7, P("1.0.99.1.0.255"))
    assert isinstance(lp, ProfileGeneric)
    assert [(c.class_id, str(c.logical_name)) for c in lp.capture_objects] == [
        (8, "0.0.1.0.0.255"),
        (1, "0.0.96.10.1.255"),
        (3, "1.0.1.8.0.255"),
        (3, "1.0.2.8.0.255"),
        (3, "1.0.3.8.0.255"),
        (3, "1.0.4.8.0.255"),
    ]
    assert lp.capture_period == 900


def test_builder_output_matches_profile() -> None:
    device = build_device(PROFILE)
    assert check_device(device, PROFILE) == []
    assert len(device) == len(PROFILE.objects)
    assert device.name == b"NXM0000000000000"


def test_check_device_notices_differences() -> None:
    device = build_device(PROFILE)
    other = copy.deepcopy(RAW)
    _by_name(other, "serial_number")["attributes"]["2"] = {"type": "visible-string"}
    _by_name(other, "clock")["access"]["public"]["read"] = [1]
    problems = check_device(device, parse_profile(other))
    assert problems == [
        'object "clock" (0.0.1.0.0.255): rights of public differ',
        'object "serial_number" (0.0.96.1.0.255) attribute 2: octet-string, '
        "profile says visible-string",
    ]


def test_public_client_sees_few_objects_and_writes_nothing() -> None:
    device = build_device(PROFILE)
    visible = device.visible(PUBLIC)
    assert {str(o.logical_name) for o, _ in visible} == {
        "0.0.1.0.0.255",
        "0.0.42.0.0.255",
        "0.0.96.1.0.255",
        "1.0.0.2.0.255",
        "0.0.43.1.3.255",
        "0.0.40.0.0.255",
    }
    for obj, rights in visible:
        for attribute in range(1, obj.ATTRIBUTE_COUNT + 1):
            assert not rights.attribute(attribute).can_write(True)
        for method in range(1, obj.METHOD_COUNT + 1):
            assert not rights.method(method).allowed(True)
    with pytest.raises(CosemAccessError) as exc:
        device.get(3, P("1.0.1.8.0.255"), 2, client_sap=PUBLIC)
    assert exc.value.result == 4


def test_each_client_has_its_own_association() -> None:
    device = build_device(PROFILE, secrets={"management": b"12345678"})
    for sap, mechanism, context in ((PUBLIC, 0, 1), (MANAGEMENT, 1, 1), (HES, 5, 3)):
        assoc = [o for o, _ in device.visible(sap) if isinstance(o, AssociationLN)]
        assert len(assoc) == 1
        assert (assoc[0].client_sap, assoc[0].mechanism, assoc[0].context) == (
            sap,
            mechanism,
            context,
        )
    management = next(o for o, _ in device.visible(MANAGEMENT) if isinstance(o, AssociationLN))
    assert management.check_password(b"12345678")
    hes = next(o for o, _ in device.visible(HES) if isinstance(o, AssociationLN))
    assert hes.security_setup == P("0.0.43.0.3.255")
    listed = device.get(15, P("0.0.40.0.0.255"), 2, client_sap=HES).to_python()
    assert len(listed) == len(PROFILE.objects) - 2  # the other clients' associations


def test_head_end_can_operate_the_breaker_and_clock() -> None:
    seen: list[bool] = []
    now = dt.datetime(2026, 7, 15, 12, tzinfo=dt.UTC)
    device = build_device(PROFILE, time_source=lambda: now)
    breaker = device.find(70, P("0.0.96.3.10.255"))
    assert isinstance(breaker, DisconnectControl)
    breaker.on_output_change = seen.append
    device.action(70, P("0.0.96.3.10.255"), 1, Data.integer(0), client_sap=HES)
    with pytest.raises(CosemAccessError):
        device.action(70, P("0.0.96.3.10.255"), 2, Data.integer(0), client_sap=MANAGEMENT)
    device.action(70, P("0.0.96.3.10.255"), 2, Data.integer(0), client_sap=HES)
    assert seen == [False, True]
    clock = device.find(8, P("0.0.1.0.0.255"))
    assert isinstance(clock, Clock)
    device.action(8, P("0.0.1.0.0.255"), 6, Data.long(30), client_sap=HES)
    assert clock.utc_now() == now + dt.timedelta(seconds=30)


def test_limiter_trips_the_breaker_through_the_disconnect_script() -> None:
    device = build_device(PROFILE)
    device.set(71, P("0.0.17.0.0.255"), 3, Data.double_long_unsigned(5000), client_sap=HES)
    limiter = device.find(71, P("0.0.17.0.0.255"))
    breaker = device.find(70, P("0.0.96.3.10.255"))
    assert isinstance(breaker, DisconnectControl)
    limiter.evaluate(6000, 60)  # type: ignore[attr-defined]
    assert not breaker.output_state


def test_tariff_calendar_drives_tariff_scripts() -> None:
    device = build_device(PROFILE)
    ran: list[int] = []
    tariffs = device.find(9, P("0.0.10.0.100.255"))
    tariffs.on_execute = ran.append  # type: ignore[attr-defined]
    calendar = device.find(20, P("0.0.13.0.0.255"))
    for hour in (3, 9, 19, 23):
        calendar.apply(dt.datetime(2026, 7, 15, hour))  # type: ignore[attr-defined]
    calendar.apply(dt.datetime(2026, 7, 18, 12))  # type: ignore[attr-defined]
    assert ran == [3, 1, 2, 3]


def test_value_overrides_per_meter() -> None:
    serial = (P("0.0.96.1.0.255"), 2)
    title = (P("0.0.43.0.3.255"), 5)
    device = build_device(
        PROFILE,
        values={
            serial: Data.octet_string(b"UAAEEDN17305249807"),
            title: Data.octet_string(b"NXM\x00\x01\x02\x03\x04"),
        },
    )
    assert device.get(1, *serial).value == b"UAAEEDN17305249807"
    assert device.get(64, title[0], 5).value == b"NXM\x00\x01\x02\x03\x04"
    with pytest.raises(ProfileError, match="not in the profile"):
        build_device(PROFILE, values={(P("9.9.9.9.9.9"), 2): Data.null()})


def test_decode_map() -> None:
    dmap = DecodeMap(PROFILE)
    voltage = dmap.info(P("1.0.32.25.0.255"), 2)
    assert voltage is not None
    assert (voltage.type, voltage.scaler, voltage.unit) == (DataTag.LONG_UNSIGNED, -1, Unit.VOLT)
    assert voltage.scale(Data.long_unsigned(2301)) == pytest.approx(230.1)
    energy = dmap.info(P("1.0.1.8.0.255"), 2)
    assert energy is not None
    assert energy.scale(Data.double_long_unsigned(42)) == 42
    with pytest.raises(ValueError, match="not numeric"):
        energy.scale(Data.octet_string(b""))
    columns = dmap.columns(P("1.0.98.1.0.255"))
    assert len(columns) == 30
    assert all(c is not None for c in columns)
    assert [c.unit for c in columns[2:] if c is not None] == [30] * 14 + [32] * 14
    assert dmap.info(P("0.0.96.1.0.255"), 2) is not None
    assert dmap.info(P("0.0.96.1.0.255"), 3) is None


def test_load_profile_from_file(tmp_path: Path) -> None:
    path = tmp_path / "meter.json"
    path.write_text(json.dumps(RAW), encoding="utf-8")
    assert load_profile(path) == PROFILE
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ProfileError, match="not JSON"):
        load_profile(path)
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.json")


# -- broken profiles -------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(name: str, path: tuple[str | int, ...], value: object) -> Mutation:
    def apply(raw: dict[str, Any]) -> None:
        node: Any = _by_name(raw, name)
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return apply


def _drop(name: str, key: str) -> Mutation:
    def apply(raw: dict[str, Any]) -> None:
        del _by_name(raw, name)[key]

    return apply


BROKEN: list[tuple[str, Mutation, str]] = [
    (
        "association without own rights",
        _set("association_public", ("access",), {"head-end": {"read": "all"}}),
        'object "association_public" (0.0.40.0.0.255), field "access": must give rights',
    ),
    ("bad obis", _set("clock", ("obis",), "0.0.1.0"), 'object "clock", field "obis"'),
    (
        "missing class",
        _drop("clock", "class_id"),
        'object "clock" (0.0.1.0.0.255), field "class_id": missing',
    ),
    ("unknown class", _set("clock", ("class_id",), 99), 'field "class_id": interface class 99'),
    (
        "wrong version",
        _set("load_profile", ("version",), 0),
        'object "load_profile" (1.0.99.1.0.255), field "version"',
    ),
    (
        "unknown type",
        _set("serial_number", ("attributes", "2", "type"), "octet"),
        'object "serial_number" (0.0.96.1.0.255), field "attributes", field "2", field "type"',
    ),
    (
        "value/type mismatch",
        _set("alarm_register", ("attributes", "2", "value"), -1),
        'object "alarm_register" (0.0.97.98.0.255), field "attributes", field "2", '
        'field "value": not a valid double-long-unsigned',
    ),
    (
        "attribute out of range",
        _set("serial_number", ("attributes", "3"), {"type": "unsigned"}),
        'field "attributes", field "3": not an attribute 2..2 of class 1',
    ),
    (
        "bad unit",
        _set("active_import_total", ("unit",), "kWh"),
        'object "active_import_total" (1.0.1.8.0.255), field "unit"',
    ),
    (
        "scaler range",
        _set("active_import_total", ("scaler",), 200),
        'field "scaler": must be an integer -128..127',
    ),
    (
        "unknown association",
        _set("clock", ("access", "guest"), {"read": "all"}),
        'object "clock" (0.0.1.0.0.255), field "access", field "guest": unknown association',
    ),
    (
        "bad method id",
        _set("clock", ("access", "head-end", "methods"), [7]),
        'field "access", field "head-end", field "methods": 7 is not a number 1..6',
    ),
    (
        "unknown field",
        _set("clock", ("colour",), "blue"),
        'object "clock" (0.0.1.0.0.255), field "colour": unknown field',
    ),
    (
        "bad capture object",
        _set("load_profile", ("capture_objects",), [{"class_id": 8}]),
        'object "load_profile" (1.0.99.1.0.255), field "capture_objects"[0], field "obis": missing',
    ),
    (
        "bad control mode",
        _set("disconnect_control", ("control_mode",), 9),
        'object "disconnect_control" (0.0.96.3.10.255), field "control_mode"',
    ),
    (
        "bad season start",
        _set("activity_calendar", ("calendar", "seasons", 0, "start"), "January"),
        'field "calendar", field "seasons"[0], field "start"',
    ),
    (
        "unknown week",
        _set("activity_calendar", ("calendar", "seasons", 0, "week"), "NOPE"),
        'field "calendar", field "seasons": season \'YEAR\' uses unknown week',
    ),
    (
        "bad script service",
        _set("disconnect_scripts", ("scripts", 0, "actions", 0, "service"), "call"),
        'field "scripts"[0], field "actions"[0], field "service"',
    ),
    (
        "association unknown",
        _set("association_public", ("association",), "guest"),
        'object "association_public" (0.0.40.0.0.255), field "association": unknown association',
    ),
    (
        "duplicate object",
        _set("alarm_filter", ("obis",), "0.0.97.98.0.255"),
        'object "alarm_filter" (0.0.97.98.0.255), field "obis": class 1 object listed twice',
    ),
    (
        "duplicate name",
        _set("alarm_filter", ("name",), "alarm_register"),
        'object "alarm_register" (0.0.97.98.10.255), field "name": used by another object',
    ),
    (
        "bad octet hex",
        _set("security_setup_head_end", ("attributes", "4", "value"), "hex:XYZ"),
        'field "attributes", field "4", field "value": not a valid octet-string',
    ),
]


@pytest.mark.parametrize(("case", "mutate", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_profiles_are_rejected_naming_object_and_field(
    case: str, mutate: Mutation, message: str
) -> None:
    raw = copy.deepcopy(RAW)
    mutate(raw)
    with pytest.raises(ProfileError) as exc:
        parse_profile(raw)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw.update(format="v2"), 'profile, field "format"'),
        (
            lambda raw: raw["associations"]["public"].update(client_sap=1),
            'field "associations", field "management": client SAP 1 used twice',
        ),
        (
            lambda raw: raw["associations"]["public"].update(authentication="hls-md5"),
            'field "public", field "authentication"',
        ),
        (
            lambda raw: raw.update(
                objects=[o for o in raw["objects"] if o["name"] != "association_public"]
            ),
            'association "public": no Association LN object',
        ),
        (lambda raw: raw.update(objects={}), 'profile, field "objects": must be a list'),
        (lambda raw: raw["objects"].append(3), "objects[69]: expected a JSON object"),
    ],
)
def test_broken_top_level(mutate: Callable[[dict[str, Any]], None], message: str) -> None:
    raw = copy.deepcopy(RAW)
    mutate(raw)
    with pytest.raises(ProfileError) as exc:
        parse_profile(raw)
    assert message in str(exc.value)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(RAW["objects"]) - 1), st.data(), _json)
def test_any_field_garbage_gives_profile_error_only(
    index: int, data: st.DataObject, junk: object
) -> None:
    raw = copy.deepcopy(RAW)
    obj = raw["objects"][index]
    key = data.draw(st.sampled_from(sorted(obj)))
    obj[key] = junk
    try:
        profile = parse_profile(raw)
    except ProfileError as exc:
        message = str(exc)
    else:
        build_device(profile)
        return
    named = f'object "{obj["name"]}"' in message or f"objects[{index}]" in message
    assert named or message.startswith("association ")


def test_attribute_access_derivation() -> None:
    rights = PROFILE.object("clock").access["head-end"]
    assert rights.attribute(2) is AttributeAccess.READ_WRITE
    assert rights.attribute(4) is AttributeAccess.READ_ONLY
    assert rights.attribute(9) is AttributeAccess.READ_ONLY
    assert rights.attribute(10) is AttributeAccess.NO_ACCESS
    management = PROFILE.object("association_management").access["management"]
    assert management.attribute(7) is AttributeAccess.WRITE_ONLY


_scalar_data = st.one_of(
    st.just(Data.null()),
    st.booleans().map(Data.boolean),
    st.integers(-128, 127).map(Data.integer),
    st.integers(-(2**15), 2**15 - 1).map(Data.long),
    st.integers(0, 255).map(Data.unsigned),
    st.integers(0, 255).map(Data.enum),
    st.integers(0, 2**16 - 1).map(Data.long_unsigned),
    st.integers(0, 2**32 - 1).map(Data.double_long_unsigned),
    st.integers(-(2**31), 2**31 - 1).map(Data.double_long),
    st.binary(max_size=14).map(Data.octet_string),
    st.text(alphabet="abc019", max_size=5).map(Data.visible_string),
    st.floats(allow_nan=False, width=32).map(Data.float32),
)
_any_data = st.recursive(
    _scalar_data,
    lambda inner: (
        st.lists(inner, max_size=5).map(Data.structure)
        | st.lists(inner, max_size=3).map(Data.array)
    ),
    max_leaves=12,
)
_targets = st.sampled_from([(o.class_id, o.obis) for o in PROFILE.objects])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    _targets,
    st.integers(-2, 14),
    _any_data,
    st.sampled_from([None, PUBLIC, MANAGEMENT, HES]),
    st.booleans(),
)
def test_garbage_requests_only_raise_access_errors(
    target: tuple[int, Obis], index: int, value: Data, sap: int | None, authenticated: bool
) -> None:
    """Whatever a client sends, the device answers with a value or a Blue Book result."""
    device = build_device(PROFILE, time_source=lambda: dt.datetime(2026, 7, 15, tzinfo=dt.UTC))
    class_id, obis = target
    results: list[int] = []
    calls: list[Callable[[], object]] = [
        lambda: device.get(class_id, obis, index, client_sap=sap, authenticated=authenticated),
        lambda: device.set(
            class_id, obis, index, value, client_sap=sap, authenticated=authenticated
        ),
        lambda: device.action(
            class_id, obis, index, value, client_sap=sap, authenticated=authenticated
        ),
    ]
    for call in calls:
        try:
            call()
        except CosemAccessError as exc:
            results.append(exc.result)
    assert set(results) <= {2, 3, 4, 11, 12, 13, 250}
