"""Hardened XML parsing for messages from outside, and optional schema validation.

Legacy is a trusted peer, but its input still crosses a network boundary: entities are never
expanded, nothing is fetched, any DTD is refused, the body is bounded before the parser sees
it and the tree is bounded after. Every failure is a ``MessageError`` carrying an IEC 61968
reply code (``1.8``: the request does not validate against the schema) so the SOAP layer can
answer with a FAILED reply instead of a stack trace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lxml import etree

__all__ = [
    "SCHEMA_DIR_ENV",
    "Limits",
    "MessageError",
    "SchemaSet",
    "format_bool",
    "format_datetime",
    "parse_bool",
    "parse_datetime",
    "parse_xml",
    "serialize",
]

SCHEMA_DIR_ENV = "SMMC_CIM_SCHEMA_DIR"
FORMAT_ERROR = "1.8"


class MessageError(Exception):
    """A message we cannot accept, with the reply code and a reason safe to send back."""

    def __init__(self, code: str, reason: str, details: str | None = None) -> None:
        super().__init__(f"{code} {reason}" + (f": {details}" if details else ""))
        self.code = code
        self.reason = reason
        self.details = details


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one inbound document; the defaults fit a batch of a few thousand controls."""

    max_bytes: int = 4 * 1024 * 1024
    max_depth: int = 64
    max_elements: int = 200_000


DEFAULT_LIMITS = Limits()


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_xml(data: bytes, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """The root element of ``data``, or ``MessageError`` 1.8 naming what was wrong."""
    if len(data) > limits.max_bytes:
        raise MessageError(
            FORMAT_ERROR, "Message too large", f"{len(data)} bytes, limit {limits.max_bytes}"
        )
    if not data.strip():
        raise MessageError(FORMAT_ERROR, "Empty message")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise MessageError(FORMAT_ERROR, "Malformed XML", str(exc)) from None
    except ValueError as exc:
        raise MessageError(FORMAT_ERROR, "Malformed XML", str(exc)) from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise MessageError(FORMAT_ERROR, "Document type declarations are not accepted")
    _check_tree(root, limits)
    return root


def _check_tree(root: etree._Element, limits: Limits) -> None:
    count = 0
    # Iterative walk: a recursive one would itself be the depth problem we guard against.
    stack: list[tuple[etree._Element, int]] = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        count += 1
        if count > limits.max_elements:
            raise MessageError(
                FORMAT_ERROR, "Too many elements", f"more than {limits.max_elements}"
            )
        if depth > limits.max_depth:
            raise MessageError(FORMAT_ERROR, "Nesting too deep", f"deeper than {limits.max_depth}")
        if isinstance(element, etree._Entity):
            raise MessageError(FORMAT_ERROR, "Entity references are not accepted")
        stack.extend((child, depth + 1) for child in element)


def serialize(element: etree._Element) -> bytes:
    """UTF-8 bytes with an XML declaration, the form we put on the wire."""
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")


class SchemaSet:
    """Operator-supplied XSDs, keyed by the target namespace of each ``*Message.xsd``.

    The reference schemas carry no open licence, so they are not shipped: an operator who has
    them points ``SMMC_CIM_SCHEMA_DIR`` at a directory and every message is checked against
    the schema of its wrapper namespace (messages in a namespace without a schema pass).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._schemas: dict[str, etree.XMLSchema] = {}
        for path in sorted(directory.rglob("*Message.xsd")):
            namespace = _target_namespace(path)
            if namespace is None or namespace in self._schemas:
                continue
            parser = etree.XMLParser(no_network=True, resolve_entities=False)
            try:
                self._schemas[namespace] = etree.XMLSchema(etree.parse(str(path), parser))
            except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
                raise ValueError(f"{path}: not a usable schema: {exc}") from exc

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SchemaSet | None:
        env = os.environ if environ is None else environ
        value = env.get(SCHEMA_DIR_ENV)
        return cls(Path(value)) if value else None

    @property
    def namespaces(self) -> frozenset[str]:
        return frozenset(self._schemas)

    def errors(self, element: etree._Element) -> list[str]:
        """Schema errors of ``element`` (empty when valid or when no schema covers it)."""
        namespace = etree.QName(element).namespace or ""
        schema = self._schemas.get(namespace)
        if schema is None:
            return []
        if schema.validate(etree.ElementTree(element)):
            return []
        log: Any = schema.error_log
        return [f"line {e.line}: {e.message}" for e in log]

    def check(self, element: etree._Element) -> None:
        """Raise ``MessageError`` 1.8 listing the first schema errors of ``element``."""
        problems = self.errors(element)
        if problems:
            raise MessageError(FORMAT_ERROR, "Message does not validate", "; ".join(problems[:5]))


def _target_namespace(path: Path) -> str | None:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    namespace = etree.parse(str(path), parser).getroot().get("targetNamespace")
    return str(namespace) if namespace else None


def parse_datetime(text: str, where: str) -> datetime:
    """An ``xs:dateTime`` with its UTC offset; a time without offset is refused (1.8) rather
    than guessed, because a disconnect window in the wrong zone is worse than a rejection."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MessageError(FORMAT_ERROR, "Invalid dateTime", f"{where}: {text!r}") from None
    if value.tzinfo is None:
        raise MessageError(FORMAT_ERROR, "dateTime without UTC offset", f"{where}: {text!r}")
    return value


def format_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("datetimes on the wire carry a UTC offset")
    return value.isoformat()


def parse_bool(text: str, where: str) -> bool:
    value = text.strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise MessageError(FORMAT_ERROR, "Invalid boolean", f"{where}: {text!r}")


def format_bool(value: bool) -> str:
    return "true" if value else "false"
