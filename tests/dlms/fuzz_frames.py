"""Fuzz target for the frame and data decoders.

Every decoder must return a value or raise ``DecodeError`` on any input; anything else
(IndexError, struct.error, hangs) is a bug. Run it:

* with plain Python for N random inputs: ``python tests/dlms/fuzz_frames.py 100000``
* with atheris (coverage-guided) if installed: ``python tests/dlms/fuzz_frames.py --atheris``

``tests/dlms/test_hdlc.py`` runs it briefly as part of the suite.
"""

from __future__ import annotations

import contextlib
import random
import sys

from smmc.dlms.axdr import CompactArray, Data, DataTag, TypeDescription, decode_data, encode_data
from smmc.dlms.errors import DecodeError
from smmc.dlms.framing.hdlc import FrameType, HdlcAddress, HdlcDecoder, HdlcFrame, HdlcParameters
from smmc.dlms.framing.wrapper import WrapperDecoder, WrapperFrame

# Valid encodings to mutate, so random inputs reach past the first checks.
SEEDS: list[bytes] = [
    HdlcFrame(FrameType.SNRM, HdlcAddress(1), HdlcAddress(16)).to_bytes(),
    HdlcFrame(
        FrameType.I, HdlcAddress(1, 0x1234), HdlcAddress(16), True, 3, 5, b"\xe6\xe6\x00\xc0\x01"
    ).to_bytes(),
    HdlcFrame(FrameType.RR, HdlcAddress(16), HdlcAddress(1, 17), recv_seq=2).to_bytes(),
    HdlcParameters(256, 256).to_bytes(),
    WrapperFrame(1, 16, 1, bytes.fromhex("c001c100080000010000ff0200")).to_bytes(),
    encode_data(
        Data.array(
            [Data.structure([Data.octet_string(b"\x00" * 6), Data.long(-1)]) for _ in range(3)]
        )
    ),
    encode_data(
        Data.compact_array(
            CompactArray(
                TypeDescription(
                    DataTag.STRUCTURE,
                    (TypeDescription(DataTag.UNSIGNED), TypeDescription(DataTag.OCTET_STRING)),
                ),
                (Data.structure([Data.unsigned(1), Data.octet_string(b"ab")]),),
            )
        )
    ),
]


def fuzz_one(data: bytes) -> None:
    """Feed ``data`` to every decoder; only ``DecodeError`` may escape them."""
    for call in (
        lambda: decode_data(data),
        lambda: HdlcFrame.from_bytes(data),
        lambda: HdlcParameters.from_bytes(data),
        lambda: WrapperFrame.from_bytes(data),
        lambda: WrapperDecoder(max_length=1024).feed(data),
    ):
        with contextlib.suppress(DecodeError):
            call()
    hdlc = HdlcDecoder()
    half = len(data) // 2
    frames = hdlc.feed(data[:half]) + hdlc.feed(data[half:])
    for frame in frames:  # what decodes must re-encode to something that decodes alike
        assert HdlcFrame.from_bytes(frame.to_bytes()) == frame


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    buf = bytearray(seed)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        if op < 0.5 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op < 0.75:
            buf.insert(rng.randint(0, len(buf)), rng.randrange(256))
        elif buf:
            del buf[rng.randrange(len(buf))]
    return bytes(buf)


def run(iterations: int, seed: int = 0) -> None:
    """Run ``iterations`` random (half random, half mutated-seed) inputs."""
    rng = random.Random(seed)
    for i in range(iterations):
        data = rng.randbytes(rng.randint(0, 64)) if i % 2 else _mutate(rng, rng.choice(SEEDS))
        fuzz_one(data)


def main(argv: list[str]) -> None:
    """Entry point: ``N`` iterations, or ``--atheris`` for coverage-guided fuzzing."""
    if "--atheris" in argv:
        import atheris  # type: ignore[import-not-found]

        atheris.Setup([a for a in argv if a != "--atheris"], fuzz_one)
        atheris.Fuzz()
        return
    iterations = int(argv[1]) if len(argv) > 1 else 100_000
    run(iterations)
    print(f"{iterations} inputs, no unexpected exception")


if __name__ == "__main__":
    main(sys.argv)
