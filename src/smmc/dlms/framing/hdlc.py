"""HDLC framing for DLMS/COSEM (IEC 62056-46 / Green Book 8.4).

Frame layout (frame format type 3, ``A`` in the top nibble of the format field)::

    7E | format (2) | destination | source | control | [HCS (2) | information] | FCS (2) | 7E

* format = ``1010 S LLLLLLLLLLL``: S is the segmentation bit, L the frame length without flags;
* addresses use the extension-bit scheme (bit 0 = 1 on the last byte): a client address is
  one byte, a server address 1, 2 or 4 bytes (upper HDLC address = logical device, lower =
  physical device);
* HCS and FCS are CRC-16/X.25, transmitted least significant byte first; the HCS is present
  only when there is an information field.

:class:`HdlcDecoder` turns a byte stream into frames and resynchronises after garbage;
:class:`HdlcConnection` is the sans-IO link layer (SNRM/UA/DISC, sequence numbers,
segmentation and reassembly of the LLC-prefixed APDUs).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Final

from smmc.dlms.errors import DecodeError, EncodeError, ProtocolError

__all__ = [
    "FLAG",
    "LLC_REQUEST",
    "LLC_RESPONSE",
    "ApduReceived",
    "Connected",
    "ConnectionRejected",
    "Disconnected",
    "FrameRejected",
    "FrameType",
    "HdlcAddress",
    "HdlcConnection",
    "HdlcDecoder",
    "HdlcEvent",
    "HdlcFrame",
    "HdlcParameters",
    "HdlcState",
    "UiReceived",
    "crc16",
]

FLAG: Final = 0x7E
LLC_REQUEST: Final = b"\xe6\xe6\x00"
"""LLC header of client → server information fields."""
LLC_RESPONSE: Final = b"\xe6\xe7\x00"
"""LLC header of server → client information fields."""

_FORMAT_TYPE: Final = 0xA000
_SEGMENT_BIT: Final = 0x0800
_LENGTH_MASK: Final = 0x07FF
_MIN_FRAME: Final = 7  # format(2) + dst(1) + src(1) + control(1) + FCS(2)


# --------------------------------------------------------------------------------------------
# CRC-16/X.25 (poly 0x1021 reflected = 0x8408, init 0xFFFF, xorout 0xFFFF)
# --------------------------------------------------------------------------------------------


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final = _make_table()


def crc16(data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> int:
    """CRC-16/X.25 of ``data[start:end]`` (check value of ``b"123456789"`` is 0x906E)."""
    table = _CRC_TABLE
    crc = 0xFFFF
    for b in data[start:end] if (start or end is not None) else data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFF


# --------------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HdlcAddress:
    """An HDLC address: ``upper`` (client SAP or server logical device), optional ``lower``.

    ``size`` is the encoded length (1, 2 or 4 bytes); by default the smallest that fits:
    1 byte without ``lower``, else 2 bytes if both parts fit 7 bits, else 4.
    """

    upper: int
    lower: int | None = None
    size: int = 0

    def __post_init__(self) -> None:
        size = self.size
        if size == 0:
            if self.lower is None:
                size = 1
            elif self.upper <= 0x7F and self.lower <= 0x7F:
                size = 2
            else:
                size = 4
            object.__setattr__(self, "size", size)
        if size not in (1, 2, 4):
            raise EncodeError(f"HDLC address size must be 1, 2 or 4, got {size}")
        limit = 0x7F if size < 4 else 0x3FFF
        if not isinstance(self.upper, int) or not 0 <= self.upper <= limit:
            raise EncodeError(f"upper HDLC address {self.upper!r} does not fit {size} byte(s)")
        if size == 1:
            if self.lower is not None:
                raise EncodeError("a 1-byte HDLC address has no lower part")
        elif self.lower is None or not 0 <= self.lower <= limit:
            raise EncodeError(f"lower HDLC address {self.lower!r} does not fit {size} byte(s)")

    @classmethod
    def server(cls, logical: int, physical: int | None = None, size: int = 0) -> HdlcAddress:
        """A server address from logical device (upper) and physical device (lower)."""
        return cls(logical, physical, size)

    @classmethod
    def client(cls, sap: int) -> HdlcAddress:
        """A client address (one byte)."""
        return cls(sap, None, 1)

    def to_bytes(self) -> bytes:
        """The extension-bit encoding."""
        if self.size == 1:
            return bytes(((self.upper << 1) | 1,))
        lower = self.lower if self.lower is not None else 0
        if self.size == 2:
            return bytes((self.upper << 1, (lower << 1) | 1))
        return bytes(
            (
                (self.upper >> 7) << 1,
                (self.upper & 0x7F) << 1,
                (lower >> 7) << 1,
                ((lower & 0x7F) << 1) | 1,
            )
        )

    @classmethod
    def decode(
        cls, buf: bytes | bytearray | memoryview, offset: int, end: int | None = None
    ) -> tuple[HdlcAddress, int]:
        """Decode an address at ``offset``; return it and the offset after it."""
        stop = len(buf) if end is None else min(end, len(buf))
        pos = offset
        while True:
            if pos >= stop:
                raise DecodeError("truncated HDLC address", offset)
            if buf[pos] & 1:
                break
            pos += 1
            if pos - offset >= 4:
                raise DecodeError("HDLC address longer than 4 bytes", offset)
        raw = [b >> 1 for b in buf[offset : pos + 1]]
        size = len(raw)
        if size == 1:
            return cls(raw[0], None, 1), pos + 1
        if size == 2:
            return cls(raw[0], raw[1], 2), pos + 1
        if size == 4:
            return cls((raw[0] << 7) | raw[1], (raw[2] << 7) | raw[3], 4), pos + 1
        raise DecodeError("HDLC address of 3 bytes", offset)


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------


class FrameType(Enum):
    """HDLC frame kinds used by DLMS."""

    I = "I"  # noqa: E741 - the standard's name
    RR = "RR"
    RNR = "RNR"
    SNRM = "SNRM"
    DISC = "DISC"
    UA = "UA"
    DM = "DM"
    FRMR = "FRMR"
    UI = "UI"


_U_CODES: Final[dict[FrameType, int]] = {
    FrameType.SNRM: 0x83,
    FrameType.DISC: 0x43,
    FrameType.UA: 0x63,
    FrameType.DM: 0x0F,
    FrameType.FRMR: 0x87,
    FrameType.UI: 0x03,
}
_U_BY_CODE: Final[dict[int, FrameType]] = {v: k for k, v in _U_CODES.items()}


@dataclass(frozen=True, slots=True)
class HdlcFrame:
    """One HDLC frame. ``send_seq``/``recv_seq`` are N(S)/N(R) (I: both, RR/RNR: N(R))."""

    frame_type: FrameType
    destination: HdlcAddress
    source: HdlcAddress
    poll_final: bool = True
    send_seq: int = 0
    recv_seq: int = 0
    information: bytes = b""
    segmented: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.send_seq <= 7 or not 0 <= self.recv_seq <= 7:
            raise EncodeError("HDLC sequence numbers are 0..7")

    @property
    def control(self) -> int:
        """The control byte."""
        pf = 0x10 if self.poll_final else 0
        ft = self.frame_type
        if ft is FrameType.I:
            return (self.recv_seq << 5) | pf | (self.send_seq << 1)
        if ft is FrameType.RR:
            return (self.recv_seq << 5) | pf | 0x01
        if ft is FrameType.RNR:
            return (self.recv_seq << 5) | pf | 0x05
        return _U_CODES[ft] | pf

    def to_bytes(self) -> bytes:
        """Encode with flags, HCS (if information) and FCS."""
        header = self.destination.to_bytes() + self.source.to_bytes() + bytes((self.control,))
        info = self.information
        length = 2 + len(header) + (2 + len(info) if info else 0) + 2
        if length > _LENGTH_MASK:
            raise EncodeError(f"HDLC frame of {length} bytes exceeds the 2047-byte maximum")
        fmt = _FORMAT_TYPE | (_SEGMENT_BIT if self.segmented else 0) | length
        body = bytearray(fmt.to_bytes(2, "big"))
        body += header
        if info:
            body += crc16(body).to_bytes(2, "little")
            body += info
        body += crc16(body).to_bytes(2, "little")
        return b"\x7e" + bytes(body) + b"\x7e"

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview) -> HdlcFrame:
        """Decode exactly one flag-delimited frame."""
        buf = bytes(buf)
        if len(buf) < _MIN_FRAME + 2 or buf[0] != FLAG or buf[-1] != FLAG:
            raise DecodeError("not a flag-delimited HDLC frame", 0)
        return _parse_body(buf, 1, len(buf) - 1)


def _parse_body(buf: bytes, start: int, stop: int) -> HdlcFrame:
    """Parse the frame between the flags: ``buf[start:stop]`` (format .. FCS)."""
    n = stop - start
    if n < _MIN_FRAME:
        raise DecodeError("HDLC frame too short", start)
    fmt = int.from_bytes(buf[start : start + 2], "big")
    if fmt & 0xF000 != _FORMAT_TYPE:
        raise DecodeError(f"HDLC frame format type {fmt >> 12:#x} is not 0xA", start)
    if fmt & _LENGTH_MASK != n:
        raise DecodeError(f"HDLC length field {fmt & _LENGTH_MASK} but frame has {n}", start)
    fcs = int.from_bytes(buf[stop - 2 : stop], "little")
    if crc16(buf, start, stop - 2) != fcs:
        raise DecodeError("HDLC FCS mismatch", stop - 2)
    destination, pos = HdlcAddress.decode(buf, start + 2, stop - 2)
    source, pos = HdlcAddress.decode(buf, pos, stop - 2)
    if pos >= stop - 2:
        raise DecodeError("HDLC frame without control field", pos)
    control = buf[pos]
    pos += 1
    info = b""
    if pos < stop - 2:
        if pos + 2 > stop - 2:
            raise DecodeError("HDLC header check sequence truncated", pos)
        hcs = int.from_bytes(buf[pos : pos + 2], "little")
        if crc16(buf, start, pos) != hcs:
            raise DecodeError("HDLC HCS mismatch", pos)
        info = buf[pos + 2 : stop - 2]
    pf = bool(control & 0x10)
    segmented = bool(fmt & _SEGMENT_BIT)
    if control & 0x01 == 0:
        return HdlcFrame(
            FrameType.I, destination, source, pf, (control >> 1) & 7, control >> 5, info, segmented
        )
    if control & 0x03 == 0x01:
        kind = (control >> 2) & 0x03
        if kind == 0:
            ft = FrameType.RR
        elif kind == 1:
            ft = FrameType.RNR
        else:
            raise DecodeError(f"unsupported HDLC supervisory frame 0x{control:02X}", pos - 1)
        return HdlcFrame(ft, destination, source, pf, 0, control >> 5, info, segmented)
    u = _U_BY_CODE.get(control & 0xEF)
    if u is None:
        raise DecodeError(f"unknown HDLC control byte 0x{control:02X}", pos - 1)
    return HdlcFrame(u, destination, source, pf, 0, 0, info, segmented)


def _next_complete_frame(buf: bytes, start: int, end: int) -> int:
    """Offset of the first flag at or after ``start`` that opens a complete, valid frame."""
    flag = buf.find(b"\x7e", start)
    while flag >= 0 and flag + 3 <= end:
        fmt = (buf[flag + 1] << 8) | buf[flag + 2]
        stop = flag + 1 + (fmt & _LENGTH_MASK)
        if fmt & 0xF000 == _FORMAT_TYPE and stop < end and buf[stop] == FLAG:
            try:
                _parse_body(buf, flag + 1, stop)
            except DecodeError:
                pass
            else:
                return flag
        flag = buf.find(b"\x7e", flag + 1)
    return -1


class HdlcDecoder:
    """Sans-IO HDLC stream decoder: ``feed(bytes)`` returns the complete, valid frames.

    Garbage, corrupted frames (bad HCS/FCS, bad format) and inter-frame fill are skipped by
    resynchronising on the next flag; ``discarded`` counts the bytes thrown away so a
    caller can report a noisy line.
    """

    __slots__ = ("_buf", "discarded", "errors")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.discarded = 0
        self.errors = 0

    @property
    def buffered(self) -> int:
        """Bytes waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[HdlcFrame]:
        """Add received bytes; return every frame completed by them, in order."""
        buf = self._buf
        buf += data
        frames: list[HdlcFrame] = []
        pos = 0
        end = len(buf)
        snapshot = bytes(buf)
        while True:
            flag = snapshot.find(b"\x7e", pos)
            if flag < 0:
                self.discarded += end - pos
                pos = end
                break
            self.discarded += flag - pos
            pos = flag
            if end - pos < 3:
                break
            if snapshot[pos + 1] == FLAG:  # fill or closing flag followed by an opening one
                pos += 1
                continue
            fmt = (snapshot[pos + 1] << 8) | snapshot[pos + 2]
            length = fmt & _LENGTH_MASK
            if fmt & 0xF000 != _FORMAT_TYPE or length < _MIN_FRAME:
                self.errors += 1
                self.discarded += 1
                pos += 1
                continue
            stop = pos + 1 + length
            if stop >= end:  # closing flag not yet received
                # A false start (garbage that looks like a header) must not hold back a
                # complete frame that follows it: look for one before waiting.
                later = _next_complete_frame(snapshot, pos + 1, end)
                if later < 0:
                    break
                self.errors += 1
                self.discarded += later - pos
                pos = later
                continue
            if snapshot[stop] != FLAG:
                self.errors += 1
                self.discarded += 1
                pos += 1
                continue
            try:
                frames.append(_parse_body(snapshot, pos + 1, stop))
            except DecodeError:
                self.errors += 1
                self.discarded += 1
                pos += 1
                continue
            pos = stop  # the closing flag may open the next frame
        del buf[:pos]
        return frames


