"""Hostile XML: external entities, entity bombs, oversize and deep documents, wrong
namespaces and garbage all end as a typed MessageError with code 1.8 (or a more precise
envelope code), quickly, without touching files or the network."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from smmc.integration.messages import Message
from smmc.integration.xml import Limits, MessageError, SchemaSet, parse_xml

SAMPLES = Path(__file__).parent / "samples"


DEFAULT = Limits()


def _error(data: bytes, limits: Limits = DEFAULT) -> MessageError:
    with pytest.raises(MessageError) as caught:
        parse_xml(data, limits)
    return caught.value


def test_external_file_entity_is_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    data = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'
    ).encode()
    error = _error(data)
    assert error.code == "1.8"
    assert "TOP-SECRET" not in str(error)


def test_external_network_entity_is_never_fetched() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    connections: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            connections.append(server.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    data = (f'<!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]><r>&x;</r>').encode()
    try:
        assert _error(data).code == "1.8"
        thread.join()
    finally:
        server.close()
    assert connections == []


def test_parameter_entity_dtd_fetch_is_refused() -> None:
    data = b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]><r/>'
    assert _error(data).code == "1.8"


def test_billion_laughs_is_refused_quickly() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    data = f"<!DOCTYPE r [{''.join(entities)}]><r>&lol9;</r>".encode()
    started = time.monotonic()
    assert _error(data).code == "1.8"
    assert time.monotonic() - started < 2


def test_quadratic_blowup_is_refused_quickly() -> None:
    big = "A" * 100_000
    data = f'<!DOCTYPE r [<!ENTITY a "{big}">]><r>{"&a;" * 30_000}</r>'.encode()
    assert len(data) < Limits().max_bytes
    started = time.monotonic()
    assert _error(data).code == "1.8"
    assert time.monotonic() - started < 2


def test_oversize_body_is_refused_before_parsing() -> None:
    data = b"<r>" + b"x" * 2000 + b"</r>"
    error = _error(data, Limits(max_bytes=1024))
    assert error.code == "1.8"
    assert error.reason == "Message too large"
    assert parse_xml(data, Limits(max_bytes=4096)).tag == "r"


def test_deep_nesting_is_refused() -> None:
    data = b"<a>" * 100 + b"</a>" * 100
    error = _error(data, Limits(max_depth=64))
    assert error.reason == "Nesting too deep"
    assert parse_xml(data, Limits(max_depth=100)) is not None


def test_very_deep_nesting_is_refused_by_the_parser_too() -> None:
    data = b"<a>" * 100_000 + b"</a>" * 100_000
    assert _error(data).code == "1.8"


def test_element_count_is_bounded() -> None:
    data = b"<r>" + b"<i/>" * 200 + b"</r>"
    assert _error(data, Limits(max_elements=100)).reason == "Too many elements"
    assert len(parse_xml(data, Limits(max_elements=201))) == 200


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"not xml at all",
        b"<r>",
        b"<a></b>",
        b"\xff\xfe\x00garbage",
        b"<r>&undefined;</r>",
    ],
)
def test_garbage_is_a_format_error(data: bytes) -> None:
    assert _error(data).code == "1.8"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_escape_as_another_exception(data: bytes) -> None:
    codes: list[str] = []
    root = None
    try:
        root = parse_xml(data)
    except MessageError as exc:
        codes.append(exc.code)
    assert codes in ([], ["1.8"])
    if root is not None:
        with contextlib.suppress(MessageError):
            Message.from_xml(root)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_sample_never_escapes_as_another_exception(data: st.DataObject) -> None:
    original = (SAMPLES / "01_CreateEndDeviceControls_remote_disconnect.xml").read_bytes()
    cut = data.draw(st.integers(0, len(original) - 1))
    junk = data.draw(st.binary(max_size=8))
    mutated = original[:cut] + junk + original[cut + len(junk) :]
    with contextlib.suppress(MessageError):
        Message.from_xml(parse_xml(mutated))


def _sample_text(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def test_pre_fdis_envelope_namespace_is_refused() -> None:
    text = _sample_text("01_CreateEndDeviceControls_remote_disconnect.xml").replace(
        "http://iec.ch/TC57/2011/schema/message", "http://www.iec.ch/TC57/2011/schema/message"
    )
    with pytest.raises(MessageError) as caught:
        Message.from_xml(parse_xml(text.encode()))
    assert caught.value.code == "1.8"
    assert "wrong namespace" in caught.value.reason


def test_2017_wrapper_namespace_is_refused() -> None:
    text = _sample_text("01_CreateEndDeviceControls_remote_disconnect.xml").replace(
        "http://iec.ch/TC57/2011/EndDeviceControlsMessage",
        "http://iec.ch/TC57/2017/EndDeviceControlsMessage",
    )
    with pytest.raises(MessageError) as caught:
        Message.from_xml(parse_xml(text.encode()))
    assert caught.value.code == "1.8"


def test_payload_in_a_foreign_namespace_is_refused() -> None:
    text = (
        _sample_text("01_CreateEndDeviceControls_remote_disconnect.xml")
        .replace(
            'xmlns:m="http://iec.ch/TC57/2011/EndDeviceControls#"',
            'xmlns:m="http://iec.ch/TC57/2011/EndDeviceControls#" xmlns:x="urn:other"',
        )
        .replace("<m:reason>CORTE por deuda</m:reason>", "<x:reason>CORTE por deuda</x:reason>")
    )
    with pytest.raises(MessageError) as caught:
        Message.from_xml(parse_xml(text.encode()))
    assert caught.value.code == "1.8"


def test_runtime_schema_set_refuses_an_invalid_message(shared_dir: Path) -> None:
    schemas = SchemaSet(shared_dir / "cim" / "xsd" / "connexo")
    good = parse_xml((SAMPLES / "01_CreateEndDeviceControls_remote_disconnect.xml").read_bytes())
    schemas.check(good)
    bad = etree.fromstring(etree.tostring(good))
    header = bad[0]
    header.insert(0, etree.Element("{http://iec.ch/TC57/2011/schema/message}Bogus"))
    with pytest.raises(MessageError) as caught:
        schemas.check(bad)
    assert caught.value.code == "1.8"
    assert "Bogus" in (caught.value.details or "")
