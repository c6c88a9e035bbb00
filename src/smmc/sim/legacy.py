"""A Legacy (commercial system) simulator: the other end of the CIM integration.

It plays the commercial system of use case #6 from outside the head-end:

- ``LegacyClient`` sends SOAP requests (CreateEndDeviceControls disconnect/connect with the
  seed's reasons, GetMeterReadings) through zeep — an independent SOAP client — using the
  WSDLs the head-end serves at ``/cim/<Service>?wsdl``, with an API token as
  ``Authorization: Bearer``. Every request and its answer are recorded.
- ``QueueConsumer`` consumes the head-end's two RabbitMQ queues (aio-pika) and acks a
  message only after it is stored.
- ``CallbackServer`` receives the embedded backend's SOAP callbacks on a small HTTP
  endpoint (the request's ReplyAddress) and answers ``EndDeviceEventsResponseMessage`` OK.
- ``poll_inbox`` reads the embedded backend's "Legacy integration database" table
  (``legacy_inbox``) the way a commercial system would, marking rows read.

What arrives is kept in the simulator's own database (``LegacyStore``, an SQLite file by
default — never the head-end's tables): one row per MessageID (duplicates are recognised by
it), one row per delivery (so redeliveries are visible), and one row per EndDeviceEvent with
its CorrelationID, meter and event code. The XML is read with plain lxml, independently of
``smmc.integration``. zeep is imported only when a client is built (test/demo extra).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
import typer
from fastapi import FastAPI, Request
from fastapi.responses import Response
from lxml import etree
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from smmc.store.db import create_engine
from smmc.store.tables import UtcDateTime

if TYPE_CHECKING:
    import aio_pika.abc

__all__ = [
    "DEFAULT_QUEUES",
    "CallbackServer",
    "LegacyClient",
    "LegacyStore",
    "QueueConsumer",
    "ReceivedEvent",
    "SentRequest",
    "ThreadedServer",
    "callback_app",
    "legacy_app",
    "poll_inbox",
]

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MSG_NS = "http://iec.ch/TC57/2011/schema/message"
EDC_MSG_NS = "http://iec.ch/TC57/2011/EndDeviceControlsMessage"
EDC_NS = "http://iec.ch/TC57/2011/EndDeviceControls#"
GMR_MSG_NS = "http://iec.ch/TC57/2011/GetMeterReadingsMessage"
GMR_NS = "http://iec.ch/TC57/2011/GetMeterReadings#"
EDE_MSG_NS = "http://iec.ch/TC57/2011/EndDeviceEventsMessage"
DISCONNECT = "3.31.0.23"
CONNECT = "3.31.0.18"
SOURCE = "LEGACY-SIM"
DEFAULT_QUEUES: Mapping[str, str] = {"high": "smmc.cim.high", "normal": "smmc.cim.normal"}
MAX_BODY = 8 * 1024 * 1024

# -- the simulator's own tables ----------------------------------------------------------

metadata = sa.MetaData()

sent_requests = sa.Table(
    "sim_legacy_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.String(100), nullable=False, unique=True),
    sa.Column("correlation_id", sa.String(100), nullable=False, index=True),
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("devices", sa.Text, nullable=False),
    sa.Column("reply_address", sa.String(500)),
    sa.Column("sent_at", UtcDateTime(), nullable=False),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("codes", sa.String(200), nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
)

received_messages = sa.Table(
    "sim_legacy_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.String(100), nullable=False, unique=True),
    sa.Column("correlation_id", sa.String(100), index=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("verb", sa.String(16)),
    sa.Column("noun", sa.String(64)),
    sa.Column("first_received_at", UtcDateTime(), nullable=False),
    sa.Column("xml", sa.Text, nullable=False),
)

deliveries = sa.Table(
    "sim_legacy_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.String(100), nullable=False, index=True),
    sa.Column("channel", sa.String(16), nullable=False),
    # The broker's flag: it had delivered this message before without an ack.
    sa.Column("redelivered", sa.Boolean, nullable=False, server_default=sa.false()),
    # This MessageID had already been stored when this delivery came.
    sa.Column("duplicate", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("received_at", UtcDateTime(), nullable=False),
)

received_events = sa.Table(
    "sim_legacy_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.String(100), nullable=False, index=True),
    sa.Column("correlation_id", sa.String(100), index=True),
    sa.Column("meter", sa.String(64), index=True),
    sa.Column("event_type", sa.String(32)),
    sa.Column("created_at", UtcDateTime()),
    sa.Column("reason", sa.Text),
    sa.Column("details", sa.Text, nullable=False),
)

rejects = sa.Table(
    "sim_legacy_rejects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
)


@dataclass(frozen=True, slots=True)
class SentRequest:
    """One SOAP request as sent and answered: ``result`` is OK/PARTIAL/FAILED, or FAULT for
    a SOAP fault (then ``codes`` holds the fault's reply code)."""

    message_id: str
    correlation_id: str
    result: str
    codes: tuple[str, ...]
    answer: str


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    message_id: str
    correlation_id: str | None
    meter: str | None
    event_type: str | None
    created_at: datetime | None
    reason: str | None
    details: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Parsed:
    message_id: str
    correlation_id: str | None
    verb: str | None
    noun: str | None
    events: tuple[ReceivedEvent, ...]


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _child(element: etree._Element, name: str) -> etree._Element | None:
    for item in element:
        if isinstance(item.tag, str) and _local(item) == name:
            return item
    return None


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in element if isinstance(c.tag, str) and _local(c) == name]