# --------------------------------------------------------------------------------------------
# Parameter negotiation (SNRM / UA information field)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HdlcParameters:
    """Negotiated link parameters, from the sender's point of view."""

    max_info_transmit: int = 128
    max_info_receive: int = 128
    window_transmit: int = 1
    window_receive: int = 1

    def to_bytes(self) -> bytes:
        """The ``81 80 len`` parameter block of SNRM/UA."""
        body = bytearray()
        for pid, value in (
            (0x05, self.max_info_transmit),
            (0x06, self.max_info_receive),
            (0x07, self.window_transmit),
            (0x08, self.window_receive),
        ):
            if not 0 <= value <= 0xFFFFFFFF:
                raise EncodeError(f"HDLC parameter 0x{pid:02X} out of range: {value}")
            size = 4 if pid >= 0x07 else (1 if value <= 0xFF else 2)
            body += bytes((pid, size)) + value.to_bytes(size, "big")
        return bytes((0x81, 0x80, len(body))) + bytes(body)

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview) -> HdlcParameters:
        """Decode a parameter block; absent parameters take their defaults."""
        buf = bytes(buf)
        if not buf:
            return cls()
        if len(buf) < 3 or buf[0] != 0x81 or buf[1] != 0x80:
            raise DecodeError("HDLC parameters must start with 81 80", 0)
        if 3 + buf[2] > len(buf):
            raise DecodeError("HDLC parameter block overruns the field", 2)
        values = {0x05: 128, 0x06: 128, 0x07: 1, 0x08: 1}
        pos, stop = 3, 3 + buf[2]
        while pos < stop:
            if pos + 2 > stop:
                raise DecodeError("truncated HDLC parameter", pos)
            pid, size = buf[pos], buf[pos + 1]
            if size > 4 or pos + 2 + size > stop:
                raise DecodeError(f"bad HDLC parameter 0x{pid:02X} length {size}", pos)
            if pid in values:
                values[pid] = int.from_bytes(buf[pos + 2 : pos + 2 + size], "big")
            pos += 2 + size
        return cls(values[0x05], values[0x06], values[0x07], values[0x08])


