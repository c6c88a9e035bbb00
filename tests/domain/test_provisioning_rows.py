"""Row validation, header detection and separator sniffing of the seven provisioning
templates (pure: no file, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smmc.domain.assets import (
    ConcentratorAttributes,
    ConcentratorComposition,
    ConcentratorSite,
    Meter,
    MeterLink,
    MeterType,
    Phase,
    PointToPoint,
    Secret,
    ServicePoint,
    SupplyStatus,
    Transformer,
    ViaConcentrator,
)
from smmc.domain.geo import CHILE, ServiceArea
from smmc.domain.provisioning import (
    DEFAULT_METER_PORT,
    REDACTED,
    TEMPLATE_BY_KIND,
    TEMPLATES,
    RowResult,
    Template,
    TemplateKind,
    UnknownTemplate,
    detect_template,
    sniff_delimiter,
    validate_row,
)

K = TemplateKind
KEY = "E53BD3DD52C03494B1616CD30A45E176"

GOOD: dict[TemplateKind, dict[str, str]] = {
    K.SERVICE_POINT: {
        "name": "POD01",
        "address": "Av. Providencia 1234",
        "city": "Santiago",
        "latitude": "-33.4314",
        "longitude": "-70.6093",
        "altitude": "570",
        "tag": "MyTag",
        "isbalance": "FALSE",
    },
    K.METER: {
        "serialnumber": "UAAEEDN17305249807",
        "serialnumber_board": "UAAEEDN17305249807",
        "macaddress": "85055505AA55",
        "firmwareid": "11",
        "hardwareid": "L01207",
        "servicekind": "Electric",
        "tag": "MyTag",
        "primarykey": KEY,
        "secondarykey": "8D26F0F110D09F76D569F3A798D9BE00",
    },
    K.METER_LINK: {"serialnumber": "UAAEEDN17305249807", "podname": "POD01"},
    K.CONCENTRATOR_SITE: {
        "name": "TD-1000",
        "description": "Plaza",
        "address": "Calle 1",
        "city": "Santiago",
        "latitude": "-33.4378",
        "longitude": "-70.6505",
        "altitude": "560",
        "windowstimezoneid": "Pacific SA Standard Time",
    },
    K.TRANSFORMER: {"code": "TD-5464", "substationname": "SE-Norte", "description": "500 kVA"},
    K.CONCENTRATOR_ATTRIBUTES: {
        "serialnumber": "20LVM50A10006010",
        "adlvc": "829614000001",
        "ppp_username": "AA4567BC34DE",
        "ppp_password": "716232252C554D39",
        "maa_username": "BB9867EE34DE",
        "maa_password": "C04FBFE8901D8FC1",
        "k2_password": "5761798273554C4A4A52505965287B4B",
        "tag": "tag1",
    },
    K.CONCENTRATOR_COMPOSITION: {
        "concentratorname": "TD-27997",
        "concentratorserialnumber": "14CEC50511000112",
        "spontaneousprofile": "Wake_up_SMMWeb_COM",
        "procedureprofile": "profile_concentrator_cedata",
        "substationname": "TD-27997",
        "transformername": "TD-5464",
        "moduleserialnumber": "2491423",
        "simserialnumber": "895602810002567",
        "ethernetname": "ethernet01",
    },
}


def check(kind: TemplateKind, **changes: str) -> RowResult:
    """Validate the good row of `kind` with some values changed, inside Chile."""
    return check_in(CHILE, kind, **changes)


def check_in(area: ServiceArea | None, kind: TemplateKind, **changes: str) -> RowResult:
    values = {**GOOD[kind], **changes}
    return validate_row(TEMPLATE_BY_KIND[kind], 7, values, area)


def errors(result: RowResult) -> dict[str | None, str]:
    return {i.column: i.reason for i in result.issues if i.level == "error"}


def rejected_on(result: RowResult, column: str) -> str:
    assert not result.accepted, result
    found = errors(result)
    assert column in found, found
    return found[column]


# --- good rows -----------------------------------------------------------------------------


def test_good_service_point() -> None:
    result = check(K.SERVICE_POINT)
    assert result.issues == ()
    assert result.row == 7
    r = result.record
    assert isinstance(r, ServicePoint)
    assert (r.name, r.city, r.comuna, r.tag) == ("POD01", "Santiago", "Santiago", "MyTag")
    assert (r.location.latitude, r.location.longitude, r.location.altitude) == (
        -33.4314,
        -70.6093,
        570.0,
    )
    assert r.is_balance is False
    assert r.net_billing is False
    assert r.supply_status is SupplyStatus.UNKNOWN


def test_service_point_optional_columns() -> None:
    result = check(
        K.SERVICE_POINT,
        comuna="Providencia",
        netbilling="sí",
        tariff="BT1",
        contractedcapacity="5,5",
        supplystatus="Connected",
        isbalance="TRUE",
    )
    r = result.record
    assert isinstance(r, ServicePoint)
    assert r.comuna == "Providencia"
    assert r.net_billing
    assert r.is_balance
    assert r.tariff == "BT1"
    assert r.contracted_capacity_kw == 5.5
    assert r.supply_status is SupplyStatus.CONNECTED


def test_good_meter_without_path() -> None:
    result = check(K.METER)
    r = result.record
    assert isinstance(r, Meter)
    assert result.issues == ()
    assert r.serial_number == "UAAEEDN17305249807"
    assert r.mac_address == "85055505AA55"
    assert r.encryption_key == Secret(KEY)
    assert r.authentication_key == Secret("8D26F0F110D09F76D569F3A798D9BE00")
    assert r.meter_type is MeterType.MONOPHASE
    assert r.phase is None
    assert r.path is None


def test_meter_behind_concentrator() -> None:
    r = check(K.METER, concentrator="TD-1000", nodeaddress="17", metertype="Trifásico", phase="s")
    assert isinstance(r.record, Meter)
    assert r.record.path == ViaConcentrator("TD-1000", 17)
    assert r.record.meter_type is MeterType.POLYPHASE
    assert r.record.phase is Phase.S


def test_meter_point_to_point_default_port_and_given_port() -> None:
    r = check(K.METER, ipaddress="10.0.0.7")
    assert isinstance(r.record, Meter)
    assert r.record.path == PointToPoint("10.0.0.7", DEFAULT_METER_PORT)
    r = check(K.METER, ipaddress="meter-7.example.cl", port="4060")
    assert isinstance(r.record, Meter)
    assert r.record.path == PointToPoint("meter-7.example.cl", 4060)
    r = check(K.METER, ipaddress="::1")
    assert isinstance(r.record, Meter)
    assert r.record.path == PointToPoint("::1", DEFAULT_METER_PORT)


def test_meter_key_is_upper_cased_and_mac_separators_dropped() -> None:
    r = check(K.METER, primarykey=KEY.lower(), macaddress="85:05:55:05:aa:55")
    assert isinstance(r.record, Meter)
    assert r.record.encryption_key == Secret(KEY)
    assert r.record.mac_address == "85055505AA55"


def test_good_meter_link_without_and_with_valid_from() -> None:
    r = check(K.METER_LINK)
    assert r.record == MeterLink("UAAEEDN17305249807", "POD01", None)
    # Santiago in March 2025 is on UTC-3 (summer time).
    r = check(K.METER_LINK, validfrom="2025-03-01T10:00")
    assert isinstance(r.record, MeterLink)
    assert r.record.valid_from == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    r = check(K.METER_LINK, validfrom="2025-03-01T10:00+00:00")
    assert isinstance(r.record, MeterLink)
    assert r.record.valid_from == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


def test_good_concentrator_site() -> None:
    r = check(K.CONCENTRATOR_SITE)
    assert isinstance(r.record, ConcentratorSite)
    assert r.issues == ()
    assert r.record.time_zone == "America/Santiago"
    assert r.record.windows_time_zone_id == "Pacific SA Standard Time"
    r = check(K.CONCENTRATOR_SITE, windowstimezoneid="Magallanes Standard Time")
    assert isinstance(r.record, ConcentratorSite)
    assert r.record.time_zone == "America/Punta_Arenas"


def test_good_transformer() -> None:
    r = check(K.TRANSFORMER)
    assert r.record == Transformer("TD-5464", "SE-Norte", "500 kVA")


def test_good_concentrator_attributes() -> None:
    r = check(K.CONCENTRATOR_ATTRIBUTES, ipaddress="192.168.1.10", port="4059")
    assert isinstance(r.record, ConcentratorAttributes)
    assert r.issues == ()
    assert r.record.ppp_password == Secret("716232252C554D39")
    assert r.record.k2_password == Secret("5761798273554C4A4A52505965287B4B")
    assert (r.record.host, r.record.port) == ("192.168.1.10", 4059)
    plain = check(K.CONCENTRATOR_ATTRIBUTES).record
    assert isinstance(plain, ConcentratorAttributes)
    assert plain.host is None


def test_good_concentrator_composition() -> None:
    r = check(K.CONCENTRATOR_COMPOSITION)
    assert isinstance(r.record, ConcentratorComposition)
    assert r.issues == ()
    assert (r.record.name, r.record.serial_number, r.record.transformer_code) == (
        "TD-27997",
        "14CEC50511000112",
        "TD-5464",
    )


# --- bad values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "column"),
    [
        (K.SERVICE_POINT, "name"),
        (K.SERVICE_POINT, "latitude"),
        (K.SERVICE_POINT, "longitude"),
        (K.METER, "serialnumber"),
        (K.METER_LINK, "serialnumber"),
        (K.METER_LINK, "podname"),
        (K.CONCENTRATOR_SITE, "name"),
        (K.TRANSFORMER, "code"),
        (K.TRANSFORMER, "substationname"),
        (K.CONCENTRATOR_ATTRIBUTES, "serialnumber"),
        (K.CONCENTRATOR_COMPOSITION, "concentratorname"),
        (K.CONCENTRATOR_COMPOSITION, "concentratorserialnumber"),
        (K.CONCENTRATOR_COMPOSITION, "transformername"),
    ],
)
@pytest.mark.parametrize("blank", ["", "   "])
def test_required_value_missing(kind: TemplateKind, column: str, blank: str) -> None:
    assert rejected_on(check(kind, **{column: blank}), column) == "is required"


def test_required_column_absent_from_row_is_missing() -> None:
    values = dict(GOOD[K.TRANSFORMER])
    del values["code"]
    result = validate_row(TEMPLATE_BY_KIND[K.TRANSFORMER], 3, values, None)
    assert rejected_on(result, "code") == "is required"


@pytest.mark.parametrize(
    ("kind", "column", "limit"),
    [
        (K.SERVICE_POINT, "name", 100),
        (K.SERVICE_POINT, "address", 255),
        (K.SERVICE_POINT, "city", 100),
        (K.METER, "serialnumber", 64),
        (K.METER, "firmwareid", 64),
        (K.TRANSFORMER, "description", 255),
        (K.CONCENTRATOR_ATTRIBUTES, "adlvc", 64),
        (K.CONCENTRATOR_COMPOSITION, "ethernetname", 64),
    ],
)
def test_too_long(kind: TemplateKind, column: str, limit: int) -> None:
    assert check(kind, **{column: "A" * limit}).accepted
    reason = rejected_on(check(kind, **{column: "A" * (limit + 1)}), column)
    assert reason == f"is longer than {limit} characters"


def test_identifier_with_forbidden_characters() -> None:
    reason = rejected_on(check(K.METER, serialnumber="UAA;DROP"), "serialnumber")
    assert "letters, digits" in reason


@pytest.mark.parametrize("value", ["maybe", "2", "TRUEE"])
def test_bad_boolean(value: str) -> None:
    assert rejected_on(check(K.SERVICE_POINT, isbalance=value), "isbalance") == (
        "must be TRUE or FALSE"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("TRUE", True), ("Verdadero", True), ("1", True), ("FALSE", False), ("no", False)],
)
def test_boolean_spellings(value: str, expected: bool) -> None:
    record = check(K.SERVICE_POINT, isbalance=value).record
    assert isinstance(record, ServicePoint)
    assert record.is_balance is expected


@pytest.mark.parametrize("value", ["abc", "1.234,5", "-33.4.1", "1e5", "--33"])
def test_bad_decimal(value: str) -> None:
    assert "decimal number" in rejected_on(check(K.SERVICE_POINT, altitude=value), "altitude")


def test_decimal_comma_accepted_in_coordinates_and_unicode_minus() -> None:
    record = check(K.SERVICE_POINT, latitude="-33,4314", longitude="\u221270,6093").record
    assert isinstance(record, ServicePoint)
    assert (record.location.latitude, record.location.longitude) == (-33.4314, -70.6093)


@pytest.mark.parametrize(("column", "value"), [("latitude", "-90.5"), ("longitude", "180.01")])
def test_out_of_range_coordinates(column: str, value: str) -> None:
    reason = rejected_on(check_in(None, K.SERVICE_POINT, **{column: value}), column)
    assert reason.startswith("must be between")


def test_altitude_out_of_range() -> None:
    assert rejected_on(check(K.SERVICE_POINT, altitude="9001"), "altitude").startswith(
        "must be between"
    )


def test_outside_chile_missing_minus_sign_hint() -> None:
    reason = rejected_on(check(K.SERVICE_POINT, latitude="33.4314"), "latitude")
    assert "outside the service area Chile" in reason
    assert "latitude is missing its minus sign" in reason
    assert "(-33.4314, -70.6093)" in reason


def test_outside_chile_swapped_hint() -> None:
    reason = rejected_on(
        check(K.CONCENTRATOR_SITE, latitude="-70.6505", longitude="-33.4378"), "latitude"
    )
    assert "latitude and longitude are swapped" in reason


def test_outside_chile_accepted_without_area() -> None:
    assert check_in(None, K.SERVICE_POINT, latitude="45,46373", longitude="9,1911").accepted
    assert not check(K.SERVICE_POINT, latitude="45,46373", longitude="9,1911").accepted


@pytest.mark.parametrize(
    "value", ["E53BD3DD52C03494B1616CD30A45E17", "E53BD3DD52C03494B1616CD30A45E1760", "Z" * 32]
)
@pytest.mark.parametrize("column", ["primarykey", "secondarykey"])
def test_bad_hex_key_is_redacted(column: str, value: str) -> None:
    result = check(K.METER, **{column: value})
    assert rejected_on(result, column) == "must be 32 hexadecimal digits (a 16-byte key)"
    issue = next(i for i in result.issues if i.column == column)
    assert issue.value == REDACTED


def test_bad_k2_password_and_ppp_password_are_redacted() -> None:
    result = check(K.CONCENTRATOR_ATTRIBUTES, k2_password="secret k2", ppp_password="a b")
    assert set(errors(result)) == {"k2_password", "ppp_password"}
    assert all(i.value == REDACTED for i in result.issues)


@pytest.mark.parametrize("value", ["85055505AA5", "85055505AA55FF", "GG055505AA55"])
def test_bad_mac(value: str) -> None:
    assert rejected_on(check(K.METER, macaddress=value), "macaddress") == (
        "must be 12 hexadecimal digits"
    )


def test_bad_meter_type_and_phase() -> None:
    result = check(K.METER, metertype="hexaphase", phase="X")
    assert errors(result) == {
        "metertype": "must be monophase or polyphase",
        "phase": "must be R, S or T",
    }


def test_concentrator_and_ipaddress_both_given() -> None:
    result = check(K.METER, concentrator="TD-1000", ipaddress="10.0.0.1")
    assert "either behind a concentrator or point-to-point" in rejected_on(result, "ipaddress")


def test_nodeaddress_without_concentrator() -> None:
    result = check(K.METER, nodeaddress="3")
    assert rejected_on(result, "nodeaddress") == "is given without concentrator"


@pytest.mark.parametrize("value", ["0", "65536", "-1", "80a", "²", "4059.0", "9" * 5000])
def test_bad_port(value: str) -> None:
    result = check(K.METER, ipaddress="10.0.0.1", port=value)
    assert rejected_on(result, "port") == "must be a whole number from 1 to 65535"


def test_port_without_ipaddress() -> None:
    assert rejected_on(check(K.METER, port="4059"), "port") == "is given without ipaddress"


@pytest.mark.parametrize(
    "value", ["256.1.1.1", "10.0.0", "host_name", "-bad.example", "a..b", "x" * 64 + ".cl"]
)
def test_bad_host(value: str) -> None:
    result = check(K.METER, ipaddress=value)
    assert rejected_on(result, "ipaddress") == "must be an IPv4/IPv6 address or a host name"


@pytest.mark.parametrize(
    "value", ["yesterday", "2025-13-01", "01/03/2025", "0001-01-01T00:00+05:00", "9999-12-31T23:59"]
)
def test_bad_validfrom(value: str) -> None:
    result = check(K.METER_LINK, validfrom=value)
    reason = rejected_on(result, "validfrom")
    assert reason.startswith(("must be an ISO date", "is out of the supported date range"))


@pytest.mark.parametrize("value", ["8,29614E+11", "8.29614E+11", "8E+11"])
def test_adlvc_scientific_notation_is_a_warning(value: str) -> None:
    result = check(K.CONCENTRATOR_ATTRIBUTES, adlvc=value)
    assert result.accepted
    [issue] = result.issues
    assert (issue.column, issue.level, issue.value) == ("adlvc", "warning", value)
    assert "scientific notation" in issue.reason


def test_unknown_windows_time_zone() -> None:
    result = check(K.CONCENTRATOR_SITE, windowstimezoneid="Mars Standard Time")
    assert "unknown time zone 'Mars Standard Time'" in rejected_on(result, "windowstimezoneid")


def test_bad_supply_status_and_capacity() -> None:
    result = check(K.SERVICE_POINT, supplystatus="cut", contractedcapacity="-1")
    assert set(errors(result)) == {"supplystatus", "contractedcapacity"}


def test_every_problem_of_a_row_is_reported_at_once() -> None:
    result = check(K.METER, serialnumber="", macaddress="xx", primarykey="00", phase="Q")
    assert set(errors(result)) == {"serialnumber", "macaddress", "primarykey", "phase"}
    assert all(issue.row == 7 for issue in result.issues)


# --- header detection ----------------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.kind.value)
def test_detect_each_template(template: Template) -> None:
    columns = list(template.required)
    assert detect_template(columns) is template
    assert detect_template([c.upper() for c in columns]) is template
    assert detect_template(["\ufeff" + columns[0], *columns[1:]]) is template
    assert detect_template([" extra ", *reversed(columns), "whatever"]) is template
    assert detect_template(list(template.columns)) is template


def test_detect_composition_with_the_seeds_camel_case() -> None:
    header = [
        "ConcentratorName",
        "ConcentratorSerialNumber",
        "SpontaneousProfile",
        "ProcedureProfile",
        "SubstationName",
        "TransformerName",
        "ModuleSerialNumber",
        "SimSerialNumber",
        "EthernetName",
    ]
    assert detect_template(header).kind is K.CONCENTRATOR_COMPOSITION


def test_detect_prefers_the_most_specific_template() -> None:
    # A meter header that also carries podname still is the meter template, not the link.
    header = [*TEMPLATE_BY_KIND[K.METER].required, "podname"]
    assert detect_template(header).kind is K.METER


def test_unknown_header_names_the_closest_template() -> None:
    with pytest.raises(UnknownTemplate, match=r"closest is template 5 .*needs: description"):
        detect_template(["code", "substationname"])
    with pytest.raises(UnknownTemplate):
        detect_template([])


# --- separator sniffing --------------------------------------------------------------------


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_sniff_delimiter(sep: str) -> None:
    assert sniff_delimiter(sep.join(TEMPLATE_BY_KIND[K.SERVICE_POINT].required)) == sep


def test_sniff_delimiter_single_column_falls_back_to_comma() -> None:
    assert sniff_delimiter("name") == ","


# --- arbitrary input -----------------------------------------------------------------------

cell = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "-33,4", "TRUE", "²", "1e5", "::1", "65536", "2025-03-01", "0" * 32]),
    st.integers(min_value=0, max_value=6000).map(lambda n: "7" * n),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}([+-][0-9]{2}:[0-9]{2})?)?"),
)


@settings(max_examples=300, deadline=None)
@given(
    template=st.sampled_from(TEMPLATES),
    data=st.data(),
    check_area=st.booleans(),
)
def test_arbitrary_rows_give_a_row_result(
    template: Template, data: st.DataObject, check_area: bool
) -> None:
    columns = template.columns
    values = data.draw(st.fixed_dictionaries({}, optional=dict.fromkeys(columns, cell)))
    result = validate_row(template, 5, values, CHILE if check_area else None)
    assert isinstance(result, RowResult)
    assert result.row == 5
    has_error = any(i.level == "error" for i in result.issues)
    assert result.accepted is not has_error
    secrets = template.secrets
    for issue in result.issues:
        if issue.column in secrets:
            assert issue.value == REDACTED


@settings(max_examples=200, deadline=None)
@given(
    template=st.sampled_from(TEMPLATES),
    data=st.data(),
    extra=st.lists(st.from_regex(r"[a-z]{1,8}_x", fullmatch=True), max_size=3),
    sep=st.sampled_from([",", ";", "\t"]),
)
def test_any_order_casing_and_extras_detect_the_template(
    template: Template, data: st.DataObject, extra: list[str], sep: str
) -> None:
    optional = data.draw(st.lists(st.sampled_from(template.optional or ("",)), unique=True))
    columns = data.draw(st.permutations([*template.required, *optional, *extra]))
    cased = [c.upper() if i % 2 else f" {c.title()} " for i, c in enumerate(columns)]
    assert detect_template(cased) is template
    if len(cased) > 1:
        assert sniff_delimiter(sep.join(cased)) == sep