def _text(element: etree._Element | None, name: str) -> str | None:
    found = _child(element, name) if element is not None else None
    return found.text.strip() if found is not None and found.text else None


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else None


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _message_element(body: bytes) -> etree._Element:
    """The 61968-100 message in ``body`` (bare, or inside a SOAP envelope's Body)."""
    root = etree.fromstring(body, _PARSER)
    if etree.QName(root).namespace == SOAP_NS:
        payload = _child(root, "Body")
        inner = [c for c in payload if isinstance(c.tag, str)] if payload is not None else []
        if len(inner) != 1:
            raise ValueError("SOAP Body must hold exactly one message")
        return inner[0]
    return root


def _asset_serial(event: etree._Element) -> str | None:
    assets = _child(event, "Assets")
    if assets is None:
        return None
    for names in _children(assets, "Names"):
        if _text(_child(names, "NameType"), "name") == "SerialNumber":
            return _text(names, "name")
    return _text(assets, "mRID")


def _parse(body: bytes) -> _Parsed:
    message = _message_element(body)
    header = _child(message, "Header")
    message_id = _text(header, "MessageID")
    if header is None or message_id is None:
        raise ValueError("no Header/MessageID")
    correlation_id = _text(header, "CorrelationID")
    events: list[ReceivedEvent] = []
    payload = _child(message, "Payload")
    container = _child(payload, "EndDeviceEvents") if payload is not None else None
    for event in _children(container, "EndDeviceEvent") if container is not None else []:
        kind = _child(event, "EndDeviceEventType")
        details = {
            _text(d, "name") or "": _text(d, "value") or ""
            for d in _children(event, "EndDeviceEventDetails")
        }
        for names in _children(event, "Names"):
            details[f"Names/{_text(_child(names, 'NameType'), 'name') or ''}"] = (
                _text(names, "name") or ""
            )
        events.append(
            ReceivedEvent(
                message_id,
                correlation_id,
                _asset_serial(event),
                kind.get("ref") if kind is not None else None,
                _when(_text(event, "createdDateTime")),
                _text(event, "reason"),
                details,
            )
        )
    return _Parsed(
        message_id, correlation_id, _text(header, "Verb"), _text(header, "Noun"), tuple(events)
    )


