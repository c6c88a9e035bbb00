"""DLMS/COSEM security suite 0: AES-128-GCM with a 12-byte tag (Green Book 9.2.7).

The functions are pure (keys in, bytes out) so the association state machine decides which
key to use and when; replay protection lives in :class:`InvocationCounterGuard`, whose
``on_accept`` hook lets the caller persist the last counter it has seen.

Protected content layout (inside glo-/ded-/general-ciphering APDUs)::

    SC ‖ IC ‖ ciphertext ‖ tag      SC = security control, IC = 4-byte invocation counter

* authenticated only (SC 0x10): AAD = SC ‖ AK ‖ plaintext, "ciphertext" is the plaintext;
* encrypted only (SC 0x20): no tag;
* authenticated and encrypted (SC 0x30): AAD = SC ‖ AK.

The IV is system title (8 bytes) ‖ IC (4 bytes) of the *sender*.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from smmc.dlms.errors import CipheringError, DecodeError, ReplayError

__all__ = [
    "TAG_LENGTH",
    "BlockCipherKey",
    "InvocationCounterGuard",
    "SecurityControl",
    "decrypt",
    "encrypt",
    "gmac",
    "gmac_tag",
    "split_header",
    "suite0_control",
    "verify_gmac",
]

TAG_LENGTH: Final = 12
"""Authentication tag length of suite 0, in bytes."""

_MAX_IC: Final = 0xFFFF_FFFF
_HEADER: Final = 5  # SC + IC


@dataclass(frozen=True, slots=True)
class SecurityControl:
    """The security control byte: suite id (bits 0-3), A (4), E (5), key set (6), C (7).

    ``key_set`` False selects the unicast key, True the broadcast key.
    """

    authenticated: bool = False
    encrypted: bool = False
    key_set: bool = False
    compressed: bool = False
    suite_id: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.suite_id, int) or not 0 <= self.suite_id <= 15:
            raise CipheringError(f"security suite id must be 0..15, got {self.suite_id!r}")

    def to_int(self) -> int:
        """The byte value."""
        return (
            self.suite_id
            | (0x10 if self.authenticated else 0)
            | (0x20 if self.encrypted else 0)
            | (0x40 if self.key_set else 0)
            | (0x80 if self.compressed else 0)
        )

    def to_bytes(self) -> bytes:
        """The single encoded byte."""
        return bytes((self.to_int(),))

    @classmethod
    def from_int(cls, value: int) -> SecurityControl:
        """Decode the byte value (any 0..255 is representable)."""
        if not isinstance(value, int) or not 0 <= value <= 0xFF:
            raise DecodeError(f"security control must be one byte, got {value!r}")
        return cls(
            authenticated=bool(value & 0x10),
            encrypted=bool(value & 0x20),
            key_set=bool(value & 0x40),
            compressed=bool(value & 0x80),
            suite_id=value & 0x0F,
        )

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview, offset: int = 0) -> SecurityControl:
        """Decode the byte at ``offset``."""
        if offset < 0 or offset >= len(buf):
            raise DecodeError("missing security control byte", offset)
        return cls.from_int(buf[offset])


_SC_BY_BYTE: Final = tuple(SecurityControl.from_int(b) for b in range(256))
"""Every security control byte decoded once: the values are frozen, so they are shared."""


def suite0_control(authenticated: bool, encrypted: bool) -> SecurityControl:
    """The suite 0 security control with these protections, one of the shared values."""
    return _SC_BY_BYTE[(0x10 if authenticated else 0) | (0x20 if encrypted else 0)]


def _check_params(auth_key: bytes, system_title: bytes, ic: int) -> None:
    """The checks besides the block cipher key's (`_block_key`)."""
    if len(auth_key) != 16:
        raise CipheringError(f"suite 0 authentication key must be 16 bytes, got {len(auth_key)}")
    if len(system_title) != 8:
        raise CipheringError(f"system title must be 8 bytes, got {len(system_title)}")
    if not isinstance(ic, int) or not 0 <= ic <= _MAX_IC:
        raise CipheringError(f"invocation counter must be 0..2**32-1, got {ic!r}")


def _check_sc(sc: SecurityControl) -> None:
    if sc.suite_id != 0:
        raise CipheringError(f"only security suite 0 is supported, got {sc.suite_id}")
    if sc.compressed:
        raise CipheringError("compressed protected APDUs are not supported")
    if not (sc.authenticated or sc.encrypted):
        raise CipheringError("security control asks for neither authentication nor encryption")


def _as_sc(security_control: SecurityControl | int) -> SecurityControl:
    if isinstance(security_control, SecurityControl):
        return security_control
    try:
        return SecurityControl.from_int(security_control)
    except DecodeError as exc:
        raise CipheringError(str(exc)) from None