# --------------------------------------------------------------------------------------------
# Link layer connection (sans-IO)
# --------------------------------------------------------------------------------------------


class HdlcState(Enum):
    """Link states."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"


@dataclass(frozen=True, slots=True)
class Connected:
    """The link is up (UA received, or SNRM accepted) with these limits."""

    max_info_transmit: int
    max_info_receive: int


@dataclass(frozen=True, slots=True)
class ConnectionRejected:
    """The server answered SNRM with DM."""


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The link is down (DISC acknowledged or received, or DM while connected)."""


@dataclass(frozen=True, slots=True)
class ApduReceived:
    """A complete APDU, reassembled from its segments, LLC header removed."""

    apdu: bytes


@dataclass(frozen=True, slots=True)
class UiReceived:
    """An unnumbered information frame (e.g. a pushed message); raw information field."""

    information: bytes


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """The peer sent FRMR; ``information`` holds its diagnostic bytes."""

    information: bytes


HdlcEvent = (
    Connected | ConnectionRejected | Disconnected | ApduReceived | UiReceived | FrameRejected
)


class _Role(IntEnum):
    SERVER = 0
    CLIENT = 1


class HdlcConnection:
    """Sans-IO HDLC link layer for one client–server pair (window size 1).

    Feed received bytes to :meth:`receive_data` (returns events) and write whatever
    :meth:`data_to_send` returns. The client calls :meth:`connect`, :meth:`send_apdu` and
    :meth:`disconnect`; the server answers SNRM/DISC itself and calls :meth:`send_apdu`
    with each response. Long APDUs are split into I-frames of at most the negotiated
    information length with the segmentation bit set; the receiver of a segment answers RR
    and the sender then continues, as IEC 62056-46 prescribes. Retransmission timing
    belongs to the I/O layer: on a timeout it calls :meth:`resend_last`.
    """

    def __init__(
        self,
        *,
        client: bool,
        client_address: HdlcAddress | int,
        server_address: HdlcAddress,
        max_info_length: int = 128,
        max_apdu_size: int = 0x10000,
    ) -> None:
        if not 32 <= max_info_length <= 2030:
            raise ValueError("max_info_length must be 32..2030")
        self._role = _Role.CLIENT if client else _Role.SERVER
        self.client_address = (
            HdlcAddress.client(client_address)
            if isinstance(client_address, int)
            else client_address
        )
        self.server_address = server_address
        self.local_parameters = HdlcParameters(max_info_length, max_info_length)
        self.max_info_transmit = 128
        self.max_info_receive = max_info_length
        self.max_apdu_size = max_apdu_size
        self.state = HdlcState.DISCONNECTED
        self._decoder = HdlcDecoder()
        self._out = bytearray()
        self._vs = 0  # V(S): next N(S) to send
        self._vr = 0  # V(R): next N(S) expected
        self._tx_segments: deque[bytes] = deque()
        self._awaiting_ack = False
        self._rx = bytearray()
        self._last_frame: bytes | None = None

    # -- helpers --------------------------------------------------------------------------

    @property
    def is_client(self) -> bool:
        """True for the client (primary station) role."""
        return self._role is _Role.CLIENT

    @property
    def send_sequence(self) -> int:
        """V(S), the N(S) of the next I-frame to send."""
        return self._vs

    @property
    def receive_sequence(self) -> int:
        """V(R), the N(S) expected on the next received I-frame."""
        return self._vr

    @property
    def sending(self) -> bool:
        """True while segments of an APDU are still to be sent or acknowledged."""
        return bool(self._tx_segments) or self._awaiting_ack

    def _addresses(self) -> tuple[HdlcAddress, HdlcAddress]:
        if self.is_client:
            return self.server_address, self.client_address
        return self.client_address, self.server_address

    def _emit(
        self,
        frame_type: FrameType,
        *,
        send_seq: int = 0,
        recv_seq: int = 0,
        information: bytes = b"",
        segmented: bool = False,
    ) -> None:
        dst, src = self._addresses()
        frame = HdlcFrame(frame_type, dst, src, True, send_seq, recv_seq, information, segmented)
        raw = frame.to_bytes()
        self._last_frame = raw
        self._out += raw

    def _reset_sequences(self) -> None:
        self._vs = self._vr = 0
        self._tx_segments.clear()
        self._awaiting_ack = False
        self._rx.clear()

    def data_to_send(self) -> bytes:
        """Bytes queued for the wire (and clear the queue)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def poll(self) -> None:
        """Client: queue RR with the poll bit (ask a busy or silent server to answer)."""
        if not self.is_client:
            raise ProtocolError("only the client polls")
        if self.state is not HdlcState.CONNECTED:
            raise ProtocolError(f"cannot poll while {self.state.value}")
        self._emit(FrameType.RR, recv_seq=self._vr)

    def resend_last(self) -> None:
        """Queue the last frame sent again (after a response timeout)."""
        if self._last_frame is not None:
            self._out += self._last_frame

    # -- client commands ------------------------------------------------------------------

    def connect(self) -> None:
        """Client: queue SNRM with our parameters."""
        if not self.is_client:
            raise ProtocolError("only the client sends SNRM")
        if self.state is not HdlcState.DISCONNECTED:
            raise ProtocolError(f"cannot connect while {self.state.value}")
        self._reset_sequences()
        self.state = HdlcState.CONNECTING
        self._emit(FrameType.SNRM, information=self.local_parameters.to_bytes())

    def disconnect(self) -> None:
        """Client: queue DISC."""
        if not self.is_client:
            raise ProtocolError("only the client sends DISC")
        if self.state is HdlcState.DISCONNECTED:
            raise ProtocolError("not connected")
        self.state = HdlcState.DISCONNECTING
        self._emit(FrameType.DISC)

    def send_apdu(self, apdu: bytes) -> None:
        """Queue an APDU: LLC header added, segmented to the negotiated length."""
        if self.state is not HdlcState.CONNECTED:
            raise ProtocolError(f"cannot send an APDU while {self.state.value}")
        if self.sending:
            raise ProtocolError("the previous APDU is still being sent")
        payload = (LLC_REQUEST if self.is_client else LLC_RESPONSE) + bytes(apdu)
        size = self.max_info_transmit
        self._tx_segments.extend(payload[i : i + size] for i in range(0, len(payload), size))
        self._send_next_segment()

    def _send_next_segment(self) -> None:
        info = self._tx_segments.popleft()
        more = bool(self._tx_segments)
        self._emit(
            FrameType.I,
            send_seq=self._vs,
            recv_seq=self._vr,
            information=info,
            segmented=more,
        )
        self._vs = (self._vs + 1) & 7
        self._awaiting_ack = more

    # -- input ----------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[HdlcEvent]:
        """Process received bytes; return the resulting events in order."""
        events: list[HdlcEvent] = []
        local_dst, local_src = self._addresses()
        for frame in self._decoder.feed(data):
            # Frames for someone else (shared bus, other SAP) are not ours to answer.
            if frame.destination != local_src or frame.source != local_dst:
                continue
            if self.is_client:
                self._client_frame(frame, events)
            else:
                self._server_frame(frame, events)
        return events

    def _negotiate(self, information: bytes) -> bool:
        """Adopt the smaller of our and the peer's limits; False if its block is unusable."""
        try:
            peer = HdlcParameters.from_bytes(information)
        except DecodeError:
            return False
        if not peer.max_info_receive or not peer.max_info_transmit:
            return False
        local = self.local_parameters
        self.max_info_transmit = min(local.max_info_transmit, peer.max_info_receive)
        self.max_info_receive = min(local.max_info_receive, peer.max_info_transmit)
        return True

    def _client_frame(self, frame: HdlcFrame, events: list[HdlcEvent]) -> None:
        ft = frame.frame_type
        if ft is FrameType.UA:
            if self.state is HdlcState.CONNECTING:
                if not self._negotiate(frame.information):
                    self.state = HdlcState.DISCONNECTED
                    events.append(ConnectionRejected())
                    return
                self.state = HdlcState.CONNECTED
                events.append(Connected(self.max_info_transmit, self.max_info_receive))
            elif self.state is HdlcState.DISCONNECTING:
                self.state = HdlcState.DISCONNECTED
                self._reset_sequences()
                events.append(Disconnected())
        elif ft is FrameType.DM:
            previous = self.state
            self.state = HdlcState.DISCONNECTED
            self._reset_sequences()
            events.append(
                ConnectionRejected() if previous is HdlcState.CONNECTING else Disconnected()
            )
        elif ft is FrameType.FRMR:
            events.append(FrameRejected(frame.information))
        elif ft is FrameType.UI:
            events.append(UiReceived(frame.information))
        elif self.state is not HdlcState.CONNECTED:
            return
        elif ft is FrameType.I:
            self._receive_i(frame, events, LLC_RESPONSE)
        elif ft in (FrameType.RR, FrameType.RNR):
            self._receive_rr(frame)

    def _server_frame(self, frame: HdlcFrame, events: list[HdlcEvent]) -> None:
        ft = frame.frame_type
        if ft is FrameType.SNRM:
            self._reset_sequences()
            if not self._negotiate(frame.information):
                self.state = HdlcState.DISCONNECTED
                self._emit(FrameType.DM)  # unusable parameters: refuse the connection
                return
            reply = HdlcParameters(self.max_info_transmit, self.max_info_receive)
            self._emit(FrameType.UA, information=reply.to_bytes())
            self.state = HdlcState.CONNECTED
            events.append(Connected(self.max_info_transmit, self.max_info_receive))
        elif ft is FrameType.DISC:
            if self.state is HdlcState.CONNECTED:
                self._emit(FrameType.UA)
                self.state = HdlcState.DISCONNECTED
                self._reset_sequences()
                events.append(Disconnected())
            else:
                self._emit(FrameType.DM)
        elif ft is FrameType.UI:
            events.append(UiReceived(frame.information))
        elif self.state is not HdlcState.CONNECTED:
            self._emit(FrameType.DM)
        elif ft is FrameType.I:
            self._receive_i(frame, events, LLC_REQUEST)
        elif ft in (FrameType.RR, FrameType.RNR) and not self._receive_rr(frame):
            # A poll with nothing pending: tell the client we are alive.
            self._emit(FrameType.RR, recv_seq=self._vr)

    def _receive_rr(self, frame: HdlcFrame) -> bool:
        """Handle RR/RNR; return True if it moved a segmented transmission along."""
        if not self._awaiting_ack:
            return False
        if frame.recv_seq == self._vs:
            if frame.frame_type is FrameType.RNR:
                return True  # peer busy: stay waiting; the I/O layer polls or resends later
            self._awaiting_ack = False
            if self._tx_segments:
                self._send_next_segment()
            return True
        self.resend_last()  # N(R) does not acknowledge our last segment: it was lost
        return True

    def _receive_i(self, frame: HdlcFrame, events: list[HdlcEvent], llc: bytes) -> None:
        if frame.send_seq != self._vr:
            # Duplicate or out of sequence: re-acknowledge what we have.
            self._emit(FrameType.RR, recv_seq=self._vr)
            return
        self._vr = (self._vr + 1) & 7
        if self._awaiting_ack and frame.recv_seq == self._vs:
            self._awaiting_ack = False
        if len(self._rx) + len(frame.information) > self.max_apdu_size + len(llc):
            self._rx.clear()
            raise ProtocolError(f"reassembled APDU exceeds {self.max_apdu_size} bytes")
        self._rx += frame.information
        if frame.segmented:
            self._emit(FrameType.RR, recv_seq=self._vr)
            return
        payload = bytes(self._rx)
        self._rx.clear()
        if not payload.startswith(llc):
            raise ProtocolError(f"information field lacks the LLC header {llc.hex(' ')}")
        events.append(ApduReceived(payload[len(llc) :]))
