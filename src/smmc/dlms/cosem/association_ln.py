"""Interface class 15, Association LN: what one client association sees and how it logs in.

The object list is computed from the logical device's access rights for the association's
client SAP, so it always matches what GET/SET/ACTION will allow. HLS pass 3/4 needs the
association's keys and security suite, which live in the connection layer: it installs an
``hls_responder`` that checks the client's f(StoC) and returns the server's f(CtoS).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final

from smmc.dlms.axdr import BitString, Data
from smmc.dlms.cosem.base import (
    AccessResult,
    AccessRights,
    CosemAccessError,
    CosemObject,
    SelectiveAccessDescriptor,
    expect_bytes,
)
from smmc.dlms.obis import Obis

__all__ = [
    "CURRENT_ASSOCIATION_OBIS",
    "AssociationLN",
    "AssociationStatus",
    "AuthenticationMechanism",
    "ContextName",
    "XdlmsContext",
    "mechanism_name",
]

CURRENT_ASSOCIATION_OBIS = Obis(0, 0, 40, 0, 0, 255)

# Object identifiers {joint-iso-ccitt(2) country(16) country-name(756) identified-organization(5)
# DLMS-UA(8) ...}, as the BER contents octets (the form Association LN v1+ carries).
_DLMS_UA_PREFIX: Final = bytes((0x60, 0x85, 0x74, 0x05, 0x08))


class ContextName(IntEnum):
    """Application context names {... application-context(1) n}."""

    LOGICAL_NAME = 1
    SHORT_NAME = 2
    LOGICAL_NAME_WITH_CIPHERING = 3
    SHORT_NAME_WITH_CIPHERING = 4

    def oid(self) -> bytes:
        """The object identifier as BER contents octets."""
        return _DLMS_UA_PREFIX + bytes((1, self))


class AuthenticationMechanism(IntEnum):
    """Authentication mechanism names {... mechanism-name(2) n}."""

    LOWEST = 0
    LOW = 1
    HIGH = 2
    HIGH_MD5 = 3
    HIGH_SHA1 = 4
    HIGH_GMAC = 5
    HIGH_SHA256 = 6
    HIGH_ECDSA = 7


def mechanism_name(mechanism: AuthenticationMechanism) -> bytes:
    """The mechanism name object identifier as BER contents octets."""
    return _DLMS_UA_PREFIX + bytes((2, mechanism))


class AssociationStatus(IntEnum):
    """Attribute 8."""

    NON_ASSOCIATED = 0
    ASSOCIATION_PENDING = 1
    ASSOCIATED = 2


@dataclass(frozen=True, slots=True)
class XdlmsContext:
    """Attribute 5: the negotiated xDLMS parameters."""

    conformance: int = 0
    max_receive_pdu_size: int = 0xFFFF
    max_send_pdu_size: int = 0xFFFF
    dlms_version: int = 6
    quality_of_service: int = 0
    cyphering_info: bytes = b""

    def to_data(self) -> Data:
        """The xDLMS_context_type structure (conformance as a 24-bit bit-string)."""
        bits = BitString(self.conformance.to_bytes(3, "big"), 24)
        return Data.structure(
            (
                Data.bit_string(bits),
                Data.long_unsigned(self.max_receive_pdu_size),
                Data.long_unsigned(self.max_send_pdu_size),
                Data.unsigned(self.dlms_version),
                Data.integer(self.quality_of_service),
                Data.octet_string(self.cyphering_info),
            )
        )


HlsResponder = Callable[[bytes], bytes | None]
"""Given the client's f(StoC), return the server's f(CtoS), or ``None`` if it is wrong."""


class AssociationLN(CosemObject):
    """IC 15 v1: object_list (2), associated_partners_id (3), application_context_name (4),
    xDLMS_context_info (5), authentication_mechanism_name (6), secret (7),
    association_status (8), security_setup_reference (9); methods
    reply_to_HLS_authentication (1), change_HLS_secret (2).

    add_object/remove_object are not offered: the object model is the device profile.
    """

    CLASS_ID: ClassVar[int] = 15
    VERSION: ClassVar[int] = 1
    ATTRIBUTE_COUNT: ClassVar[int] = 9
    METHOD_COUNT: ClassVar[int] = 2

    def __init__(
        self,
        logical_name: Obis = CURRENT_ASSOCIATION_OBIS,
        client_sap: int = 16,
        server_sap: int = 1,
        context: ContextName = ContextName.LOGICAL_NAME,
        mechanism: AuthenticationMechanism = AuthenticationMechanism.LOWEST,
        secret: bytes = b"",
        xdlms: XdlmsContext | None = None,
        security_setup: Obis | None = None,
    ) -> None:
        super().__init__(logical_name)
        self.client_sap = client_sap
        self.server_sap = server_sap
        self.context = context
        self.mechanism = mechanism
        self.secret = secret
        self.xdlms = xdlms or XdlmsContext()
        self.security_setup = security_setup
        self.status = AssociationStatus.NON_ASSOCIATED
        self.hls_responder: HlsResponder | None = None
        self.on_secret_change: Callable[[bytes], None] | None = None

    # -- helpers for the connection layer ------------------------------------------------

    def check_password(self, password: bytes) -> bool:
        """LLS: whether the AARQ's calling-authentication-value matches the secret."""
        return hmac.compare_digest(password, self.secret)

    def object_list(self) -> Data:
        """Attribute 2: the objects this association sees with its access rights."""
        if self.device is None:
            return Data.array(())
        return Data.array(
            _object_list_element(obj, rights)
            for obj, rights in self.device.visible(self.client_sap)
        )

    # -- COSEM interface -----------------------------------------------------------------

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        if attribute == 2:
            return self.object_list()
        if attribute == 3:
            return Data.structure(
                (Data.integer(self.client_sap), Data.long_unsigned(self.server_sap))
            )
        if attribute == 4:
            return Data.octet_string(self.context.oid())
        if attribute == 5:
            return self.xdlms.to_data()
        if attribute == 6:
            return Data.octet_string(mechanism_name(self.mechanism))
        if attribute == 7:
            return Data.octet_string(self.secret)
        if attribute == 8:
            return Data.enum(self.status)
        ref = self.security_setup
        return Data.octet_string(ref.to_bytes() if ref is not None else b"")

    def _set(self, attribute: int, value: Data) -> None:
        if attribute != 7:
            raise CosemAccessError(
                AccessResult.READ_WRITE_DENIED, f"{self!r} attribute {attribute} is read-only"
            )
        self._change_secret(expect_bytes(value, "secret"))

    def _change_secret(self, secret: bytes) -> None:
        self.secret = secret
        if self.on_secret_change is not None:
            self.on_secret_change(secret)

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        if parameters is None:
            raise CosemAccessError(AccessResult.TYPE_UNMATCHED, "octet-string parameter expected")
        payload = expect_bytes(parameters, "method parameter")
        if method == 2:
            self._change_secret(payload)
            return None
        if self.hls_responder is None or self.status is AssociationStatus.NON_ASSOCIATED:
            raise CosemAccessError(AccessResult.READ_WRITE_DENIED, "no HLS authentication pending")
        answer = self.hls_responder(payload)
        if answer is None:
            self.status = AssociationStatus.NON_ASSOCIATED
            raise CosemAccessError(AccessResult.READ_WRITE_DENIED, "HLS authentication failed")
        self.status = AssociationStatus.ASSOCIATED
        return Data.octet_string(answer)


def _object_list_element(obj: CosemObject, rights: AccessRights) -> Data:
    attributes = Data.array(
        Data.structure(
            (
                Data.integer(i),
                Data.enum(rights.attribute(i)),
                Data.array(Data.integer(s) for s in (1, 2))
                if i in obj.SELECTIVE_ATTRIBUTES
                else Data.null(),
            )
        )
        for i in range(1, obj.ATTRIBUTE_COUNT + 1)
    )
    methods = Data.array(
        Data.structure((Data.integer(i), Data.enum(rights.method(i))))
        for i in range(1, obj.METHOD_COUNT + 1)
    )
    return Data.structure(
        (
            Data.long_unsigned(obj.CLASS_ID),
            Data.unsigned(obj.VERSION),
            Data.octet_string(obj.logical_name.to_bytes()),
            Data.structure((attributes, methods)),
        )
    )
