"""Interface class 18 (Image transfer)."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smmc.dlms.axdr import Data
from smmc.dlms.cosem.base import CosemAccessError
from smmc.dlms.cosem.image_transfer import ImageTransfer, ImageTransferStatus

S = ImageTransferStatus


def _initiate(obj: ImageTransfer, ident: bytes, size: int) -> None:
    obj.action(1, Data.structure((Data.octet_string(ident), Data.double_long_unsigned(size))))


def _block(obj: ImageTransfer, number: int, value: bytes) -> None:
    obj.action(2, Data.structure((Data.double_long_unsigned(number), Data.octet_string(value))))


def _upload(obj: ImageTransfer, ident: bytes, image: bytes) -> None:
    _initiate(obj, ident, len(image))
    size = obj.block_size
    for n in range(0, len(image), size):
        _block(obj, n // size, image[n : n + size])


@settings(max_examples=30)
@given(st.binary(min_size=1, max_size=700), st.integers(1, 64), st.randoms())
def test_blocks_in_any_order_rebuild_the_image(
    image: bytes, block: int, rnd: random.Random
) -> None:
    obj = ImageTransfer(block_size=block)
    _initiate(obj, b"FW-2.0", len(image))
    numbers = list(range(obj.block_count))
    rnd.shuffle(numbers)
    missing = set(numbers)
    for n in numbers:
        assert obj.get(4).value == min(missing)
        _block(obj, n, image[n * block : (n + 1) * block])
        missing.discard(n)
    assert obj.get(4).value == obj.block_count
    assert str(obj.get(3).value) == "1" * obj.block_count
    obj.action(3, Data.integer(0))
    assert obj.image() == image


def test_full_cycle_calls_activation_callback() -> None:
    image = bytes(range(256)) * 3
    activated: list[tuple[bytes, bytes]] = []
    obj = ImageTransfer(
        block_size=200,
        verifier=lambda ident, img: hashlib.sha256(img).digest() == hashlib.sha256(image).digest(),
        on_activate=lambda ident, img: activated.append((ident, img)),
    )
    assert obj.get(6) == Data.enum(0)
    _upload(obj, b"NEXY-M 2.1.0", image)
    assert obj.get(6) == Data.enum(S.INITIATED)
    assert obj.get(7) == Data.array(())
    obj.action(3, Data.integer(0))
    assert obj.get(6) == Data.enum(S.VERIFICATION_SUCCESSFUL)
    info = obj.get(7).to_python()
    assert info == [[768, b"NEXY-M 2.1.0", b""]]
    obj.action(4, Data.integer(0))
    assert obj.get(6) == Data.enum(S.ACTIVATION_SUCCESSFUL)
    assert activated == [(b"NEXY-M 2.1.0", image)]


def test_activate_verifies_first_and_reports_missing_block() -> None:
    obj = ImageTransfer(block_size=10)
    _initiate(obj, b"X", 25)
    _block(obj, 0, b"a" * 10)
    _block(obj, 2, b"c" * 5)
    with pytest.raises(CosemAccessError, match="block 1 missing"):
        obj.action(4, Data.integer(0))
    assert obj.status is S.VERIFICATION_FAILED


def test_verifier_rejects() -> None:
    obj = ImageTransfer(block_size=4, verifier=lambda ident, img: False)
    _upload(obj, b"X", b"abcdefg")
    with pytest.raises(CosemAccessError):
        obj.verify()
    assert obj.status is S.VERIFICATION_FAILED


def test_activation_failure_is_reported() -> None:
    def boom(ident: bytes, img: bytes) -> None:
        raise RuntimeError("flash write error")

    obj = ImageTransfer(block_size=4, on_activate=boom)
    _upload(obj, b"X", b"abcdefg")
    with pytest.raises(CosemAccessError, match="flash write error"):
        obj.activate()
    assert obj.status is S.ACTIVATION_FAILED


def test_block_checks() -> None:
    obj = ImageTransfer(block_size=10)
    with pytest.raises(CosemAccessError) as exc:
        _block(obj, 0, b"x" * 10)
    assert exc.value.result == 2
    _initiate(obj, b"X", 25)
    with pytest.raises(CosemAccessError):
        _block(obj, 3, b"x" * 10)
    with pytest.raises(CosemAccessError):
        _block(obj, 0, b"x" * 9)
    with pytest.raises(CosemAccessError):
        _block(obj, 2, b"x" * 10)
    with pytest.raises(CosemAccessError) as exc:
        obj.action(2, Data.structure((Data.long_unsigned(0), Data.octet_string(b""))))
    assert exc.value.result == 12
    with pytest.raises(CosemAccessError) as exc:
        obj.action(1, None)
    assert exc.value.result == 12


def test_size_limit_and_disabled() -> None:
    obj = ImageTransfer(max_image_size=100)
    with pytest.raises(CosemAccessError):
        _initiate(obj, b"X", 101)
    with pytest.raises(CosemAccessError):
        _initiate(obj, b"X", 0)
    obj.set(5, Data.boolean(False))
    assert obj.get(5) == Data.boolean(False)
    with pytest.raises(CosemAccessError) as exc:
        _initiate(obj, b"X", 10)
    assert exc.value.result == 3
    with pytest.raises(CosemAccessError):
        obj.set(2, Data.double_long_unsigned(64))
