"""The SOAP endpoints through FastAPI on both databases: authored requests accepted, unknown
meters FAILED 2.4, partial batches PARTIAL, repeated MessageIDs replayed, hostile input
answered with a fault while the service keeps serving, WSDLs served, and zeep (an
independent SOAP client) calling ExecuteEndDeviceControls over a real uvicorn server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from sqlalchemy.engine import Engine

from smmc.domain.readings import Energy, reading_type
from smmc.integration.messages import Message, Result
from smmc.integration.payloads import EndDeviceEvents, MeterReadings
from smmc.integration.soap import CimService
from smmc.integration.xml import SchemaSet, parse_xml
from smmc.store import tables as t
from smmc.store.readings import IntervalValue, RegisterRead, ingest_intervals, ingest_register_reads
from smmc.store.work_orders import WorkOrderQueue
from smmc.web.app import create_app

SAMPLES = Path(__file__).parent / "samples"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MSG = "http://iec.ch/TC57/2011/schema/message"
CORRELATION = "6f1c2b1e-2d43-4d0a-9a55-2f3b7d9e0a01"
EDC = "/cim/ExecuteEndDeviceControls"


@pytest.fixture
def client(db: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(db)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def connexo(shared_dir: Path) -> SchemaSet:
    return SchemaSet(shared_dir / "cim" / "xsd" / "connexo")


def add_meter(engine: Engine, serial: str, pod: str | None = None) -> int:
    with engine.begin() as conn:
        dc = conn.execute(
            sa.select(t.concentrators.c.id).where(t.concentrators.c.name == "DC-1")
        ).scalar_one_or_none()
        if dc is None:
            dc = conn.execute(
                t.concentrators.insert().values(name="DC-1").returning(t.concentrators.c.id)
            ).scalar_one()
        meter_id = conn.execute(
            t.meters.insert()
            .values(serial_number=serial, concentrator_id=dc)
            .returning(t.meters.c.id)
        ).scalar_one()
        if pod is not None:
            point = conn.execute(
                t.service_points.insert().values(name=pod).returning(t.service_points.c.id)
            ).scalar_one()
            conn.execute(
                t.meter_links.insert().values(
                    meter_id=meter_id,
                    service_point_id=point,
                    valid_from=datetime(2024, 1, 1, tzinfo=UTC),
                )
            )
    return int(meter_id)


def sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def envelope(message_xml: str) -> bytes:
    """A bare authored message wrapped in a SOAP 1.1 envelope."""
    body = message_xml.split("?>", 1)[1] if message_xml.startswith("<?xml") else message_xml
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}"><soapenv:Header/>'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    ).encode()


def disconnect(
    devices: list[str],
    *,
    message_id: str = CORRELATION,
    control_type: str = "3.31.0.23",
    reason: str = "CORTE por deuda",
    header_extra: str = "<msg:AsyncReplyFlag>true</msg:AsyncReplyFlag>"
    "<msg:ReplyAddress>queue://AMI.TO.LEGACY.HIGH</msg:ReplyAddress>",
) -> bytes:
    end_devices = "".join(f"<m:EndDevices><m:mRID>{d}</m:mRID></m:EndDevices>" for d in devices)
    return envelope(
        '<edcm:CreateEndDeviceControls xmlns:edcm="http://iec.ch/TC57/2011/EndDeviceControlsMessage"'
        f' xmlns:msg="{MSG}" xmlns:m="http://iec.ch/TC57/2011/EndDeviceControls#">'
        "<edcm:Header><msg:Verb>create</msg:Verb><msg:Noun>EndDeviceControls</msg:Noun>"
        f"<msg:Source>LEGACY-CIS</msg:Source>{header_extra}"
        f"<msg:MessageID>{message_id}</msg:MessageID>"
        f"<msg:CorrelationID>{message_id}</msg:CorrelationID></edcm:Header>"
        "<edcm:Payload><m:EndDeviceControls><m:EndDeviceControl><m:mRID>EDC-1</m:mRID>"
        f'<m:reason>{reason}</m:reason><m:EndDeviceControlType ref="{control_type}"/>'
        f"{end_devices}</m:EndDeviceControl></m:EndDeviceControls></edcm:Payload>"
        "</edcm:CreateEndDeviceControls>"
    )


def reply_of(response_body: bytes, connexo: SchemaSet) -> Message:
    root = parse_xml(response_body)
    body = root.find(f"{{{SOAP_NS}}}Body")
    assert body is not None
    element = body[0]
    assert connexo.errors(element) == []
    return Message.from_xml(element)


def orders(engine: Engine) -> list[sa.RowMapping]:
    wo, m = t.work_orders.c, t.meters.c
    query = (
        sa.select(wo.activity, wo.origin, wo.external_id, wo.reason, m.serial_number, wo.payload)
        .join(t.meters, m.id == wo.meter_id)
        .order_by(wo.id)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).mappings())


def fault_code(response_body: bytes) -> str:
    root = etree.fromstring(response_body)
    codes = root.findall(f".//{{{MSG}}}code")
    assert root.find(f"{{{SOAP_NS}}}Body/{{{SOAP_NS}}}Fault") is not None
    return str(codes[0].text)


# -- ExecuteEndDeviceControls -----------------------------------------------------------------


def test_authored_disconnect_is_accepted_and_queued(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    add_meter(db, "000123456")
    data = sample("11_SOAP11_CreateEndDeviceControls_envelope.xml").encode()
    response = client.post(EDC, content=data, headers={"content-type": "text/xml"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    message = reply_of(response.content, connexo)
    assert message.element_name == "EndDeviceControlsResponseMessage"
    assert message.header.correlation_id == CORRELATION
    assert message.reply is not None
    assert message.reply.result is Result.OK
    assert [e.code for e in message.reply.errors] == ["0.3"]
    assert [i.value for i in message.reply.ids] == ["EDC-2025-000123"]
    (order,) = orders(db)
    assert order["activity"] == "Disconnect"
    assert order["origin"] == "legacy"
    assert order["external_id"] == CORRELATION
    assert order["reason"] == "non_payment"
    assert order["serial_number"] == "000123456"
    assert '"issuer_tracking_id": "OT-2025-000123"' in order["payload"]


def test_authored_bare_request_inside_an_envelope_is_accepted(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    add_meter(db, "000123456")
    data = envelope(sample("01_CreateEndDeviceControls_remote_disconnect.xml"))
    message = reply_of(client.post(EDC, content=data).content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.OK


def test_unknown_meter_is_failed_2_4(db: Engine, client: TestClient, connexo: SchemaSet) -> None:
    response = client.post(EDC, content=disconnect(["MTR-404"]))
    assert response.status_code == 200
    message = reply_of(response.content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.FAILED
    (error,) = message.reply.errors
    assert error.code == "2.4"
    assert error.id is not None
    assert error.id.value == "MTR-404"
    assert error.id.object_type == "EndDevice"
    assert orders(db) == []


def test_partial_batch_answers_partial_with_one_error_per_failed_device(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    add_meter(db, "M-1")
    add_meter(db, "M-3")
    response = client.post(EDC, content=disconnect(["M-1", "M-2", "M-3", "M-4"]))
    message = reply_of(response.content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.PARTIAL
    assert [e.code for e in message.reply.errors] == ["0.3", "2.4", "2.4"]
    assert [e.id.value for e in message.reply.errors[1:] if e.id] == ["M-2", "M-4"]
    assert [o["serial_number"] for o in orders(db)] == ["M-1", "M-3"]


def test_repeated_message_id_replays_the_stored_answer(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    add_meter(db, "M-1")
    first = client.post(EDC, content=disconnect(["M-1"], message_id="dup-1"))
    second = client.post(EDC, content=disconnect(["M-1"], message_id="dup-1"))
    assert second.status_code == 200
    assert second.content == first.content
    assert len(orders(db)) == 1
    third = client.post(EDC, content=disconnect(["M-1"], message_id="dup-2"))
    assert third.content != first.content
    assert len(orders(db)) == 2
    with db.connect() as conn:
        rows = conn.execute(sa.select(t.cim_messages.c.message_id, t.cim_messages.c.result)).all()
    assert sorted(rows) == [("dup-1", "OK"), ("dup-2", "OK")]


def test_connect_is_queued_with_after_payment(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    add_meter(db, "M-1")
    body = disconnect(["M-1"], control_type="3.31.0.18", reason="Reposición tras pago")
    message = reply_of(client.post(EDC, content=body).content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.OK
    (order,) = orders(db)
    assert (order["activity"], order["reason"]) == ("Connect", "after_payment")


def test_meter_sync_control_is_queued(db: Engine, client: TestClient, connexo: SchemaSet) -> None:
    add_meter(db, "M-1")
    body = disconnect(["M-1"], control_type="3.36.116.13", reason="")
    message = reply_of(client.post(EDC, content=body).content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.OK
    assert orders(db)[0]["activity"] == "MeterSync"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"control_type": "3.31.0.5"}, "5.2"),
        ({"reason": "sin motivo"}, "5.8"),
        ({"header_extra": "<msg:AsyncReplyFlag>true</msg:AsyncReplyFlag>"}, "1.5"),
        ({"header_extra": "<msg:AsyncReplyFlag>false</msg:AsyncReplyFlag>"}, "5.2"),
    ],
)
def test_requests_that_need_no_meter_are_rejected_at_once(
    db: Engine, client: TestClient, connexo: SchemaSet, kwargs: dict[str, str], code: str
) -> None:
    add_meter(db, "M-1")
    message = reply_of(client.post(EDC, content=disconnect(["M-1"], **kwargs)).content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.FAILED
    assert [e.code for e in message.reply.errors] == [code]
    assert orders(db) == []


def test_missing_message_id_is_failed_1_5(client: TestClient, connexo: SchemaSet) -> None:
    body = disconnect(["M-1"], message_id="gone")
    body = body.replace(b"<msg:MessageID>gone</msg:MessageID>", b"")
    message = reply_of(client.post(EDC, content=body).content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.FAILED
    assert [e.code for e in message.reply.errors] == ["1.5"]


# -- hostile input ----------------------------------------------------------------------------

HOSTILE = {
    "xxe": b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    "laughs": (
        b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
        b"]><r>&d;</r>"
    ),
    "garbage": b"\x00\x01 this is not xml",
    "not soap": sample("01_CreateEndDeviceControls_remote_disconnect.xml").encode(),
    "wrong operation": envelope(sample("08_GetMeterReadings_request.xml")),
    "2017 namespace": envelope(
        sample("01_CreateEndDeviceControls_remote_disconnect.xml").replace(
            "2011/EndDeviceControlsMessage", "2017/EndDeviceControlsMessage"
        )
    ),
    "deep": envelope("<a>" * 200 + "</a>" * 200),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_gets_a_fault_and_the_service_keeps_serving(
    db: Engine, client: TestClient, connexo: SchemaSet, name: str
) -> None:
    add_meter(db, "000123456")
    response = client.post(EDC, content=HOSTILE[name])
    assert response.status_code == 500
    assert fault_code(response.content) == "1.8"
    assert b"root:" not in response.content
    detail = etree.fromstring(response.content).find(f".//{{{SOAP_NS}}}Fault/detail")
    assert detail is not None
    assert connexo.errors(detail[0]) == []
    ok = client.post(EDC, content=sample("11_SOAP11_CreateEndDeviceControls_envelope.xml").encode())
    assert reply_of(ok.content, connexo).reply.result is Result.OK  # type: ignore[union-attr]


def test_oversize_body_is_refused_without_reading_it(client: TestClient) -> None:
    response = client.post(EDC, content=b"<a>" + b" " * (5 * 1024 * 1024) + b"</a>")
    assert response.status_code == 500
    assert fault_code(response.content) == "1.8"
    assert b"Message too large" in response.content


def test_unknown_service_is_404(client: TestClient) -> None:
    assert client.post("/cim/Nope", content=b"<a/>").status_code == 404
    assert client.get("/cim/Nope?wsdl").status_code == 404
    assert client.get(EDC).status_code == 404


@pytest.mark.parametrize(
    "service",
    ["ExecuteEndDeviceControls", "GetMeterReadings", "GetEndDeviceEvents", "ExecuteMeterConfig"],
)
def test_wsdl_is_served(client: TestClient, service: str) -> None:
    response = client.get(f"/cim/{service}?wsdl")
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    wsdl = "http://schemas.xmlsoap.org/wsdl/"
    assert root.tag == f"{{{wsdl}}}definitions"
    address = root.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address is not None
    assert address.get("location") == f"http://testserver/cim/{service}"


# -- GetMeterReadings / GetEndDeviceEvents ----------------------------------------------------


def test_get_meter_readings_for_a_known_meter_is_empty_and_valid(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    add_meter(db, "MTR-000123456")
    data = envelope(sample("08_GetMeterReadings_request.xml"))
    response = client.post("/cim/GetMeterReadings", content=data)
    message = reply_of(response.content, connexo)
    assert message.element_name == "MeterReadingsResponseMessage"
    assert message.get_pattern
    assert message.reply is not None
    assert message.reply.result is Result.OK
    assert isinstance(message.payload, MeterReadings)
    (reading,) = message.payload.meter_readings
    assert reading.meter.mrid == "MTR-000123456"
    assert reading.interval_blocks == ()
    assert reading.readings == ()
    assert orders(db) == []


def test_get_meter_readings_returns_stored_values_in_the_period(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    meter_id = add_meter(db, "MTR-000123456")
    forward = reading_type("0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0")
    reactive = reading_type("0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.73.0")
    day_start = datetime(2025, 11, 20, 3, 0, tzinfo=UTC)  # 00:00 at -03:00
    with db.begin() as conn:
        ingest_intervals(
            conn,
            [
                IntervalValue(meter_id, forward.id, day_start + timedelta(minutes=15), 112.0),
                IntervalValue(meter_id, forward.id, day_start + timedelta(minutes=30), 98.5),
                IntervalValue(meter_id, reactive.id, day_start + timedelta(minutes=15), 21.0),
                # outside the period: the interval ending at the period's start
                IntervalValue(meter_id, forward.id, day_start, 7.0),
            ],
        )
        ingest_register_reads(
            conn,
            [
                RegisterRead(
                    meter_id,
                    Energy.ACTIVE_FORWARD,
                    day_start + timedelta(days=1),
                    (1000, 2000, 0, 0, 0, 0),
                    3000,
                )
            ],
        )
    data = envelope(sample("08_GetMeterReadings_request.xml"))
    message = reply_of(client.post("/cim/GetMeterReadings", content=data).content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.OK
    assert isinstance(message.payload, MeterReadings)
    (reading,) = message.payload.meter_readings
    blocks = {
        b.reading_type: [(r.timestamp, r.value) for r in b.readings]
        for b in reading.interval_blocks
    }
    assert blocks == {
        forward.code: [
            (day_start + timedelta(minutes=15), "0.112"),
            (day_start + timedelta(minutes=30), "0.0985"),
        ],
        reactive.code: [(day_start + timedelta(minutes=15), "0.021")],
    }
    assert [(code, r.value, r.timestamp) for code, r in reading.readings] == [
        ("11.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0", "3", day_start + timedelta(days=1))
    ]


def test_get_meter_readings_needs_a_period_and_known_reading_types(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    add_meter(db, "MTR-000123456")
    text = sample("08_GetMeterReadings_request.xml")
    no_period = text.replace("<g:start>2025-11-20T00:00:00-03:00</g:start>", "")
    message = reply_of(
        client.post("/cim/GetMeterReadings", content=envelope(no_period)).content, connexo
    )
    assert message.reply is not None
    assert [e.code for e in message.reply.errors] == ["1.6"]
    unknown = text.replace(
        "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.73.0", "9.9.9.9.9.9.9.9.9.9.9.9.9.9.9.9.9.9"
    )
    unknown = unknown.replace("5e4d3c2b-1a09", "unknown-1a09")
    message = reply_of(
        client.post("/cim/GetMeterReadings", content=envelope(unknown)).content, connexo
    )
    assert message.reply is not None
    assert message.reply.result is Result.FAILED
    assert [e.code for e in message.reply.errors] == ["2.10"]


def test_get_meter_readings_unknown_meter_and_bad_reading_type(
    client: TestClient, connexo: SchemaSet
) -> None:
    data = envelope(sample("08_GetMeterReadings_request.xml"))
    message = reply_of(client.post("/cim/GetMeterReadings", content=data).content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.FAILED
    assert [e.code for e in message.reply.errors] == ["2.4"]
    bad = envelope(
        sample("08_GetMeterReadings_request.xml")
        .replace("0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.73.0", "0.0.2.4")
        .replace("5e4d3c2b-1a09", "other-1a09")
    )
    message = reply_of(client.post("/cim/GetMeterReadings", content=bad).content, connexo)
    assert message.reply is not None
    assert [e.code for e in message.reply.errors] == ["2.6"]


def test_get_meter_readings_by_usage_point(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    add_meter(db, "M-7", pod="POD-7")
    data = envelope(
        sample("08_GetMeterReadings_request.xml")
        .replace("<g:EndDevice>\n        <g:mRID>MTR-000123456</g:mRID>\n      </g:EndDevice>", "")
        .replace(
            "</g:ReadingType>\n    </g:GetMeterReadings>",
            "</g:ReadingType>\n<g:UsagePoint><g:mRID>POD-7</g:mRID></g:UsagePoint>"
            "<g:UsagePoint><g:mRID>POD-0</g:mRID></g:UsagePoint></g:GetMeterReadings>",
        )
    )
    message = reply_of(client.post("/cim/GetMeterReadings", content=data).content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.PARTIAL
    assert [e.code for e in message.reply.errors] == ["2.12"]
    assert isinstance(message.payload, MeterReadings)
    assert [r.meter.mrid for r in message.payload.meter_readings] == ["M-7"]


def test_live_read_becomes_reading_work_orders(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    add_meter(db, "MTR-000123456")
    data = envelope(
        sample("08_GetMeterReadings_request.xml").replace(
            "<msg:AsyncReplyFlag>false</msg:AsyncReplyFlag>",
            "<msg:AsyncReplyFlag>true</msg:AsyncReplyFlag>"
            "<msg:ReplyAddress>queue://AMI.TO.LEGACY.NORMAL</msg:ReplyAddress>",
        )
    )
    message = reply_of(client.post("/cim/GetMeterReadings", content=data).content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.OK
    assert [e.code for e in message.reply.errors] == ["0.3"]
    (order,) = orders(db)
    assert order["activity"] == "Reading"
    assert order["external_id"] == "5e4d3c2b-1a09-4f8e-9d7c-6b5a49382708"
    assert "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.73.0" in order["payload"]


def get_events(meters: list[str], message_id: str, schedule: str = "") -> bytes:
    items = "".join(f"<g:Meter><g:mRID>{m}</g:mRID></g:Meter>" for m in meters) + schedule
    return envelope(
        '<gm:GetEndDeviceEvents xmlns:gm="http://iec.ch/TC57/2011/GetEndDeviceEventsMessage"'
        f' xmlns:msg="{MSG}" xmlns:g="http://iec.ch/TC57/2011/GetEndDeviceEvents#">'
        "<gm:Header><msg:Verb>get</msg:Verb><msg:Noun>EndDeviceEvents</msg:Noun>"
        f"<msg:MessageID>{message_id}</msg:MessageID></gm:Header>"
        f"<gm:Request><g:GetEndDeviceEvents>{items}</g:GetEndDeviceEvents></gm:Request>"
        "</gm:GetEndDeviceEvents>"
    )


def test_get_end_device_events(db: Engine, client: TestClient, connexo: SchemaSet) -> None:
    add_meter(db, "M-1")
    ok = reply_of(
        client.post("/cim/GetEndDeviceEvents", content=get_events(["M-1"], "e-1")).content, connexo
    )
    assert ok.element_name == "EndDeviceEventsResponseMessage"
    assert ok.reply is not None
    assert ok.reply.result is Result.OK
    partial = reply_of(
        client.post("/cim/GetEndDeviceEvents", content=get_events(["M-1", "M-9"], "e-2")).content,
        connexo,
    )
    assert partial.reply is not None
    assert partial.reply.result is Result.PARTIAL
    assert [e.code for e in partial.reply.errors] == ["2.4"]


# -- zeep over a real server ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live_server(db: Engine) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_zeep_calls_execute_end_device_controls(db: Engine, live_server: str) -> None:
    import zeep

    add_meter(db, "000123456")
    add_meter(db, "000123457")
    client = zeep.Client(f"{live_server}{EDC}?wsdl")  # type: ignore[no-untyped-call]
    request = parse_xml(sample("01_CreateEndDeviceControls_remote_disconnect.xml").encode())
    devices = request.find(".//{http://iec.ch/TC57/2011/EndDeviceControls#}EndDevices")
    assert devices is not None
    second = etree.fromstring(etree.tostring(devices).replace(b"000123456", b"000123457"))
    devices.addnext(second)
    header, payload = request[0], request[1]
    response = client.service.CreateEndDeviceControls(_value_1=[header, payload])
    parts = {etree.QName(el).localname: el for el in response}
    result = parts["Reply"].find(f"{{{MSG}}}Result")
    assert result is not None
    assert result.text == "OK"
    correlation = parts["Header"].find(f"{{{MSG}}}CorrelationID")
    assert correlation is not None
    assert correlation.text == CORRELATION
    placed = orders(db)
    assert [o["serial_number"] for o in placed] == ["000123456", "000123457"]
    assert {o["external_id"] for o in placed} == {CORRELATION}


def test_configured_schema_directory_validates_requests_at_run_time(
    db: Engine, shared_dir: Path, monkeypatch: pytest.MonkeyPatch, connexo: SchemaSet
) -> None:
    add_meter(db, "000123456")
    text = sample("11_SOAP11_CreateEndDeviceControls_envelope.xml")
    # Schema-invalid but well-formed: a Header element the schema does not know.
    bogus = text.replace("<msg:Context>", "<msg:Bogus>x</msg:Bogus><msg:Context>").encode()
    with TestClient(create_app(db)) as plain:
        assert reply_of(plain.post(EDC, content=bogus).content, connexo).reply is not None
    assert len(orders(db)) == 1
    monkeypatch.setenv("SMMC_CIM_SCHEMA_DIR", str(shared_dir / "cim" / "xsd" / "connexo"))
    with TestClient(create_app(db)) as checked:
        refused = checked.post(EDC, content=bogus.replace(CORRELATION.encode(), b"other-id"))
        assert refused.status_code == 500
        assert fault_code(refused.content) == "1.8"
        assert b"Bogus" in refused.content
        accepted = checked.post(EDC, content=text.replace(CORRELATION, "third-id").encode())
        message = reply_of(accepted.content, connexo)
        assert message.reply is not None
        assert message.reply.result is Result.OK
    assert len(orders(db)) == 2


def test_message_id_still_being_handled_answers_5_1(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    add_meter(db, "M-1")
    with db.begin() as conn:
        conn.execute(
            t.cim_messages.insert().values(
                message_id="busy-1",
                operation="ExecuteEndDeviceControls",
                received_at=datetime.now(UTC),
            )
        )
    message = reply_of(
        client.post(EDC, content=disconnect(["M-1"], message_id="busy-1")).content, connexo
    )
    assert message.reply is not None
    assert message.reply.result is Result.FAILED
    assert [e.code for e in message.reply.errors] == ["5.1"]
    assert orders(db) == []


# -- ExecuteMeterConfig -----------------------------------------------------------------------

MC = "/cim/ExecuteMeterConfig"


def meter_config(verb: str, meters: list[tuple[str, str | None]], message_id: str) -> bytes:
    items = "".join(
        f"<m:Meter><m:mRID>{serial}</m:mRID>"
        + (f"<m:type>{kind}</m:type>" if kind else "")
        + "</m:Meter>"
        for serial, kind in meters
    )
    root = f"{verb.capitalize()}MeterConfig"
    return envelope(
        f'<mc:{root} xmlns:mc="http://iec.ch/TC57/2011/MeterConfigMessage"'
        f' xmlns:msg="{MSG}" xmlns:m="http://iec.ch/TC57/2011/MeterConfig#">'
        f"<mc:Header><msg:Verb>{verb}</msg:Verb><msg:Noun>MeterConfig</msg:Noun>"
        f"<msg:MessageID>{message_id}</msg:MessageID></mc:Header>"
        f"<mc:Payload><m:MeterConfig>{items}</m:MeterConfig></mc:Payload></mc:{root}>"
    )


def meter_types(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.meters.c.serial_number, t.meters.c.meter_type)).all()
    return {str(serial): str(kind) for serial, kind in rows}


def test_meter_config_create_change_delete(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    add_meter(db, "OLD-1")
    created = reply_of(
        client.post(
            MC,
            content=meter_config(
                "create", [("NEW-1", "polyphase"), ("NEW-2", None), ("OLD-1", None)], "mc-1"
            ),
        ).content,
        connexo,
    )
    assert created.element_name == "MeterConfigResponseMessage"
    assert created.reply is not None
    assert created.reply.result is Result.PARTIAL
    assert [(e.code, e.id.value if e.id else None) for e in created.reply.errors] == [
        ("2.4", "OLD-1")
    ]
    assert meter_types(db) == {"OLD-1": "monophase", "NEW-1": "polyphase", "NEW-2": "monophase"}
    changed = reply_of(
        client.post(
            MC, content=meter_config("change", [("NEW-2", "trifásico"), ("NONE-9", None)], "mc-2")
        ).content,
        connexo,
    )
    assert changed.reply is not None
    assert changed.reply.result is Result.PARTIAL
    assert [e.code for e in changed.reply.errors] == ["2.4"]
    assert meter_types(db)["NEW-2"] == "polyphase"
    add_meter(db, "BUSY-1")
    client.post(EDC, content=disconnect(["BUSY-1"], message_id="mc-wo"))
    deleted = reply_of(
        client.post(
            MC, content=meter_config("delete", [("NEW-1", None), ("BUSY-1", None)], "mc-3")
        ).content,
        connexo,
    )
    assert deleted.reply is not None
    assert deleted.reply.result is Result.PARTIAL
    assert [(e.code, e.id.value if e.id else None) for e in deleted.reply.errors] == [
        ("6.1", "BUSY-1")
    ]
    assert "NEW-1" not in meter_types(db)
    assert "BUSY-1" in meter_types(db)


def test_meter_config_delete_refuses_a_meter_with_events(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    """Events keep no foreign key to their meter: the delete asks for them itself."""
    noisy = add_meter(db, "M-1")
    add_meter(db, "QUIET-1")
    store_event(db, noisy, "3.26.0.85", datetime(2026, 4, 10, 12, tzinfo=UTC), "ev-1")
    deleted = reply_of(
        client.post(
            MC, content=meter_config("delete", [("M-1", None), ("QUIET-1", None)], "mc-4")
        ).content,
        connexo,
    )
    assert deleted.reply is not None
    assert [(e.code, e.id.value if e.id else None) for e in deleted.reply.errors] == [
        ("6.1", "M-1")
    ]
    assert set(meter_types(db)) == {"M-1"}


def test_meter_config_invalid_type_is_refused_with_the_provisioning_reason(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    response = client.post(
        MC, content=meter_config("create", [("NEW-1", "Actaris SL7000")], "mc-9")
    )
    message = reply_of(response.content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.FAILED
    (error,) = message.reply.errors
    assert error.code == "2.4"
    assert "metertype" in (error.details or "")
    assert meter_types(db) == {}


def test_connexo_meter_config_sample_is_understood(
    db: Engine, client: TestClient, connexo: SchemaSet, shared_dir: Path
) -> None:
    """Connexo's public sample (read from ../shared, not copied): vendor extensions in
    other namespaces are skipped, the serial and type are read."""
    path = (
        shared_dir / "cim" / "samples" / "public" / "connexo" / "CreateMeterConfigRequestAsync.xml"
    )
    data = path.read_text(encoding="utf-8").replace(
        "<mes:Noun>MeterConfig</mes:Noun>",
        "<mes:Noun>MeterConfig</mes:Noun><mes:MessageID>connexo-1</mes:MessageID>",
    )
    message = reply_of(client.post(MC, content=data.encode()).content, connexo)
    assert message.reply is not None
    (error,) = message.reply.errors
    assert error.id is not None
    assert error.id.value == "000001115"
    assert "metertype" in (error.details or "")


def store_event(engine: Engine, meter_id: int, code: str, at: datetime, message_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            t.events.insert().values(
                message_id=message_id,
                device_kind="meter",
                device="M-1",
                meter_id=meter_id,
                key=f"k-{message_id}",
                code=code,
                acronym="PUP",
                description="Voltage interruption (PUP)",
                severity=3,
                priority="high",
                category="power",
                routing="emergency dispatch",
                is_active=False,
                opened_at=at,
                source="test",
            )
        )


def test_get_end_device_events_returns_stored_events_in_the_period(
    db: Engine, client: TestClient, connexo: SchemaSet
) -> None:
    meter_id = add_meter(db, "M-1")
    add_meter(db, "M-2")
    noon = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
    store_event(db, meter_id, "3.26.0.85", noon, "ev-1")
    store_event(db, meter_id, "3.36.17.85", noon + timedelta(hours=1), "ev-2")
    store_event(db, meter_id, "3.26.0.85", noon - timedelta(days=2), "ev-old")
    schedule = (
        "<g:TimeSchedule><g:scheduleInterval><g:end>2025-11-21T00:00:00Z</g:end>"
        "<g:start>2025-11-20T00:00:00Z</g:start></g:scheduleInterval></g:TimeSchedule>"
    )
    body = get_events(["M-1", "M-2"], "ev-q1", schedule)
    message = reply_of(client.post("/cim/GetEndDeviceEvents", content=body).content, connexo)
    assert message.reply is not None
    assert message.reply.result is Result.OK
    assert isinstance(message.payload, EndDeviceEvents)
    got = [
        (e.mrid, e.event_type, e.created, e.asset.mrid if e.asset else None)
        for e in message.payload.events
    ]
    assert got == [
        ("ev-1", "3.26.0.85", noon, "M-1"),
        ("ev-2", "3.36.17.85", noon + timedelta(hours=1), "M-1"),
    ]
    everything = reply_of(
        client.post("/cim/GetEndDeviceEvents", content=get_events(["M-1"], "ev-q2")).content,
        connexo,
    )
    assert isinstance(everything.payload, EndDeviceEvents)
    assert [e.mrid for e in everything.payload.events] == ["ev-old", "ev-1", "ev-2"]


def test_concurrent_duplicates_create_one_batch(db: Engine, connexo: SchemaSet) -> None:
    """Eight callers send the same MessageID at once: the unique MessageID lets exactly one
    act; the others replay its answer or are told it is still in flight (5.1)."""
    add_meter(db, "M-1")
    service = CimService(db, WorkOrderQueue(db))
    body = disconnect(["M-1"], message_id="race-1")
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda _: service.handle("ExecuteEndDeviceControls", body), range(8))
        )
    assert len(orders(db)) == 1
    results = []
    for answer in answers:
        reply = reply_of(answer.body, connexo).reply
        assert reply is not None
        results.append((reply.result, [e.code for e in reply.errors]))
    assert (Result.OK, ["0.3"]) in results
    assert all(r in ((Result.OK, ["0.3"]), (Result.FAILED, ["5.1"])) for r in results)
    assert sum(not a.replayed for a in answers) == 1


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_mutated_requests_always_get_a_soap_answer(db: Engine, data: st.DataObject) -> None:
    service = CimService(db, WorkOrderQueue(db))
    original = sample("11_SOAP11_CreateEndDeviceControls_envelope.xml").encode()
    cut = data.draw(st.integers(0, len(original) - 1))
    junk = data.draw(st.binary(min_size=1, max_size=6))
    answer = service.handle(
        "ExecuteEndDeviceControls", original[:cut] + junk + original[cut + len(junk) :]
    )
    root = etree.fromstring(answer.body)
    assert root.tag == f"{{{SOAP_NS}}}Envelope"
    body = root.find(f"{{{SOAP_NS}}}Body")
    assert body is not None
    if answer.status == 500:
        assert body.find(f"{{{SOAP_NS}}}Fault") is not None
    else:
        assert answer.status == 200
        assert etree.QName(body[0]).localname == "EndDeviceControlsResponseMessage"