def _dump(details: Mapping[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(details.items()))


def _load(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


class LegacyStore:
    """The simulator's own database (default: an SQLite file)."""

    def __init__(self, url_or_path: str | Path) -> None:
        url = str(url_or_path)
        self.engine: Engine = create_engine(url if "://" in url else f"sqlite:///{url}")
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- writes ---------------------------------------------------------------------------

    def record_request(
        self,
        request: SentRequest,
        operation: str,
        devices: Sequence[str],
        reply_address: str | None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sent_requests.insert().values(
                    message_id=request.message_id,
                    correlation_id=request.correlation_id,
                    operation=operation,
                    devices=",".join(devices),
                    reply_address=reply_address,
                    sent_at=datetime.now(UTC),
                    result=request.result,
                    codes=",".join(request.codes),
                    answer=request.answer,
                )
            )

    def receive(self, channel: str, body: bytes, *, redelivered: bool = False) -> str | None:
        """Store one delivered message; its MessageID, or None when it could not be read
        (then it is kept in the rejects table with the reason). A MessageID seen before only
        adds a delivery row marked duplicate."""
        now = datetime.now(UTC)
        try:
            parsed = _parse(body)
        except (etree.XMLSyntaxError, ValueError) as exc:
            with self.engine.begin() as conn:
                conn.execute(
                    rejects.insert().values(
                        channel=channel, reason=str(exc)[:500], body=body, received_at=now
                    )
                )
            return None
        with self.engine.begin() as conn:
            duplicate = not self._store_new(conn, channel, parsed, body, now)
            conn.execute(
                deliveries.insert().values(
                    message_id=parsed.message_id,
                    channel=channel,
                    redelivered=redelivered,
                    duplicate=duplicate,
                    received_at=now,
                )
            )
        return parsed.message_id

    def _store_new(
        self, conn: Connection, channel: str, parsed: _Parsed, body: bytes, now: datetime
    ) -> bool:
        seen = conn.execute(
            sa.select(received_messages.c.id).where(
                received_messages.c.message_id == parsed.message_id
            )
        ).first()
        if seen is not None:
            return False
        try:
            with conn.begin_nested():
                conn.execute(
                    received_messages.insert().values(
                        message_id=parsed.message_id,
                        correlation_id=parsed.correlation_id,
                        channel=channel,
                        verb=parsed.verb,
                        noun=parsed.noun,
                        first_received_at=now,
                        xml=body.decode("utf-8", errors="replace"),
                    )
                )
        except IntegrityError:
            return False
        if parsed.events:
            conn.execute(
                received_events.insert(),
                [
                    {
                        "message_id": e.message_id,
                        "correlation_id": e.correlation_id,
                        "meter": e.meter,
                        "event_type": e.event_type,
                        "created_at": e.created_at,
                        "reason": e.reason,
                        "details": _dump(e.details),
                    }
                    for e in parsed.events
                ],
            )
        return True

    # -- reads ----------------------------------------------------------------------------

    def events(self, correlation_id: str | None = None) -> list[ReceivedEvent]:
        """Received EndDeviceEvents, in arrival order (of one CorrelationID if given)."""
        e = received_events.c
        query = sa.select(received_events).order_by(e.id)
        if correlation_id is not None:
            query = query.where(e.correlation_id == correlation_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            ReceivedEvent(
                r["message_id"],
                r["correlation_id"],
                r["meter"],
                r["event_type"],
                r["created_at"],
                r["reason"],
                _load(r["details"]),
            )
            for r in rows
        ]

    def messages(self) -> list[sa.RowMapping]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(received_messages).order_by(received_messages.c.id)
                ).mappings()
            )

    def deliveries(self) -> list[sa.RowMapping]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(deliveries).order_by(deliveries.c.id)).mappings())

    def rejects(self) -> list[sa.RowMapping]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(rejects).order_by(rejects.c.id)).mappings())

    def requests(self) -> list[sa.RowMapping]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(sa.select(sent_requests).order_by(sent_requests.c.id)).mappings()
            )


# -- SOAP requests through zeep ------------------------------------------------------------