def _iv(system_title: bytes, ic: int) -> bytes:
    return bytes(system_title) + ic.to_bytes(4, "big")


class BlockCipherKey:
    """A suite 0 block cipher key with its AES-GCM context, set up once: the key schedule
    costs more than sealing an APDU. An association makes one and drops it with itself;
    the module keeps no keys. Every function here takes it or the key's bytes."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise CipheringError(f"suite 0 block cipher key must be 16 bytes, got {len(key)}")
        self._aead = AESGCM(bytes(key))

    def __repr__(self) -> str:
        return "BlockCipherKey(<hidden>)"


Key = bytes | BlockCipherKey
"""A block cipher key: its bytes, or a `BlockCipherKey` set up once for many calls."""


def _block_key(key: Key) -> BlockCipherKey:
    return key if isinstance(key, BlockCipherKey) else BlockCipherKey(key)


def _gcm_tag(key: BlockCipherKey, iv: bytes, aad: bytes, data: bytes) -> tuple[bytes, bytes]:
    """Encrypt ``data`` under GCM with ``aad``; return (ciphertext, truncated tag).

    ``AESGCM`` does it in one call; its 16-byte tag truncated to the first 12 bytes is the
    suite 0 tag (NIST SP 800-38D, 5.2.1.2).
    """
    sealed = key._aead.encrypt(iv, data, aad)
    return sealed[: len(data)], sealed[len(data) : len(data) + TAG_LENGTH]


def _gcm_open(key: BlockCipherKey, iv: bytes, aad: bytes, data: bytes, tag: bytes) -> bytes:
    """Decipher ``data`` and verify it against the truncated ``tag``.

    ``AESGCM`` only verifies full 16-byte tags, so this takes two sealing passes instead:
    GCM's keystream is the same both ways, so sealing the ciphertext yields the plaintext,
    and sealing that plaintext yields the ciphertext's tag. Nothing is returned unverified.
    """
    plaintext, _ = _gcm_tag(key, iv, aad, data)
    _, expected = _gcm_tag(key, iv, aad, plaintext)
    if not hmac.compare_digest(expected, tag):
        raise CipheringError("authentication tag mismatch (wrong key, IC or tampering)")
    return plaintext


def _ctr(key: BlockCipherKey, iv: bytes, data: bytes) -> bytes:
    """GCM's keystream without authentication (CTR from counter block IV ‖ 2): GCM's
    ciphertext without its tag."""
    ciphertext, _ = _gcm_tag(key, iv, b"", data)
    return ciphertext


def encrypt(
    key: Key,
    auth_key: bytes,
    system_title: bytes,
    invocation_counter: int,
    security_control: SecurityControl | int,
    plaintext: bytes,
) -> bytes:
    """Protect ``plaintext``; return ``SC ‖ IC ‖ ciphertext ‖ tag`` (tag absent if SC 0x20)."""
    block = _block_key(key)
    _check_params(auth_key, system_title, invocation_counter)
    sc = _as_sc(security_control)
    _check_sc(sc)
    sc_byte = sc.to_bytes()
    iv = _iv(system_title, invocation_counter)
    header = sc_byte + invocation_counter.to_bytes(4, "big")
    plaintext = bytes(plaintext)
    if sc.authenticated and sc.encrypted:
        ct, tag = _gcm_tag(block, iv, sc_byte + auth_key, plaintext)
        return header + ct + tag
    if sc.authenticated:
        _, tag = _gcm_tag(block, iv, sc_byte + auth_key + plaintext, b"")
        return header + plaintext + tag
    return header + _ctr(block, iv, plaintext)


def split_header(protected: bytes | bytearray | memoryview) -> tuple[SecurityControl, int]:
    """Read SC and IC from protected content, e.g. to check the counter before deciphering."""
    if len(protected) < _HEADER:
        raise DecodeError("protected content shorter than SC and invocation counter", 0)
    return _SC_BY_BYTE[protected[0]], int.from_bytes(protected[1:_HEADER], "big")


def decrypt(
    key: Key,
    auth_key: bytes,
    system_title: bytes,
    protected: bytes | bytearray | memoryview,
) -> bytes:
    """Verify and decipher ``SC ‖ IC ‖ ciphertext ‖ tag`` from the peer ``system_title``.

    Raises ``CipheringError`` on a bad tag, an unsupported security control or bad
    parameters, and ``DecodeError`` when the content is too short. The invocation counter
    is *not* checked here; use :class:`InvocationCounterGuard` (see :func:`split_header`).
    """
    sc, ic = split_header(protected)
    block = _block_key(key)
    _check_params(auth_key, system_title, ic)
    _check_sc(sc)
    body = bytes(protected[_HEADER:])
    iv = _iv(system_title, ic)
    sc_byte = bytes((protected[0],))
    if not sc.authenticated:
        return _ctr(block, iv, body)
    if len(body) < TAG_LENGTH:
        raise DecodeError("protected content shorter than the authentication tag", _HEADER)
    data, tag = body[:-TAG_LENGTH], body[-TAG_LENGTH:]
    if sc.encrypted:
        return _gcm_open(block, iv, sc_byte + auth_key, data, tag)
    _, expected = _gcm_tag(block, iv, sc_byte + auth_key + data, b"")
    if not hmac.compare_digest(expected, tag):
        raise CipheringError("authentication tag mismatch (wrong key, IC or tampering)")
    return data


def gmac_tag(
    key: Key, auth_key: bytes, system_title: bytes, invocation_counter: int, challenge: bytes
) -> bytes:
    """The 12-byte GMAC over ``SC(0x10) ‖ AK ‖ challenge`` (HLS mechanism 5)."""
    block = _block_key(key)
    _check_params(auth_key, system_title, invocation_counter)
    iv = _iv(system_title, invocation_counter)
    _, tag = _gcm_tag(block, iv, b"\x10" + bytes(auth_key) + bytes(challenge), b"")
    return tag


def gmac(
    key: Key, auth_key: bytes, system_title: bytes, invocation_counter: int, challenge: bytes
) -> bytes:
    """HLS-GMAC pass 3/4 response ``f(challenge) = SC(0x10) ‖ IC ‖ GMAC`` (17 bytes).

    ``system_title`` and ``invocation_counter`` are the *responder's* (the one computing
    f), ``challenge`` is the one received from the peer.
    """
    tag = gmac_tag(key, auth_key, system_title, invocation_counter, challenge)
    return b"\x10" + invocation_counter.to_bytes(4, "big") + tag


def verify_gmac(
    key: Key,
    auth_key: bytes,
    system_title: bytes,
    response: bytes | bytearray | memoryview,
    challenge: bytes,
) -> int:
    """Check a peer's ``SC ‖ IC ‖ GMAC`` over our ``challenge``; return the peer's IC.

    ``system_title`` is the peer's. Raises ``CipheringError`` when it does not verify.
    """
    if len(response) != _HEADER + TAG_LENGTH:
        raise CipheringError(f"HLS-GMAC response must be 17 bytes, got {len(response)}")
    if response[0] != 0x10:
        raise CipheringError(f"HLS-GMAC response has security control 0x{response[0]:02X}")
    ic = int.from_bytes(response[1:_HEADER], "big")
    expected = gmac_tag(key, auth_key, system_title, ic, challenge)
    if not hmac.compare_digest(expected, bytes(response[_HEADER:])):
        raise CipheringError("HLS-GMAC tag mismatch")
    return ic


class InvocationCounterGuard:
    """Replay protection: per peer system title, accept only increasing invocation counters.

    Check with :meth:`check` before deciphering and call :meth:`accept` only after the tag
    verified, so forged APDUs cannot advance the counter. ``on_accept(system_title, ic)``
    runs after each acceptance; the caller persists the counter there (and restores it
    through ``initial`` after a restart).
    """

    __slots__ = ("_last", "_on_accept")

    def __init__(
        self,
        initial: Mapping[bytes, int] | None = None,
        on_accept: Callable[[bytes, int], None] | None = None,
    ) -> None:
        self._last: dict[bytes, int] = dict(initial) if initial else {}
        self._on_accept = on_accept

    def last(self, system_title: bytes) -> int | None:
        """The last accepted counter of this peer, or None if never seen."""
        return self._last.get(bytes(system_title))

    def check(self, system_title: bytes, invocation_counter: int) -> None:
        """Raise ``ReplayError`` if ``invocation_counter`` is not above the last accepted."""
        if not isinstance(invocation_counter, int) or not 0 <= invocation_counter <= _MAX_IC:
            raise ReplayError(f"invocation counter out of range: {invocation_counter!r}")
        last = self._last.get(bytes(system_title))
        if last is not None and invocation_counter <= last:
            raise ReplayError(
                f"invocation counter {invocation_counter} not above last accepted {last} "
                f"for system title {bytes(system_title).hex().upper()}"
            )

    def accept(self, system_title: bytes, invocation_counter: int) -> None:
        """Check, then record ``invocation_counter`` and run the persistence hook."""
        self.check(system_title, invocation_counter)
        key = bytes(system_title)
        self._last[key] = invocation_counter
        if self._on_accept is not None:
            self._on_accept(key, invocation_counter)
