"""Interface class 64, Security setup: security policy, suite, system titles, key transfer.

``global_key_transfer`` unwraps the new keys with the master key (KEK) using AES key wrap
(RFC 3394), as suite 0 specifies, and hands them to ``on_keys_changed`` so the association
starts using them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import ClassVar

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import (
    AccessResult,
    CosemAccessError,
    CosemObject,
    SelectiveAccessDescriptor,
    expect_bytes,
    expect_int,
    expect_items,
)
from smmc.dlms.obis import Obis

__all__ = ["KeyId", "SecurityPolicy", "SecuritySetup", "wrap_key"]


class SecurityPolicy(IntEnum):
    """Attribute 2 (version 0 values)."""

    NOTHING = 0
    ALL_AUTHENTICATED = 1
    ALL_ENCRYPTED = 2
    ALL_AUTHENTICATED_AND_ENCRYPTED = 3


class KeyId(IntEnum):
    """key_id of global_key_transfer."""

    GLOBAL_UNICAST_ENCRYPTION = 0
    GLOBAL_BROADCAST_ENCRYPTION = 1
    AUTHENTICATION = 2
    MASTER = 3


def wrap_key(kek: bytes, key: bytes) -> bytes:
    """AES key wrap of ``key`` under ``kek`` (what a head-end sends in a key transfer)."""
    return aes_key_wrap(kek, key)


class SecuritySetup(CosemObject):
    """IC 64 v0: security_policy (2), security_suite (3), client_system_title (4),
    server_system_title (5); methods security_activate (1), global_key_transfer (2).
    """

    CLASS_ID: ClassVar[int] = 64
    VERSION: ClassVar[int] = 0
    ATTRIBUTE_COUNT: ClassVar[int] = 5
    METHOD_COUNT: ClassVar[int] = 2

    def __init__(
        self,
        logical_name: Obis,
        policy: SecurityPolicy = SecurityPolicy.NOTHING,
        suite: int = 0,
        client_system_title: bytes = b"",
        server_system_title: bytes = b"",
        keys: Mapping[KeyId, bytes] | None = None,
        on_keys_changed: Callable[[dict[KeyId, bytes]], None] | None = None,
    ) -> None:
        super().__init__(logical_name)
        self.policy = policy
        self.suite = suite
        self.client_system_title = client_system_title
        self.server_system_title = server_system_title
        self.keys: dict[KeyId, bytes] = dict(keys or {})
        self.on_keys_changed = on_keys_changed

    def activate(self, policy: int) -> None:
        """Method 1: the policy may only be strengthened (version 0 rule)."""
        if policy not in SecurityPolicy._value2member_map_:
            raise CosemAccessError(AccessResult.OTHER_REASON, f"security policy {policy}")
        if policy < self.policy:
            raise CosemAccessError(
                AccessResult.OTHER_REASON, f"policy {policy} weaker than {int(self.policy)}"
            )
        self.policy = SecurityPolicy(policy)

    def transfer_keys(self, wrapped: Mapping[KeyId, bytes]) -> None:
        """Method 2: unwrap every key with the master key; all or nothing."""
        kek = self.keys.get(KeyId.MASTER)
        if kek is None:
            raise CosemAccessError(AccessResult.OTHER_REASON, "no master key to unwrap with")
        unwrapped: dict[KeyId, bytes] = {}
        for key_id, blob in wrapped.items():
            try:
                unwrapped[key_id] = aes_key_unwrap(kek, blob)
            except (InvalidUnwrap, ValueError) as exc:
                raise CosemAccessError(
                    AccessResult.OTHER_REASON, f"key {key_id.name.lower()} unwrap failed: {exc}"
                ) from None
        self.keys.update(unwrapped)
        if self.on_keys_changed is not None:
            self.on_keys_changed(dict(unwrapped))

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        if attribute == 2:
            return Data.enum(self.policy)
        if attribute == 3:
            return Data.enum(self.suite)
        if attribute == 4:
            return Data.octet_string(self.client_system_title)
        return Data.octet_string(self.server_system_title)

    def _set(self, attribute: int, value: Data) -> None:
        if attribute == 4:
            self.client_system_title = expect_bytes(value, "client_system_title", 8)
        else:
            raise CosemAccessError(
                AccessResult.READ_WRITE_DENIED, f"{self!r} attribute {attribute} is read-only"
            )

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        if parameters is None:
            raise CosemAccessError(AccessResult.TYPE_UNMATCHED, "method parameters missing")
        if method == 1:
            self.activate(expect_int(parameters, DataTag.ENUM, what="security_policy"))
            return None
        wrapped: dict[KeyId, bytes] = {}
        for item in expect_items(parameters, DataTag.ARRAY, None, "key_data"):
            key_id, blob = expect_items(item, DataTag.STRUCTURE, 2, "key_data")
            number = expect_int(key_id, DataTag.ENUM, what="key_id")
            if number not in KeyId._value2member_map_:
                raise CosemAccessError(AccessResult.OTHER_REASON, f"key_id {number}")
            wrapped[KeyId(number)] = expect_bytes(blob, "key_wrapped")
        self.transfer_keys(wrapped)
        return None