def _sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        element.text = text
    return element


def _header(
    wrapper_ns: str,
    verb: str,
    noun: str,
    message_id: str,
    correlation_id: str,
    reply_address: str | None,
    asynchronous: bool | None,
) -> etree._Element:
    header = etree.Element(f"{{{wrapper_ns}}}Header", nsmap={"msg": MSG_NS})
    _sub(header, MSG_NS, "Verb", verb)
    _sub(header, MSG_NS, "Noun", noun)
    _sub(header, MSG_NS, "Revision", "2.0")
    _sub(header, MSG_NS, "Timestamp", datetime.now(UTC).isoformat(timespec="seconds"))
    _sub(header, MSG_NS, "Source", SOURCE)
    if asynchronous is not None:
        _sub(header, MSG_NS, "AsyncReplyFlag", "true" if asynchronous else "false")
    if reply_address:
        _sub(header, MSG_NS, "ReplyAddress", reply_address)
    _sub(header, MSG_NS, "MessageID", message_id)
    _sub(header, MSG_NS, "CorrelationID", correlation_id)
    return header


def _end_device(parent: etree._Element, ns: str, tag: str, serial: str) -> None:
    device = _sub(parent, ns, tag)
    _sub(device, ns, "mRID", f"MTR-{serial}")
    names = _sub(device, ns, "Names")
    _sub(names, ns, "name", serial)
    _sub(_sub(names, ns, "NameType"), ns, "name", "SerialNumber")


def _reply_codes(elements: Sequence[etree._Element]) -> tuple[str, tuple[str, ...]]:
    reply = next((e for e in elements if _local(e) == "Reply"), None)
    if reply is None:
        return "MISSING", ()
    codes = tuple(_text(error, "code") or "" for error in _children(reply, "Error"))
    return _text(reply, "Result") or "MISSING", codes


