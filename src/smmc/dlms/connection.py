"""Sans-IO association state machines for the DLMS client and server roles.

In the style of h11: whole APDUs (already unwrapped from the wrapper or HDLC framing) go in
through ``receive_apdu``, typed events come out, and the APDUs to send pile up in an outbox
drained with ``data_to_send``. No sockets, no asyncio, no clocks: :mod:`smmc.dlms.client`
and :mod:`smmc.dlms.server` add those.

Both machines walk idle → association pending → associated → release pending → idle. They
handle the AARQ/AARE exchange (lowest, LLS and HLS-GMAC with its pass 3/4 ACTION on the
current association object), negotiate conformance and PDU sizes, track invoke ids, split and
reassemble block transfers (GET with datablocks, SET with datablocks, ACTION with pblocks)
and apply security suite 0 per association. Anything a peer sends that the state does not
allow moves the machine to ``CLOSED`` and raises a typed :class:`~smmc.dlms.errors.DlmsError`;
the I/O layer then drops the transport.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, Literal

from smmc.dlms import security
from smmc.dlms.apdu import (
    Aare,
    Aarq,
    AcseServiceProviderDiagnostic,
    AcseServiceUserDiagnostic,
    ActionRequestNextPblock,
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithPblock,
    ActionResponseNextPblock,
    ActionResponseNormal,
    ActionResult,
    ApplicationContextName,
    AssociationResult,
    AuthenticationMechanism,
    CipheredApdu,
    CipheredTag,
    ConfirmedService,
    ConfirmedServiceError,
    Conformance,
    CosemAttributeDescriptor,
    CosemAttributeWithSelection,
    CosemMethodDescriptor,
    DataAccessResult,
    DataBlockSA,
    ExceptionResponse,
    ExceptionServiceError,
    GeneralGloCiphering,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    InitiateErrorCode,
    InitiateRequest,
    InitiateResponse,
    InvokeIdAndPriority,
    ReleaseRequest,
    ReleaseRequestReason,
    ReleaseResponse,
    ReleaseResponseReason,
    SelectiveAccessDescriptor,
    ServiceErrorKind,
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetRequestWithList,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseNormal,
    SetResponseWithList,
    StateError,
    decode_action_request,
    decode_action_response,
    decode_get_request,
    decode_get_response,
    decode_set_request,
    decode_set_response,
)
from smmc.dlms.axdr import Data, decode_data, encode_data
from smmc.dlms.cosem.association_ln import (
    CURRENT_ASSOCIATION_OBIS,
    AssociationLN,
    AssociationStatus,
)
from smmc.dlms.cosem.base import CosemAccessError, LogicalDevice
from smmc.dlms.errors import (
    AssociationRejected,
    CipheringError,
    DecodeError,
    DlmsError,
    EncodeError,
    ProtocolError,
    ServiceError,
)
from smmc.dlms.obis import Obis

__all__ = [
    "DEFAULT_CLIENT_CONFORMANCE",
    "DEFAULT_SERVER_CONFORMANCE",
    "ActionDone",
    "AssociationAccepted",
    "AssociationEstablished",
    "AssociationRefused",
    "ClientConnection",
    "ClientEvent",
    "ClientSettings",
    "GetListResult",
    "GetResult",
    "InvocationCounter",
    "NotificationReceived",
    "ReleaseAccepted",
    "Released",
    "SecurityPolicy",
    "ServerAssociation",
    "ServerConnection",
    "ServerEvent",
    "SetResult",
    "State",
]

DEFAULT_CLIENT_CONFORMANCE: Final = (
    Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ
    | Conformance.BLOCK_TRANSFER_WITH_SET_OR_WRITE
    | Conformance.BLOCK_TRANSFER_WITH_ACTION
    | Conformance.MULTIPLE_REFERENCES
    | Conformance.GET
    | Conformance.SET
    | Conformance.SELECTIVE_ACCESS
    | Conformance.ACTION
)
"""What our client proposes: LN services, selective access, with-list and all block modes."""

DEFAULT_SERVER_CONFORMANCE: Final = DEFAULT_CLIENT_CONFORMANCE | Conformance.DATA_NOTIFICATION
"""What our server offers; the association gets the intersection with the proposal."""

MIN_PDU_SIZE: Final = 64
"""Smallest max-receive-PDU-size we accept: below it a ciphered block carries no data."""

_HLS_METHOD: Final = CosemMethodDescriptor(15, CURRENT_ASSOCIATION_OBIS, 1)
_CIPHER_OVERHEAD: Final = 1 + 3 + 5 + security.TAG_LENGTH + 1 + 8  # tag, len, SC‖IC, tag, title
_GET_BLOCK_OVERHEAD: Final = 3 + 1 + 4 + 1 + 3
_SET_FIRST_BLOCK_OVERHEAD: Final = 3 + 9 + 1 + 1 + 4 + 3
_NEXT_BLOCK_OVERHEAD: Final = 3 + 1 + 4 + 3

# Plain xDLMS tag → its glo- (global key, service-specific) ciphered tag.
_GLO_TAGS: Final[dict[int, CipheredTag]] = {
    0xC0: CipheredTag.GLO_GET_REQUEST,
    0xC1: CipheredTag.GLO_SET_REQUEST,
    0xC2: CipheredTag.GLO_EVENT_NOTIFICATION_REQUEST,
    0xC3: CipheredTag.GLO_ACTION_REQUEST,
    0xC4: CipheredTag.GLO_GET_RESPONSE,
    0xC5: CipheredTag.GLO_SET_RESPONSE,
    0xC7: CipheredTag.GLO_ACTION_RESPONSE,
}
_PLAIN_TAGS: Final[dict[int, int]] = {glo.value: plain for plain, glo in _GLO_TAGS.items()}
_NOTIFICATION_TAGS: Final = frozenset({0x0F, 0xC2})  # data-notification, event-notification


class State(Enum):
    """Association state of either role."""

    IDLE = "idle"
    ASSOCIATION_PENDING = "association pending"
    ASSOCIATED = "associated"
    RELEASE_PENDING = "release pending"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SecurityPolicy:
    """Protection of the service APDUs of an association (security suite 0)."""

    authenticated: bool = False
    encrypted: bool = False

    @property
    def ciphered(self) -> bool:
        """Whether service APDUs are protected at all."""
        return self.authenticated or self.encrypted

    def security_control(self) -> security.SecurityControl:
        """The security control byte this policy sends."""
        return security.suite0_control(self.authenticated, self.encrypted)

    def satisfied_by(self, sc: security.SecurityControl) -> bool:
        """Whether protection ``sc`` is at least what the policy asks for."""
        return (sc.authenticated or not self.authenticated) and (sc.encrypted or not self.encrypted)


def _check_key(value: bytes | None, what: str) -> None:
    if value is not None and len(value) != 16:
        raise EncodeError(f"{what} must be 16 bytes, got {len(value)}")


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Everything a client association needs; transport fields are used by the client only.

    ``password`` is the LLS secret; HLS-GMAC uses ``encryption_key`` and
    ``authentication_key`` (as does ciphering). ``invocation_counter`` is the next counter
    this client sends with; the caller persists it through the connection's hook.
    """

    client_sap: int = 16
    server_logical_address: int = 1
    server_physical_address: int = 0x10
    mechanism: AuthenticationMechanism = AuthenticationMechanism.LOWEST
    password: bytes | None = None
    encryption_key: bytes | None = None
    authentication_key: bytes | None = None
    system_title: bytes = b"SMM\x00\x00\x00\x00\x01"
    security: SecurityPolicy = field(default_factory=SecurityPolicy)
    general_ciphering: bool = False
    invocation_counter: int = 1
    challenge_length: int = 16
    conformance: Conformance = DEFAULT_CLIENT_CONFORMANCE
    max_pdu_size: int = 0xFFFF
    timeout: float = 10.0
    connect_timeout: float = 5.0
    transport: Literal["wrapper", "hdlc"] = "wrapper"

    def __post_init__(self) -> None:
        _check_key(self.encryption_key, "encryption key")
        _check_key(self.authentication_key, "authentication key")
        if len(self.system_title) != 8:
            raise EncodeError("system title must be 8 bytes")
        if not 8 <= self.challenge_length <= 64:
            raise EncodeError("HLS challenge length must be 8..64")
        if not MIN_PDU_SIZE <= self.max_pdu_size <= 0xFFFF:
            raise EncodeError(f"max PDU size must be {MIN_PDU_SIZE}..65535")
        if self.mechanism not in (
            AuthenticationMechanism.LOWEST,
            AuthenticationMechanism.LOW,
            AuthenticationMechanism.HIGH_GMAC,
        ):
            raise EncodeError(f"mechanism {self.mechanism.name} is not supported")
        needs_keys = self.security.ciphered or self.mechanism is AuthenticationMechanism.HIGH_GMAC
        if needs_keys and (self.encryption_key is None or self.authentication_key is None):
            raise EncodeError("ciphering and HLS-GMAC need an encryption and an authentication key")
        if self.mechanism is AuthenticationMechanism.LOW and not self.password:
            raise EncodeError("LLS needs a password")


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssociationAccepted:
    """The client is associated (after pass 4 for HLS)."""

    conformance: Conformance
    max_pdu_size: int
    server_system_title: bytes | None


