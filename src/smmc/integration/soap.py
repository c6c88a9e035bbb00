"""SOAP 1.1 services for Legacy: synchronous validation, asynchronous execution.

What can be checked without the meter is answered at once: a malformed or hostile document
gets a SOAP fault whose detail is the noun's ``FaultMessage`` (Reply FAILED, code 1.8); a
well-formed request that cannot be honoured gets a ``ResponseMessage`` with Result FAILED and
one Error per device (2.4 unknown meter, 2.12 unknown usage point, 5.2 unsupported control
type, 1.5 missing ReplyAddress…). Everything else becomes work orders (origin LEGACY, external
id = CorrelationID, else MessageID) and is answered OK (or PARTIAL) with code 0.3; the outcome
follows later on the queues. Queries (stored readings, stored events) and meter master data
(MeterConfig) are answered at once. Each answer is stored under the request's MessageID, and
a repeated MessageID gets the stored answer back byte for byte.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from lxml import etree
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from smmc.domain.assets import Meter
from smmc.domain.provisioning import TEMPLATE_BY_KIND, TemplateKind, validate_row
from smmc.domain.readings import (
    READING_TYPES,
    ReadingKind,
    ReadingType,
    UnknownReadingType,
    daily_closure_type,
    reading_type,
    reading_type_by_id,
)
from smmc.domain.work_orders import ActivityType, InvalidWorkOrder, Origin
from smmc.integration.codes import REPLY_CODES, CodeBook
from smmc.integration.messages import (
    MSG_NS,
    Header,
    IdKind,
    Level,
    Message,
    ObjectID,
    Reply,
    ReplyError,
    Result,
    Verb,
    message_namespace,
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
    MeterReading,
    MeterReadings,
    Reading,
)
from smmc.integration.xml import (
    FORMAT_ERROR,
    Limits,
    MessageError,
    SchemaSet,
    parse_xml,
    serialize,
)
from smmc.store import tables as t
from smmc.store.provisioning import upsert
from smmc.store.work_orders import Rejected, TargetRef, WorkOrderQueue

__all__ = [
    "SERVICES",
    "SOAP_NS",
    "CimService",
    "ServiceSpec",
    "SoapAnswer",
    "scaled_value",
    "soap_envelope",
    "soap_fault",
    "wsdl_text",
]

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOURCE = "SMMC-HES"
MAX_DEVICES = 10_000
MAX_VALUES = 200_000
MAX_EVENTS = 10_000
_READING_TYPE = re.compile(r"^\d+(\.\d+){17}$")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One endpoint: its noun, whether it uses the get pattern and the operations (wrapper
    element names) it accepts."""

    name: str
    noun: str
    get_pattern: bool
    operations: tuple[str, ...]

    @property
    def namespace(self) -> str:
        return message_namespace(self.noun, get=self.get_pattern)


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec(
            "ExecuteEndDeviceControls", "EndDeviceControls", False, ("CreateEndDeviceControls",)
        ),
        ServiceSpec("GetMeterReadings", "MeterReadings", True, ("GetMeterReadings",)),
        ServiceSpec("GetEndDeviceEvents", "EndDeviceEvents", True, ("GetEndDeviceEvents",)),
        ServiceSpec(
            "ExecuteMeterConfig",
            "MeterConfig",
            False,
            ("CreateMeterConfig", "ChangeMeterConfig", "DeleteMeterConfig"),
        ),
    )
}


def wsdl_text(service: str, location: str) -> str:
    """Our WSDL for ``service`` with the endpoint address filled in."""
    text = (
        importlib.resources.files("smmc.integration")
        .joinpath("wsdl", f"{service}.wsdl")
        .read_text(encoding="utf-8")
    )
    return text.replace("{{location}}", _xml_escape(location))


def scaled_value(value: float | int, code: str) -> str:
    """A stored value in the unit of ``code``: divided by 10**multiplier (field 16), written
    without binary-float noise (0.112, not 0.11200000000000002)."""
    multiplier = int(code.split(".")[15])
    scaled = Decimal(repr(value)) / (Decimal(10) ** multiplier)
    return format(scaled.normalize(), "f")


