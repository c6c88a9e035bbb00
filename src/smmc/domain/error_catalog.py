"""The utility's work-order error catalog (ID-001) and the concentrator acknowledgement codes.

A field failure ends as one catalog entry: the text the seed reports show, what it means,
what the operator should do and whether another attempt is worth it. Report strings have
the form ``[OPERATION] [ACK CODE] TEXT`` (``[READ_METER_MACADDRESS] [TB_ACK_40] REPEATER 1
FAILURE``) or ``TEXT [DETAIL]`` (``Concentrator is unreachable [Open socket is failed]``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "ACK_CODES",
    "CATALOG",
    "AckCode",
    "Action",
    "CatalogEntry",
    "ErrorKey",
    "FieldError",
    "Meaning",
    "UnknownAckCode",
    "ack_code",
    "format_error",
    "parse_error",
]


class UnknownAckCode(ValueError):
    """An acknowledgement code that is not in the table."""


class Meaning(StrEnum):
    DC_REACHABILITY = "DC reachability problem"
    METER_REACHABILITY = "meter reachability"
    KEY_MISALIGNMENT = "possible key misalignment"
    BAD_COMMAND = "bad command sent to device"
    BAD_DC_CONFIGURATION = "bad DC configuration"
    CANNOT_READ_WRITE = "cannot write/read the meter"
    DC_TABLE_MISALIGNED = "DC table misaligned"
    DEVICE_BEHAVIOUR = "device behaviour"
    ENCRYPTION_KEY = "encryption key problem"


class Action(StrEnum):
    CHECK_DC_IN_FIELD = "if it persists, check DC in field"
    CHECK_METER_IN_FIELD = "if it persists, check meter in field"
    ESCALATE_TO_VENDOR = "escalate to vendor support"
    RUN_CONCENTRATOR_MODIFICATION = 'run a "Concentrator Modification" activity'
    RECOMMISSION = "decommission and recommission the meter"
    RUN_AGAIN = "run the last activity again"


class ErrorKey(StrEnum):
    """One name per catalog row, for code that maps failures onto the catalog."""

    CONCENTRATOR_UNREACHABLE = "concentrator_unreachable"
    CONCENTRATOR_SOCKET_FAILED = "concentrator_socket_failed"
    NOT_COMMISSIONED_UNREACHABLE = "not_commissioned_unreachable"
    NODE_NOT_REACHABLE = "node_not_reachable"
    NOT_COMMISSIONED_WRONG_KEYS = "not_commissioned_wrong_keys"
    REPEATER_FAILURE = "repeater_failure"
    GB_NACK_255 = "gb_nack_255"
    TB_PROCEDURE_NOT_ENABLED = "tb_procedure_not_enabled"
    TWO_WAY_AUTH_REQUEST = "two_way_auth_request"
    TWO_WAY_AUTH_RESPONSE = "two_way_auth_response"
    ADDRESS_ERROR = "address_error"
    BAD_FIELD = "bad_field"
    CE_NOT_IN_TABLE = "ce_not_in_table"
    PHASE_NOT_DETECTABLE = "phase_not_detectable"
    ID_ALREADY_PRESENT = "id_already_present"
    RESPONSE_NOT_PRESENT_YET = "response_not_present_yet"
    MODEM_PLC_FAILURE = "modem_plc_failure"
    WRONG_KEY = "wrong_key"
    PHASE_MISSING = "phase_missing"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    key: ErrorKey
    text: str
    meaning: Meaning
    action: Action
    retryable: bool


def _entry(
    key: ErrorKey, text: str, meaning: Meaning, action: Action, retryable: bool
) -> tuple[ErrorKey, CatalogEntry]:
    return key, CatalogEntry(key, text, meaning, action, retryable)


# Retryable: reachability problems ("if it persists…") and transient device behaviour ("run
# the last activity again"). Key, command and configuration problems fail at once: another
# attempt sends the same wrong thing.
_K, _M, _A = ErrorKey, Meaning, Action
CATALOG: Mapping[ErrorKey, CatalogEntry] = MappingProxyType(
    dict(
        [
            _entry(
                _K.CONCENTRATOR_UNREACHABLE,
                "Concentrator is unreachable",
                _M.DC_REACHABILITY,
                _A.CHECK_DC_IN_FIELD,
                True,
            ),
            _entry(
                _K.CONCENTRATOR_SOCKET_FAILED,
                "Concentrator is unreachable [Open socket is failed]",
                _M.DC_REACHABILITY,
                _A.CHECK_DC_IN_FIELD,
                True,
            ),
            _entry(
                _K.NOT_COMMISSIONED_UNREACHABLE,
                "Meter not commissioned because not reachable",
                _M.METER_REACHABILITY,
                _A.CHECK_METER_IN_FIELD,
                True,
            ),
            _entry(
                _K.NODE_NOT_REACHABLE,
                "NODE NOT REACHABLE",
                _M.METER_REACHABILITY,
                _A.CHECK_METER_IN_FIELD,
                True,
            ),
            _entry(
                _K.NOT_COMMISSIONED_WRONG_KEYS,
                "Meter not commissioned for wrong keys",
                _M.KEY_MISALIGNMENT,
                _A.ESCALATE_TO_VENDOR,
                False,
            ),
            _entry(
                _K.REPEATER_FAILURE,
                "REPEATER {n} FAILURE",
                _M.METER_REACHABILITY,
                _A.CHECK_METER_IN_FIELD,
                True,
            ),
            _entry(
                _K.GB_NACK_255,
                "GB_NACK_255 - Error in the function type",
                _M.BAD_COMMAND,
                _A.ESCALATE_TO_VENDOR,
                False,
            ),
            _entry(
                _K.TB_PROCEDURE_NOT_ENABLED,
                "TB procedure not enable",
                _M.BAD_DC_CONFIGURATION,
                _A.RUN_CONCENTRATOR_MODIFICATION,
                False,
            ),
            _entry(
                _K.TWO_WAY_AUTH_REQUEST,
                "2 WAY AUTH REQ FAILURE",
                _M.CANNOT_READ_WRITE,
                _A.ESCALATE_TO_VENDOR,
                False,
            ),
            _entry(
                _K.TWO_WAY_AUTH_RESPONSE,
                "2 WAY AUTH RESP FAILURE",
                _M.CANNOT_READ_WRITE,
                _A.ESCALATE_TO_VENDOR,
                False,
            ),
            _entry(_K.ADDRESS_ERROR, "ADDRESS ERROR", _M.BAD_COMMAND, _A.ESCALATE_TO_VENDOR, False),
            _entry(_K.BAD_FIELD, "BAD FIELD", _M.BAD_COMMAND, _A.ESCALATE_TO_VENDOR, False),
            _entry(
                _K.CE_NOT_IN_TABLE,
                "CE not present in the table",
                _M.DC_TABLE_MISALIGNED,
                _A.ESCALATE_TO_VENDOR,
                False,
            ),
            _entry(
                _K.PHASE_NOT_DETECTABLE,
                "DEVICE NOT CAPABLE OF DETECTING PHASE",
                _M.DEVICE_BEHAVIOUR,
                _A.RECOMMISSION,
                False,
            ),
            _entry(
                _K.ID_ALREADY_PRESENT,
                "Id (to be transmitted) already present in B(TRAPE)",
                _M.DEVICE_BEHAVIOUR,
                _A.RUN_AGAIN,
                True,
            ),
            _entry(
                _K.RESPONSE_NOT_PRESENT_YET,
                "NACK_ResponseNotPresentYet",
                _M.DEVICE_BEHAVIOUR,
                _A.RUN_AGAIN,
                True,
            ),
            _entry(
                _K.MODEM_PLC_FAILURE,
                "Transaction can't be handled due to Modem PLC Failure",
                _M.DEVICE_BEHAVIOUR,
                _A.RUN_AGAIN,
                True,
            ),
            _entry(_K.WRONG_KEY, "Wrong Key", _M.ENCRYPTION_KEY, _A.ESCALATE_TO_VENDOR, False),
            # Not in the ID-001 table but seen in the reports (TB_ACK_50): a phase of the
            # supply is missing at the meter, a field matter.
            _entry(
                _K.PHASE_MISSING,
                "Phase Missing",
                _M.METER_REACHABILITY,
                _A.CHECK_METER_IN_FIELD,
                True,
            ),
            # A failure no catalog row describes: keep the text, let an operator decide.
            _entry(_K.UNKNOWN, "", _M.DEVICE_BEHAVIOUR, _A.ESCALATE_TO_VENDOR, False),
        ]
    )
)


@dataclass(frozen=True, slots=True)
class AckCode:
    """A concentrator acknowledgement code, the text it prints and the catalog row it is."""

    code: str
    text: str
    key: ErrorKey


ACK_CODES: Mapping[str, AckCode] = MappingProxyType(
    {
        ack.code: ack
        for ack in (
            AckCode("TB_ACK_21", "NODE NOT REACHABLE AGENT", ErrorKey.NODE_NOT_REACHABLE),
            AckCode("TB_ACK_L21", "NODE NOT REACHABLE AGENT", ErrorKey.NODE_NOT_REACHABLE),
            # TB_ACK_23 appears in the reports without its text: a reachability failure of
            # the node, as its neighbour 21.
            AckCode("TB_ACK_23", "NODE NOT REACHABLE", ErrorKey.NODE_NOT_REACHABLE),
            AckCode("TB_ACK_40", "REPEATER 1 FAILURE", ErrorKey.REPEATER_FAILURE),
            AckCode("TB_ACK_41", "REPEATER 2 FAILURE", ErrorKey.REPEATER_FAILURE),
            AckCode("TB_ACK_42", "REPEATER 3 FAILURE", ErrorKey.REPEATER_FAILURE),
            AckCode("TB_ACK_L40", "REPEATER_1 FAILURE", ErrorKey.REPEATER_FAILURE),
            AckCode("TB_ACK_L41", "REPEATER_2 FAILURE", ErrorKey.REPEATER_FAILURE),
            AckCode("TB_ACK_L42", "REPEATER_3 FAILURE", ErrorKey.REPEATER_FAILURE),
            AckCode("TB_ACK_50", "Phase Missing", ErrorKey.PHASE_MISSING),
            AckCode(
                "GB_NACK_255",
                "Error in the function type [ErrorCode: 48]",
                ErrorKey.GB_NACK_255,
            ),
        )
    }
)

# The reports spell one code several ways: TB_ACK_40, TBACK_40, TB ACK_40.
_ACK_SPELLING = re.compile(r"^(TB|GB)[ _]?(N?ACK)_([A-Z]?\d+)$", re.IGNORECASE)


def ack_code(text: str) -> AckCode:
    """The acknowledgement code ``text`` names, whichever of the reports' spellings it uses."""
    match = _ACK_SPELLING.match(text.strip())
    if match is None:
        raise UnknownAckCode(f"{text!r} is not an acknowledgement code (like TB_ACK_40)")
    canonical = f"{match[1]}_{match[2]}_{match[3]}".upper()
    found = ACK_CODES.get(canonical)
    if found is None:
        raise UnknownAckCode(f"acknowledgement code {canonical} is not in the table")
    return found


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failure as the reports show it: the operation the DC ran, its acknowledgement code,
    the text and an optional bracketed detail."""

    key: ErrorKey
    text: str
    operation: str | None = None
    ack: str | None = None
    detail: str | None = None

    @property
    def entry(self) -> CatalogEntry:
        return CATALOG[self.key]

    @property
    def retryable(self) -> bool:
        return self.entry.retryable

    def __str__(self) -> str:
        return format_error(self.text, operation=self.operation, ack=self.ack, detail=self.detail)

    @classmethod
    def from_ack(cls, operation: str, code: str) -> FieldError:
        """A DC negative acknowledgement of ``operation`` (e.g. READ_METER_MACADDRESS)."""
        ack = ack_code(code)
        return cls(ack.key, ack.text, operation=operation, ack=ack.code)

    @classmethod
    def of(cls, key: ErrorKey, detail: str | None = None, *, repeater: int = 1) -> FieldError:
        """A catalog row raised by the head-end itself (no DC acknowledgement)."""
        if key is ErrorKey.UNKNOWN and not detail:
            raise ValueError("an error outside the catalog needs its text as detail")
        if key is ErrorKey.UNKNOWN:
            return cls(key, detail or "")
        text = CATALOG[key].text.format(n=repeater)
        return cls(key, text, detail=detail)


def format_error(
    text: str, *, operation: str | None = None, ack: str | None = None, detail: str | None = None
) -> str:
    """``[OPERATION] [ACK] TEXT [DETAIL]``, leaving out the parts that are absent."""
    parts = [f"[{part}]" for part in (operation, ack) if part]
    parts.append(text)
    if detail:
        parts.append(f"[{detail}]")
    return " ".join(parts)


_REPORT_FORM = re.compile(r"^\[(?P<op>[^\[\]]+)\]\s+\[(?P<ack>[^\[\]]+)\]\s+(?P<text>.+)$")
_TEXT_BY_UPPER: Mapping[str, ErrorKey] = MappingProxyType(
    {
        entry.text.upper(): key
        for key, entry in CATALOG.items()
        if entry.text and "{" not in entry.text
    }
)
_REPEATER = re.compile(r"^REPEATER[ _]\"?(\d)\"? FAILURE$", re.IGNORECASE)


def parse_error(report_text: str) -> FieldError:
    """The catalog row of a report's error text; text no row describes maps to ``UNKNOWN``
    with the text kept whole, so nothing is lost."""
    stripped = report_text.strip()
    match = _REPORT_FORM.match(stripped)
    if match is not None:
        try:
            ack = ack_code(match["ack"])
        except UnknownAckCode:
            ack = None
        if ack is not None:
            acked = _key_of_text(match["text"]) or ack.key
            return FieldError(acked, match["text"], operation=match["op"], ack=ack.code)
    key = _key_of_text(stripped)
    if key is not None:
        return FieldError(key, stripped)
    return FieldError(ErrorKey.UNKNOWN, stripped)


def _key_of_text(text: str) -> ErrorKey | None:
    upper = text.strip().upper()
    if upper in _TEXT_BY_UPPER:
        return _TEXT_BY_UPPER[upper]
    if _REPEATER.match(upper):
        return ErrorKey.REPEATER_FAILURE
    if upper.startswith("NODE NOT REACHABLE"):
        return ErrorKey.NODE_NOT_REACHABLE
    if upper.startswith("GB_NACK_255"):
        return ErrorKey.GB_NACK_255
    return None