@dataclass(frozen=True, slots=True)
class GetResult:
    """The (reassembled) result of a GET of one attribute."""

    invoke_id: int
    result: Data | DataAccessResult


@dataclass(frozen=True, slots=True)
class GetListResult:
    """The results of a GET with-list, in request order."""

    invoke_id: int
    results: tuple[Data | DataAccessResult, ...]


@dataclass(frozen=True, slots=True)
class SetResult:
    """The result of a SET (normal or with datablocks)."""

    invoke_id: int
    result: DataAccessResult


@dataclass(frozen=True, slots=True)
class ActionDone:
    """The result of an ACTION and its optional return parameters."""

    invoke_id: int
    result: ActionResult
    data: Data | DataAccessResult | None


@dataclass(frozen=True, slots=True)
class NotificationReceived:
    """An unsolicited notification APDU (left encoded for the notification decoder)."""

    apdu: bytes


@dataclass(frozen=True, slots=True)
class ReleaseAccepted:
    """The server answered the RLRQ; the client is idle again."""


ClientEvent = (
    AssociationAccepted
    | GetResult
    | GetListResult
    | SetResult
    | ActionDone
    | NotificationReceived
    | ReleaseAccepted
)


@dataclass(frozen=True, slots=True)
class AssociationEstablished:
    """The server accepted an association (after pass 3 for HLS)."""

    client_sap: int
    mechanism: AuthenticationMechanism
    client_system_title: bytes | None


@dataclass(frozen=True, slots=True)
class AssociationRefused:
    """The server refused an AARQ or a pass 3 reply; it stays idle."""

    client_sap: int
    diagnostic: AcseServiceUserDiagnostic | AcseServiceProviderDiagnostic | None


@dataclass(frozen=True, slots=True)
class Released:
    """The client released the association."""

    client_sap: int


ServerEvent = AssociationEstablished | AssociationRefused | Released


# -- ciphering shared by both roles ------------------------------------------------------


class InvocationCounter:
    """Our sending invocation counter for one key.

    Associations that share a key (every connection to one logical device) must share
    this object: two APDUs under the same key and counter would reuse a GCM nonce.
    ``on_change`` receives the next value after each use so the owner can persist it.
    """

    __slots__ = ("_next", "on_change")

    def __init__(self, next_value: int = 1, on_change: Callable[[int], None] | None = None) -> None:
        if not 0 <= next_value <= 0xFFFF_FFFF:
            raise EncodeError(f"invocation counter must be 0..2**32-1, got {next_value}")
        self._next = next_value
        self.on_change = on_change

    @property
    def value(self) -> int:
        """The next counter that will be used."""
        return self._next

    def take(self) -> int:
        """Consume and return the next counter."""
        ic = self._next
        if ic > 0xFFFF_FFFF:
            raise CipheringError("invocation counter exhausted; new keys are needed")
        self._next = ic + 1
        if self.on_change is not None:
            self.on_change(self._next)
        return ic


class _Cipher:
    """Suite 0 protection of one association: own counter, peer counter guard, keys."""

    def __init__(
        self,
        encryption_key: bytes | None,
        authentication_key: bytes | None,
        system_title: bytes,
        counter: InvocationCounter,
        guard: security.InvocationCounterGuard | None,
    ) -> None:
        self.encryption_key = (
            None if encryption_key is None else security.BlockCipherKey(encryption_key)
        )
        self.authentication_key = authentication_key
        self.system_title = system_title
        self.counter = counter
        self.guard = guard if guard is not None else security.InvocationCounterGuard()
        self.peer_title: bytes | None = None

    def keys(self) -> tuple[security.BlockCipherKey, bytes]:
        """(encryption key, set up once for the association; authentication key), or a
        ciphering error when not configured."""
        if self.encryption_key is None or self.authentication_key is None:
            raise CipheringError("no keys configured for this association")
        return self.encryption_key, self.authentication_key

    def next_counter(self) -> int:
        """Consume our next invocation counter (and let the caller persist it)."""
        return self.counter.take()

    def encrypt(self, sc: security.SecurityControl, plaintext: bytes) -> bytes:
        """``SC ‖ IC ‖ ciphertext ‖ tag`` with the next counter."""
        key, auth = self.keys()
        return security.encrypt(key, auth, self.system_title, self.next_counter(), sc, plaintext)

    def decrypt(self, content: bytes, peer_title: bytes) -> tuple[security.SecurityControl, bytes]:
        """Check the counter against replay, verify and decipher, then accept the counter."""
        key, auth = self.keys()
        sc, ic = security.split_header(content)
        self.guard.check(peer_title, ic)
        plaintext = security.decrypt(key, auth, peer_title, content)
        self.guard.accept(peer_title, ic)
        return sc, plaintext

    def protect(self, plain: bytes, sc: security.SecurityControl, general: bool) -> bytes:
        """Wrap an xDLMS APDU as glo-ciphered or general-glo-ciphering."""
        if general:
            return GeneralGloCiphering(self.system_title, self.encrypt(sc, plain)).to_bytes()
        tag = _GLO_TAGS.get(plain[0])
        if tag is None:
            raise EncodeError(f"APDU tag {plain[0]:#04x} has no glo- form")
        return CipheredApdu(tag, self.encrypt(sc, plain)).to_bytes()

    def unprotect(self, data: bytes) -> tuple[bytes, security.SecurityControl, bool]:
        """Decipher a glo- or general-glo APDU: (plain APDU, its protection, was general)."""
        if self.peer_title is None:
            raise CipheringError("ciphered APDU before the peer's system title is known")
        if data[0] == GeneralGloCiphering.TAG:
            general = GeneralGloCiphering.from_bytes(data)
            if general.system_title != self.peer_title:
                raise CipheringError("general-glo-ciphering from an unexpected system title")
            sc, plain = self.decrypt(general.content, self.peer_title)
            if not plain:
                raise DecodeError("empty APDU inside general-glo-ciphering", 0)
            return plain, sc, True
        apdu = CipheredApdu.from_bytes(data)
        sc, plain = self.decrypt(apdu.content, self.peer_title)
        if not plain or _PLAIN_TAGS.get(apdu.tag.value) != plain[0]:
            raise ProtocolError(f"{apdu.tag.name} does not carry the matching plain APDU")
        return plain, sc, False


