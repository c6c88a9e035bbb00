"""DLMS decode benchmark (issue 3): a ciphered, block-transferred 15-minute load profile.

    python benchmarks/dlms_decode.py --meters 200 --repeat 5 --pdu-size 1024

Builds once, for N meters, the glo-get-response APDUs (security suite 0, SC 0x30, a key,
system title and increasing invocation counters per meter) that carry a GET-with-datablock
reply of 96 rows × 6 columns (clock, status, +A, −A, +R, −R), then decodes the same bytes
with smmc.dlms, gurux-dlms and dlms-cosem 21.3.2. Every decoder's values are compared with
what was encoded (any mismatch aborts the run); the rate is the best of the repetitions,
in CPU time of the process (the machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from smmc.dlms import security
from smmc.dlms.apdu import (
    Aare,
    AcseServiceUserDiagnostic,
    ApplicationContextName,
    AssociationResult,
    CipheredApdu,
    CipheredTag,
    GetResponseWithDatablock,
    InitiateResponse,
    InvokeIdAndPriority,
    decode_get_response,
)
from smmc.dlms.axdr import Data, DataTag, decode_data, encode_data
from smmc.dlms.connection import (
    DEFAULT_CLIENT_CONFORMANCE,
    ClientConnection,
    ClientSettings,
    GetResult,
    SecurityPolicy,
)
from smmc.dlms.cosem_time import ClockStatus, CosemDateTime
from smmc.dlms.obis import Obis

ROWS = 96
COLUMNS = 6
VALUES_PER_METER = ROWS * COLUMNS
LOAD_PROFILE = Obis(1, 0, 99, 1, 0, 255)
PROFILE_CLASS = 7
BUFFER_ATTRIBUTE = 2
CLIENT_TITLE = b"SMM\x00\x00\x00\x00\x01"
SUITE0_AE = security.SecurityControl(authenticated=True, encrypted=True)
FIRST_GET = InvokeIdAndPriority(1)  # the invoke id of a fresh client's first request
# glo-get-response: tag, BER length (≤ 3 bytes), SC ‖ IC, GCM tag; datablock header:
# C4 02 iid, last-block, block number (4), choice, BER length (≤ 3 bytes).
_BLOCK_OVERHEAD = 1 + 3 + 5 + security.TAG_LENGTH + 3 + 1 + 4 + 1 + 3


class Row(NamedTuple):
    """One load-profile entry as encoded (a NamedTuple compares equal to a decoded tuple)."""

    clock: bytes
    status: int
    active_import: int
    active_export: int
    reactive_import: int
    reactive_export: int


Decoded = list[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class MeterReply:
    """What one meter sends for the load profile, and the rows it encoded."""

    system_title: bytes
    encryption_key: bytes
    authentication_key: bytes
    aare_counter: int
    apdus: tuple[bytes, ...]
    rows: tuple[Row, ...]


def _profile_rows(rng: random.Random, start: datetime) -> tuple[Row, ...]:
    """96 quarter-hours of cumulative energy with an occasional status bit."""
    registers = [rng.randrange(10**6, 10**8) for _ in range(4)]
    rows: list[Row] = []
    for i in range(ROWS):
        at = start + timedelta(minutes=15 * i)
        clock = CosemDateTime(
            at.year,
            at.month,
            at.day,
            at.isoweekday(),
            at.hour,
            at.minute,
            0,
            0,
            0,
            ClockStatus(0),
        ).to_bytes()
        status = rng.choice((0, 0, 0, 0, 0x08, 0x80))
        registers = [
            registers[0] + rng.randrange(0, 900),
            registers[1] + rng.randrange(0, 300),
            registers[2] + rng.randrange(0, 400),
            registers[3] + rng.randrange(0, 100),
        ]
        rows.append(Row(clock, status, *registers))
    return tuple(rows)


def encode_profile(rows: Sequence[Row]) -> bytes:
    """The buffer attribute as a meter encodes it: array of structure{octet-string, …}."""
    return encode_data(
        Data.array(
            tuple(
                Data.structure(
                    (
                        Data.octet_string(row.clock),
                        Data.unsigned(row.status),
                        *(Data.double_long_unsigned(v) for v in row[2:]),
                    )
                )
                for row in rows
            )
        )
    )


def cipher_blocks(
    raw: bytes, pdu_size: int, key: bytes, auth: bytes, title: bytes, first_counter: int
) -> tuple[bytes, ...]:
    """Split ``raw`` into datablocks, each one a glo-get-response that fits ``pdu_size``."""
    size = pdu_size - _BLOCK_OVERHEAD
    if size <= 0:
        raise SystemExit(f"--pdu-size {pdu_size} leaves no room for data")
    chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
    apdus = []
    for number, chunk in enumerate(chunks, start=1):
        plain = GetResponseWithDatablock(number == len(chunks), number, chunk, FIRST_GET)
        content = security.encrypt(
            key, auth, title, first_counter + number - 1, SUITE0_AE, plain.to_bytes()
        )
        apdu = CipheredApdu(CipheredTag.GLO_GET_RESPONSE, content).to_bytes()
        if len(apdu) > pdu_size:
            raise SystemExit(f"block of {len(apdu)} bytes exceeds --pdu-size {pdu_size}")
        apdus.append(apdu)
    return tuple(apdus)


def build_replies(meters: int, pdu_size: int, seed: int = 3) -> list[MeterReply]:
    """The same reproducible fleet every run: different keys, titles and values per meter."""
    replies = []
    start = datetime(2026, 11, 21)
    for index in range(meters):
        rng = random.Random(seed * 1_000_003 + index)
        key, auth = rng.randbytes(16), rng.randbytes(16)
        title = b"NXY" + (index + 1).to_bytes(5, "big")
        aare_counter = rng.randrange(1, 10**6)
        rows = _profile_rows(rng, start)
        apdus = cipher_blocks(encode_profile(rows), pdu_size, key, auth, title, aare_counter + 1)
        replies.append(MeterReply(title, key, auth, aare_counter, apdus, rows))
    return replies


# -- smmc.dlms ---------------------------------------------------------------------------


def smmc_client(reply: MeterReply) -> ClientConnection:
    """A ciphered client association with the meter, its load-profile GET pending."""
    settings = ClientSettings(
        encryption_key=reply.encryption_key,
        authentication_key=reply.authentication_key,
        system_title=CLIENT_TITLE,
        security=SecurityPolicy(authenticated=True, encrypted=True),
    )
    client = ClientConnection(settings)
    client.associate()
    client.data_to_send()
    initiate = InitiateResponse(DEFAULT_CLIENT_CONFORMANCE, 0xFFFF).to_bytes()
    content = security.encrypt(
        reply.encryption_key,
        reply.authentication_key,
        reply.system_title,
        reply.aare_counter,
        SUITE0_AE,
        initiate,
    )
    aare = Aare(
        AssociationResult.ACCEPTED,
        AcseServiceUserDiagnostic.NULL,
        ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
        CipheredApdu(CipheredTag.GLO_INITIATE_RESPONSE, content),
        responding_ap_title=reply.system_title,
    )
    client.receive_apdu(aare.to_bytes())
    invoke_id = client.get(PROFILE_CLASS, LOAD_PROFILE, BUFFER_ATTRIBUTE)
    if invoke_id != FIRST_GET.invoke_id:
        raise SystemExit(f"smmc client used invoke id {invoke_id}, blocks carry 1")
    client.data_to_send()
    return client


def smmc_connection_decode(client: ClientConnection, apdus: Sequence[bytes]) -> Data:
    """The real client path: replay guard, decipher, block checks, GetRequestNext, decode."""
    event = None
    for apdu in apdus:
        event = client.receive_apdu(apdu)
        client.data_to_send()
    if not isinstance(event, GetResult) or not isinstance(event.result, Data):
        raise SystemExit(f"smmc client ended with {event!r}")
    return event.result


def smmc_pieces_decode(reply: MeterReply, apdus: Sequence[bytes]) -> Data:
    """The same without the state machine: decipher, decode each block, join, decode_data."""
    raw = []
    for apdu in apdus:
        content = CipheredApdu.from_bytes(apdu).content
        plain = security.decrypt(
            reply.encryption_key, reply.authentication_key, reply.system_title, content
        )
        block = decode_get_response(plain)
        if not isinstance(block, GetResponseWithDatablock) or not isinstance(block.result, bytes):
            raise SystemExit(f"unexpected block {block!r}")
        raw.append(block.result)
    value, _ = decode_data(b"".join(raw))
    return value


_ROW_TAGS = (DataTag.OCTET_STRING, DataTag.UNSIGNED, *[DataTag.DOUBLE_LONG_UNSIGNED] * 4)


def smmc_rows(value: Data) -> Decoded:
    """Our Data tree as plain rows for the comparison, after checking every DLMS type."""
    if value.tag is not DataTag.ARRAY or not isinstance(value.value, tuple):
        raise SystemExit(f"smmc: the profile is a {value.tag.name}, not an array")
    rows: Decoded = []
    for row in value.value:
        if row.tag is not DataTag.STRUCTURE or not isinstance(row.value, tuple):
            raise SystemExit(f"smmc: a profile entry is a {row.tag.name}")
        if tuple(item.tag for item in row.value) != _ROW_TAGS:
            raise SystemExit("smmc: a profile entry has the wrong column types")
        rows.append(tuple(item.value for item in row.value))
    return rows


def smmc_connection_to_python(client: ClientConnection, apdus: Sequence[bytes]) -> Any:
    """The client path, then the Data tree turned into Python lists like the peers give."""
    return smmc_connection_decode(client, apdus).to_python()


def native_rows(value: Any) -> Decoded:
    """Lists of natives (octet strings as bytes or bytearray) as plain rows."""
    return [tuple(bytes(v) if isinstance(v, bytearray) else v for v in row) for row in value]


# -- gurux-dlms --------------------------------------------------------------------------


def _gurux_client(ciphered: bool, reply: MeterReply) -> Any:
    from gurux_dlms.enums import Authentication, InterfaceType, Security
    from gurux_dlms.objects import GXDLMSProfileGeneric
    from gurux_dlms.secure import GXDLMSSecureClient

    client = GXDLMSSecureClient(True, 16, 1, Authentication.NONE, None, InterfaceType.PDU)
    if ciphered:
        cipher = client.settings.cipher
        cipher.security = Security.AUTHENTICATION_ENCRYPTION
        cipher.systemTitle = bytearray(CLIENT_TITLE)
        cipher.blockCipherKey = bytearray(reply.encryption_key)
        cipher.authenticationKey = bytearray(reply.authentication_key)
        client.settings.sourceSystemTitle = bytearray(reply.system_title)
    client.read(GXDLMSProfileGeneric(str(LOAD_PROFILE)), BUFFER_ATTRIBUTE)
    return client


def gurux_client(reply: MeterReply) -> tuple[Any, None]:
    """A Gurux client in PDU mode, ciphering set up as after a ciphered AARE, GET sent."""
    return _gurux_client(True, reply), None


def gurux_plain_client(reply: MeterReply) -> tuple[Any, list[bytes]]:
    """An unciphered Gurux client and the blocks deciphered beforehand (untimed)."""
    plain = [
        security.decrypt(
            reply.encryption_key,
            reply.authentication_key,
            reply.system_title,
            CipheredApdu.from_bytes(apdu).content,
        )
        for apdu in reply.apdus
    ]
    return _gurux_client(False, reply), plain


def gurux_decode(state: tuple[Any, list[bytes] | None], apdus: Sequence[bytes]) -> Any:
    """Gurux's own loop: getData per block, receiverReady for the next, value at the end.

    Its decipher prints two lines per ciphered APDU unconditionally; they go to /dev/null.
    With pre-deciphered blocks in ``state`` those are fed instead of ``apdus``.
    """
    from gurux_dlms import GXByteBuffer, GXReplyData

    client, plain = state
    if plain is not None:
        apdus = plain
    reply = GXReplyData()
    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
        for apdu in apdus:
            if not client.getData(GXByteBuffer(apdu), reply, GXReplyData()):
                raise SystemExit("gurux: incomplete APDU")
            if reply.error:
                raise SystemExit(f"gurux: error {reply.error}")
            if reply.isMoreData():
                client.receiverReady(reply)
    if reply.isMoreData():
        raise SystemExit("gurux: still expects blocks")
    return reply.value


def gurux_rows(value: Any) -> Decoded:
    """Gurux keeps the DLMS types (GXUInt8, GXUInt32); check them, then compare as natives."""
    from gurux_dlms import GXUInt8, GXUInt32

    for row in value:
        if not isinstance(row[1], GXUInt8) or not all(isinstance(v, GXUInt32) for v in row[2:]):
            raise SystemExit("gurux: a profile entry has the wrong column types")
    return native_rows(value)


# -- dlms-cosem 21.3.2 -------------------------------------------------------------------


def dlms_cosem_decode(reply: MeterReply, apdus: Sequence[bytes]) -> Any:
    """dlms-cosem has no glo-get-response (0xCC) APDU class, so this harness reads the
    container (tag, length, SC, IC); dlms-cosem deciphers (``security.decrypt``), parses
    each block (``GetResponseFactory``) and the joined value (``parse_as_dlms_data``)."""
    from dlms_cosem.protocol.xdlms import GetResponseFactory
    from dlms_cosem.security import SecurityControlField, decrypt
    from dlms_cosem.utils import parse_as_dlms_data

    raw = []
    for apdu in apdus:
        start = 2 if apdu[1] < 0x80 else 2 + (apdu[1] & 0x7F)
        sc = SecurityControlField.from_bytes(apdu[start : start + 1])
        counter = int.from_bytes(apdu[start + 1 : start + 5], "big")
        plain = decrypt(
            sc,
            reply.system_title,
            counter,
            reply.encryption_key,
            apdu[start + 5 :],
            reply.authentication_key,
        )
        raw.append(GetResponseFactory.from_bytes(plain).data)
    return parse_as_dlms_data(b"".join(raw))


# -- harness -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decoder:
    """One measured implementation: untimed per-meter setup, timed decode, row view."""

    name: str
    what: str
    prepare: Callable[[MeterReply], Any]
    decode: Callable[[Any, Sequence[bytes]], Any]
    rows: Callable[[Any], Decoded]


DECODERS = (
    Decoder(
        "smmc.dlms (ClientConnection)",
        "ClientConnection.receive_apdu per block: replay guard, suite 0 decipher, block "
        "checks, ciphered GetRequestNext queued, reassembly, decode_data → Data tree",
        smmc_client,
        smmc_connection_decode,
        smmc_rows,
    ),
    Decoder(
        "smmc.dlms (ClientConnection + to_python)",
        "informational: the same, then Data.to_python() → Python lists like the peers return",
        smmc_client,
        smmc_connection_to_python,
        native_rows,
    ),
    Decoder(
        "smmc.dlms (pieces)",
        "CipheredApdu.from_bytes, security.decrypt, decode_get_response per block, "
        "decode_data of the joined blocks → Data tree",
        lambda reply: reply,
        smmc_pieces_decode,
        smmc_rows,
    ),
    Decoder(
        "gurux-dlms",
        "GXDLMSSecureClient (PDU interface) getData per block, with its own deciphering "
        "and receiverReady for the next block; reply.value → Python lists",
        gurux_client,
        gurux_decode,
        gurux_rows,
    ),
    Decoder(
        "gurux-dlms (parse only)",
        "informational: the blocks deciphered beforehand by smmc (untimed), then the same "
        "getData/receiverReady loop on the plaintext get-responses → Python lists",
        gurux_plain_client,
        gurux_decode,
        gurux_rows,
    ),
    Decoder(
        "dlms-cosem 21.3.2",
        "harness reads the 0xCC container header (dlms-cosem has no glo-get-response "
        "class); dlms_cosem.security.decrypt, GetResponseFactory per block, "
        "parse_as_dlms_data of the joined blocks → Python lists",
        lambda reply: reply,
        dlms_cosem_decode,
        native_rows,
    ),
)


PEERS = ("gurux-dlms", "dlms-cosem 21.3.2")
"""The full-path peers the targets compare with (the informational rows are not)."""


def decode_all(decoder: Decoder, replies: Sequence[MeterReply]) -> tuple[float, list[Any]]:
    """CPU seconds of this process to decode every meter once (setup excluded), and the
    decoded values. CPU time, not wall time: the machine is shared, and wall time would
    mostly measure the neighbours' load."""
    states = [decoder.prepare(reply) for reply in replies]
    gc.collect()
    started = time.process_time()
    values = [
        decoder.decode(state, reply.apdus) for state, reply in zip(states, replies, strict=True)
    ]
    return time.process_time() - started, values