def _xml_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


@dataclass(frozen=True, slots=True)
class SoapAnswer:
    status: int
    body: bytes
    replayed: bool = False


def soap_envelope(element: etree._Element) -> bytes:
    """A SOAP 1.1 envelope around one body element, serialized for the wire."""
    envelope = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS})
    etree.SubElement(envelope, f"{{{SOAP_NS}}}Body").append(element)
    return serialize(envelope)


def soap_fault(spec: ServiceSpec, error: MessageError, *, client: bool = True) -> bytes:
    """A SOAP 1.1 fault whose detail is the noun's FaultMessage: Reply FAILED with the code."""
    fault = etree.Element(f"{{{SOAP_NS}}}Fault")
    etree.SubElement(fault, "faultcode").text = "soapenv:Client" if client else "soapenv:Server"
    etree.SubElement(fault, "faultstring").text = f"{error.code} {error.reason}"
    detail = etree.SubElement(fault, "detail")
    ns = spec.namespace
    fault_message = etree.SubElement(
        detail, f"{{{ns}}}{spec.noun}FaultMessage", nsmap={"ns": ns, "msg": MSG_NS}
    )
    reply = Reply(Result.FAILED, (_error(error.code, error.reason, error.details),))
    fault_message.append(reply.to_xml(f"{{{ns}}}Reply"))
    return soap_envelope(fault)


def _error(
    code: str,
    reason: str | None = None,
    details: str | None = None,
    ident: ObjectID | None = None,
) -> ReplyError:
    level = Level.INFORM if code.startswith("0.") else Level.FATAL
    return ReplyError(code, level, reason or REPLY_CODES.get(code), details, ident)


def _device_error(code: str, device: str, details: str, object_type: str) -> ReplyError:
    return _error(code, None, details, ObjectID(device, IdKind.NAME, object_type))


def _body_element(data: bytes, limits: Limits) -> etree._Element:
    root = parse_xml(data, limits)
    qname = etree.QName(root)
    if qname.namespace != SOAP_NS or qname.localname != "Envelope":
        raise MessageError(
            FORMAT_ERROR,
            "Not a SOAP 1.1 envelope",
            f"root element {{{qname.namespace}}}{qname.localname}",
        )
    bodies = [c for c in root if isinstance(c.tag, str) and c.tag == f"{{{SOAP_NS}}}Body"]
    if len(bodies) != 1:
        raise MessageError(FORMAT_ERROR, "SOAP envelope needs exactly one Body")
    children = [c for c in bodies[0] if isinstance(c.tag, str)]
    if len(children) != 1:
        raise MessageError(FORMAT_ERROR, "SOAP Body needs exactly one message element")
    return children[0]