def _authentication_failed() -> AssociationRejected:
    """The server's HLS pass 4 did not prove it knows the keys (built only when it fails)."""
    return AssociationRejected(
        AssociationResult.REJECTED_PERMANENT, AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE
    )


def _is_ciphered(tag: int) -> bool:
    return tag in _PLAIN_TAGS or tag == GeneralGloCiphering.TAG


def _chunks(raw: bytes, size: int) -> list[bytes]:
    return [raw[i : i + size] for i in range(0, len(raw), size)] or [b""]


def _decode_whole_data(raw: bytes) -> Data:
    value, end = decode_data(raw)
    if end != len(raw):
        raise DecodeError("trailing bytes after the reassembled Data", end)
    return value


# -- client ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """The one confirmed request in flight and its block-transfer progress."""

    kind: Literal["hls", "get", "get_list", "set", "action"]
    invoke_id: int
    blocks: list[bytes] = field(default_factory=list)  # received (GET) or left to send
    block_number: int = 0  # last block received (GET) or sent (SET/ACTION)


class ClientConnection:
    """The client role of one association (sans-IO).

    Call a request method (``associate``, ``get``…), send every APDU from
    ``data_to_send()``, feed each received APDU to ``receive_apdu`` and repeat until it
    returns an event. ``receive_apdu`` returns ``None`` while a block transfer or the HLS
    exchange is still running (the next APDU is then in the outbox).
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        guard: security.InvocationCounterGuard | None = None,
        on_invocation_counter: Callable[[int], None] | None = None,
        challenge_source: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.settings = settings
        self.state = State.IDLE
        self.conformance = Conformance(0)
        self.max_send_pdu_size = MIN_PDU_SIZE
        self._cipher = _Cipher(
            settings.encryption_key,
            settings.authentication_key,
            settings.system_title,
            InvocationCounter(settings.invocation_counter, on_invocation_counter),
            guard,
        )
        self._challenge_source = challenge_source
        self._challenge = b""
        self._invoke_id = 0
        self._pending: _Pending | None = None
        self._outbox: list[bytes] = []

    # -- public helpers ------------------------------------------------------------------

    @property
    def server_system_title(self) -> bytes | None:
        """The server system title from the AARE (ciphered or HLS associations)."""
        return self._cipher.peer_title

    @property
    def invocation_counter(self) -> int:
        """The next invocation counter this client will send with."""
        return self._cipher.counter.value

    @property
    def busy(self) -> bool:
        """Whether a confirmed request is waiting for its response."""
        return self._pending is not None

    def data_to_send(self) -> list[bytes]:
        """The APDUs queued for the peer, in order; the outbox is emptied."""
        out, self._outbox = self._outbox, []
        return out

    # -- requests ------------------------------------------------------------------------

    def associate(self) -> None:
        """Queue the AARQ."""
        self._require(State.IDLE, "associate")
        s = self.settings
        initiate = InitiateRequest(s.conformance, s.max_pdu_size)
        user_information: InitiateRequest | CipheredApdu = initiate
        context = ApplicationContextName.LOGICAL_NAME
        if s.security.ciphered:
            context = ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING
            content = self._cipher.encrypt(s.security.security_control(), initiate.to_bytes())
            user_information = CipheredApdu(CipheredTag.GLO_INITIATE_REQUEST, content)
        mechanism: AuthenticationMechanism | None = None
        value: bytes | None = None
        if s.mechanism is AuthenticationMechanism.LOW:
            mechanism, value = s.mechanism, s.password
        elif s.mechanism is AuthenticationMechanism.HIGH_GMAC:
            self._challenge = self._challenge_source(s.challenge_length)
            mechanism, value = s.mechanism, self._challenge
        keyed = s.security.ciphered or s.mechanism is AuthenticationMechanism.HIGH_GMAC
        aarq = Aarq(
            application_context_name=context,
            user_information=user_information,
            calling_ap_title=s.system_title if keyed else None,
            mechanism_name=mechanism,
            calling_authentication_value=value,
        )
        self.state = State.ASSOCIATION_PENDING
        self._outbox.append(aarq.to_bytes())

    def get(
        self,
        class_id: int,
        obis: Obis,
        attribute: int,
        selective_access: SelectiveAccessDescriptor | None = None,
    ) -> int:
        """Queue a GET of one attribute; returns its invoke id."""
        self._ready(Conformance.GET)
        if selective_access is not None:
            self._needs(Conformance.SELECTIVE_ACCESS)
        iid = self._next_invoke_id()
        descriptor = CosemAttributeDescriptor(class_id, obis, attribute)
        self._send(GetRequestNormal(descriptor, selective_access, iid).to_bytes())
        self._pending = _Pending("get", iid.invoke_id)
        return iid.invoke_id

    def get_many(
        self, items: Sequence[tuple[int, Obis, int, SelectiveAccessDescriptor | None]]
    ) -> int:
        """Queue a GET with-list of ``(class_id, obis, attribute, selection)`` items."""
        self._ready(Conformance.GET | Conformance.MULTIPLE_REFERENCES)
        if not items:
            raise EncodeError("get_many needs at least one attribute")
        iid = self._next_invoke_id()
        attributes = tuple(
            CosemAttributeWithSelection(CosemAttributeDescriptor(c, o, a), sel)
            for c, o, a, sel in items
        )
        self._send(GetRequestWithList(attributes, iid).to_bytes())
        self._pending = _Pending("get_list", iid.invoke_id)
        return iid.invoke_id

    def set(self, class_id: int, obis: Obis, attribute: int, value: Data) -> int:
        """Queue a SET, in datablocks when it does not fit the server's PDU size."""
        self._ready(Conformance.SET)
        iid = self._next_invoke_id()
        descriptor = CosemAttributeDescriptor(class_id, obis, attribute)
        plain = SetRequestNormal(descriptor, value, None, iid).to_bytes()
        pending = _Pending("set", iid.invoke_id)
        if self._fits(plain):
            self._send(plain)
        else:
            self._needs(Conformance.BLOCK_TRANSFER_WITH_SET_OR_WRITE)
            pending.blocks = self._split(encode_data(value), _SET_FIRST_BLOCK_OVERHEAD)
            first = DataBlockSA(len(pending.blocks) == 1, 1, pending.blocks.pop(0))
            self._send(SetRequestWithFirstDatablock(descriptor, first, None, iid).to_bytes())
            pending.block_number = 1
        self._pending = pending
        return iid.invoke_id

    def action(self, class_id: int, obis: Obis, method: int, parameters: Data | None = None) -> int:
        """Queue an ACTION, in pblocks when the parameters do not fit the server's PDU size."""
        self._ready(Conformance.ACTION)
        iid = self._next_invoke_id()
        descriptor = CosemMethodDescriptor(class_id, obis, method)
        plain = ActionRequestNormal(descriptor, parameters, iid).to_bytes()
        pending = _Pending("action", iid.invoke_id)
        if parameters is None or self._fits(plain):
            self._send(plain)
        else:
            self._needs(Conformance.BLOCK_TRANSFER_WITH_ACTION)
            pending.blocks = self._split(encode_data(parameters), _SET_FIRST_BLOCK_OVERHEAD)
            first = DataBlockSA(len(pending.blocks) == 1, 1, pending.blocks.pop(0))
            self._send(ActionRequestWithFirstPblock(descriptor, first, iid).to_bytes())
            pending.block_number = 1
        self._pending = pending
        return iid.invoke_id

    def release(self) -> None:
        """Queue the RLRQ."""
        self._require(State.ASSOCIATED, "release")
        self.state = State.RELEASE_PENDING
        self._outbox.append(ReleaseRequest(ReleaseRequestReason.NORMAL).to_bytes())

    def abort(self) -> None:
        """Forget the association (transport lost or given up on): the machine is closed."""
        self.state = State.CLOSED
        self._pending = None

    # -- receiving -----------------------------------------------------------------------

    def receive_apdu(self, data: bytes | bytearray | memoryview) -> ClientEvent | None:
        """Process one APDU from the server; ``None`` while an exchange continues."""
        if self.state is State.CLOSED:
            raise ProtocolError("the association is closed")
        try:
            return self._receive(bytes(data))
        except DlmsError:
            self.abort()
            raise
        except (ValueError, IndexError, KeyError) as exc:  # defensive: never a crash
            self.abort()
            raise DecodeError(f"malformed APDU: {exc}") from None

    def _receive(self, data: bytes) -> ClientEvent | None:
        if not data:
            raise DecodeError("empty APDU", 0)
        tag = data[0]
        if self.state is State.ASSOCIATION_PENDING and self._pending is None:
            if tag != Aare.TAG:
                raise ProtocolError(f"expected an AARE, got tag {tag:#04x}")
            return self._on_aare(Aare.from_bytes(data))
        if self.state is State.RELEASE_PENDING:
            if tag != ReleaseResponse.TAG:
                raise ProtocolError(f"expected an RLRE, got tag {tag:#04x}")
            ReleaseResponse.from_bytes(data)
            self.state = State.IDLE
            return ReleaseAccepted()
        if self.state not in (State.ASSOCIATED, State.ASSOCIATION_PENDING):
            raise ProtocolError(f"APDU tag {tag:#04x} in state {self.state.value}")
        if tag == ExceptionResponse.TAG:
            exc = ExceptionResponse.from_bytes(data)
            raise ProtocolError(
                f"server exception: {exc.state_error.name} {exc.service_error.name}"
                + (f" (expects IC {exc.invocation_counter})" if exc.invocation_counter else "")
            )
        if tag == ConfirmedServiceError.TAG:
            error = ConfirmedServiceError.from_bytes(data)
            raise ServiceError(error.value, f"confirmed service error {error}")
        if _is_ciphered(tag):
            data, sc, _ = self._cipher.unprotect(data)
            if not self.settings.security.satisfied_by(sc):
                raise CipheringError("response protection below the association's policy")
            tag = data[0]
        elif self.settings.security.ciphered and tag not in _NOTIFICATION_TAGS:
            raise CipheringError(f"unprotected APDU {tag:#04x} in a ciphered association")
        if tag in _NOTIFICATION_TAGS:
            return NotificationReceived(data)
        pending = self._pending
        if pending is None:
            raise ProtocolError(f"unsolicited APDU tag {tag:#04x}")
        if tag == 0xC4 and pending.kind in ("get", "get_list"):
            return self._on_get(pending, data)
        if tag == 0xC5 and pending.kind == "set":
            return self._on_set(pending, data)
        if tag == 0xC7 and pending.kind in ("action", "hls"):
            return self._on_action(pending, data)
        raise ProtocolError(f"APDU tag {tag:#04x} does not answer the pending {pending.kind}")

    def _on_aare(self, aare: Aare) -> ClientEvent | None:
        s = self.settings
        if aare.result is not AssociationResult.ACCEPTED:
            raise AssociationRejected(aare.result, int(aare.result_source_diagnostic))
        self._cipher.peer_title = aare.responding_ap_title
        info = aare.user_information
        if isinstance(info, CipheredApdu):
            if aare.responding_ap_title is None:
                raise ProtocolError("ciphered AARE without a responding AP title")
            _, plain = self._cipher.decrypt(info.content, aare.responding_ap_title)
            info = InitiateResponse.from_bytes(plain)
        if isinstance(info, ConfirmedServiceError):
            raise ServiceError(info.value, f"initiate refused: {info}")
        if not isinstance(info, InitiateResponse):
            raise ProtocolError("accepted AARE without an InitiateResponse")
        if info.server_max_receive_pdu_size < MIN_PDU_SIZE:
            raise ProtocolError(f"server max PDU size {info.server_max_receive_pdu_size} too small")
        self.conformance = info.negotiated_conformance
        self.max_send_pdu_size = info.server_max_receive_pdu_size
        if s.mechanism is not AuthenticationMechanism.HIGH_GMAC:
            self.state = State.ASSOCIATED
            return self._accepted()
        stoc = aare.responding_authentication_value
        if stoc is None or not 8 <= len(stoc) <= 64 or aare.responding_ap_title is None:
            raise ProtocolError("HLS-GMAC AARE without a valid challenge and system title")
        if len(aare.responding_ap_title) != 8:
            raise ProtocolError("server system title must be 8 bytes")
        key, auth = self._cipher.keys()
        # The reply is computed with the counter the enclosing APDU will carry.
        ic = self._cipher.counter.value
        reply = security.gmac(key, auth, s.system_title, ic, stoc)
        if not s.security.ciphered:
            self._cipher.next_counter()
        iid = self._next_invoke_id()
        request = ActionRequestNormal(_HLS_METHOD, Data.octet_string(reply), iid)
        self._send(request.to_bytes())
        self._pending = _Pending("hls", iid.invoke_id)
        return None

    def _accepted(self) -> AssociationAccepted:
        return AssociationAccepted(
            self.conformance, self.max_send_pdu_size, self._cipher.peer_title
        )

    def _on_get(self, pending: _Pending, data: bytes) -> ClientEvent | None:
        response = decode_get_response(data)
        self._check_invoke_id(pending, response.invoke_id_and_priority)
        if isinstance(response, GetResponseNormal):
            if pending.kind != "get" or pending.blocks:
                raise ProtocolError("get-response-normal does not answer this request")
            self._pending = None
            return GetResult(pending.invoke_id, response.result)
        if isinstance(response, GetResponseWithList):
            if pending.kind != "get_list" or pending.blocks:
                raise ProtocolError("get-response-with-list does not answer this request")
            self._pending = None
            return GetListResult(pending.invoke_id, response.results)
        if response.block_number != pending.block_number + 1:
            raise ProtocolError(
                f"block {response.block_number} received, expected {pending.block_number + 1}"
            )
        if isinstance(response.result, DataAccessResult):
            self._pending = None
            if pending.kind == "get":
                return GetResult(pending.invoke_id, response.result)
            raise ServiceError(response.result, f"long GET aborted: {response.result.name}")
        pending.blocks.append(response.result)
        pending.block_number = response.block_number
        if not response.last_block:
            self._send(GetRequestNext(response.block_number, self._iid(pending)).to_bytes())
            return None
        self._pending = None
        raw = b"".join(pending.blocks)
        if pending.kind == "get":
            return GetResult(pending.invoke_id, _decode_whole_data(raw))
        header = bytes([0xC4, GetResponseWithList.CHOICE, self._iid(pending).to_byte()])
        return GetListResult(
            pending.invoke_id, GetResponseWithList.from_bytes(header + raw).results
        )

    def _on_set(self, pending: _Pending, data: bytes) -> ClientEvent | None:
        response = decode_set_response(data)
        self._check_invoke_id(pending, response.invoke_id_and_priority)
        if isinstance(response, SetResponseNormal):
            if pending.block_number:
                raise ProtocolError("set-response-normal during a block transfer")
            self._pending = None
            return SetResult(pending.invoke_id, response.result)
        if isinstance(response, SetResponseDatablock):
            if response.block_number != pending.block_number or not pending.blocks:
                raise ProtocolError(f"set-response for unexpected block {response.block_number}")
            self._send_next_block(pending, SetRequestWithDatablock)
            return None
        if isinstance(response, SetResponseLastDatablock):
            if pending.blocks and response.result is DataAccessResult.SUCCESS:
                raise ProtocolError("server finished the SET before the last block")
            self._pending = None
            return SetResult(pending.invoke_id, response.result)
        raise ProtocolError(f"{type(response).__name__} does not answer a single SET")

    def _on_action(self, pending: _Pending, data: bytes) -> ClientEvent | None:
        response = decode_action_response(data)
        self._check_invoke_id(pending, response.invoke_id_and_priority)
        if isinstance(response, ActionResponseNextPblock):
            if response.block_number != pending.block_number or not pending.blocks:
                raise ProtocolError(f"action-response for unexpected block {response.block_number}")
            self._send_next_block(pending, ActionRequestWithPblock)
            return None
        if not isinstance(response, ActionResponseNormal):
            raise ProtocolError(f"{type(response).__name__} is not supported")
        self._pending = None
        if pending.kind == "hls":
            return self._on_hls_pass4(response)
        return ActionDone(pending.invoke_id, response.result, response.return_parameters)

    def _on_hls_pass4(self, response: ActionResponseNormal) -> ClientEvent:
        data = response.return_parameters
        if response.result is not ActionResult.SUCCESS or not isinstance(data, Data):
            raise _authentication_failed()
        if not isinstance(data.value, bytes) or self._cipher.peer_title is None:
            raise _authentication_failed()
        key, auth = self._cipher.keys()
        try:
            security.verify_gmac(key, auth, self._cipher.peer_title, data.value, self._challenge)
        except CipheringError:
            raise _authentication_failed() from None
        self.state = State.ASSOCIATED
        return self._accepted()

    # -- internals -----------------------------------------------------------------------

    def _require(self, state: State, what: str) -> None:
        if self.state is not state:
            raise ProtocolError(f"cannot {what} in state {self.state.value}")

    def _ready(self, needed: Conformance) -> None:
        self._require(State.ASSOCIATED, "send a request")
        if self._pending is not None:
            raise ProtocolError("a request is already pending")
        self._needs(needed)

    def _needs(self, needed: Conformance) -> None:
        missing = needed & ~self.conformance
        if missing:
            raise ProtocolError(f"service not in the negotiated conformance: {missing!r}")

    def _next_invoke_id(self) -> InvokeIdAndPriority:
        self._invoke_id = (self._invoke_id + 1) % 16
        return InvokeIdAndPriority(self._invoke_id)

    @staticmethod
    def _iid(pending: _Pending) -> InvokeIdAndPriority:
        return InvokeIdAndPriority(pending.invoke_id)

    @staticmethod
    def _check_invoke_id(pending: _Pending, iid: InvokeIdAndPriority) -> None:
        if iid.invoke_id != pending.invoke_id:
            raise ProtocolError(f"invoke id {iid.invoke_id}, expected {pending.invoke_id}")

    def _overhead(self) -> int:
        return _CIPHER_OVERHEAD if self.settings.security.ciphered else 0

    def _fits(self, plain: bytes) -> bool:
        return len(plain) + self._overhead() <= self.max_send_pdu_size

    def _split(self, raw: bytes, first_overhead: int) -> list[bytes]:
        size = self.max_send_pdu_size - self._overhead() - max(first_overhead, _NEXT_BLOCK_OVERHEAD)
        return _chunks(raw, size)

    def _send_next_block(
        self,
        pending: _Pending,
        kind: type[SetRequestWithDatablock] | type[ActionRequestWithPblock],
    ) -> None:
        pending.block_number += 1
        block = DataBlockSA(len(pending.blocks) == 1, pending.block_number, pending.blocks.pop(0))
        self._send(kind(block, self._iid(pending)).to_bytes())

    def _send(self, plain: bytes) -> None:
        s = self.settings
        if s.security.ciphered:
            plain = self._cipher.protect(plain, s.security.security_control(), s.general_ciphering)
        self._outbox.append(plain)


