"""IEC 61968-9 payload profiles (2011 namespaces), the subset the use cases need.

EndDeviceControls (disconnect/connect/sync orders in), EndDeviceEvents (outcomes and alarms
out), MeterReadings (readings out), GetMeterReadings and GetEndDeviceEvents (queries in) and
MeterConfig (meter master data in). Elements are written in the order the XSD sequences
require; on input, elements of the profile that we do not use are skipped, while an element
in a foreign namespace is refused (1.8): it means the sender speaks another profile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from lxml import etree

from smmc.integration.xml import FORMAT_ERROR, MessageError, format_datetime, parse_datetime

if TYPE_CHECKING:
    from smmc.integration.messages import Body

__all__ = [
    "EDC_NS",
    "EDE_NS",
    "GET_EDE_NS",
    "GET_MR_NS",
    "MC_NS",
    "MR_NS",
    "DeviceRef",
    "EndDeviceControl",
    "EndDeviceControls",
    "EndDeviceEvent",
    "EndDeviceEvents",
    "GetEndDeviceEvents",
    "GetMeterReadings",
    "IntervalBlock",
    "MeterConfig",
    "MeterConfigItem",
    "MeterReading",
    "MeterReadings",
    "Name",
    "Reading",
    "decode_body",
]

EDC_NS = "http://iec.ch/TC57/2011/EndDeviceControls#"
EDE_NS = "http://iec.ch/TC57/2011/EndDeviceEvents#"
MR_NS = "http://iec.ch/TC57/2011/MeterReadings#"
GET_MR_NS = "http://iec.ch/TC57/2011/GetMeterReadings#"
GET_EDE_NS = "http://iec.ch/TC57/2011/GetEndDeviceEvents#"
MC_NS = "http://iec.ch/TC57/2011/MeterConfig#"

SERIAL_NAME_TYPE = "SerialNumber"


def _sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        element.text = text
    return element


def _opt(parent: etree._Element, ns: str, name: str, text: str | None) -> None:
    if text is not None:
        _sub(parent, ns, name, text)


def _fields(element: etree._Element, ns: str) -> list[tuple[str, etree._Element]]:
    """(local name, child) of each element child, refusing children outside ``ns``."""
    found = []
    for child in element:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        if qname.namespace != ns:
            raise MessageError(
                FORMAT_ERROR,
                "Element in the wrong namespace",
                f"{{{qname.namespace}}}{qname.localname} inside {etree.QName(element).localname}",
            )
        found.append((qname.localname, child))
    return found


def _text(element: etree._Element) -> str:
    return (element.text or "").strip()


def _ref(element: etree._Element, where: str) -> str:
    value = element.get("ref")
    if not value:
        raise MessageError("1.7", "Mandatory Payload elements missing", f"{where}/@ref")
    return value


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    name_type: str | None = None

    def write(self, parent: etree._Element, ns: str, *, typed: bool = True) -> None:
        """``typed=False`` for profiles whose Name has no NameType (GetEndDeviceEvents)."""
        element = _sub(parent, ns, "Names")
        _sub(element, ns, "name", self.name)
        if self.name_type is not None and typed:
            name_type = _sub(element, ns, "NameType")
            _sub(name_type, ns, "name", self.name_type)

    @classmethod
    def read(cls, element: etree._Element, ns: str) -> Name:
        name: str | None = None
        name_type: str | None = None
        for local, child in _fields(element, ns):
            if local == "name":
                name = _text(child)
            elif local == "NameType":
                name_type = next((_text(c) for n, c in _fields(child, ns) if n == "name"), None)
        if name is None:
            raise MessageError("1.7", "Mandatory Payload elements missing", "Names/name")
        return cls(name, name_type)


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """A meter, usage point or asset: its mRID and/or names (``SerialNumber``, POD…)."""

    mrid: str | None = None
    names: tuple[Name, ...] = ()

    def name_of(self, kind: str) -> str | None:
        return next((n.name for n in self.names if n.name_type == kind), None)

    @property
    def serial(self) -> str | None:
        """The serial number: a ``SerialNumber`` name when given, else the mRID."""
        return self.name_of(SERIAL_NAME_TYPE) or self.mrid

    @property
    def label(self) -> str:
        return self.mrid or (self.names[0].name if self.names else "")

    def write(
        self, parent: etree._Element, ns: str, tag: str, *, typed: bool = True
    ) -> etree._Element:
        element = _sub(parent, ns, tag)
        _opt(element, ns, "mRID", self.mrid)
        for name in self.names:
            name.write(element, ns, typed=typed)
        return element

    @classmethod
    def read(cls, element: etree._Element, ns: str) -> DeviceRef:
        mrid: str | None = None
        names: list[Name] = []
        for local, child in _fields(element, ns):
            if local == "mRID":
                mrid = _text(child) or None
            elif local == "Names":
                names.append(Name.read(child, ns))
        return cls(mrid, tuple(names))


def _interval(parent: etree._Element, ns: str, tag: str, span: tuple[datetime | None, ...]) -> None:
    element = _sub(parent, ns, tag)
    end, start = span[1], span[0]
    _opt(element, ns, "end", format_datetime(end) if end else None)
    _opt(element, ns, "start", format_datetime(start) if start else None)


def _read_interval(element: etree._Element, ns: str) -> tuple[datetime | None, datetime | None]:
    start: datetime | None = None
    end: datetime | None = None
    for local, child in _fields(element, ns):
        if local == "start":
            start = parse_datetime(_text(child), "interval/start")
        elif local == "end":
            end = parse_datetime(_text(child), "interval/end")
    return start, end


# -- EndDeviceControls ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndDeviceControl:
    control_type: str
    mrid: str | None = None
    issuer_id: str | None = None
    issuer_tracking_id: str | None = None
    reason: str | None = None
    end_devices: tuple[DeviceRef, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    usage_points: tuple[DeviceRef, ...] = ()

    def write(self, parent: etree._Element) -> None:
        ns = EDC_NS
        element = _sub(parent, ns, "EndDeviceControl")
        _opt(element, ns, "mRID", self.mrid)
        _opt(element, ns, "issuerID", self.issuer_id)
        _opt(element, ns, "issuerTrackingID", self.issuer_tracking_id)
        _opt(element, ns, "reason", self.reason)
        _sub(element, ns, "EndDeviceControlType").set("ref", self.control_type)
        for device in self.end_devices:
            device.write(element, ns, "EndDevices")
        if self.start is not None or self.end is not None:
            timing = _sub(element, ns, "primaryDeviceTiming")
            _interval(timing, ns, "interval", (self.start, self.end))
        for point in self.usage_points:
            point.write(element, ns, "UsagePoints")

    @classmethod
    def read(cls, element: etree._Element) -> EndDeviceControl:
        ns = EDC_NS
        values: dict[str, str] = {}
        control_type: str | None = None
        devices: list[DeviceRef] = []
        points: list[DeviceRef] = []
        start: datetime | None = None
        end: datetime | None = None
        for local, child in _fields(element, ns):
            if local in ("mRID", "issuerID", "issuerTrackingID", "reason"):
                values[local] = _text(child)
            elif local == "EndDeviceControlType":
                control_type = _ref(child, "EndDeviceControlType")
            elif local == "EndDevices":
                devices.append(DeviceRef.read(child, ns))
            elif local == "UsagePoints":
                points.append(DeviceRef.read(child, ns))
            elif local == "primaryDeviceTiming":
                for name, sub in _fields(child, ns):
                    if name == "interval":
                        start, end = _read_interval(sub, ns)
        if control_type is None:
            raise MessageError("1.7", "Mandatory Payload elements missing", "EndDeviceControlType")
        return cls(
            control_type=control_type,
            mrid=values.get("mRID") or None,
            issuer_id=values.get("issuerID") or None,
            issuer_tracking_id=values.get("issuerTrackingID") or None,
            reason=values.get("reason") or None,
            end_devices=tuple(devices),
            start=start,
            end=end,
            usage_points=tuple(points),
        )


@dataclass(frozen=True, slots=True)
class EndDeviceControls:
    controls: tuple[EndDeviceControl, ...]

    def to_xml(self) -> etree._Element:
        root = etree.Element(f"{{{EDC_NS}}}EndDeviceControls", nsmap={"m": EDC_NS})
        for control in self.controls:
            control.write(root)
        return root

    @classmethod
    def from_xml(cls, element: etree._Element) -> EndDeviceControls:
        controls = [
            EndDeviceControl.read(child)
            for local, child in _fields(element, EDC_NS)
            if local == "EndDeviceControl"
        ]
        return cls(tuple(controls))


# -- EndDeviceEvents ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndDeviceEvent:
    event_type: str
    created: datetime
    mrid: str | None = None
    issuer_id: str | None = None
    issuer_tracking_id: str | None = None
    reason: str | None = None
    severity: str | None = None
    asset: DeviceRef | None = None
    details: tuple[tuple[str, str | None], ...] = ()

    def write(self, parent: etree._Element, ns: str = EDE_NS) -> None:
        element = _sub(parent, ns, "EndDeviceEvent")
        _opt(element, ns, "mRID", self.mrid)
        _sub(element, ns, "createdDateTime", format_datetime(self.created))
        _opt(element, ns, "issuerID", self.issuer_id)
        _opt(element, ns, "issuerTrackingID", self.issuer_tracking_id)
        _opt(element, ns, "reason", self.reason)
        _opt(element, ns, "severity", self.severity)
        if self.asset is not None:
            self.asset.write(element, ns, "Assets")
        for name, value in self.details:
            detail = _sub(element, ns, "EndDeviceEventDetails")
            _sub(detail, ns, "name", name)
            _opt(detail, ns, "value", value)
        _sub(element, ns, "EndDeviceEventType").set("ref", self.event_type)

    @classmethod
    def read(cls, element: etree._Element, ns: str = EDE_NS) -> EndDeviceEvent:
        values: dict[str, str] = {}
        event_type: str | None = None
        created: datetime | None = None
        asset: DeviceRef | None = None
        details: list[tuple[str, str | None]] = []
        for local, child in _fields(element, ns):
            if local in ("mRID", "issuerID", "issuerTrackingID", "reason", "severity"):
                values[local] = _text(child)
            elif local == "createdDateTime":
                created = parse_datetime(_text(child), "EndDeviceEvent/createdDateTime")
            elif local == "Assets":
                asset = DeviceRef.read(child, ns)
            elif local == "EndDeviceEventDetails":
                pair = dict(_fields(child, ns))
                if "name" not in pair:
                    raise MessageError("1.7", "Mandatory Payload elements missing", "detail name")
                value = pair.get("value")
                details.append((_text(pair["name"]), None if value is None else _text(value)))
            elif local == "EndDeviceEventType":
                event_type = _ref(child, "EndDeviceEventType")
        if event_type is None or created is None:
            raise MessageError(
                "1.7",
                "Mandatory Payload elements missing",
                "EndDeviceEvent needs createdDateTime and EndDeviceEventType",
            )
        return cls(
            event_type=event_type,
            created=created,
            mrid=values.get("mRID") or None,
            issuer_id=values.get("issuerID") or None,
            issuer_tracking_id=values.get("issuerTrackingID") or None,
            reason=values.get("reason") or None,
            severity=values.get("severity") or None,
            asset=asset,
            details=tuple(details),
        )


@dataclass(frozen=True, slots=True)
class EndDeviceEvents:
    events: tuple[EndDeviceEvent, ...]

    def to_xml(self) -> etree._Element:
        root = etree.Element(f"{{{EDE_NS}}}EndDeviceEvents", nsmap={"m": EDE_NS})
        for event in self.events:
            event.write(root)
        return root

    @classmethod
    def from_xml(cls, element: etree._Element) -> EndDeviceEvents:
        events = [
            EndDeviceEvent.read(child)
            for local, child in _fields(element, EDE_NS)
            if local == "EndDeviceEvent"
        ]
        return cls(tuple(events))


# -- MeterReadings --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """One value: a register reading (``Readings``) or one interval of a profile."""

    value: str
    timestamp: datetime
    qualities: tuple[str, ...] = ()

    def write(self, parent: etree._Element, tag: str, reading_type: str | None) -> None:
        ns = MR_NS
        element = _sub(parent, ns, tag)
        _sub(element, ns, "timeStamp", format_datetime(self.timestamp))
        _sub(element, ns, "value", self.value)
        for quality in self.qualities:
            _sub(_sub(element, ns, "ReadingQualities"), ns, "ReadingQualityType").set(
                "ref", quality
            )
        if reading_type is not None:
            _sub(element, ns, "ReadingType").set("ref", reading_type)

    @classmethod
    def read(cls, element: etree._Element) -> tuple[Reading, str | None]:
        value: str | None = None
        stamp: datetime | None = None
        qualities: list[str] = []
        reading_type: str | None = None
        for local, child in _fields(element, MR_NS):
            if local == "value":
                value = _text(child)
            elif local == "timeStamp":
                stamp = parse_datetime(_text(child), "Reading/timeStamp")
            elif local == "ReadingQualities":
                for name, sub in _fields(child, MR_NS):
                    if name == "ReadingQualityType":
                        qualities.append(_ref(sub, "ReadingQualityType"))
            elif local == "ReadingType":
                reading_type = _ref(child, "ReadingType")
        if value is None or stamp is None:
            raise MessageError("1.7", "Mandatory Payload elements missing", "value, timeStamp")
        return cls(value, stamp, tuple(qualities)), reading_type


@dataclass(frozen=True, slots=True)
class IntervalBlock:
    reading_type: str
    readings: tuple[Reading, ...]


@dataclass(frozen=True, slots=True)
class MeterReading:
    meter: DeviceRef
    interval_blocks: tuple[IntervalBlock, ...] = ()
    readings: tuple[tuple[str, Reading], ...] = ()
    usage_point: DeviceRef | None = None

    def write(self, parent: etree._Element) -> None:
        ns = MR_NS
        element = _sub(parent, ns, "MeterReading")
        for block in self.interval_blocks:
            block_element = _sub(element, ns, "IntervalBlocks")
            for reading in block.readings:
                reading.write(block_element, "IntervalReadings", None)
            _sub(block_element, ns, "ReadingType").set("ref", block.reading_type)
        self.meter.write(element, ns, "Meter")
        for reading_type, reading in self.readings:
            reading.write(element, "Readings", reading_type)
        if self.usage_point is not None:
            self.usage_point.write(element, ns, "UsagePoint")

    @classmethod
    def read(cls, element: etree._Element) -> MeterReading:
        ns = MR_NS
        meter = DeviceRef()
        point: DeviceRef | None = None
        blocks: list[IntervalBlock] = []
        readings: list[tuple[str, Reading]] = []
        for local, child in _fields(element, ns):
            if local == "Meter":
                meter = DeviceRef.read(child, ns)
            elif local == "UsagePoint":
                point = DeviceRef.read(child, ns)
            elif local == "Readings":
                reading, reading_type = Reading.read(child)
                if reading_type is None:
                    raise MessageError("1.7", "Mandatory Payload elements missing", "ReadingType")
                readings.append((reading_type, reading))
            elif local == "IntervalBlocks":
                blocks.append(_read_block(child))
        return cls(meter, tuple(blocks), tuple(readings), point)


def _read_block(element: etree._Element) -> IntervalBlock:
    reading_type: str | None = None
    readings: list[Reading] = []
    for local, child in _fields(element, MR_NS):
        if local == "IntervalReadings":
            readings.append(Reading.read(child)[0])
        elif local == "ReadingType":
            reading_type = _ref(child, "IntervalBlocks/ReadingType")
    if reading_type is None:
        raise MessageError(
            "1.7", "Mandatory Payload elements missing", "IntervalBlocks/ReadingType"
        )
    return IntervalBlock(reading_type, tuple(readings))


@dataclass(frozen=True, slots=True)
class MeterReadings:
    meter_readings: tuple[MeterReading, ...]

    def to_xml(self) -> etree._Element:
        root = etree.Element(f"{{{MR_NS}}}MeterReadings", nsmap={"m": MR_NS})
        for item in self.meter_readings:
            item.write(root)
        return root

    @classmethod
    def from_xml(cls, element: etree._Element) -> MeterReadings:
        items = [
            MeterReading.read(child)
            for local, child in _fields(element, MR_NS)
            if local == "MeterReading"
        ]
        return cls(tuple(items))


# -- Get queries ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetMeterReadings:
    end_devices: tuple[DeviceRef, ...] = ()
    usage_points: tuple[DeviceRef, ...] = ()
    reading_types: tuple[str, ...] = ()
    periods: tuple[tuple[datetime | None, datetime | None], ...] = ()

    def to_xml(self) -> etree._Element:
        ns = GET_MR_NS
        root = etree.Element(f"{{{ns}}}GetMeterReadings", nsmap={"g": ns})
        for device in self.end_devices:
            device.write(root, ns, "EndDevice")
        for period in self.periods:
            reading = _sub(root, ns, "Reading")
            _interval(reading, ns, "timePeriod", period)
        for reading_type in self.reading_types:
            _sub(_sub(root, ns, "ReadingType"), ns, "mRID", reading_type)
        for point in self.usage_points:
            point.write(root, ns, "UsagePoint")
        return root

    @classmethod
    def from_xml(cls, element: etree._Element) -> GetMeterReadings:
        ns = GET_MR_NS
        devices: list[DeviceRef] = []
        points: list[DeviceRef] = []
        types: list[str] = []
        periods: list[tuple[datetime | None, datetime | None]] = []
        for local, child in _fields(element, ns):
            if local == "EndDevice":
                devices.append(DeviceRef.read(child, ns))
            elif local == "UsagePoint":
                points.append(DeviceRef.read(child, ns))
            elif local == "ReadingType":
                ref = DeviceRef.read(child, ns)
                if ref.mrid is None:
                    raise MessageError("2.6", "Invalid ReadingType(s)", "ReadingType without mRID")
                types.append(ref.mrid)
            elif local == "Reading":
                for name, sub in _fields(child, ns):
                    if name == "timePeriod":
                        periods.append(_read_interval(sub, ns))
        return cls(tuple(devices), tuple(points), tuple(types), tuple(periods))


@dataclass(frozen=True, slots=True)
class GetEndDeviceEvents:
    """Events of meters/usage points over periods. Its profile's Name has no NameType, so
    name types are not written."""

    meters: tuple[DeviceRef, ...] = ()
    periods: tuple[tuple[datetime | None, datetime | None], ...] = ()
    usage_points: tuple[DeviceRef, ...] = ()

    def to_xml(self) -> etree._Element:
        ns = GET_EDE_NS
        root = etree.Element(f"{{{ns}}}GetEndDeviceEvents", nsmap={"g": ns})
        for meter in self.meters:
            meter.write(root, ns, "Meter", typed=False)
        for period in self.periods:
            _interval(_sub(root, ns, "TimeSchedule"), ns, "scheduleInterval", period)
        for point in self.usage_points:
            point.write(root, ns, "UsagePoint", typed=False)
        return root

    @classmethod
    def from_xml(cls, element: etree._Element) -> GetEndDeviceEvents:
        ns = GET_EDE_NS
        meters: list[DeviceRef] = []
        points: list[DeviceRef] = []
        periods: list[tuple[datetime | None, datetime | None]] = []
        for local, child in _fields(element, ns):
            if local == "Meter":
                meters.append(DeviceRef.read(child, ns))
            elif local == "UsagePoint":
                points.append(DeviceRef.read(child, ns))
            elif local == "TimeSchedule":
                for name, sub in _fields(child, ns):
                    if name == "scheduleInterval":
                        periods.append(_read_interval(sub, ns))
        return cls(tuple(meters), tuple(periods), tuple(points))


# -- MeterConfig ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeterConfigItem:
    """One meter's master data as MeterConfig carries it: mRID, serial number, meter type
    (the model designation) and names."""

    mrid: str | None = None
    serial_number: str | None = None
    meter_type: str | None = None
    names: tuple[Name, ...] = ()

    @property
    def serial(self) -> str | None:
        return self.serial_number or self.mrid


@dataclass(frozen=True, slots=True)
class MeterConfig:
    meters: tuple[MeterConfigItem, ...]

    def to_xml(self) -> etree._Element:
        ns = MC_NS
        root = etree.Element(f"{{{ns}}}MeterConfig", nsmap={"m": ns})
        for item in self.meters:
            meter = _sub(root, ns, "Meter")
            _opt(meter, ns, "mRID", item.mrid)
            _opt(meter, ns, "serialNumber", item.serial_number)
            _opt(meter, ns, "type", item.meter_type)
            for name in item.names:
                name.write(meter, ns)
        return root

    @classmethod
    def from_xml(cls, element: etree._Element) -> MeterConfig:
        ns = MC_NS
        items = []
        for local, child in _fields_lenient(element, ns):
            if local != "Meter":
                continue
            values: dict[str, str] = {}
            names: list[Name] = []
            for name, sub in _fields_lenient(child, ns):
                if name in ("mRID", "serialNumber", "type"):
                    values[name] = _text(sub)
                elif name == "Names":
                    names.append(Name.read(sub, ns))
            items.append(
                MeterConfigItem(
                    values.get("mRID") or None,
                    values.get("serialNumber") or None,
                    values.get("type") or None,
                    tuple(names),
                )
            )
        return cls(tuple(items))


def _fields_lenient(element: etree._Element, ns: str) -> Iterable[tuple[str, etree._Element]]:
    """MeterConfig mixes vendor extensions (custom attributes, keys) from other namespaces
    into the profile: skip those instead of refusing the message."""
    for child in element:
        if isinstance(child.tag, str) and etree.QName(child).namespace == ns:
            yield etree.QName(child).localname, child


_DECODERS: dict[str, Callable[[etree._Element], Body]] = {
    f"{{{EDC_NS}}}EndDeviceControls": EndDeviceControls.from_xml,
    f"{{{EDE_NS}}}EndDeviceEvents": EndDeviceEvents.from_xml,
    f"{{{MR_NS}}}MeterReadings": MeterReadings.from_xml,
    f"{{{GET_MR_NS}}}GetMeterReadings": GetMeterReadings.from_xml,
    f"{{{GET_EDE_NS}}}GetEndDeviceEvents": GetEndDeviceEvents.from_xml,
    f"{{{MC_NS}}}MeterConfig": MeterConfig.from_xml,
}


def decode_body(element: etree._Element) -> Body:
    """The typed body for a profile we model, else a ``RawPayload`` kept verbatim."""
    from smmc.integration.messages import RawPayload

    decoder = _DECODERS.get(str(element.tag))
    if decoder is None:
        return RawPayload.of(element)
    return decoder(element)
