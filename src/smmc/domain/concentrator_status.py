"""The concentrator (LVM) status word: its letters and their bit positions.

The seeds name the letters (ID-001) and show the word as six hex digits in the daily
"ConcentratorStatusWordAnalyzedReport" (``csw`` column, e.g. ``08001E``), but not which bit
each letter is. This table fixes the positions once for all of SMMC (simulator, head-end,
reports). It is chosen so the values the seed's report shows read as a healthy DC:
``00001E`` = B (CE table loaded) · O (synchronised) · E (LV communication active) · G (DST
configured), and ``08001E`` adds C (time-zone handling enabled) at bit 19. Bits not listed
are reserved and always zero.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "LETTERS",
    "STATUS_WORD_BITS",
    "ConcentratorStatusError",
    "StatusLetter",
    "decode_status_word",
    "encode_status_word",
    "format_status_word",
    "parse_status_word",
]

STATUS_WORD_BITS = 24
"""Width of the word: six hex digits in the reports."""


class ConcentratorStatusError(ValueError):
    """An unknown letter, a reserved bit set, or a malformed hex word."""


@dataclass(frozen=True, slots=True)
class StatusLetter:
    letter: str
    bit: int
    name: str
    description: str


_TABLE: tuple[StatusLetter, ...] = (
    StatusLetter("A", 0, "Power up", "LVM power up"),
    StatusLetter("B", 1, "CE Table Load", "CE table loaded"),
    StatusLetter("O", 2, "Sync", "LVM synchronised (with valid temporal reference)"),
    StatusLetter("E", 3, "LVAct", "Communication active on LV net"),
    StatusLetter("G", 4, "DST", "Daylight saving time period configured"),
    StatusLetter("S", 5, "ModeCha", "LVM functioning modality variation (standalone/remote)"),
    StatusLetter("T", 6, "Amm", "Expired time-out communication with AMMS"),
    StatusLetter("L", 7, "Tamper Detection", "Tamper detection"),
    StatusLetter("F", 8, "ConnC", "CONN-C procedure completion"),
    StatusLetter("U", 9, "PLC Modem Failure", "PLC modem failure"),
    StatusLetter("I", 10, "PhaseR Missing", "Phase R missing"),
    StatusLetter("J", 11, "PhaseS Missing", "Phase S missing"),
    StatusLetter("K", 12, "PhaseT Missing", "Phase T missing"),
    StatusLetter("Y", 13, "CBT Diag", "Reserved for LVM diagnostics"),
    StatusLetter("Z", 14, "Post", "Error in LVM self-diagnostics"),
    StatusLetter("M", 15, "Available", "Not used"),
    StatusLetter("R", 16, "Dis", "Not used"),
    StatusLetter("C", 19, "Time Zone Enable", "Time zone handling enabled/disabled"),
)

LETTERS: Mapping[str, StatusLetter] = MappingProxyType({s.letter: s for s in _TABLE})
_BY_BIT: Mapping[int, StatusLetter] = MappingProxyType({s.bit: s for s in _TABLE})
_DEFINED_MASK = sum(1 << s.bit for s in _TABLE)
_HEX_WORD = re.compile(r"^[0-9A-Fa-f]{1,6}$")


def encode_status_word(letters: Iterable[str]) -> int:
    """The word with the bits of ``letters`` set (e.g. ``"BOEG"`` or ``["C", "B"]``)."""
    word = 0
    for letter in letters:
        entry = LETTERS.get(letter.upper())
        if entry is None:
            raise ConcentratorStatusError(f"{letter!r} is not a concentrator status letter")
        word |= 1 << entry.bit
    return word


def decode_status_word(word: int) -> frozenset[str]:
    """The letters set in ``word``; a reserved bit or a value over 24 bits is an error."""
    if not 0 <= word < 1 << STATUS_WORD_BITS:
        raise ConcentratorStatusError(f"status word {word} does not fit in 24 bits")
    if word & ~_DEFINED_MASK:
        raise ConcentratorStatusError(
            f"status word {word:06X} sets reserved bits {word & ~_DEFINED_MASK:06X}"
        )
    return frozenset(_BY_BIT[bit].letter for bit in _BY_BIT if word >> bit & 1)


def format_status_word(word: int) -> str:
    """Six upper-case hex digits, as the daily report's ``csw`` column."""
    decode_status_word(word)
    return f"{word:06X}"


def parse_status_word(text: str) -> int:
    """The word of a report's ``csw`` value (``08001E``); checked like ``decode``."""
    stripped = text.strip()
    if not _HEX_WORD.match(stripped):
        raise ConcentratorStatusError(f"{text!r} is not a status word of up to 6 hex digits")
    word = int(stripped, 16)
    decode_status_word(word)
    return word