# -- server ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerAssociation:
    """How one client SAP may associate with the logical device.

    ``security`` is the least protection its service APDUs must carry. When ``association``
    (the SAP's Association LN object) is given, LLS checks its secret, HLS pass 3 goes
    through its method 1 and its status attribute follows the association.
    """

    mechanism: AuthenticationMechanism = AuthenticationMechanism.LOWEST
    password: bytes | None = None
    encryption_key: bytes | None = None
    authentication_key: bytes | None = None
    security: SecurityPolicy = field(default_factory=SecurityPolicy)
    conformance: Conformance = DEFAULT_SERVER_CONFORMANCE
    max_pdu_size: int = 0x0400
    association: AssociationLN | None = None

    def __post_init__(self) -> None:
        _check_key(self.encryption_key, "encryption key")
        _check_key(self.authentication_key, "authentication key")
        if not MIN_PDU_SIZE <= self.max_pdu_size <= 0xFFFF:
            raise EncodeError(f"max PDU size must be {MIN_PDU_SIZE}..65535")

    def check_password(self, password: bytes) -> bool:
        """LLS: the association object's secret wins over ``password``."""
        if self.association is not None:
            return self.association.check_password(password)
        return self.password is not None and hmac.compare_digest(password, self.password)


@dataclass(slots=True)
class _LongTransfer:
    """A GET reply being sent in blocks, or SET/ACTION parameters being received."""

    kind: Literal["get", "set", "action"]
    invoke_id: int
    blocks: list[bytes]
    block_number: int
    target: CosemAttributeDescriptor | CosemMethodDescriptor | None = None


