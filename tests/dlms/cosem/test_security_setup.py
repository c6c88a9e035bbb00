"""Interface class 64 (Security setup)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.axdr import Data
from smmc.dlms.cosem.base import CosemAccessError
from smmc.dlms.cosem.security_setup import KeyId, SecurityPolicy, SecuritySetup, wrap_key
from smmc.dlms.obis import Obis

LN = Obis.parse("0.0.43.0.3.255")
KEK = bytes(range(16))
# RFC 3394 §4.1 test vector: 128-bit key data wrapped with a 128-bit KEK.
RFC_KEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
RFC_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
RFC_WRAPPED = bytes.fromhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")


def _setup() -> tuple[SecuritySetup, list[dict[KeyId, bytes]]]:
    seen: list[dict[KeyId, bytes]] = []
    setup = SecuritySetup(
        LN,
        SecurityPolicy.ALL_AUTHENTICATED,
        client_system_title=b"SMMCHES1",
        server_system_title=b"NXM\x00\x00\x00\x00\x01",
        keys={KeyId.MASTER: KEK},
        on_keys_changed=seen.append,
    )
    return setup, seen


def _transfer(items: list[tuple[int, bytes]]) -> Data:
    return Data.array(Data.structure((Data.enum(k), Data.octet_string(blob))) for k, blob in items)


def test_attributes() -> None:
    setup, _ = _setup()
    assert setup.get(2) == Data.enum(1)
    assert setup.get(3) == Data.enum(0)
    assert setup.get(4) == Data.octet_string(b"SMMCHES1")
    assert setup.get(5) == Data.octet_string(b"NXM\x00\x00\x00\x00\x01")
    setup.set(4, Data.octet_string(b"SMMCHES2"))
    assert setup.client_system_title == b"SMMCHES2"
    with pytest.raises(CosemAccessError):
        setup.set(4, Data.octet_string(b"short"))
    with pytest.raises(CosemAccessError):
        setup.set(5, Data.octet_string(b"NXM00002"))


def test_wrap_matches_rfc3394_vector() -> None:
    assert wrap_key(RFC_KEK, RFC_KEY) == RFC_WRAPPED


def test_policy_only_strengthens() -> None:
    setup, _ = _setup()
    setup.action(1, Data.enum(3))
    assert setup.policy is SecurityPolicy.ALL_AUTHENTICATED_AND_ENCRYPTED
    with pytest.raises(CosemAccessError):
        setup.action(1, Data.enum(1))
    with pytest.raises(CosemAccessError):
        setup.action(1, Data.enum(9))


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16))
def test_key_transfer_unwraps(ek: bytes, ak: bytes) -> None:
    setup, seen = _setup()
    setup.action(2, _transfer([(0, wrap_key(KEK, ek)), (2, wrap_key(KEK, ak))]))
    expected = {KeyId.GLOBAL_UNICAST_ENCRYPTION: ek, KeyId.AUTHENTICATION: ak}
    assert seen == [expected]
    assert setup.keys[KeyId.AUTHENTICATION] == ak


def test_key_transfer_is_all_or_nothing() -> None:
    setup, seen = _setup()
    good = wrap_key(KEK, b"k" * 16)
    bad = bytearray(wrap_key(KEK, b"a" * 16))
    bad[0] ^= 1
    with pytest.raises(CosemAccessError, match="authentication unwrap failed"):
        setup.action(2, _transfer([(0, good), (2, bytes(bad))]))
    assert seen == []
    assert KeyId.GLOBAL_UNICAST_ENCRYPTION not in setup.keys


def test_key_transfer_needs_master_key_and_valid_ids() -> None:
    setup = SecuritySetup(LN)
    with pytest.raises(CosemAccessError, match="master"):
        setup.action(2, _transfer([(0, wrap_key(KEK, b"k" * 16))]))
    setup, _ = _setup()
    with pytest.raises(CosemAccessError):
        setup.action(2, _transfer([(7, wrap_key(KEK, b"k" * 16))]))
    with pytest.raises(CosemAccessError) as exc:
        setup.action(2, None)
    assert exc.value.result == 12
