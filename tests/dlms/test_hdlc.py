"""HDLC framing: CRC, addresses, control field, stream decoder and the link connection."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smmc.dlms.errors import DecodeError, EncodeError, ProtocolError
from smmc.dlms.framing.hdlc import (
    LLC_REQUEST,
    ApduReceived,
    Connected,
    ConnectionRejected,
    Disconnected,
    FrameRejected,
    FrameType,
    HdlcAddress,
    HdlcConnection,
    HdlcDecoder,
    HdlcEvent,
    HdlcFrame,
    HdlcParameters,
    HdlcState,
    UiReceived,
    crc16,
)

h = bytes.fromhex
CLIENT = HdlcAddress.client(0x10)
SERVER = HdlcAddress.server(1, 0x11)


def _load_fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "smmc_fuzz_frames", Path(__file__).with_name("fuzz_frames.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------
# CRC, addresses, control bytes
# --------------------------------------------------------------------------------------------


def test_crc16_x25_check_value() -> None:
    assert crc16(b"123456789") == 0x906E
    assert crc16(b"") == 0x0000
    assert crc16(b"xx123456789yy", 2, 11) == 0x906E


def test_known_snrm_frame() -> None:
    # Client 0x10 → server 1 (1-byte address), SNRM with P: the classic Gurux trace.
    frame = HdlcFrame(FrameType.SNRM, HdlcAddress(1), HdlcAddress.client(0x10))
    assert frame.to_bytes() == h("7EA0070321930F017E")
    assert HdlcFrame.from_bytes(h("7EA0070321930F017E")) == frame


@pytest.mark.parametrize(
    ("address", "encoded"),
    [
        (HdlcAddress.client(0x10), "21"),
        (HdlcAddress.server(1), "03"),
        (HdlcAddress.server(1, 0x11), "0223"),
        (HdlcAddress.server(0x7F, 0x7F), "feff"),
        (HdlcAddress.server(1, 0x1234), "00024869"),
        (HdlcAddress.server(1, 0x11, size=4), "00020023"),
        (HdlcAddress.server(0x3FFF, 0x3FFF), "fefefeff"),
    ],
)
def test_address_encoding(address: HdlcAddress, encoded: str) -> None:
    assert address.to_bytes() == h(encoded)
    assert HdlcAddress.decode(h(encoded) + b"\x99", 0) == (address, len(h(encoded)))


@pytest.mark.parametrize("raw", ["", "02", "020203", "0202020203", "02020202"])
def test_bad_addresses(raw: str) -> None:
    with pytest.raises(DecodeError):
        HdlcAddress.decode(h(raw), 0)


def test_address_range_checks() -> None:
    with pytest.raises(EncodeError):
        HdlcAddress(0x80)
    with pytest.raises(EncodeError):
        HdlcAddress(1, 0x4000)
    with pytest.raises(EncodeError):
        HdlcAddress(1, None, 2)
    with pytest.raises(EncodeError):
        HdlcAddress(1, 2, 3)


@pytest.mark.parametrize(
    ("frame_type", "kw", "control"),
    [
        (FrameType.I, {"send_seq": 3, "recv_seq": 5}, 0xB6),
        (FrameType.I, {"send_seq": 0, "recv_seq": 0, "poll_final": False}, 0x00),
        (FrameType.RR, {"recv_seq": 2}, 0x51),
        (FrameType.RNR, {"recv_seq": 1}, 0x35),
        (FrameType.SNRM, {}, 0x93),
        (FrameType.UA, {}, 0x73),
        (FrameType.DISC, {}, 0x53),
        (FrameType.DM, {}, 0x1F),
        (FrameType.FRMR, {}, 0x97),
        (FrameType.UI, {"poll_final": False}, 0x03),
    ],
)
def test_control_field(frame_type: FrameType, kw: dict[str, int], control: int) -> None:
    frame = HdlcFrame(frame_type, SERVER, CLIENT, **kw)  # type: ignore[arg-type]
    assert frame.control == control
    raw = frame.to_bytes()
    assert raw[6] == control  # 7E, format(2), dst(2), src(1)
    assert HdlcFrame.from_bytes(raw) == frame


def test_information_frame_layout() -> None:
    info = LLC_REQUEST + h("C001C100080000010000FF0200")
    frame = HdlcFrame(FrameType.I, SERVER, CLIENT, True, 0, 0, info, segmented=True)
    raw = frame.to_bytes()
    fmt = int.from_bytes(raw[1:3], "big")
    assert fmt >> 12 == 0xA
    assert fmt & 0x0800  # segmentation bit
    assert fmt & 0x07FF == len(raw) - 2
    assert int.from_bytes(raw[7:9], "little") == crc16(raw, 1, 7)  # HCS
    assert int.from_bytes(raw[-3:-1], "little") == crc16(raw, 1, len(raw) - 3)  # FCS
    assert raw[9:-3] == info
    assert HdlcFrame.from_bytes(raw) == frame


def test_frame_too_long() -> None:
    with pytest.raises(EncodeError):
        HdlcFrame(FrameType.I, SERVER, CLIENT, information=b"x" * 2040).to_bytes()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:-2] + bytes([b[-2] ^ 1]) + b[-1:],  # FCS
        lambda b: b[:7] + bytes([b[7] ^ 1]) + b[8:],  # HCS
        lambda b: b[:1] + bytes([0xB0]) + b[2:],  # format type
        lambda b: b[:-1] + b"\x00",  # closing flag
        lambda b: b[:-4] + b[-3:],  # length mismatch
    ],
)
def test_corrupted_frames_rejected(mutate: object) -> None:
    raw = HdlcFrame(FrameType.I, SERVER, CLIENT, information=b"\xe6\xe6\x00abc").to_bytes()
    with pytest.raises(DecodeError):
        HdlcFrame.from_bytes(mutate(raw))  # type: ignore[operator]


addresses = st.one_of(
    st.integers(0, 0x7F).map(HdlcAddress),
    st.tuples(st.integers(0, 0x7F), st.integers(0, 0x7F)).map(lambda t: HdlcAddress(*t)),
    st.tuples(st.integers(0, 0x3FFF), st.integers(0, 0x3FFF)).map(
        lambda t: HdlcAddress(t[0], t[1], 4)
    ),
)
frames = st.builds(
    HdlcFrame,
    st.sampled_from(list(FrameType)),
    addresses,
    addresses,
    st.booleans(),
    st.integers(0, 7),
    st.integers(0, 7),
    st.binary(max_size=200),
    st.booleans(),
).map(
    lambda f: HdlcFrame(
        f.frame_type,
        f.destination,
        f.source,
        f.poll_final,
        f.send_seq if f.frame_type is FrameType.I else 0,
        f.recv_seq if f.frame_type in (FrameType.I, FrameType.RR, FrameType.RNR) else 0,
        f.information,
        f.segmented,
    )
)


@given(frames)
def test_frame_round_trip(frame: HdlcFrame) -> None:
    assert HdlcFrame.from_bytes(frame.to_bytes()) == frame


# --------------------------------------------------------------------------------------------
# Stream decoder
# --------------------------------------------------------------------------------------------


def test_decoder_resynchronises_after_garbage() -> None:
    a = HdlcFrame(FrameType.I, SERVER, CLIENT, information=b"\xe6\xe6\x00one").to_bytes()
    b = HdlcFrame(FrameType.RR, CLIENT, SERVER, recv_seq=1).to_bytes()
    corrupted = a[:10] + b"\x00" + a[11:]
    stream = b"\x00\x7e\x7e\xa0\xff garbage" + corrupted + a + b"\x7e\x7e" + b[1:] + b"junk"
    dec = HdlcDecoder()
    out = dec.feed(stream)
    assert out == [HdlcFrame.from_bytes(a), HdlcFrame.from_bytes(b)]
    assert dec.errors >= 1
    assert dec.discarded > 0


def test_decoder_shared_flag_between_frames() -> None:
    a = HdlcFrame(FrameType.RR, CLIENT, SERVER, recv_seq=1).to_bytes()
    b = HdlcFrame(FrameType.RR, CLIENT, SERVER, recv_seq=2).to_bytes()
    assert [f.recv_seq for f in HdlcDecoder().feed(a + b[1:])] == [1, 2]


def test_decoder_bounded_wait_on_false_start() -> None:
    # A false opening flag with a plausible length must not hide the following frame forever.
    good = HdlcFrame(FrameType.UA, CLIENT, SERVER).to_bytes()
    dec = HdlcDecoder()
    out = dec.feed(b"\x7e\xa0\x50" + good)
    out += dec.feed(b"\x00" * 0x60)
    assert out == [HdlcFrame.from_bytes(good)]


@given(
    st.lists(frames, max_size=6),
    st.lists(st.integers(0, 3000), max_size=15),
    st.binary(max_size=20),
)
def test_decoder_across_arbitrary_chunks(
    items: list[HdlcFrame], cuts: list[int], noise: bytes
) -> None:
    noise = noise.replace(b"\x7e", b"")
    stream = noise + b"".join(f.to_bytes() for f in items) + noise
    points = sorted({c for c in cuts if c <= len(stream)} | {0, len(stream)})
    dec = HdlcDecoder()
    out: list[HdlcFrame] = []
    for start, stop in itertools.pairwise(points):
        out += dec.feed(stream[start:stop])
    assert out == items


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_decoder_garbage_never_raises(raw: bytes) -> None:
    dec = HdlcDecoder()
    for frame in dec.feed(raw):
        assert HdlcFrame.from_bytes(frame.to_bytes()) == frame
    assert dec.buffered <= len(raw)


def test_fuzz_target_runs() -> None:
    _load_fuzz().run(3000, seed=1)


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def test_parameters_round_trip_and_known_bytes() -> None:
    params = HdlcParameters(128, 128, 1, 1)
    raw = params.to_bytes()
    assert raw == h("818012050180060180070400000001080400000001")
    assert HdlcParameters.from_bytes(raw) == params
    assert HdlcParameters.from_bytes(b"") == HdlcParameters()
    big = HdlcParameters(1024, 2030)
    assert HdlcParameters.from_bytes(big.to_bytes()) == big


@pytest.mark.parametrize("raw", ["80", "818005", "8180020503", "81800305050102"])
def test_bad_parameters(raw: str) -> None:
    with pytest.raises(DecodeError):
        HdlcParameters.from_bytes(h(raw))


# --------------------------------------------------------------------------------------------
# Connection
# --------------------------------------------------------------------------------------------


class Link:
    """A client and a server wired back to back, with optional chunking of the bytes."""

    def __init__(self, client_info: int = 128, server_info: int = 128) -> None:
        self.client = HdlcConnection(
            client=True, client_address=0x10, server_address=SERVER, max_info_length=client_info
        )
        self.server = HdlcConnection(
            client=False, client_address=0x10, server_address=SERVER, max_info_length=server_info
        )
        self.frames_to_server = 0
        self.frames_to_client = 0

    def pump(self) -> tuple[list[HdlcEvent], list[HdlcEvent]]:
        at_client: list[HdlcEvent] = []
        at_server: list[HdlcEvent] = []
        for _ in range(10_000):
            up = self.client.data_to_send()
            down = self.server.data_to_send()
            if not up and not down:
                break
            self.frames_to_server += up.count(b"\x7e") // 2
            self.frames_to_client += down.count(b"\x7e") // 2
            at_server += self.server.receive_data(up)
            at_client += self.client.receive_data(down)
        return at_client, at_server

    def connect(self) -> None:
        self.client.connect()
        at_client, at_server = self.pump()
        assert isinstance(at_client[0], Connected)
        assert isinstance(at_server[0], Connected)


def test_connect_negotiates_smallest_info_length() -> None:
    link = Link(client_info=256, server_info=64)
    link.client.connect()
    assert link.client.state is HdlcState.CONNECTING
    at_client, at_server = link.pump()
    assert at_client == [Connected(64, 64)]
    assert at_server == [Connected(64, 64)]
    assert link.client.state is link.server.state is HdlcState.CONNECTED


def test_request_response_and_sequence_numbers_wrap() -> None:
    link = Link()
    link.connect()
    for i in range(20):
        link.client.send_apdu(bytes([0xC0, i]))
        _, at_server = link.pump()
        assert at_server == [ApduReceived(bytes([0xC0, i]))]
        link.server.send_apdu(bytes([0xC4, i]))
        at_client, _ = link.pump()
        assert at_client == [ApduReceived(bytes([0xC4, i]))]
    assert link.client.send_sequence == 20 % 8
    assert link.server.receive_sequence == 20 % 8


def test_long_apdus_are_segmented_and_reassembled() -> None:
    link = Link(client_info=32, server_info=32)
    link.connect()
    request = bytes(range(256)) * 2
    link.client.send_apdu(request)
    first = HdlcFrame.from_bytes(link.client.data_to_send())
    assert first.segmented
    assert len(first.information) == 32
    assert first.information.startswith(LLC_REQUEST)
    link.server.receive_data(first.to_bytes())
    rr = HdlcFrame.from_bytes(link.server.data_to_send())
    assert rr.frame_type is FrameType.RR
    assert rr.recv_seq == 1
    link.client.receive_data(rr.to_bytes())
    _, at_server = link.pump()
    assert at_server == [ApduReceived(request)]
    response = bytes(range(200))[::-1] * 3
    link.server.send_apdu(response)
    at_client, _ = link.pump()
    assert at_client == [ApduReceived(response)]
    segments = -(-(len(response) + 3) // 32)
    assert link.server.send_sequence == segments % 8


def test_lost_rr_triggers_resend_and_duplicate_is_ignored() -> None:
    link = Link(client_info=32, server_info=32)
    link.connect()
    link.client.send_apdu(b"\x01" * 100)
    first = link.client.data_to_send()
    link.server.receive_data(first)
    link.server.data_to_send()  # the RR is lost
    link.client.resend_last()  # client times out and repeats the segment
    dup = link.client.data_to_send()
    assert dup == first
    link.server.receive_data(dup)  # duplicate N(S): re-acknowledged, not appended
    rr = HdlcFrame.from_bytes(link.server.data_to_send())
    assert rr.frame_type is FrameType.RR
    assert rr.recv_seq == 1
    link.client.receive_data(rr.to_bytes())
    _, at_server = link.pump()
    assert at_server == [ApduReceived(b"\x01" * 100)]


def test_disconnect() -> None:
    link = Link()
    link.connect()
    link.client.disconnect()
    at_client, at_server = link.pump()
    assert at_client == [Disconnected()]
    assert at_server == [Disconnected()]
    with pytest.raises(ProtocolError):
        link.client.send_apdu(b"\xc0")


def test_server_answers_dm_when_disconnected_and_client_reports_rejection() -> None:
    link = Link()
    i_frame = HdlcFrame(FrameType.I, SERVER, CLIENT, information=LLC_REQUEST + b"\xc0")
    link.server.receive_data(i_frame.to_bytes())
    dm = HdlcFrame.from_bytes(link.server.data_to_send())
    assert dm.frame_type is FrameType.DM
    link.client.connect()
    link.client.data_to_send()
    assert link.client.receive_data(dm.to_bytes()) == [ConnectionRejected()]
    assert link.client.state is HdlcState.DISCONNECTED


def test_frames_for_other_addresses_are_ignored() -> None:
    link = Link()
    link.connect()
    other = HdlcFrame(FrameType.I, HdlcAddress.server(1, 0x12), CLIENT, information=b"x")
    assert link.server.receive_data(other.to_bytes()) == []
    assert link.server.data_to_send() == b""


def test_missing_llc_header_is_a_protocol_error() -> None:
    link = Link()
    link.connect()
    bad = HdlcFrame(FrameType.I, SERVER, CLIENT, information=b"\xc0\x01")
    with pytest.raises(ProtocolError):
        link.server.receive_data(bad.to_bytes())


def test_ui_and_frmr_events() -> None:
    link = Link()
    link.connect()
    ui = HdlcFrame(FrameType.UI, CLIENT, SERVER, False, information=b"push")
    frmr = HdlcFrame(FrameType.FRMR, CLIENT, SERVER, information=b"\x01\x02\x03")
    assert link.client.receive_data(ui.to_bytes() + frmr.to_bytes()) == [
        UiReceived(b"push"),
        FrameRejected(b"\x01\x02\x03"),
    ]


def test_send_while_sending_is_refused() -> None:
    link = Link(client_info=32)
    link.connect()
    link.client.send_apdu(b"x" * 100)
    with pytest.raises(ProtocolError):
        link.client.send_apdu(b"y")


@settings(max_examples=60)
@given(
    st.integers(32, 300),
    st.integers(32, 300),
    st.lists(st.binary(min_size=1, max_size=1500), min_size=1, max_size=4),
)
def test_any_apdu_sizes_cross_the_link(
    client_info: int, server_info: int, apdus: list[bytes]
) -> None:
    link = Link(client_info, server_info)
    link.connect()
    for apdu in apdus:
        link.client.send_apdu(apdu)
        _, at_server = link.pump()
        assert at_server == [ApduReceived(apdu)]
        link.server.send_apdu(apdu[::-1])
        at_client, _ = link.pump()
        assert at_client == [ApduReceived(apdu[::-1])]


def test_rnr_holds_segments_until_rr() -> None:
    link = Link(client_info=32, server_info=32)
    link.connect()
    link.client.send_apdu(b"\x02" * 80)
    first = link.client.data_to_send()
    link.server.receive_data(first)
    link.server.data_to_send()
    busy = HdlcFrame(FrameType.RNR, CLIENT, SERVER, recv_seq=1)
    link.client.receive_data(busy.to_bytes())
    assert link.client.data_to_send() == b""  # held back while the server is busy
    assert link.client.sending
    link.client.poll()
    _, at_server = link.pump()  # the server answers the poll with RR, the rest flows
    assert at_server == [ApduReceived(b"\x02" * 80)]


@settings(max_examples=60)
@given(
    st.integers(32, 128),
    st.binary(min_size=1, max_size=600),
    st.lists(st.integers(1, 40), min_size=1, max_size=10),
)
def test_link_survives_arbitrary_chunking(info: int, apdu: bytes, sizes: list[int]) -> None:
    link = Link(info, info)
    chunk = itertools.cycle(sizes)

    def deliver(data: bytes, to: HdlcConnection) -> list[HdlcEvent]:
        events: list[HdlcEvent] = []
        pos = 0
        while pos < len(data):
            n = next(chunk)
            events += to.receive_data(data[pos : pos + n])
            pos += n
        return events

    def run() -> list[HdlcEvent]:
        events: list[HdlcEvent] = []
        for _ in range(10_000):
            up, down = link.client.data_to_send(), link.server.data_to_send()
            if not up and not down:
                break
            events += deliver(up, link.server)
            events += deliver(down, link.client)
        return events

    link.client.connect()
    assert len(run()) == 2  # Connected on both sides
    link.client.send_apdu(apdu)
    assert run() == [ApduReceived(apdu)]
    link.server.send_apdu(apdu[::-1])
    assert run() == [ApduReceived(apdu[::-1])]


@pytest.mark.parametrize("info", ["8180", "818006050100060180", "81800305020000"])
def test_unusable_snrm_parameters_are_refused_with_dm(info: str) -> None:
    link = Link()
    snrm = HdlcFrame(FrameType.SNRM, SERVER, CLIENT, information=h(info))
    assert link.server.receive_data(snrm.to_bytes()) == []
    assert HdlcFrame.from_bytes(link.server.data_to_send()).frame_type is FrameType.DM
    assert link.server.state is HdlcState.DISCONNECTED


def test_unusable_ua_parameters_reject_the_connection() -> None:
    link = Link()
    link.client.connect()
    link.client.data_to_send()
    ua = HdlcFrame(FrameType.UA, CLIENT, SERVER, information=h("818003060100"))
    assert link.client.receive_data(ua.to_bytes()) == [ConnectionRejected()]
    assert link.client.state is HdlcState.DISCONNECTED
