"""The IEC 61968-100 envelope in the 2011 namespaces: Header, Request, Reply, Payload.

Each part is a small immutable value with ``to_xml()``/``from_xml()``; elements are written in
the order ``Message.xsd`` fixes. The wrapper element lives in the noun's message namespace
(``http://iec.ch/TC57/2011/<Noun>Message``, or ``.../Get<Noun>Message`` for the get pattern);
the envelope parts are in ``http://iec.ch/TC57/2011/schema/message``. Payload bodies are
decoded by ``smmc.integration.payloads``; a body we do not model travels as ``RawPayload``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from lxml import etree

from smmc.integration.xml import (
    FORMAT_ERROR,
    MessageError,
    format_bool,
    format_datetime,
    parse_bool,
    parse_datetime,
)

__all__ = [
    "MSG_NS",
    "Body",
    "Header",
    "IdKind",
    "Level",
    "Message",
    "ObjectID",
    "Property",
    "RawPayload",
    "Reply",
    "ReplyError",
    "Request",
    "Result",
    "Verb",
    "message_namespace",
]

MSG_NS = "http://iec.ch/TC57/2011/schema/message"
_BASE = "http://iec.ch/TC57/2011/"
_WRAPPER_NS = re.compile(r"^http://iec\.ch/TC57/2011/(Get)?([A-Za-z]+)Message$")

MISSING_HEADER = "1.5"
INVALID_NOUN = "2.5"
INVALID_VERB = "2.9"


def message_namespace(noun: str, *, get: bool = False) -> str:
    return f"{_BASE}{'Get' if get else ''}{noun}Message"


class Verb(StrEnum):
    CREATE = "create"
    CHANGE = "change"
    CANCEL = "cancel"
    CLOSE = "close"
    DELETE = "delete"
    EXECUTE = "execute"
    GET = "get"
    REPLY = "reply"
    CREATED = "created"
    CHANGED = "changed"
    CANCELED = "canceled"
    CLOSED = "closed"
    DELETED = "deleted"
    EXECUTED = "executed"


class Result(StrEnum):
    OK = "OK"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"


class Level(StrEnum):
    INFORM = "INFORM"
    WARNING = "WARNING"
    FATAL = "FATAL"
    CATASTROPHIC = "CATASTROPHIC"


class IdKind(StrEnum):
    NAME = "name"
    UUID = "uuid"
    TRANSACTION = "transaction"
    OTHER = "other"


def _q(name: str) -> str:
    return f"{{{MSG_NS}}}{name}"


def _add(parent: etree._Element, name: str, text: str | None) -> None:
    if text is not None:
        etree.SubElement(parent, _q(name)).text = text


def _children(element: etree._Element) -> list[etree._Element]:
    """Element children only: comments and processing instructions are already stripped."""
    return [child for child in element if isinstance(child.tag, str)]


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _expect_msg(element: etree._Element, where: str) -> str:
    qname = etree.QName(element)
    if qname.namespace != MSG_NS:
        raise MessageError(
            FORMAT_ERROR,
            "Element in the wrong namespace",
            f"{where}: {{{qname.namespace}}}{qname.localname}",
        )
    return qname.localname


def _text(element: etree._Element) -> str:
    return element.text or ""


class Body(Protocol):
    """A payload (or Get query) body that knows how to write itself."""

    def to_xml(self) -> etree._Element: ...


@dataclass(frozen=True, slots=True)
class RawPayload:
    """A body we do not model, kept as canonical XML so it compares and re-emits exactly."""

    xml: bytes

    @classmethod
    def of(cls, element: etree._Element) -> RawPayload:
        """``element`` canonicalised; a body C14N refuses (a relative namespace URI, say)
        is a format error of the request, not a fault of the service."""
        try:
            return cls(etree.tostring(element, method="c14n"))
        except etree.C14NError as exc:
            raise MessageError(
                FORMAT_ERROR, "Payload cannot be canonicalised", f"{element.tag}: {exc}"
            ) from None

    def to_xml(self) -> etree._Element:
        return etree.fromstring(self.xml)


@dataclass(frozen=True, slots=True)
class Property:
    name: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectID:
    """``msg:ID``: an identifier with optional kind and object type (e.g. ``EndDevice``)."""

    value: str
    kind: IdKind | None = None
    object_type: str | None = None

    def to_xml(self, tag: str) -> etree._Element:
        element = etree.Element(tag)
        if self.kind is not None:
            element.set("kind", self.kind.value)
        if self.object_type is not None:
            element.set("objectType", self.object_type)
        element.text = self.value
        return element

    @classmethod
    def from_xml(cls, element: etree._Element) -> ObjectID:
        kind = element.get("kind")
        try:
            parsed_kind = IdKind(kind) if kind is not None else None
        except ValueError:
            raise MessageError(FORMAT_ERROR, "Invalid ID kind", repr(kind)) from None
        return cls(_text(element), parsed_kind, element.get("objectType"))


@dataclass(frozen=True, slots=True)
class Header:
    verb: Verb
    noun: str
    revision: str | None = None
    context: str | None = None
    timestamp: datetime | None = None
    source: str | None = None
    async_reply: bool | None = None
    reply_address: str | None = None
    ack_required: bool | None = None
    user_id: str | None = None
    organization: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    comment: str | None = None
    properties: tuple[Property, ...] = ()

    def to_xml(self, tag: str) -> etree._Element:
        header = etree.Element(tag)
        _add(header, "Verb", self.verb.value)
        _add(header, "Noun", self.noun)
        _add(header, "Revision", self.revision)
        _add(header, "Context", self.context)
        _add(header, "Timestamp", format_datetime(self.timestamp) if self.timestamp else None)
        _add(header, "Source", self.source)
        if self.async_reply is not None:
            _add(header, "AsyncReplyFlag", format_bool(self.async_reply))
        _add(header, "ReplyAddress", self.reply_address)
        if self.ack_required is not None:
            _add(header, "AckRequired", format_bool(self.ack_required))
        if self.user_id is not None:
            user = etree.SubElement(header, _q("User"))
            _add(user, "UserID", self.user_id)
            _add(user, "Organization", self.organization)
        _add(header, "MessageID", self.message_id)
        _add(header, "CorrelationID", self.correlation_id)
        _add(header, "Comment", self.comment)
        for prop in self.properties:
            element = etree.SubElement(header, _q("Property"))
            _add(element, "Name", prop.name)
            _add(element, "Value", prop.value)
        return header

    @classmethod
    def from_xml(cls, element: etree._Element) -> Header:
        values: dict[str, str] = {}
        properties: list[Property] = []
        user: tuple[str | None, str | None] = (None, None)
        for child in _children(element):
            name = _expect_msg(child, "Header")
            if name == "Property":
                properties.append(_property(child))
            elif name == "User":
                user = _user(child)
            elif name == "ReplayDetection":
                continue
            else:
                values[name] = _text(child).strip()
        verb_text = values.get("Verb")
        noun = values.get("Noun")
        if not verb_text or not noun:
            raise MessageError(MISSING_HEADER, "Mandatory Header elements missing", "Verb, Noun")
        try:
            verb = Verb(verb_text)
        except ValueError:
            raise MessageError(INVALID_VERB, "Invalid Verb", repr(verb_text)) from None
        stamp = values.get("Timestamp")
        flag = values.get("AsyncReplyFlag")
        ack = values.get("AckRequired")
        return cls(
            verb=verb,
            noun=noun,
            revision=values.get("Revision"),
            context=values.get("Context"),
            timestamp=parse_datetime(stamp, "Header/Timestamp") if stamp else None,
            source=values.get("Source"),
            async_reply=parse_bool(flag, "Header/AsyncReplyFlag") if flag else None,
            reply_address=values.get("ReplyAddress") or None,
            ack_required=parse_bool(ack, "Header/AckRequired") if ack else None,
            user_id=user[0],
            organization=user[1],
            message_id=values.get("MessageID") or None,
            correlation_id=values.get("CorrelationID") or None,
            comment=values.get("Comment"),
            properties=tuple(properties),
        )


def _property(element: etree._Element) -> Property:
    fields = {_expect_msg(c, "Property"): _text(c) for c in _children(element)}
    if "Name" not in fields:
        raise MessageError(MISSING_HEADER, "Mandatory Header elements missing", "Property/Name")
    return Property(fields["Name"], fields.get("Value"))


def _user(element: etree._Element) -> tuple[str | None, str | None]:
    fields = {_expect_msg(c, "User"): _text(c) for c in _children(element)}
    return fields.get("UserID"), fields.get("Organization")


@dataclass(frozen=True, slots=True)
class ReplyError:
    code: str
    level: Level | None = None
    reason: str | None = None
    details: str | None = None
    id: ObjectID | None = None

    def to_xml(self) -> etree._Element:
        element = etree.Element(_q("Error"))
        _add(element, "code", self.code)
        _add(element, "level", self.level.value if self.level else None)
        _add(element, "reason", self.reason)
        _add(element, "details", self.details)
        if self.id is not None:
            element.append(self.id.to_xml(_q("ID")))
        return element

    @classmethod
    def from_xml(cls, element: etree._Element) -> ReplyError:
        values: dict[str, str] = {}
        ident: ObjectID | None = None
        for child in _children(element):
            name = _expect_msg(child, "Error")
            if name == "ID":
                ident = ObjectID.from_xml(child)
            else:
                values[name] = _text(child)
        if "code" not in values:
            raise MessageError(FORMAT_ERROR, "Reply Error without code")
        level = values.get("level")
        try:
            parsed_level = Level(level) if level else None
        except ValueError:
            raise MessageError(FORMAT_ERROR, "Invalid Error level", repr(level)) from None
        return cls(values["code"], parsed_level, values.get("reason"), values.get("details"), ident)


@dataclass(frozen=True, slots=True)
class Reply:
    result: Result
    errors: tuple[ReplyError, ...] = ()
    ids: tuple[ObjectID, ...] = ()

    def to_xml(self, tag: str) -> etree._Element:
        element = etree.Element(tag)
        _add(element, "Result", self.result.value)
        for error in self.errors:
            element.append(error.to_xml())
        for ident in self.ids:
            element.append(ident.to_xml(_q("ID")))
        return element

    @classmethod
    def from_xml(cls, element: etree._Element) -> Reply:
        result: Result | None = None
        errors: list[ReplyError] = []
        ids: list[ObjectID] = []
        for child in _children(element):
            name = _expect_msg(child, "Reply")
            if name == "Result":
                try:
                    result = Result(_text(child).strip())
                except ValueError:
                    raise MessageError(FORMAT_ERROR, "Invalid Result", _text(child)) from None
            elif name == "Error":
                errors.append(ReplyError.from_xml(child))
            elif name == "ID":
                ids.append(ObjectID.from_xml(child))
        if result is None:
            raise MessageError(FORMAT_ERROR, "Reply without Result")
        return cls(result, tuple(errors), tuple(ids))


@dataclass(frozen=True, slots=True)
class Request:
    """Request parameters; ``query`` is the Get profile (e.g. ``GetMeterReadings``)."""

    start_time: datetime | None = None
    end_time: datetime | None = None
    options: tuple[Property, ...] = ()
    ids: tuple[str, ...] = ()
    query: Body | None = None

    def to_xml(self, tag: str, wrapper_ns: str) -> etree._Element:
        # In the Get<Noun>Message schemas Request's own children are in the wrapper namespace.
        ns = wrapper_ns if self.query is not None else MSG_NS
        element = etree.Element(tag)
        if self.start_time is not None:
            etree.SubElement(element, f"{{{ns}}}StartTime").text = format_datetime(self.start_time)
        if self.end_time is not None:
            etree.SubElement(element, f"{{{ns}}}EndTime").text = format_datetime(self.end_time)
        for option in self.options:
            item = etree.SubElement(element, f"{{{ns}}}Option")
            _add(item, "name", option.name)
            _add(item, "value", option.value)
        for ident in self.ids:
            etree.SubElement(element, f"{{{ns}}}ID").text = ident
        if self.query is not None:
            element.append(self.query.to_xml())
        return element

    @classmethod
    def from_xml(cls, element: etree._Element) -> Request:
        from smmc.integration.payloads import decode_body

        start: datetime | None = None
        end: datetime | None = None
        options: list[Property] = []
        ids: list[str] = []
        query: Body | None = None
        for child in _children(element):
            qname = etree.QName(child)
            if qname.namespace == MSG_NS or _WRAPPER_NS.match(qname.namespace or ""):
                name = qname.localname
                if name == "StartTime":
                    start = parse_datetime(_text(child), "Request/StartTime")
                elif name == "EndTime":
                    end = parse_datetime(_text(child), "Request/EndTime")
                elif name == "Option":
                    values = {_local(c): _text(c) for c in _children(child)}
                    if "name" not in values:
                        raise MessageError("1.6", "Mandatory Request elements missing", "Option")
                    options.append(Property(values["name"], values.get("value")))
                elif name == "ID":
                    ids.append(_text(child))
                else:
                    raise MessageError(FORMAT_ERROR, "Unexpected Request element", name)
            else:
                query = decode_body(child)
        return cls(start, end, tuple(options), tuple(ids), query)


_REQUEST_PREFIX = {
    Verb.CREATE: "Create",
    Verb.CHANGE: "Change",
    Verb.CANCEL: "Cancel",
    Verb.CLOSE: "Close",
    Verb.DELETE: "Delete",
    Verb.EXECUTE: "Execute",
    Verb.GET: "Get",
    Verb.CREATED: "Created",
    Verb.CHANGED: "Changed",
    Verb.CANCELED: "Canceled",
    Verb.CLOSED: "Closed",
    Verb.DELETED: "Deleted",
    Verb.EXECUTED: "Executed",
}


@dataclass(frozen=True, slots=True)
class Message:
    """One message: the wrapper element name follows from verb and noun
    (``create`` + ``EndDeviceControls`` → ``CreateEndDeviceControls``, ``reply`` →
    ``<Noun>ResponseMessage``). ``get_pattern`` puts it in the ``Get<Noun>Message``
    namespace, where a get request and its reply live."""

    header: Header
    request: Request | None = None
    reply: Reply | None = None
    payload: Body | None = None
    get_pattern: bool = False

    @property
    def element_name(self) -> str:
        if self.header.verb is Verb.REPLY:
            return f"{self.header.noun}ResponseMessage"
        return _REQUEST_PREFIX[self.header.verb] + self.header.noun

    @property
    def namespace(self) -> str:
        return message_namespace(self.header.noun, get=self.get_pattern)

    def to_xml(self) -> etree._Element:
        ns = self.namespace
        root = etree.Element(f"{{{ns}}}{self.element_name}", nsmap={"ns": ns, "msg": MSG_NS})
        root.append(self.header.to_xml(f"{{{ns}}}Header"))
        if self.request is not None:
            root.append(self.request.to_xml(f"{{{ns}}}Request", ns))
        if self.reply is not None:
            root.append(self.reply.to_xml(f"{{{ns}}}Reply"))
        if self.payload is not None:
            payload = etree.SubElement(root, f"{{{ns}}}Payload")
            payload.append(self.payload.to_xml())
        return root

    @classmethod
    def from_xml(cls, root: etree._Element) -> Message:
        """Parse a wrapper element; checks namespace, part order and verb/noun agreement."""
        from smmc.integration.payloads import decode_body

        qname = etree.QName(root)
        match = _WRAPPER_NS.match(qname.namespace or "")
        if match is None:
            raise MessageError(
                FORMAT_ERROR,
                "Not an IEC 61968-100 2011 message",
                f"root element {{{qname.namespace}}}{qname.localname}",
            )
        ns = qname.namespace
        parts = _children(root)
        order = ("Header", "Request", "Reply", "Payload")
        found: dict[str, etree._Element] = {}
        last = -1
        for part in parts:
            pq = etree.QName(part)
            if pq.namespace != ns or pq.localname not in order:
                raise MessageError(
                    FORMAT_ERROR,
                    "Unexpected element in message",
                    f"{{{pq.namespace}}}{pq.localname}",
                )
            position = order.index(pq.localname)
            if position <= last:
                raise MessageError(FORMAT_ERROR, "Message parts out of order", pq.localname)
            last = position
            found[pq.localname] = part
        if "Header" not in found:
            raise MessageError(MISSING_HEADER, "Mandatory Header elements missing", "Header")
        header = Header.from_xml(found["Header"])
        message = cls(
            header=header,
            request=Request.from_xml(found["Request"]) if "Request" in found else None,
            reply=Reply.from_xml(found["Reply"]) if "Reply" in found else None,
            payload=None,
            get_pattern=match.group(1) is not None,
        )
        if message.element_name != qname.localname:
            code = INVALID_NOUN if header.noun not in qname.localname else INVALID_VERB
            raise MessageError(
                code,
                "Header does not match the message",
                f"{header.verb.value} {header.noun} in {qname.localname}",
            )
        if match.group(2) != header.noun:
            raise MessageError(INVALID_NOUN, "Invalid Noun", f"{header.noun} in {ns}")
        if "Payload" in found:
            bodies = _children(found["Payload"])
            if len(bodies) != 1:
                raise MessageError("1.7", "Mandatory Payload elements missing", "one body")
            message = replace(message, payload=decode_body(bodies[0]))
        return message