class LegacyClient:
    """SOAP requests to the head-end through zeep, with an API token. ``base_url`` is the
    head-end's address (``http://host:port``); each service's WSDL is fetched from
    ``/cim/<Service>?wsdl`` on first use. ``reply_address`` goes into every asynchronous
    request (a queue name, or the ``CallbackServer``'s URL for the embedded backend)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        store: LegacyStore,
        *,
        reply_address: str = "queue://smmc.cim.high",
        timeout: float = 30.0,
    ) -> None:
        import requests
        from zeep.transports import Transport

        self.base_url = base_url.rstrip("/")
        self.store = store
        self.reply_address = reply_address
        session = requests.Session()
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
        self._transport = Transport(  # type: ignore[no-untyped-call]
            session=session, timeout=timeout, operation_timeout=timeout
        )
        self._clients: dict[str, Any] = {}

    def service(self, name: str) -> Any:
        """zeep's service proxy of ``name`` (its WSDL is fetched on first use)."""
        if name not in self._clients:
            import zeep

            self._clients[name] = zeep.Client(  # type: ignore[no-untyped-call]
                f"{self.base_url}/cim/{name}?wsdl", transport=self._transport
            )
        return self._clients[name].service

    def _call(
        self,
        service: str,
        operation: str,
        parts: Sequence[etree._Element],
        message_id: str,
        correlation_id: str,
        devices: Sequence[str],
        reply_address: str | None,
    ) -> SentRequest:
        from zeep.exceptions import Fault

        try:
            response = getattr(self.service(service), operation)(_value_1=list(parts))
        except Fault as fault:
            detail = fault.detail
            code = detail.find(f".//{{{MSG_NS}}}code") if detail is not None else None
            answer = etree.tostring(detail).decode() if detail is not None else str(fault)
            sent = SentRequest(
                message_id,
                correlation_id,
                "FAULT",
                (code.text or "",) if code is not None else (),
                answer,
            )
        else:
            elements = list(response)
            result, codes = _reply_codes(elements)
            answer = "".join(etree.tostring(e).decode() for e in elements)
            sent = SentRequest(message_id, correlation_id, result, codes, answer)
        self.store.record_request(sent, operation, devices, reply_address)
        return sent

    def control(
        self,
        control_type: str,
        meters: Sequence[str],
        reason: str,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
    ) -> SentRequest:
        """CreateEndDeviceControls for ``meters`` (serial numbers) with ``reason`` (free
        text, e.g. the seed's "CORTE por deuda")."""
        message_id = message_id or str(uuid.uuid4())
        correlation_id = correlation_id or message_id
        header = _header(
            EDC_MSG_NS,
            "create",
            "EndDeviceControls",
            message_id,
            correlation_id,
            self.reply_address,
            True,
        )
        payload = etree.Element(f"{{{EDC_MSG_NS}}}Payload", nsmap={"m": EDC_NS})
        control = _sub(_sub(payload, EDC_NS, "EndDeviceControls"), EDC_NS, "EndDeviceControl")
        _sub(control, EDC_NS, "mRID", f"EDC-{message_id[:8]}")
        _sub(control, EDC_NS, "issuerID", SOURCE)
        _sub(control, EDC_NS, "reason", reason)
        _sub(control, EDC_NS, "EndDeviceControlType").set("ref", control_type)
        for serial in meters:
            _end_device(control, EDC_NS, "EndDevices", serial)
        return self._call(
            "ExecuteEndDeviceControls",
            "CreateEndDeviceControls",
            [header, payload],
            message_id,
            correlation_id,
            meters,
            self.reply_address,
        )

    def disconnect(
        self, meters: Sequence[str], reason: str = "CORTE por deuda", **ids: str
    ) -> SentRequest:
        return self.control(DISCONNECT, meters, reason, **ids)

    def connect(
        self, meters: Sequence[str], reason: str = "REPOSICION por pago", **ids: str
    ) -> SentRequest:
        return self.control(CONNECT, meters, reason, **ids)

    def get_meter_readings(
        self,
        meters: Sequence[str],
        reading_types: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        message_id: str | None = None,
    ) -> tuple[SentRequest, list[etree._Element]]:
        """Stored readings (synchronous): the recorded request and the answer's elements."""
        message_id = message_id or str(uuid.uuid4())
        header = _header(GMR_MSG_NS, "get", "MeterReadings", message_id, message_id, None, None)
        request = etree.Element(f"{{{GMR_MSG_NS}}}Request", nsmap={"g": GMR_NS})
        query = _sub(request, GMR_NS, "GetMeterReadings")
        for serial in meters:
            _end_device(query, GMR_NS, "EndDevice", serial)
        reading = _sub(query, GMR_NS, "Reading")
        period = _sub(reading, GMR_NS, "timePeriod")
        _sub(period, GMR_NS, "end", end.isoformat())
        _sub(period, GMR_NS, "start", start.isoformat())
        for code in reading_types:
            _sub(_sub(query, GMR_NS, "ReadingType"), GMR_NS, "mRID", code)
        sent = self._call(
            "GetMeterReadings",
            "GetMeterReadings",
            [header, request],
            message_id,
            message_id,
            meters,
            None,
        )
        return sent, [] if sent.result == "FAULT" else list(
            etree.fromstring(f"<r>{sent.answer}</r>".encode())
        )


# -- consuming the queues --------------------------------------------------------------------