_UserDiagnostic = AcseServiceUserDiagnostic


class ServerConnection:
    """The server role of one association with one client SAP (sans-IO).

    The object model is called directly (it is pure); replies go to the outbox. A peer
    error raises after queuing, when one exists, the ExceptionResponse to tell the client.
    """

    def __init__(
        self,
        device: LogicalDevice,
        associations: Mapping[int, ServerAssociation],
        client_sap: int,
        system_title: bytes,
        *,
        guard: security.InvocationCounterGuard | None = None,
        invocation_counter: InvocationCounter | None = None,
        challenge_source: Callable[[int], bytes] = os.urandom,
        challenge_length: int = 16,
    ) -> None:
        if len(system_title) != 8:
            raise EncodeError("system title must be 8 bytes")
        self.device = device
        self.client_sap = client_sap
        self.config = associations.get(client_sap)
        self.state = State.IDLE
        self.conformance = Conformance(0)
        self.max_send_pdu_size = MIN_PDU_SIZE
        config = self.config
        self._cipher = _Cipher(
            config.encryption_key if config else None,
            config.authentication_key if config else None,
            system_title,
            invocation_counter if invocation_counter is not None else InvocationCounter(),
            guard,
        )
        self._challenge_source = challenge_source
        self._challenge_length = challenge_length
        self._stoc = b""
        self._ctos = b""
        self._reply_sc = security.SecurityControl()
        self._reply_general = False
        self._long: _LongTransfer | None = None
        self._outbox: list[bytes] = []

    @property
    def authenticated(self) -> bool:
        """Whether the client proved a secret (LLS or HLS) in this association."""
        return (
            self.state is State.ASSOCIATED
            and self.config is not None
            and self.config.mechanism is not AuthenticationMechanism.LOWEST
        )

    @property
    def invocation_counter(self) -> int:
        """The next invocation counter the server will send with."""
        return self._cipher.counter.value

    def data_to_send(self) -> list[bytes]:
        """The APDUs queued for the client, in order; the outbox is emptied."""
        out, self._outbox = self._outbox, []
        return out

    def abort(self) -> None:
        """Forget the association (transport lost): the machine is closed."""
        self._set_status(AssociationStatus.NON_ASSOCIATED)
        self.state = State.CLOSED
        self._long = None

    def receive_apdu(self, data: bytes | bytearray | memoryview) -> ServerEvent | None:
        """Process one APDU from the client; the reply, if any, is in the outbox."""
        if self.state is State.CLOSED:
            raise ProtocolError("the association is closed")
        try:
            return self._receive(bytes(data))
        except CipheringError as exc:
            self._exception(ExceptionServiceError.DECIPHERING_ERROR, exc)
            raise
        except DlmsError as exc:
            self._exception(ExceptionServiceError.OTHER_REASON, exc)
            raise
        except (ValueError, IndexError, KeyError) as exc:  # defensive: never a crash
            self._exception(ExceptionServiceError.OTHER_REASON, exc)
            raise DecodeError(f"malformed APDU: {exc}") from None

    def _exception(self, error: ExceptionServiceError, exc: Exception) -> None:
        if self.state in (State.ASSOCIATED, State.ASSOCIATION_PENDING) and not isinstance(
            exc, AssociationRejected
        ):
            self._outbox.append(ExceptionResponse(StateError.SERVICE_NOT_ALLOWED, error).to_bytes())
        self.abort()

    def _receive(self, data: bytes) -> ServerEvent | None:
        if not data:
            raise DecodeError("empty APDU", 0)
        tag = data[0]
        if tag == Aarq.TAG:
            if self.state is not State.IDLE:
                raise ProtocolError(f"AARQ in state {self.state.value}")
            return self._on_aarq(Aarq.from_bytes(data))
        if tag == ReleaseRequest.TAG:
            if self.state is not State.ASSOCIATED:
                raise ProtocolError(f"RLRQ in state {self.state.value}")
            ReleaseRequest.from_bytes(data)
            self.state = State.RELEASE_PENDING
            self._outbox.append(ReleaseResponse(ReleaseResponseReason.NORMAL).to_bytes())
            self._set_status(AssociationStatus.NON_ASSOCIATED)
            self.state = State.IDLE
            self._long = None
            return Released(self.client_sap)
        if self.state not in (State.ASSOCIATED, State.ASSOCIATION_PENDING):
            raise ProtocolError(f"APDU tag {tag:#04x} without an association")
        config = self.config
        if config is None:
            raise ProtocolError("no association configured")
        if _is_ciphered(tag):
            data, sc, general = self._cipher.unprotect(data)
            if not config.security.satisfied_by(sc):
                raise CipheringError("APDU protection below the association's policy")
            self._reply_sc, self._reply_general = sc, general
            tag = data[0]
        elif config.security.ciphered:
            raise CipheringError(f"unprotected APDU {tag:#04x} in a ciphered association")
        else:
            self._reply_sc, self._reply_general = security.SecurityControl(), False
        if self.state is State.ASSOCIATION_PENDING:
            return self._on_hls_pass3(data)
        if tag == 0xC0:
            self._needs(Conformance.GET)
            self._on_get(data)
        elif tag == 0xC1:
            self._needs(Conformance.SET)
            self._on_set(data)
        elif tag == 0xC3:
            self._needs(Conformance.ACTION)
            self._on_action(data)
        else:
            raise ProtocolError(f"unsupported APDU tag {tag:#04x}")
        return None

    # -- association ---------------------------------------------------------------------

    def _refuse(
        self,
        diagnostic: AcseServiceUserDiagnostic,
        info: ConfirmedServiceError | None = None,
    ) -> AssociationRefused:
        aare = Aare(AssociationResult.REJECTED_PERMANENT, diagnostic, user_information=info)
        self._outbox.append(aare.to_bytes())
        return AssociationRefused(self.client_sap, diagnostic)

    def _on_aarq(self, aarq: Aarq) -> ServerEvent | None:
        config = self.config
        self._reply_sc, self._reply_general = security.SecurityControl(), False
        self._cipher.peer_title = None
        if config is None:
            return self._refuse(_UserDiagnostic.NO_REASON_GIVEN)
        ciphered_context = (
            aarq.application_context_name is ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING
        )
        if aarq.application_context_name not in (
            ApplicationContextName.LOGICAL_NAME,
            ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
        ) or (config.security.ciphered and not ciphered_context):
            return self._refuse(_UserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
        mechanism = aarq.mechanism_name or AuthenticationMechanism.LOWEST
        if mechanism is not config.mechanism:
            if mechanism is AuthenticationMechanism.LOWEST:
                return self._refuse(_UserDiagnostic.AUTHENTICATION_MECHANISM_NAME_REQUIRED)
            return self._refuse(_UserDiagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED)
        keyed = ciphered_context or mechanism is AuthenticationMechanism.HIGH_GMAC
        if keyed:
            title = aarq.calling_ap_title
            if title is None or len(title) != 8:
                return self._refuse(_UserDiagnostic.CALLING_AP_TITLE_NOT_RECOGNIZED)
            self._cipher.peer_title = title
        value = aarq.calling_authentication_value
        if mechanism is AuthenticationMechanism.LOW and (
            value is None or not config.check_password(value)
        ):
            return self._refuse(_UserDiagnostic.AUTHENTICATION_FAILURE)
        if mechanism is AuthenticationMechanism.HIGH_GMAC:
            if value is None or not 8 <= len(value) <= 64:
                return self._refuse(_UserDiagnostic.AUTHENTICATION_FAILURE)
            self._ctos = value
        info = aarq.user_information
        initiate_sc: security.SecurityControl | None = None
        if isinstance(info, CipheredApdu):
            if not keyed or self._cipher.peer_title is None:
                return self._refuse(_UserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
            initiate_sc, plain = self._cipher.decrypt(info.content, self._cipher.peer_title)
            info = InitiateRequest.from_bytes(plain)
        elif config.security.ciphered:
            return self._refuse(_UserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
        if info is None:
            return self._refuse(_UserDiagnostic.NO_REASON_GIVEN)
        error = self._initiate_error(info)
        if error is not None:
            service_error = ConfirmedServiceError(
                ConfirmedService.INITIATE_ERROR, ServiceErrorKind.INITIATE, error
            )
            return self._refuse(_UserDiagnostic.NO_REASON_GIVEN, service_error)
        self.conformance = info.proposed_conformance & config.conformance
        self.max_send_pdu_size = info.client_max_receive_pdu_size
        response = InitiateResponse(self.conformance, config.max_pdu_size)
        user_information: InitiateResponse | CipheredApdu = response
        if initiate_sc is not None:
            self._reply_sc = initiate_sc
            content = self._cipher.encrypt(initiate_sc, response.to_bytes())
            user_information = CipheredApdu(CipheredTag.GLO_INITIATE_RESPONSE, content)
        hls = mechanism is AuthenticationMechanism.HIGH_GMAC
        if hls:
            self._stoc = self._challenge_source(self._challenge_length)
        aare = Aare(
            AssociationResult.ACCEPTED,
            _UserDiagnostic.AUTHENTICATION_REQUIRED if hls else _UserDiagnostic.NULL,
            application_context_name=aarq.application_context_name,
            user_information=user_information,
            responding_ap_title=self._cipher.system_title if keyed else None,
            mechanism_name=aarq.mechanism_name,
            responding_authentication_value=self._stoc if hls else None,
        )
        self._outbox.append(aare.to_bytes())
        if hls:
            self.state = State.ASSOCIATION_PENDING
            self._set_status(AssociationStatus.ASSOCIATION_PENDING)
            return None
        return self._established()

    def _initiate_error(self, info: InitiateRequest) -> InitiateErrorCode | None:
        if info.proposed_dlms_version_number < 6:
            return InitiateErrorCode.DLMS_VERSION_TOO_LOW
        if info.client_max_receive_pdu_size < MIN_PDU_SIZE:
            return InitiateErrorCode.PDU_SIZE_TOO_SHORT
        if not info.proposed_conformance & (self.config.conformance if self.config else 0):
            return InitiateErrorCode.INCOMPATIBLE_CONFORMANCE
        return None

    def _established(self) -> AssociationEstablished:
        self.state = State.ASSOCIATED
        self._set_status(AssociationStatus.ASSOCIATED)
        config = self.config
        mechanism = config.mechanism if config else AuthenticationMechanism.LOWEST
        return AssociationEstablished(self.client_sap, mechanism, self._cipher.peer_title)

    def _set_status(self, status: AssociationStatus) -> None:
        if self.config is not None and self.config.association is not None:
            self.config.association.status = status

    def _hls_responder(self, reply: bytes) -> bytes | None:
        """Check the client's f(StoC); return our f(CtoS), or None when it does not verify."""
        title = self._cipher.peer_title
        if title is None:
            return None
        key, auth = self._cipher.keys()
        try:
            security.verify_gmac(key, auth, title, reply, self._stoc)
        except CipheringError:
            return None
        ic = self._cipher.next_counter()
        return security.gmac(key, auth, self._cipher.system_title, ic, self._ctos)

    def _on_hls_pass3(self, data: bytes) -> ServerEvent | None:
        request = decode_action_request(data) if data[0] == 0xC3 else None
        if not isinstance(request, ActionRequestNormal) or request.method != _HLS_METHOD:
            raise ProtocolError("only reply_to_HLS_authentication is allowed before pass 3")
        iid = request.invoke_id_and_priority
        parameters = request.parameters
        answer: bytes | None = None
        association = self.config.association if self.config else None
        if association is not None:
            association.hls_responder = self._hls_responder
            try:
                result = association.action(1, parameters)
            except CosemAccessError:
                result = None
            association.hls_responder = None
            if isinstance(result, Data) and isinstance(result.value, bytes):
                answer = result.value
        elif parameters is not None and isinstance(parameters.value, bytes):
            answer = self._hls_responder(parameters.value)
        if answer is None:
            self._reply(ActionResponseNormal(ActionResult.READ_WRITE_DENIED, None, iid).to_bytes())
            self.state = State.IDLE
            self._set_status(AssociationStatus.NON_ASSOCIATED)
            return AssociationRefused(self.client_sap, _UserDiagnostic.AUTHENTICATION_FAILURE)
        response = ActionResponseNormal(ActionResult.SUCCESS, Data.octet_string(answer), iid)
        self._reply(response.to_bytes())
        return self._established()

    # -- services ------------------------------------------------------------------------

    def _needs(self, needed: Conformance) -> None:
        if not needed & self.conformance:
            raise ProtocolError(f"{needed!r} not in the negotiated conformance")

    def _reply(self, plain: bytes) -> None:
        if self._reply_sc.authenticated or self._reply_sc.encrypted:
            plain = self._cipher.protect(plain, self._reply_sc, self._reply_general)
        self._outbox.append(plain)

    def _overhead(self) -> int:
        return _CIPHER_OVERHEAD if self._reply_sc.authenticated or self._reply_sc.encrypted else 0

    def _read(
        self, descriptor: CosemAttributeDescriptor, selection: SelectiveAccessDescriptor | None
    ) -> Data | DataAccessResult:
        try:
            return self.device.get(
                descriptor.class_id,
                descriptor.instance_id,
                descriptor.attribute_id,
                selection,
                client_sap=self.client_sap,
                authenticated=self.authenticated,
            )
        except CosemAccessError as exc:
            return _data_access_result(exc.result)

    def _on_get(self, data: bytes) -> None:
        request = decode_get_request(data)
        iid = request.invoke_id_and_priority
        if isinstance(request, GetRequestNext):
            self._get_next(request)
            return
        self._long = None
        if isinstance(request, GetRequestNormal):
            if request.access_selection is not None:
                self._needs(Conformance.SELECTIVE_ACCESS)
            result = self._read(request.attribute, request.access_selection)
            plain = GetResponseNormal(result, iid).to_bytes()
            raw = encode_data(result) if isinstance(result, Data) else b""
        else:
            self._needs(Conformance.MULTIPLE_REFERENCES)
            results = tuple(
                self._read(item.attribute, item.access_selection) for item in request.attributes
            )
            plain = GetResponseWithList(results, iid).to_bytes()
            raw = plain[3:]
        if len(plain) + self._overhead() <= self.max_send_pdu_size:
            self._reply(plain)
            return
        self._needs(Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ)
        size = self.max_send_pdu_size - self._overhead() - _GET_BLOCK_OVERHEAD
        self._long = _LongTransfer("get", iid.invoke_id, _chunks(raw, size), 0)
        self._send_get_block(iid)

    def _send_get_block(self, iid: InvokeIdAndPriority) -> None:
        long = self._long
        if long is None:
            return
        long.block_number += 1
        block = long.blocks.pop(0)
        last = not long.blocks
        if last:
            self._long = None
        self._reply(GetResponseWithDatablock(last, long.block_number, block, iid).to_bytes())

    def _get_next(self, request: GetRequestNext) -> None:
        iid = request.invoke_id_and_priority
        long = self._long
        if long is None or long.kind != "get":
            failure = DataAccessResult.NO_LONG_GET_IN_PROGRESS
        elif long.invoke_id != iid.invoke_id or request.block_number != long.block_number:
            failure = DataAccessResult.DATA_BLOCK_NUMBER_INVALID
            self._long = None
        else:
            self._send_get_block(iid)
            return
        response = GetResponseWithDatablock(True, request.block_number, failure, iid)
        self._reply(response.to_bytes())

    def _write(self, descriptor: CosemAttributeDescriptor, value: Data) -> DataAccessResult:
        try:
            self.device.set(
                descriptor.class_id,
                descriptor.instance_id,
                descriptor.attribute_id,
                value,
                client_sap=self.client_sap,
                authenticated=self.authenticated,
            )
        except CosemAccessError as exc:
            return _data_access_result(exc.result)
        return DataAccessResult.SUCCESS

    def _on_set(self, data: bytes) -> None:
        request = decode_set_request(data)
        iid = request.invoke_id_and_priority
        if isinstance(request, SetRequestNormal):
            self._long = None
            result = self._write(request.attribute, request.value)
            self._reply(SetResponseNormal(result, iid).to_bytes())
        elif isinstance(request, SetRequestWithList):
            self._long = None
            self._needs(Conformance.MULTIPLE_REFERENCES)
            results = tuple(
                self._write(item.attribute, value)
                for item, value in zip(request.attributes, request.values, strict=False)
            )
            if len(request.attributes) != len(request.values):
                raise ProtocolError("set-request-with-list: attribute and value counts differ")
            self._reply(SetResponseWithList(results, iid).to_bytes())
        elif isinstance(request, SetRequestWithFirstDatablock):
            self._needs(Conformance.BLOCK_TRANSFER_WITH_SET_OR_WRITE)
            self._long = _LongTransfer("set", iid.invoke_id, [], 0, request.attribute)
            self._set_block(request.block, iid)
        elif isinstance(request, SetRequestWithDatablock):
            self._set_block(request.block, iid)
        else:
            raise ProtocolError(f"{type(request).__name__} is not supported")

    def _accept_block(
        self, kind: str, block: DataBlockSA, iid: InvokeIdAndPriority
    ) -> bytes | None:
        """Store one received block; the whole raw value once the last block is in."""
        long = self._long
        if long is None or long.kind != kind or long.invoke_id != iid.invoke_id:
            raise ProtocolError(f"{kind} datablock without a transfer in progress")
        if block.block_number != long.block_number + 1:
            self._long = None
            raise ProtocolError(
                f"{kind} block {block.block_number}, expected {long.block_number + 1}"
            )
        long.blocks.append(block.raw_data)
        long.block_number = block.block_number
        if not block.last_block:
            return None
        self._long = None
        return b"".join(long.blocks)

    def _set_block(self, block: DataBlockSA, iid: InvokeIdAndPriority) -> None:
        long = self._long
        raw = self._accept_block("set", block, iid)
        if raw is None:
            self._reply(SetResponseDatablock(block.block_number, iid).to_bytes())
            return
        target = long.target if long is not None else None
        if not isinstance(target, CosemAttributeDescriptor):
            raise ProtocolError("set datablocks without an attribute")
        result = self._write(target, _decode_whole_data(raw))
        self._reply(SetResponseLastDatablock(result, block.block_number, iid).to_bytes())

    def _invoke(
        self, method: CosemMethodDescriptor, parameters: Data | None
    ) -> ActionResponseNormal:
        iid = InvokeIdAndPriority()
        try:
            data = self.device.action(
                method.class_id,
                method.instance_id,
                method.method_id,
                parameters,
                client_sap=self.client_sap,
                authenticated=self.authenticated,
            )
        except CosemAccessError as exc:
            return ActionResponseNormal(_action_result(exc.result), None, iid)
        return ActionResponseNormal(ActionResult.SUCCESS, data, iid)

    def _on_action(self, data: bytes) -> None:
        request = decode_action_request(data)
        iid = request.invoke_id_and_priority
        response: ActionResponseNormal | None
        if isinstance(request, ActionRequestNormal):
            self._long = None
            response = self._invoke(request.method, request.parameters)
        elif isinstance(request, ActionRequestWithFirstPblock):
            self._needs(Conformance.BLOCK_TRANSFER_WITH_ACTION)
            self._long = _LongTransfer("action", iid.invoke_id, [], 0, request.method)
            response = self._action_block(request.block, iid, request.method)
        elif isinstance(request, ActionRequestWithPblock):
            target = self._long.target if self._long is not None else None
            if not isinstance(target, CosemMethodDescriptor):
                raise ProtocolError("action pblock without a transfer in progress")
            response = self._action_block(request.block, iid, target)
        elif isinstance(request, ActionRequestNextPblock):
            raise ProtocolError("no long action response in progress")
        else:
            raise ProtocolError(f"{type(request).__name__} is not supported")
        if response is None:
            return
        self._reply(
            ActionResponseNormal(response.result, response.return_parameters, iid).to_bytes()
        )

    def _action_block(
        self, block: DataBlockSA, iid: InvokeIdAndPriority, method: CosemMethodDescriptor
    ) -> ActionResponseNormal | None:
        raw = self._accept_block("action", block, iid)
        if raw is None:
            self._reply(ActionResponseNextPblock(block.block_number, iid).to_bytes())
            return None
        return self._invoke(method, _decode_whole_data(raw))


def _data_access_result(code: int) -> DataAccessResult:
    try:
        return DataAccessResult(code)
    except ValueError:
        return DataAccessResult.OTHER_REASON


def _action_result(code: int) -> ActionResult:
    try:
        return ActionResult(code)
    except ValueError:
        return ActionResult.OTHER_REASON