def check(decoder: Decoder, replies: Sequence[MeterReply], values: Sequence[Any]) -> None:
    """Fail loudly unless every decoded row equals the encoded row."""
    for index, (reply, value) in enumerate(zip(replies, values, strict=True)):
        got = decoder.rows(value)
        if got != list(reply.rows):
            raise SystemExit(f"{decoder.name}: meter {index} decoded different values")
        if any(type(v) is bool or not isinstance(v, bytes | int) for row in got for v in row):
            raise SystemExit(f"{decoder.name}: meter {index} decoded values of the wrong type")


def machine() -> dict[str, str]:
    """CPU model, cores, Python, date and load: the context of the numbers."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load average (1, 5, 15 min)": load,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pdu-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    if args.meters < 1 or args.repeat < 1:
        parser.error("--meters and --repeat must be at least 1")

    replies = build_replies(args.meters, args.pdu_size, args.seed)
    blocks = sum(len(r.apdus) for r in replies)
    total_values = VALUES_PER_METER * len(replies)
    for key, value in machine().items():
        print(f"{key}: {value}")
    print(
        f"{args.meters} meters × {ROWS} rows × {COLUMNS} columns = {total_values} values; "
        f"PDU size {args.pdu_size}: {blocks / len(replies):.1f} ciphered blocks per meter, "
        f"{sum(len(a) for r in replies for a in r.apdus) // len(replies)} bytes per meter"
    )
    times: dict[str, list[float]] = {d.name: [] for d in DECODERS}
    for _ in range(args.repeat):  # interleaved, so load from other processes hits all alike
        for decoder in DECODERS:
            seconds, values = decode_all(decoder, replies)
            check(decoder, replies, values)
            del values  # not alive on the heap while the next decoder is timed
            times[decoder.name].append(seconds)
    print(f"load average after the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rates = {name: total_values / min(seconds) for name, seconds in times.items()}
    for decoder in DECODERS:
        print(f"  {decoder.name:42} {rates[decoder.name]:>12,.0f} values/s  ({decoder.what})")
    ours_name = DECODERS[0].name
    ours = rates[ours_name]
    for name, rate in list(rates.items())[1:]:
        print(f"  {ours_name} / {name}: {ours / rate:.2f}×")
    peer = max(PEERS, key=rates.__getitem__)
    paired = sorted(p / o for o, p in zip(times[ours_name], times[peer], strict=True))
    print(
        f"target ≥ 1.5× the fastest peer ({peer}): {ours / rates[peer]:.2f}× best against best; "
        f"per repetition (paired runs) median {statistics.median(paired):.2f}×, "
        f"range {paired[0]:.2f}–{paired[-1]:.2f}×"
    )
    print(f"target ≥ 300,000 values/s: {ours:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
