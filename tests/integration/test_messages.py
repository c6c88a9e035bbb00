"""The CIM message layer: every authored sample parses, what we emit validates against the
Connexo 2011 message schemas and (for EndDeviceControls/EndDeviceEvents) the pure-IEC
payload schemas, and generated messages survive a write/parse round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from smmc.domain.work_orders import ActivityType
from smmc.integration.codes import (
    CONTROL_CONNECT,
    CONTROL_DISCONNECT,
    DEFAULT_EVENT_CODES,
    CodeBook,
    CodeError,
)
from smmc.integration.messages import (
    Header,
    IdKind,
    Level,
    Message,
    ObjectID,
    Property,
    RawPayload,
    Reply,
    ReplyError,
    Request,
    Result,
    Verb,
)
from smmc.integration.payloads import (
    DeviceRef,
    EndDeviceControl,
    EndDeviceControls,
    EndDeviceEvent,
    EndDeviceEvents,
    GetEndDeviceEvents,
    GetMeterReadings,
    IntervalBlock,
    MeterConfig,
    MeterConfigItem,
    MeterReading,
    MeterReadings,
    Name,
    Reading,
)
from smmc.integration.xml import MessageError, SchemaSet, parse_xml, serialize

SAMPLES = Path(__file__).parent / "samples"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"


@pytest.fixture(scope="module")
def connexo(shared_dir: Path) -> SchemaSet:
    return SchemaSet(shared_dir / "cim" / "xsd" / "connexo")


@pytest.fixture(scope="module")
def pure_iec(shared_dir: Path) -> dict[str, etree.XMLSchema]:
    folder = shared_dir / "cim" / "xsd" / "r0ckflite-cim4" / "wsdl" / "xsd"
    return {
        f"http://iec.ch/TC57/2011/{noun}#": etree.XMLSchema(
            etree.parse(str(folder / f"{noun}.xsd"))
        )
        for noun in ("EndDeviceControls", "EndDeviceEvents")
    }


def _message_element(path: Path) -> etree._Element:
    root = parse_xml(path.read_bytes())
    if root.tag == f"{{{SOAP_NS}}}Envelope":
        return root.find(f"{{{SOAP_NS}}}Body")[0]  # type: ignore[index]
    return root


def _assert_valid(
    message: Message, connexo: SchemaSet, pure_iec: dict[str, etree.XMLSchema]
) -> None:
    element = parse_xml(serialize(message.to_xml()))
    assert etree.QName(element).namespace in connexo.namespaces
    assert connexo.errors(element) == []
    if message.payload is not None:
        body = message.payload.to_xml()
        schema = pure_iec.get(etree.QName(body).namespace or "")
        if schema is not None:
            assert schema.validate(etree.ElementTree(body)), schema.error_log


SAMPLE_FILES = sorted(SAMPLES.glob("*.xml"))


def test_all_authored_samples_are_here() -> None:
    assert len(SAMPLE_FILES) == 11


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name[:2])
def test_authored_sample_parses_and_reemits_valid(
    path: Path, connexo: SchemaSet, pure_iec: dict[str, etree.XMLSchema]
) -> None:
    message = Message.from_xml(_message_element(path))
    assert message.element_name == etree.QName(_message_element(path)).localname
    _assert_valid(message, connexo, pure_iec)
    assert Message.from_xml(parse_xml(serialize(message.to_xml()))) == message


def test_disconnect_request_fields() -> None:
    message = Message.from_xml(
        _message_element(SAMPLES / "01_CreateEndDeviceControls_remote_disconnect.xml")
    )
    header = message.header
    assert (header.verb, header.noun) == (Verb.CREATE, "EndDeviceControls")
    assert header.async_reply is True
    assert header.reply_address == "queue://AMI.TO.LEGACY.HIGH"
    assert header.message_id == header.correlation_id == "6f1c2b1e-2d43-4d0a-9a55-2f3b7d9e0a01"
    assert header.timestamp == datetime(2025, 11, 20, 13, 15, tzinfo=UTC)
    assert header.properties == (Property("Priority", "HIGH"),)
    assert (header.user_id, header.organization) == ("cis-batch", "DISTRIBUIDORA-CL")
    assert isinstance(message.payload, EndDeviceControls)
    (control,) = message.payload.controls
    assert control.control_type == CONTROL_DISCONNECT
    assert control.reason == "CORTE por deuda"
    assert control.issuer_tracking_id == "OT-2025-000123"
    (device,) = control.end_devices
    assert device.mrid == "MTR-000123456"
    assert device.serial == "000123456"
    assert control.start == datetime(2025, 11, 20, 13, 15, tzinfo=UTC)
    assert control.end == datetime(2025, 11, 20, 15, 15, tzinfo=UTC)


def test_failed_reply_fields() -> None:
    path = SAMPLES / "03_EndDeviceControlsResponseMessage_failed_invalid_meter.xml"
    reply = Message.from_xml(_message_element(path)).reply
    assert reply is not None
    assert reply.result is Result.FAILED
    (error,) = reply.errors
    assert (error.code, error.level) == ("2.4", Level.FATAL)
    assert error.id == ObjectID("MTR-000123456", IdKind.NAME, "EndDevice")


def test_get_meter_readings_query_and_reply() -> None:
    request = Message.from_xml(_message_element(SAMPLES / "08_GetMeterReadings_request.xml"))
    assert request.get_pattern
    assert request.element_name == "GetMeterReadings"
    assert request.request is not None
    query = request.request.query
    assert isinstance(query, GetMeterReadings)
    assert [d.mrid for d in query.end_devices] == ["MTR-000123456"]
    assert query.reading_types[-1] == "11.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
    assert len(query.reading_types) == 3
    reply = Message.from_xml(
        _message_element(SAMPLES / "09_MeterReadingsResponseMessage_reply.xml")
    )
    assert reply.element_name == "MeterReadingsResponseMessage"
    assert reply.get_pattern
    assert isinstance(reply.payload, MeterReadings)
    (reading,) = reply.payload.meter_readings
    first = reading.interval_blocks[0]
    assert first.reading_type == "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
    assert first.readings[0].value == "0.112"
    assert first.readings[5].qualities == ("1.4.2",)


def test_alarm_events_fields() -> None:
    message = Message.from_xml(_message_element(SAMPLES / "07_CreatedEndDeviceEvents_alarms.xml"))
    assert message.header.correlation_id is None
    assert isinstance(message.payload, EndDeviceEvents)
    codes = [e.event_type for e in message.payload.events]
    assert "3.26.0.85" in codes
    assert "3.12.29.212" in codes


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (("<msg:Verb>create</msg:Verb>", "<msg:Verb>explode</msg:Verb>"), "2.9"),
        (("<msg:Verb>create</msg:Verb>", "<msg:Verb>change</msg:Verb>"), "2.9"),
        (("<msg:Noun>EndDeviceControls</msg:Noun>", "<msg:Noun>MeterReadings</msg:Noun>"), "2.5"),
        (("<msg:Noun>EndDeviceControls</msg:Noun>", ""), "1.5"),
        (
            ("2025-11-20T10:15:00-03:00</msg:Timestamp>", "2025-11-20T10:15:00</msg:Timestamp>"),
            "1.8",
        ),
        (("<msg:AsyncReplyFlag>true", "<msg:AsyncReplyFlag>maybe"), "1.8"),
        (('<m:EndDeviceControlType ref="3.31.0.23"/>', ""), "1.7"),
    ],
)
def test_bad_envelope_is_a_typed_error(edit: tuple[str, str], code: str) -> None:
    text = (SAMPLES / "01_CreateEndDeviceControls_remote_disconnect.xml").read_text()
    assert edit[0] in text
    with pytest.raises(MessageError) as caught:
        Message.from_xml(parse_xml(text.replace(edit[0], edit[1]).encode()))
    assert caught.value.code == code


def test_parts_out_of_order_are_refused() -> None:
    text = (SAMPLES / "02_EndDeviceControlsResponseMessage_accepted.xml").read_text()
    root = parse_xml(text.encode())
    header, reply = root[0], root[1]
    root.remove(header)
    root.append(header)
    assert root[0] is reply
    with pytest.raises(MessageError) as caught:
        Message.from_xml(root)
    assert caught.value.code == "1.8"


# -- code tables ----------------------------------------------------------------------------


def test_codebook_defaults() -> None:
    book = CodeBook()
    assert book.activity(CONTROL_DISCONNECT) is ActivityType.DISCONNECT
    assert book.activity(CONTROL_CONNECT) is ActivityType.CONNECT
    assert book.activity("3.31.0.5") is None
    assert book.event_code("disconnected") == "3.31.17.68"
    assert book.event_code("work_order_ok") == "3.21.87.30"
    assert book.event_code("work_order_failed") == "3.21.87.85"
    assert book.reason(ActivityType.DISCONNECT, "CORTE por deuda") == "non_payment"
    assert book.reason(ActivityType.DISCONNECT, "Corte por HURTO de energía") == "losses"
    assert book.reason(ActivityType.DISCONNECT, "customer_request") == "customer_request"
    assert book.reason(ActivityType.DISCONNECT, "sin motivo") is None
    assert book.reason(ActivityType.CONNECT, "Reposición tras pago") == "after_payment"
    assert book.reason(ActivityType.CONNECT, "CORTE por deuda") is None


def test_codebook_overrides_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "codes.yaml"
    path.write_text(
        "controls: {'3.31.0.5': Connect}\n"
        "event_codes: {disconnected: '3.31.0.68'}\n"
        "reason_aliases: {moroso: non_payment}\n"
    )
    book = CodeBook.load(path)
    assert book.activity("3.31.0.5") is ActivityType.CONNECT
    assert book.activity(CONTROL_DISCONNECT) is ActivityType.DISCONNECT
    assert book.event_code("disconnected") == "3.31.0.68"
    assert book.event_code("connected") == DEFAULT_EVENT_CODES["connected"]
    assert book.reason(ActivityType.DISCONNECT, "deudor moroso") == "non_payment"
    assert book.reason(ActivityType.DISCONNECT, "cliente moroso") is None


@pytest.mark.parametrize(
    "text",
    [
        "controls: {'3.31': Connect}\n",
        "controls: {'3.31.0.5': Explode}\n",
        "event_codes: {x: 'abc'}\n",
        "reason_aliases: {x: whatever}\n",
        "colours: {}\n",
        "- a list\n",
    ],
)
def test_codebook_refuses_bad_entries(tmp_path: Path, text: str) -> None:
    path = tmp_path / "codes.yaml"
    path.write_text(text)
    with pytest.raises(CodeError):
        CodeBook.load(path)


# -- generated round trips ------------------------------------------------------------------

_text = (
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn", "Co")),
        min_size=1,
        max_size=12,
    )
    .map(str.strip)
    .filter(bool)
)
_code = st.lists(st.integers(0, 300), min_size=4, max_size=4).map(lambda p: ".".join(map(str, p)))
_zones = st.sampled_from([UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=-4))])
_times = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=_zones
)
_names = st.builds(Name, _text, st.none() | st.sampled_from(["SerialNumber", "POD"]))
_refs = st.builds(DeviceRef, st.none() | _text, st.lists(_names, max_size=2).map(tuple))
# GetEndDeviceEvents' Name has no NameType.
_untyped_refs = st.builds(
    DeviceRef, st.none() | _text, st.lists(st.builds(Name, _text), max_size=2).map(tuple)
)


def _header(verb: Verb, noun: str) -> st.SearchStrategy[Header]:
    return st.builds(
        Header,
        verb=st.just(verb),
        noun=st.just(noun),
        revision=st.none() | _text,
        context=st.none() | st.sampled_from(["PRODUCTION", "TESTING"]),
        timestamp=st.none() | _times,
        source=st.none() | _text,
        async_reply=st.none() | st.booleans(),
        reply_address=st.none() | _text,
        ack_required=st.none() | st.booleans(),
        user_id=st.none() | _text,
        organization=st.none(),
        message_id=st.none() | st.uuids().map(str),
        correlation_id=st.none() | st.uuids().map(str),
        comment=st.none() | _text,
        properties=st.lists(st.builds(Property, _text, st.none() | _text), max_size=3).map(tuple),
    )


_controls = st.builds(
    EndDeviceControl,
    control_type=_code,
    mrid=st.none() | _text,
    issuer_id=st.none() | _text,
    issuer_tracking_id=st.none() | _text,
    reason=st.none() | _text,
    end_devices=st.lists(_refs, max_size=3).map(tuple),
    start=st.none() | _times,
    end=st.none() | _times,
    usage_points=st.lists(_refs, max_size=2).map(tuple),
)
_events = st.builds(
    EndDeviceEvent,
    event_type=_code,
    created=_times,
    mrid=st.none() | _text,
    issuer_id=st.none() | _text,
    issuer_tracking_id=st.none() | _text,
    reason=st.none() | _text,
    severity=st.none() | _text,
    asset=st.none() | _refs,
    details=st.lists(st.tuples(_text, st.none() | _text), max_size=3).map(tuple),
)
_reading_type = st.lists(st.integers(0, 200), min_size=18, max_size=18).map(
    lambda p: ".".join(map(str, p))
)
_readings = st.builds(
    Reading,
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    _times,
    st.lists(_code.map(lambda c: c.rsplit(".", 1)[0]), max_size=2).map(tuple),
)
_meter_readings = st.builds(
    MeterReading,
    meter=_refs,
    interval_blocks=st.lists(
        st.builds(IntervalBlock, _reading_type, st.lists(_readings, max_size=3).map(tuple)),
        max_size=2,
    ).map(tuple),
    readings=st.lists(st.tuples(_reading_type, _readings), max_size=2).map(tuple),
    usage_point=st.none() | _refs,
)
_errors = st.builds(
    ReplyError,
    code=st.sampled_from(["0.3", "2.4", "5.3"]),
    level=st.none() | st.sampled_from(list(Level)),
    reason=st.none() | _text,
    details=st.none() | _text,
    id=st.none()
    | st.builds(ObjectID, _text, st.none() | st.sampled_from(list(IdKind)), st.none() | _text),
)
_reply = st.builds(
    Reply,
    st.sampled_from(list(Result)),
    st.lists(_errors, max_size=3).map(tuple),
    st.lists(st.builds(ObjectID, _text), max_size=2).map(tuple),
)

_messages = st.one_of(
    st.builds(
        Message,
        header=_header(Verb.CREATE, "EndDeviceControls"),
        payload=st.builds(
            EndDeviceControls, st.lists(_controls, min_size=1, max_size=3).map(tuple)
        ),
    ),
    st.builds(
        Message,
        header=_header(Verb.REPLY, "EndDeviceControls"),
        reply=_reply,
        payload=st.none()
        | st.builds(EndDeviceControls, st.lists(_controls, max_size=2).map(tuple)),
    ),
    st.builds(
        Message,
        header=_header(Verb.CREATED, "EndDeviceEvents"),
        payload=st.builds(EndDeviceEvents, st.lists(_events, max_size=3).map(tuple)),
    ),
    st.builds(
        Message,
        header=_header(Verb.CREATED, "MeterReadings"),
        payload=st.builds(MeterReadings, st.lists(_meter_readings, max_size=2).map(tuple)),
    ),
    st.builds(
        Message,
        header=_header(Verb.REPLY, "MeterReadings"),
        reply=_reply,
        payload=st.none()
        | st.builds(MeterReadings, st.lists(_meter_readings, max_size=2).map(tuple)),
        get_pattern=st.just(True),
    ),
    st.builds(
        Message,
        header=_header(Verb.GET, "MeterReadings"),
        request=st.builds(
            Request,
            start_time=st.none() | _times,
            end_time=st.none() | _times,
            options=st.lists(st.builds(Property, _text, st.none() | _text), max_size=2).map(tuple),
            ids=st.lists(_text, max_size=2).map(tuple),
            query=st.builds(
                GetMeterReadings,
                st.lists(_refs, max_size=2).map(tuple),
                st.lists(_refs, max_size=2).map(tuple),
                st.lists(_reading_type, max_size=3).map(tuple),
                st.lists(st.tuples(st.none() | _times, st.none() | _times), max_size=2).map(tuple),
            ),
        ),
        get_pattern=st.just(True),
    ),
    st.builds(
        Message,
        header=_header(Verb.GET, "EndDeviceEvents"),
        request=st.builds(
            Request,
            query=st.builds(
                GetEndDeviceEvents,
                st.lists(_untyped_refs, max_size=2).map(tuple),
                st.lists(st.tuples(st.none() | _times, st.none() | _times), max_size=2).map(tuple),
                st.lists(_untyped_refs, max_size=2).map(tuple),
            ),
        ),
        get_pattern=st.just(True),
    ),
    st.builds(
        Message,
        header=_header(Verb.CREATE, "MeterConfig"),
        payload=st.builds(
            MeterConfig,
            st.lists(
                st.builds(
                    MeterConfigItem,
                    st.none() | _text,
                    st.none() | _text,
                    st.none() | _text,
                    st.lists(_names, max_size=2).map(tuple),
                ),
                min_size=1,
                max_size=2,
            ).map(tuple),
        ),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_messages)
def test_generated_messages_round_trip_and_validate(
    connexo: SchemaSet, pure_iec: dict[str, etree.XMLSchema], message: Message
) -> None:
    again = Message.from_xml(parse_xml(serialize(message.to_xml())))
    assert again == message
    _assert_valid(message, connexo, pure_iec)


def test_a_body_c14n_refuses_is_a_format_error() -> None:
    """A relative namespace URI (hypothesis found one by mutating a SOAP request): the
    request gets a format error, the service no fault of its own."""
    element = etree.fromstring(b'<a xmlns="rel/ns"><b/></a>')
    with pytest.raises(MessageError) as caught:
        RawPayload.of(element)
    assert caught.value.code == "1.8"
