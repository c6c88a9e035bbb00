"""Secrets at rest: meter keys and concentrator passwords are stored only as AES-256-GCM
envelopes under a master key that lives outside the database.

The record's table, column and natural key are bound as associated data, so an envelope
copied onto another record does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from smmc.domain.assets import Secret

ENVELOPE_PREFIX = "v1:"
KEY_BYTES = 32


class SecretKeyError(RuntimeError):
    """The master key is missing, malformed, or not the one the data was sealed with."""


def parse_master_key(text: str) -> bytes:
    """Accept 64 hex digits or base64 of 32 bytes, the two forms key tools print."""
    text = text.strip()
    try:
        key = (
            bytes.fromhex(text)
            if len(text) == 2 * KEY_BYTES
            else base64.b64decode(text, validate=True)
        )
    except (ValueError, binascii.Error) as exc:
        raise SecretKeyError("SMMC_SECRET_KEY must be 64 hex digits or base64 of 32 bytes") from exc
    if len(key) != KEY_BYTES:
        raise SecretKeyError(f"the master key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


def load_or_create_key_file(path: Path) -> bytes:
    """Read the key file, or create it on first run readable by its owner only."""
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SecretKeyError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
        return parse_master_key(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = AESGCM.generate_key(bit_length=8 * KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
    return key


class SecretBox:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise SecretKeyError(f"the master key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(master_key)

    @classmethod
    def from_settings(cls, secret_key: str | None, key_file: Path) -> SecretBox:
        if secret_key:
            return cls(parse_master_key(secret_key))
        return cls(load_or_create_key_file(key_file))

    def seal(self, secret: Secret, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.reveal().encode(), context.encode())
        return ENVELOPE_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, envelope: str, context: str) -> Secret:
        if not envelope.startswith(ENVELOPE_PREFIX):
            raise SecretKeyError(f"{context}: not a sealed secret")
        try:
            raw = base64.urlsafe_b64decode(envelope[len(ENVELOPE_PREFIX) :])
            clear = self._aead.decrypt(raw[:12], raw[12:], context.encode())
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise SecretKeyError(
                f"{context}: cannot open the secret (wrong master key or tampered record)"
            ) from exc
        return Secret(clear.decode())