@dataclass
class CimService:
    """The four services over one store. ``clock`` and ``new_id`` are injectable so tests
    get stable timestamps and message ids."""

    engine: Engine
    queue: WorkOrderQueue
    codes: CodeBook = field(default_factory=CodeBook)
    schemas: SchemaSet | None = None
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    new_id: Callable[[], str] = lambda: str(uuid.uuid4())

    # -- entry point ----------------------------------------------------------------------

    def handle(self, service: str, data: bytes) -> SoapAnswer:
        """Answer one SOAP request body for ``service`` (a key of ``SERVICES``)."""
        spec = SERVICES[service]
        try:
            element = _body_element(data, self.limits)
            qname = etree.QName(element)
            if qname.namespace != spec.namespace or qname.localname not in spec.operations:
                raise MessageError(
                    FORMAT_ERROR,
                    f"{service} accepts {', '.join(spec.operations)}",
                    f"got {{{qname.namespace}}}{qname.localname}",
                )
            if self.schemas is not None:
                self.schemas.check(element)
            message = Message.from_xml(element)
        except MessageError as exc:
            return SoapAnswer(500, soap_fault(spec, exc))
        return self._idempotent(spec, message)

    def _idempotent(self, spec: ServiceSpec, message: Message) -> SoapAnswer:
        header = message.header
        message_id = header.message_id
        if message_id is None or len(message_id) > 100:
            reply = self._failed(spec, header, _error("1.5", None, "Header/MessageID (≤ 100)"))
            return SoapAnswer(200, soap_envelope(reply.to_xml()))
        stored = self._claim(spec, header, message_id)
        if stored is not None:
            return SoapAnswer(200, stored, replayed=True)
        try:
            response = self._dispatch(spec, message)
        except BaseException:
            with self.engine.begin() as conn:
                conn.execute(
                    t.cim_messages.delete().where(t.cim_messages.c.message_id == message_id)
                )
            raise
        body = soap_envelope(response.to_xml())
        self._check_outbound(response)
        result = response.reply.result.value if response.reply else None
        with self.engine.begin() as conn:
            conn.execute(
                t.cim_messages.update()
                .where(t.cim_messages.c.message_id == message_id)
                .values(answer=body.decode("utf-8"), result=result, answered_at=self.clock())
            )
        return SoapAnswer(200, body)

    def _claim(self, spec: ServiceSpec, header: Header, message_id: str) -> bytes | None:
        """Record the MessageID before acting on it; if it is already there, its stored
        answer (or, while the first request is still being handled, a FAILED 5.1 reply)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    t.cim_messages.insert().values(
                        message_id=message_id,
                        correlation_id=(header.correlation_id or "")[:100] or None,
                        operation=spec.name,
                        source=(header.source or "")[:100] or None,
                        reply_address=(header.reply_address or "")[:500] or None,
                        received_at=self.clock(),
                    )
                )
            return None
        except IntegrityError:
            pass
        with self.engine.connect() as conn:
            answer = conn.execute(
                sa.select(t.cim_messages.c.answer).where(t.cim_messages.c.message_id == message_id)
            ).scalar_one_or_none()
        if answer is not None:
            return str(answer).encode("utf-8")
        busy = _error("5.1", None, f"MessageID {message_id} is still being processed")
        return soap_envelope(self._failed(spec, header, busy).to_xml())

    def _check_outbound(self, response: Message) -> None:
        if self.schemas is None:
            return
        problems = self.schemas.errors(response.to_xml())
        if problems:
            logger.error("outbound CIM message fails the configured schema: %s", problems[:3])

    def _dispatch(self, spec: ServiceSpec, message: Message) -> Message:
        handlers: dict[str, Callable[[ServiceSpec, Message], Message]] = {
            "ExecuteEndDeviceControls": self._end_device_controls,
            "GetMeterReadings": self._meter_readings,
            "GetEndDeviceEvents": self._end_device_events,
            "ExecuteMeterConfig": self._meter_config,
        }
        try:
            return handlers[spec.name](spec, message)
        except MessageError as exc:
            return self._failed(spec, message.header, _error(exc.code, exc.reason, exc.details))

    # -- replies --------------------------------------------------------------------------

    def _reply_header(self, spec: ServiceSpec, request: Header) -> Header:
        return Header(
            verb=Verb.REPLY,
            noun=spec.noun,
            timestamp=self.clock(),
            source=SOURCE,
            message_id=self.new_id(),
            correlation_id=request.correlation_id or request.message_id,
        )

    def _failed(self, spec: ServiceSpec, request: Header, *errors: ReplyError) -> Message:
        return Message(
            self._reply_header(spec, request),
            reply=Reply(Result.FAILED, tuple(errors)),
            get_pattern=spec.get_pattern,
        )

    # -- ExecuteEndDeviceControls ---------------------------------------------------------

    def _end_device_controls(self, spec: ServiceSpec, message: Message) -> Message:
        header = message.header
        if header.async_reply is False:
            return self._failed(
                spec,
                header,
                _error("5.2", "Synchronous execution is not supported", "set AsyncReplyFlag"),
            )
        if not header.reply_address:
            return self._failed(
                spec, header, _error("1.5", None, "Header/ReplyAddress is required")
            )
        payload = message.payload
        if not isinstance(payload, EndDeviceControls) or not payload.controls:
            return self._failed(spec, header, _error("1.7", None, "EndDeviceControls"))
        devices = sum(len(c.end_devices) + len(c.usage_points) for c in payload.controls)
        if devices > MAX_DEVICES:
            return self._failed(spec, header, _error("3.1", None, f"{devices} > {MAX_DEVICES}"))
        errors: list[ReplyError] = []
        accepted = 0
        for control in payload.controls:
            accepted += self._submit_control(header, control, errors)
        ids = tuple(
            ObjectID(c.mrid, IdKind.TRANSACTION, "EndDeviceControl")
            for c in payload.controls
            if c.mrid
        )
        if accepted == 0:
            return Message(
                self._reply_header(spec, header), reply=Reply(Result.FAILED, tuple(errors), ids)
            )
        ack = _error("0.3", None, f"{accepted} work order(s) queued for asynchronous execution")
        result = Result.PARTIAL if errors else Result.OK
        return Message(self._reply_header(spec, header), reply=Reply(result, (ack, *errors), ids))

    def _submit_control(
        self, header: Header, control: EndDeviceControl, errors: list[ReplyError]
    ) -> int:
        targets = [TargetRef(meter=d.serial) for d in control.end_devices]
        targets += [TargetRef(pod=p.name_of("POD") or p.label) for p in control.usage_points]
        labels = [d.label for d in control.end_devices] + [p.label for p in control.usage_points]
        kinds = ["EndDevice"] * len(control.end_devices) + ["UsagePoint"] * len(
            control.usage_points
        )
        if not targets:
            errors.append(_error("1.7", None, f"EndDeviceControl {control.mrid or ''}: no devices"))
            return 0

        def fail_all(code: str, details: str) -> int:
            errors.extend(
                _device_error(code, label, details, kind)
                for label, kind in zip(labels, kinds, strict=True)
            )
            return 0

        activity = self.codes.activity(control.control_type)
        if activity is None:
            return fail_all("5.2", f"EndDeviceControlType {control.control_type} is not supported")
        reason = self.codes.reason(activity, control.reason)
        if activity is ActivityType.DISCONNECT and reason is None:
            return fail_all(
                "5.8",
                f"reason {control.reason!r} names no disconnect reason "
                "(non_payment, losses, customer_request)",
            )
        scheduled = control.start if control.start and control.start > self.clock() else None
        payload: dict[str, Any] = {
            "cim_message_id": header.message_id,
            "control_type": control.control_type,
            "reply_address": header.reply_address,
        }
        for key, value in (
            ("control_mrid", control.mrid),
            ("issuer_tracking_id", control.issuer_tracking_id),
            ("window_end", control.end.isoformat() if control.end else None),
        ):
            if value is not None:
                payload[key] = value
        try:
            result = self.queue.submit(
                activity,
                targets,
                origin=Origin.LEGACY,
                external_id=header.correlation_id or header.message_id,
                scheduled_at=scheduled,
                reason=reason,
                payload=payload,
            )
        except InvalidWorkOrder as exc:
            return fail_all("5.2", str(exc))
        for rejected in result.rejected:
            errors.append(self._rejection(rejected, labels, kinds))
        return result.accepted

    @staticmethod
    def _rejection(rejected: Rejected, labels: Sequence[str], kinds: Sequence[str]) -> ReplyError:
        kind = kinds[rejected.index]
        code = "2.12" if kind == "UsagePoint" else "2.4"
        if rejected.reason.startswith("pod: meter"):
            code = "2.13"
        return _device_error(code, labels[rejected.index], rejected.reason, kind)

    # -- GetMeterReadings -----------------------------------------------------------------

    def _meter_readings(self, spec: ServiceSpec, message: Message) -> Message:
        header = message.header
        request = message.request
        query = request.query if request else None
        if request is None or not isinstance(query, GetMeterReadings):
            return self._failed(spec, header, _error("1.6", None, "GetMeterReadings"))
        bad_types = [rt for rt in query.reading_types if not _READING_TYPE.match(rt)]
        if bad_types:
            return self._failed(spec, header, _error("2.6", None, ", ".join(bad_types[:10])))
        devices = list(query.end_devices) + list(query.usage_points)
        if not devices:
            return self._failed(spec, header, _error("1.6", None, "EndDevice or UsagePoint"))
        if len(devices) > MAX_DEVICES:
            return self._failed(spec, header, _error("3.1", None, f"{len(devices)} devices"))
        if header.async_reply:
            return self._live_read(spec, header, query)
        types: list[ReadingType] = []
        for code in query.reading_types:
            try:
                types.append(reading_type(code))
            except UnknownReadingType:
                return self._failed(spec, header, _error("2.10", None, code))
        periods = [p for p in query.periods if p[0] is not None and p[1] is not None]
        if not periods and request.start_time and request.end_time:
            periods = [(request.start_time, request.end_time)]
        if not periods:
            return self._failed(
                spec, header, _error("1.6", None, "Reading/timePeriod with start and end")
            )
        known, errors = self._known_meters(query.end_devices, query.usage_points)
        try:
            readings = self.stored_readings(known, types, periods)
        except MessageError as exc:
            return self._failed(spec, header, _error(exc.code, exc.reason, exc.details))
        result = Result.OK if not errors else (Result.PARTIAL if known else Result.FAILED)
        return Message(
            self._reply_header(spec, header),
            reply=Reply(result, tuple(errors)),
            payload=MeterReadings(readings) if known else None,
            get_pattern=True,
        )

    def stored_readings(
        self,
        serials: Sequence[str],
        types: Sequence[ReadingType],
        periods: Sequence[tuple[datetime | None, datetime | None]],
        *,
        conn: Connection | None = None,
    ) -> tuple[MeterReading, ...]:
        """One MeterReading per meter: an IntervalBlock per interval reading type with the
        values whose interval ends in a period, and a Reading per register value captured
        in a period. Values are stored in Wh/varh; the codes say kilo, so they are scaled by
        the code's multiplier field. With no reading types asked, every stored type. With
        ``conn`` the values are read in that connection's transaction (so a caller sees what
        it has just written and not committed yet)."""
        with self._reading(conn) as reading:
            return self._stored_readings(reading, serials, types, periods)

    def _reading(self, conn: Connection | None) -> AbstractContextManager[Connection]:
        return nullcontext(conn) if conn is not None else self.engine.connect()

    def _stored_readings(
        self,
        conn: Connection,
        serials: Sequence[str],
        types: Sequence[ReadingType],
        periods: Sequence[tuple[datetime | None, datetime | None]],
    ) -> tuple[MeterReading, ...]:
        wanted = list(types) or list(READING_TYPES)
        ids = {serial: meter_id for meter_id, serial in self._meter_ids(serials, conn)}
        interval_ids = [rt.id for rt in wanted if rt.kind is not ReadingKind.REGISTER]
        registers = [rt for rt in wanted if rt.kind is ReadingKind.REGISTER and rt.energy]
        register_ids = sorted({daily_closure_type(rt.energy).id for rt in registers if rt.energy})
        iv, rr = t.interval_readings.c, t.register_reads.c
        spans_iv = sa.or_(*(sa.and_(iv.interval_end > s, iv.interval_end <= e) for s, e in periods))
        spans_rr = sa.or_(*(sa.and_(rr.captured_at >= s, rr.captured_at <= e) for s, e in periods))
        meter_ids = list(ids.values())
        values = conn.execute(
            sa.select(iv.meter_id, iv.reading_type_id, iv.interval_end, iv.value)
            .where(iv.meter_id.in_(meter_ids), iv.reading_type_id.in_(interval_ids), spans_iv)
            .order_by(iv.meter_id, iv.reading_type_id, iv.interval_end)
            .limit(MAX_VALUES + 1)
        ).all()
        sets = (
            conn.execute(
                sa.select(t.register_reads)
                .where(rr.meter_id.in_(meter_ids), rr.reading_type_id.in_(register_ids), spans_rr)
                .order_by(rr.meter_id, rr.captured_at)
                .limit(MAX_VALUES + 1)
            )
            .mappings()
            .all()
        )
        if len(values) + len(sets) * max(len(registers), 1) > MAX_VALUES:
            raise MessageError("3.1", "Too many items in request", f"more than {MAX_VALUES} values")
        blocks: dict[int, dict[int, list[Reading]]] = {}
        for meter_id, type_id, end, value in values:
            rt = reading_type_by_id(type_id)
            blocks.setdefault(meter_id, {}).setdefault(type_id, []).append(
                Reading(scaled_value(value, rt.code), end)
            )
        register_values: dict[int, list[tuple[str, Reading]]] = {}
        for row in sets:
            for rt in registers:
                if rt.energy is None or daily_closure_type(rt.energy).id != row["reading_type_id"]:
                    continue
                raw = row["total"] if rt.tier is None else row[f"t{rt.tier}"]
                register_values.setdefault(row["meter_id"], []).append(
                    (rt.code, Reading(scaled_value(raw, rt.code), row["captured_at"]))
                )
        return tuple(
            MeterReading(
                DeviceRef(serial),
                tuple(
                    IntervalBlock(reading_type_by_id(type_id).code, tuple(items))
                    for type_id, items in sorted(blocks.get(ids[serial], {}).items())
                ),
                tuple(register_values.get(ids[serial], [])),
            )
            for serial in serials
        )

    def _meter_ids(
        self, serials: Sequence[str], conn: Connection | None = None
    ) -> list[tuple[int, str]]:
        with self._reading(conn) as reading:
            rows = reading.execute(
                sa.select(t.meters.c.id, t.meters.c.serial_number).where(
                    t.meters.c.serial_number.in_(list(serials))
                )
            ).all()
        return [(int(meter_id), str(serial)) for meter_id, serial in rows]

    def _live_read(self, spec: ServiceSpec, header: Header, query: GetMeterReadings) -> Message:
        if not header.reply_address:
            return self._failed(
                spec, header, _error("1.5", None, "Header/ReplyAddress is required")
            )
        targets = [TargetRef(meter=d.serial) for d in query.end_devices]
        targets += [TargetRef(pod=p.name_of("POD") or p.label) for p in query.usage_points]
        labels = [d.label for d in query.end_devices] + [p.label for p in query.usage_points]
        kinds = ["EndDevice"] * len(query.end_devices) + ["UsagePoint"] * len(query.usage_points)
        payload: dict[str, Any] = {
            "cim_message_id": header.message_id,
            "reply_address": header.reply_address,
            "reading_types": list(query.reading_types),
            "periods": [
                [s.isoformat() if s else None, e.isoformat() if e else None]
                for s, e in query.periods
            ],
        }
        result = self.queue.submit(
            ActivityType.READING,
            targets,
            origin=Origin.LEGACY,
            external_id=header.correlation_id or header.message_id,
            payload=payload,
        )
        errors = [self._rejection(r, labels, kinds) for r in result.rejected]
        if result.accepted == 0:
            return Message(
                self._reply_header(spec, header),
                reply=Reply(Result.FAILED, tuple(errors)),
                get_pattern=True,
            )
        ack = _error("0.3", None, f"{result.accepted} live read(s) queued")
        return Message(
            self._reply_header(spec, header),
            reply=Reply(Result.PARTIAL if errors else Result.OK, (ack, *errors)),
            get_pattern=True,
        )

    def _known_meters(
        self, meters: Sequence[DeviceRef], points: Sequence[DeviceRef]
    ) -> tuple[list[str], list[ReplyError]]:
        """Serials of the known meters among ``meters`` and of the meters linked to
        ``points``, in request order, plus one error per unknown device."""
        m, sp, link = t.meters.c, t.service_points.c, t.meter_links.c
        serials = [d.serial or "" for d in meters]
        pods = [p.name_of("POD") or p.label for p in points]
        with self.engine.connect() as conn:
            found = set(
                conn.execute(sa.select(m.serial_number).where(m.serial_number.in_(serials)))
                .scalars()
                .all()
            )
            linked = dict(
                conn.execute(
                    sa.select(sp.name, m.serial_number)
                    .select_from(t.service_points)
                    .join(
                        t.meter_links,
                        sa.and_(link.service_point_id == sp.id, link.valid_to.is_(None)),
                    )
                    .join(t.meters, m.id == link.meter_id)
                    .where(sp.name.in_(pods))
                ).all()
            )
        known: list[str] = []
        errors: list[ReplyError] = []
        for device, serial in zip(meters, serials, strict=True):
            if serial in found:
                known.append(serial)
            else:
                errors.append(
                    _device_error(
                        "2.4", device.label, f"meter {serial!r} is not registered", "EndDevice"
                    )
                )
        for point, pod in zip(points, pods, strict=True):
            if pod in linked:
                known.append(linked[pod])
            else:
                errors.append(
                    _device_error(
                        "2.12",
                        point.label,
                        f"usage point {pod!r} has no meter linked",
                        "UsagePoint",
                    )
                )
        return known, errors

    # -- GetEndDeviceEvents ---------------------------------------------------------------

    def _end_device_events(self, spec: ServiceSpec, message: Message) -> Message:
        header = message.header
        query = message.request.query if message.request else None
        if not isinstance(query, GetEndDeviceEvents):
            return self._failed(spec, header, _error("1.6", None, "GetEndDeviceEvents"))
        if not query.meters and not query.usage_points:
            return self._failed(spec, header, _error("1.6", None, "Meter or UsagePoint"))
        known, errors = self._known_meters(query.meters, query.usage_points)
        try:
            events = self._stored_events(known, query.periods)
        except MessageError as exc:
            return self._failed(spec, header, _error(exc.code, exc.reason, exc.details))
        result = Result.OK if not errors else (Result.PARTIAL if known else Result.FAILED)
        return Message(
            self._reply_header(spec, header),
            reply=Reply(result, tuple(errors)),
            payload=EndDeviceEvents(events) if known else None,
            get_pattern=True,
        )

    def _stored_events(
        self,
        serials: Sequence[str],
        periods: Sequence[tuple[datetime | None, datetime | None]],
    ) -> tuple[EndDeviceEvent, ...]:
        """The meters' stored events opened in the periods (open ends allowed), oldest
        first; the event's mRID is its outbox MessageID, so Legacy can match what it got
        from the queue."""
        ids = dict(self._meter_ids(serials))
        ev = t.events.c
        spans = [
            sa.and_(
                ev.opened_at >= start if start else sa.true(),
                ev.opened_at <= end if end else sa.true(),
            )
            for start, end in periods
        ]
        query = (
            sa.select(
                ev.message_id,
                ev.meter_id,
                ev.code,
                ev.acronym,
                ev.description,
                ev.severity,
                ev.opened_at,
                ev.closed_at,
            )
            .where(ev.meter_id.in_(list(ids)), sa.or_(*spans) if spans else sa.true())
            .order_by(ev.opened_at, ev.id)
            .limit(MAX_EVENTS + 1)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        if len(rows) > MAX_EVENTS:
            raise MessageError("3.1", "Too many items in request", f"more than {MAX_EVENTS} events")
        return tuple(
            EndDeviceEvent(
                event_type=row["code"],
                created=row["opened_at"],
                mrid=row["message_id"],
                reason=row["description"],
                severity=str(row["severity"]),
                asset=DeviceRef(ids[row["meter_id"]]),
                details=(("acronym", row["acronym"]),)
                + ((("closedDateTime", row["closed_at"].isoformat()),) if row["closed_at"] else ()),
            )
            for row in rows
        )

    # -- ExecuteMeterConfig ---------------------------------------------------------------

    def _meter_config(self, spec: ServiceSpec, message: Message) -> Message:
        """Meter master data, applied at once (no device is involved): create registers new
        meters, change updates their meter type, delete removes a meter without history.
        Rows go through the provisioning template 2 validation and upsert, so a meter made
        here is the same as one imported from a file; its keys and route come with the
        vendor's template 2 file."""
        header = message.header
        payload = message.payload
        if not isinstance(payload, MeterConfig) or not payload.meters:
            return self._failed(spec, header, _error("1.7", None, "MeterConfig/Meter"))
        if len(payload.meters) > MAX_DEVICES:
            return self._failed(spec, header, _error("3.1", None, f"{len(payload.meters)}"))
        serials = [item.serial or "" for item in payload.meters]
        with self.engine.connect() as conn:
            existing = set(
                conn.execute(
                    sa.select(t.meters.c.serial_number).where(t.meters.c.serial_number.in_(serials))
                ).scalars()
            )
        errors: list[ReplyError] = []
        rows: list[dict[str, Any]] = []
        done = 0
        for index, (item, serial) in enumerate(zip(payload.meters, serials, strict=True)):
            label = item.mrid or serial
            problem = self._meter_config_problem(header.verb, serial, existing)
            if problem is not None:
                errors.append(_device_error(problem[0], label, problem[1], "EndDevice"))
                continue
            if header.verb is Verb.DELETE:
                if self._delete_meter(serial):
                    done += 1
                else:
                    errors.append(
                        _device_error(
                            "6.1",
                            label,
                            f"meter {serial} has history (links, orders, readings): "
                            "decommission it instead",
                            "EndDevice",
                        )
                    )
                continue
            if header.verb is Verb.CHANGE and item.meter_type is None:
                done += 1
                continue
            values = {"serialnumber": serial, "metertype": item.meter_type or ""}
            checked = validate_row(TEMPLATE_BY_KIND[TemplateKind.METER], index + 1, values, None)
            if not isinstance(checked.record, Meter):
                details = "; ".join(f"{i.column}: {i.reason}" for i in checked.issues)
                errors.append(_device_error("2.4", label, details, "EndDevice"))
                continue
            rows.append({"serial_number": serial, "meter_type": checked.record.meter_type.value})
            existing.add(serial)
            done += 1
        if rows:
            with self.engine.begin() as conn:
                upsert(conn, t.meters, rows, "serial_number", ["meter_type"])
        result = Result.FAILED if done == 0 else (Result.PARTIAL if errors else Result.OK)
        return Message(self._reply_header(spec, header), reply=Reply(result, tuple(errors)))

    @staticmethod
    def _meter_config_problem(
        verb: Verb, serial: str, existing: set[str]
    ) -> tuple[str, str] | None:
        if not serial:
            return "1.7", "Meter needs a serialNumber or an mRID"
        if verb is Verb.CREATE and serial in existing:
            return "2.4", f"meter {serial} is already registered (use ChangeMeterConfig)"
        if verb is not Verb.CREATE and serial not in existing:
            return "2.4", f"meter {serial} is not registered"
        return None

    def _delete_meter(self, serial: str) -> bool:
        """Delete one meter in its own transaction; False when rows still refer to it (the
        foreign keys refuse; events, which hold no foreign key, are asked here)."""
        m = t.meters.c
        meter_id = sa.select(m.id).where(m.serial_number == serial).scalar_subquery()
        try:
            with self.engine.begin() as conn:
                if conn.execute(
                    sa.select(sa.exists().where(t.events.c.meter_id == meter_id))
                ).scalar_one():
                    return False
                conn.execute(t.meters.delete().where(m.serial_number == serial))
        except IntegrityError:
            return False
        return True
