"""Exceptions of the DLMS/COSEM stack.

Every decoder in :mod:`smmc.dlms` raises :class:`DecodeError` (and nothing else) on bad
input, so callers need a single ``except`` to survive a hostile or broken peer.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AssociationRejected",
    "CipheringError",
    "DecodeError",
    "DlmsError",
    "DlmsTimeout",
    "EncodeError",
    "ProtocolError",
    "ReplayError",
    "ServiceError",
]


class DlmsError(Exception):
    """Base class of every error raised by :mod:`smmc.dlms`."""


class DecodeError(DlmsError):
    """Bytes from the wire could not be decoded.

    ``offset`` is the position in the buffer where the problem was found, when known, so a
    log line can point at the faulty byte.
    """

    def __init__(self, reason: str, offset: int | None = None) -> None:
        self.reason = reason
        self.offset = offset
        super().__init__(reason if offset is None else f"{reason} (at offset {offset})")

    def __reduce__(self) -> tuple[type[DecodeError], tuple[str, int | None]]:
        return (type(self), (self.reason, self.offset))


class EncodeError(DlmsError):
    """A value cannot be encoded (out of range, wrong type, too long)."""


class CipheringError(DlmsError):
    """Ciphering or deciphering failed (bad tag, wrong key, unsupported security control)."""


class ReplayError(CipheringError):
    """An invocation counter was not greater than the last accepted one for that peer."""


class AssociationRejected(DlmsError):
    """The server rejected the AARQ; carries the AARE result and diagnostic codes."""

    def __init__(self, result: int, diagnostic: int | None = None) -> None:
        self.result = result
        self.diagnostic = diagnostic
        super().__init__(f"association rejected: result={result} diagnostic={diagnostic}")

    def __reduce__(self) -> tuple[type[AssociationRejected], tuple[int, int | None]]:
        return (type(self), (self.result, self.diagnostic))


class AccessDenied(DlmsError):
    """The association's access rights do not allow the requested operation."""


class DlmsTimeout(DlmsError):
    """The peer did not answer in time."""


class ProtocolError(DlmsError):
    """An APDU or frame arrived that the current state does not allow."""


class ServiceError(DlmsError):
    """A peer answered with a data-access-result or confirmed-service-error other than success.

    ``code`` is the numeric result (e.g. data-access-result 3 = read-write-denied).
    """

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message
        super().__init__(message if message is not None else f"service error code {code}")

    def __reduce__(self) -> tuple[type[ServiceError], tuple[int, str | None]]:
        return (type(self), (self.code, self.message))
