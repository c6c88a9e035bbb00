"""Security suite 0 against the published DLMS (Green Book) test vectors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.errors import CipheringError, DecodeError, ReplayError
from smmc.dlms.security import (
    BlockCipherKey,
    InvocationCounterGuard,
    SecurityControl,
    decrypt,
    encrypt,
    gmac,
    gmac_tag,
    split_header,
    suite0_control,
    verify_gmac,
)

h = bytes.fromhex

# Green Book example keys and titles (also used in dlms-cosem's and Gurux's test suites).
EK = h("000102030405060708090A0B0C0D0E0F")
AK = h("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
SERVER_TITLE = h("4D4D4D0000BC614E")
CLIENT_TITLE = h("4D4D4D0000000001")
IC = 0x01234567
# xDLMS InitiateRequest with a dedicated key, protected as glo-initiate-request (tag 0x21).
PLAINTEXT = h("01011000112233445566778899AABBCCDDEEFF0000065F1F0400007E1F04B0")
CIPHERTEXT = h("801302FF8A7874133D414CED25B42534D28DB0047720606B175BD52211BE68")
TAG = h("41DB204D39EE6FDB8E356855")
GLO_INITIATE_REQUEST = h(
    "21303001234567801302FF8A7874133D414CED25B42534D28DB0047720606B175BD52211BE68"
    "41DB204D39EE6FDB8E356855"
)


def test_green_book_authenticated_encryption() -> None:
    protected = encrypt(EK, AK, SERVER_TITLE, IC, SecurityControl(True, True), PLAINTEXT)
    assert protected == b"\x30" + IC.to_bytes(4, "big") + CIPHERTEXT + TAG
    # as carried in the glo-initiate-request: tag 0x21, length 0x30
    assert b"\x21" + bytes((len(protected),)) + protected == GLO_INITIATE_REQUEST
    assert decrypt(EK, AK, SERVER_TITLE, protected) == PLAINTEXT


def test_green_book_hls_gmac_pass_3_and_4() -> None:
    # Pass 3: the client answers the server's challenge StoC.
    stoc = b"P6wRJ21F"
    assert gmac_tag(EK, AK, CLIENT_TITLE, 1, stoc) == h("1A52FE7DD3E72748973C1E28")
    assert gmac(EK, AK, CLIENT_TITLE, 1, stoc) == h("10000000011A52FE7DD3E72748973C1E28")
    # Pass 4: the server answers the client's challenge CtoS.
    ctos = b"K56iVagY"
    f_ctos = gmac(EK, AK, SERVER_TITLE, IC, ctos)
    assert f_ctos == h("1001234567FE1466AFB3DBCD4F9389E2B7")
    assert verify_gmac(EK, AK, SERVER_TITLE, f_ctos, ctos) == IC
    with pytest.raises(CipheringError):
        verify_gmac(EK, AK, SERVER_TITLE, f_ctos, b"K56iVagZ")
    with pytest.raises(CipheringError):
        verify_gmac(EK, AK, CLIENT_TITLE, f_ctos, ctos)


def test_encryption_only_has_no_tag_and_same_keystream() -> None:
    protected = encrypt(EK, AK, SERVER_TITLE, IC, 0x20, PLAINTEXT)
    assert protected == b"\x20" + IC.to_bytes(4, "big") + CIPHERTEXT
    assert decrypt(EK, AK, SERVER_TITLE, protected) == PLAINTEXT


def test_authentication_only_keeps_plaintext() -> None:
    protected = encrypt(EK, AK, SERVER_TITLE, IC, 0x10, PLAINTEXT)
    assert protected[:5] == b"\x10" + IC.to_bytes(4, "big")
    assert protected[5:-12] == PLAINTEXT
    assert len(protected) == 5 + len(PLAINTEXT) + 12
    assert decrypt(EK, AK, SERVER_TITLE, protected) == PLAINTEXT
    tampered = bytearray(protected)
    tampered[6] ^= 1
    with pytest.raises(CipheringError):
        decrypt(EK, AK, SERVER_TITLE, bytes(tampered))


@pytest.mark.parametrize("sc", [0x10, 0x30])
def test_tampering_detected(sc: int) -> None:
    protected = bytearray(encrypt(EK, AK, SERVER_TITLE, IC, sc, PLAINTEXT))
    for index in (0, 3, 10, len(protected) - 1):
        bad = bytearray(protected)
        bad[index] ^= 0x40 if index == 0 else 0x01
        with pytest.raises(CipheringError):
            decrypt(EK, AK, SERVER_TITLE, bytes(bad))
    with pytest.raises(CipheringError):
        decrypt(EK, bytes(16), SERVER_TITLE, bytes(protected))
    with pytest.raises(CipheringError):
        decrypt(EK, AK, CLIENT_TITLE, bytes(protected))


def test_parameter_checks() -> None:
    with pytest.raises(CipheringError):
        encrypt(EK[:8], AK, SERVER_TITLE, IC, 0x30, b"")
    with pytest.raises(CipheringError):
        encrypt(EK, AK, SERVER_TITLE[:4], IC, 0x30, b"")
    with pytest.raises(CipheringError):
        encrypt(EK, AK, SERVER_TITLE, 2**32, 0x30, b"")
    with pytest.raises(CipheringError):
        encrypt(EK, AK, SERVER_TITLE, IC, 0x00, b"")  # neither A nor E
    with pytest.raises(CipheringError):
        encrypt(EK, AK, SERVER_TITLE, IC, 0x31, b"")  # suite 1
    with pytest.raises(CipheringError):
        encrypt(EK, AK, SERVER_TITLE, IC, 0xB0, b"")  # compression
    with pytest.raises(DecodeError):
        decrypt(EK, AK, SERVER_TITLE, b"\x30\x00")
    with pytest.raises(DecodeError):
        decrypt(EK, AK, SERVER_TITLE, b"\x30\x00\x00\x00\x01" + b"\x00" * 5)


def test_security_control_byte() -> None:
    sc = SecurityControl(authenticated=True, encrypted=True, key_set=True, suite_id=0)
    assert sc.to_bytes() == b"\x70"
    assert SecurityControl.from_bytes(b"\x70") == sc
    assert SecurityControl.from_int(0x8F) == SecurityControl(False, False, False, True, 15)
    assert [SecurityControl.from_int(i).to_int() for i in range(256)] == list(range(256))
    assert split_header(h("3001234567")) == (SecurityControl(True, True), IC)
    with pytest.raises(DecodeError):
        SecurityControl.from_bytes(b"")


@given(
    st.sampled_from([0x10, 0x20, 0x30, 0x50, 0x60, 0x70]),
    st.binary(max_size=300),
    st.integers(0, 2**32 - 1),
)
def test_round_trip(sc: int, plaintext: bytes, ic: int) -> None:
    protected = encrypt(EK, AK, SERVER_TITLE, ic, sc, plaintext)
    assert split_header(protected) == (SecurityControl.from_int(sc), ic)
    assert decrypt(EK, AK, SERVER_TITLE, protected) == plaintext


@given(st.binary(max_size=64))
def test_decrypt_garbage_raises_dlms_errors_only(raw: bytes) -> None:
    with contextlib.suppress(CipheringError, DecodeError):
        decrypt(EK, AK, SERVER_TITLE, raw)


def test_invocation_counter_guard() -> None:
    persisted: list[tuple[bytes, int]] = []
    guard = InvocationCounterGuard(
        {SERVER_TITLE: 10}, on_accept=lambda t, c: persisted.append((t, c))
    )
    assert guard.last(SERVER_TITLE) == 10
    with pytest.raises(ReplayError):
        guard.check(SERVER_TITLE, 10)
    with pytest.raises(ReplayError):
        guard.accept(SERVER_TITLE, 9)
    guard.check(SERVER_TITLE, 11)
    assert persisted == []  # check alone never records
    guard.accept(SERVER_TITLE, 11)
    guard.accept(CLIENT_TITLE, 0)  # first counter of a new peer
    assert persisted == [(SERVER_TITLE, 11), (CLIENT_TITLE, 0)]
    with pytest.raises(ReplayError):
        guard.accept(CLIENT_TITLE, 0)
    with pytest.raises(ReplayError):
        guard.accept(CLIENT_TITLE, 2**32)
    assert guard.last(h("0000000000000000")) is None
    assert issubclass(ReplayError, CipheringError)


def test_guard_with_decrypt_flow() -> None:
    guard = InvocationCounterGuard()
    protected = encrypt(EK, AK, SERVER_TITLE, 5, 0x30, b"hello")
    _, ic = split_header(protected)
    guard.check(SERVER_TITLE, ic)
    assert decrypt(EK, AK, SERVER_TITLE, protected) == b"hello"
    guard.accept(SERVER_TITLE, ic)
    with pytest.raises(ReplayError):
        guard.check(SERVER_TITLE, split_header(protected)[1])  # replayed APDU


def test_a_key_set_up_once_gives_the_green_book_bytes_and_hides_itself() -> None:
    key = BlockCipherKey(EK)
    protected = encrypt(key, AK, SERVER_TITLE, IC, 0x30, PLAINTEXT)
    assert protected == b"\x30" + IC.to_bytes(4, "big") + CIPHERTEXT + TAG
    assert decrypt(key, AK, SERVER_TITLE, protected) == PLAINTEXT
    assert encrypt(key, AK, SERVER_TITLE, IC, 0x20, PLAINTEXT)[5:] == CIPHERTEXT
    assert gmac_tag(key, AK, CLIENT_TITLE, 1, b"P6wRJ21F") == h("1A52FE7DD3E72748973C1E28")
    assert EK.hex() not in repr(key).lower()
    with pytest.raises(CipheringError, match="must be 16 bytes"):
        BlockCipherKey(EK[:15])


@pytest.mark.parametrize(
    ("authenticated", "encrypted"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_suite0_control_is_the_control_the_flags_build(
    authenticated: bool, encrypted: bool
) -> None:
    assert suite0_control(authenticated, encrypted) == SecurityControl(authenticated, encrypted)