class QueueConsumer:
    """Consumes the head-end's queues (``{channel: queue name}``) into ``store``: each
    message is stored, then acked; a message that cannot be read is kept as a reject and
    acked too (redelivering it would not make it readable). A channel's messages are stored
    one at a time in delivery order, so the first delivery of a message is the one stored
    and a redelivery the one marked duplicate (stored side by side, either could win)."""

    def __init__(
        self,
        store: LegacyStore,
        url: str,
        queues: Mapping[str, str] = DEFAULT_QUEUES,
        *,
        prefetch: int = 200,
    ) -> None:
        self.store = store
        self.url = url
        self.queues = dict(queues)
        self.prefetch = prefetch
        self.received = 0
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        import aio_pika

        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        for name, queue_name in self.queues.items():
            queue = await channel.declare_queue(queue_name, durable=True)
            await queue.consume(self._handler(name))

    def _handler(self, name: str) -> Any:
        in_order = asyncio.Lock()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with in_order:
                await asyncio.to_thread(
                    self.store.receive, name, message.body, redelivered=bool(message.redelivered)
                )
            await message.ack()
            self.received += 1
            self._arrived.set()

        return on_message

    async def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` deliveries were stored; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.received < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.5))
            except TimeoutError:
                continue
        return True

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


# -- SOAP callbacks (embedded backend) ----------------------------------------------------------


def _ack(correlation_id: str | None, ok: bool, text: str | None = None) -> bytes:
    envelope = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS})
    body = _sub(envelope, SOAP_NS, "Body")
    response = etree.SubElement(
        body,
        f"{{{EDE_MSG_NS}}}EndDeviceEventsResponseMessage",
        nsmap={"ede": EDE_MSG_NS, "msg": MSG_NS},
    )
    header = _sub(response, EDE_MSG_NS, "Header")
    _sub(header, MSG_NS, "Verb", "reply")
    _sub(header, MSG_NS, "Noun", "EndDeviceEvents")
    _sub(header, MSG_NS, "Timestamp", datetime.now(UTC).isoformat(timespec="seconds"))
    _sub(header, MSG_NS, "Source", SOURCE)
    _sub(header, MSG_NS, "MessageID", str(uuid.uuid4()))
    if correlation_id:
        _sub(header, MSG_NS, "CorrelationID", correlation_id)
    reply = _sub(response, EDE_MSG_NS, "Reply")
    _sub(reply, MSG_NS, "Result", "OK" if ok else "FAILED")
    if not ok:
        error = _sub(reply, MSG_NS, "Error")
        _sub(error, MSG_NS, "code", "1.8")
        _sub(error, MSG_NS, "details", text)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def callback_app(store: LegacyStore) -> FastAPI:
    """Receives pushed messages on ``POST /legacy/{channel}`` (any channel name, e.g.
    ``/legacy/callback``) and answers ``EndDeviceEventsResponseMessage`` OK once stored, or
    FAILED 1.8 (HTTP 500) for a body it cannot read."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/legacy/{channel}")
    async def receive(channel: str, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return Response(_ack(None, False, "too large"), 413, media_type="text/xml")
        message_id = await asyncio.to_thread(store.receive, channel[:16], body)
        if message_id is None:
            return Response(_ack(None, False, "unreadable"), 500, media_type="text/xml")
        correlation = _parse(body).correlation_id
        return Response(_ack(correlation, True), 200, media_type="text/xml")

    return app


class ThreadedServer:
    """An ASGI app served by uvicorn in a daemon thread on ``host`` and a free port (or
    ``port``): the callback endpoint here, and the head-end's API in tests and benchmarks.
    ``base_url`` is ``http://host:port``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.base_url = f"http://{self.host}:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the server at {self.base_url} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    @contextmanager
    def running(self) -> Iterator[ThreadedServer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


class CallbackServer(ThreadedServer):
    """``callback_app`` in a thread; ``url`` is the ReplyAddress to give the head-end."""

    def __init__(self, store: LegacyStore, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(callback_app(store), host, port)
        self.url = f"{self.base_url}/legacy/callback"


# -- the embedded backend's Legacy integration database -----------------------------------------


def poll_inbox(head_end: Engine, store: LegacyStore, limit: int = 1000) -> int:
    """Read unread rows of the head-end's ``legacy_inbox`` into ``store`` (channel
    ``inbox``) and mark them read, as a commercial system reading its integration database
    would; returns how many were read."""
    from smmc.store.tables import legacy_inbox

    inbox = legacy_inbox.c
    with head_end.connect() as conn:
        rows = conn.execute(
            sa.select(inbox.id, inbox.xml)
            .where(inbox.read_at.is_(None))
            .order_by(inbox.id)
            .limit(limit)
        ).all()
    for _, xml in rows:
        store.receive("inbox", str(xml).encode("utf-8"))
    if rows:
        with head_end.begin() as conn:
            conn.execute(
                legacy_inbox.update()
                .where(inbox.id.in_([row_id for row_id, _ in rows]))
                .values(read_at=datetime.now(UTC))
            )
    return len(rows)


# -- CLI --------------------------------------------------------------------------------------

legacy_app = typer.Typer(help="Legacy (commercial system) simulator.", no_args_is_help=True)

_Db = Annotated[Path, typer.Option(help="The simulator's own SQLite file.")]
_Url = Annotated[str, typer.Option(help="Head-end base URL.")]
_Token = Annotated[
    str | None, typer.Option(envvar="SMMC_LEGACY_TOKEN", help="API token (I6 account).")
]
_Reply = Annotated[str, typer.Option(help="ReplyAddress: a queue name or a callback URL.")]
DEFAULT_DB = Path("legacy-sim.db")


class Action(StrEnum):
    DISCONNECT = "disconnect"
    CONNECT = "connect"


_CONTROLS = {Action.DISCONNECT: DISCONNECT, Action.CONNECT: CONNECT}
_REASONS = {Action.DISCONNECT: "CORTE por deuda", Action.CONNECT: "REPOSICION por pago"}


@legacy_app.command("control")
def control_command(
    action: Action,
    meters: list[str],
    reason: Annotated[
        str | None,
        typer.Option(
            help="Free text naming the seed's reason (default: CORTE por deuda / "
            "REPOSICION por pago)."
        ),
    ] = None,
    db: _Db = DEFAULT_DB,
    url: _Url = "http://127.0.0.1:8000",
    token: _Token = None,
    reply_address: _Reply = "queue://smmc.cim.high",
) -> None:
    """Send CreateEndDeviceControls 3.31.0.23 (disconnect) or 3.31.0.18 (connect)."""
    store = LegacyStore(db)
    client = LegacyClient(url, token, store, reply_address=reply_address)
    sent = client.control(_CONTROLS[action], meters, reason or _REASONS[action])
    typer.echo(f"{sent.result} {' '.join(sent.codes)} CorrelationID={sent.correlation_id}")
    if sent.result in ("FAULT", "FAILED"):
        raise typer.Exit(1)


@legacy_app.command("listen")
def listen_command(
    db: _Db = DEFAULT_DB,
    amqp_url: Annotated[
        str | None, typer.Option(envvar="SMMC_AMQP_URL", help="Consume the two queues.")
    ] = None,
    callback_port: Annotated[
        int | None, typer.Option(help="Serve SOAP callbacks on this port.")
    ] = None,
) -> None:
    """Consume the queues and/or receive callbacks until interrupted."""
    if amqp_url is None and callback_port is None:
        typer.echo("give --amqp-url and/or --callback-port", err=True)
        raise typer.Exit(2)
    store = LegacyStore(db)
    server = CallbackServer(store, port=callback_port) if callback_port is not None else None
    if server is not None:
        server.start()
        typer.echo(f"callbacks at {server.url}")

    async def consume(url: str) -> None:
        consumer = QueueConsumer(store, url)
        await consumer.start()
        try:
            await asyncio.Event().wait()
        finally:
            await consumer.stop()

    try:
        if amqp_url is not None:
            asyncio.run(consume(amqp_url))
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()


@legacy_app.command("received")
def received_command(db: _Db = DEFAULT_DB) -> None:
    """List the EndDeviceEvents received, oldest first."""
    store = LegacyStore(db)
    for event in store.events():
        typer.echo(
            f"{event.created_at.isoformat() if event.created_at else '-'} {event.meter or '-'} "
            f"{event.event_type or '-'} correlation={event.correlation_id or '-'} "
            f"{event.reason or ''}"
        )
