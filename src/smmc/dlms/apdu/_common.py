"""Pieces shared by the xDLMS service APDUs: invoke ids, COSEM descriptors, results, blocks.

They are re-exported from :mod:`smmc.dlms.apdu`; the service modules (get, set, action,
notification) only assemble them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, TypeVar

from smmc.dlms.apdu._reader import Buffer, Reader, i8, octet_string, u16, u32
from smmc.dlms.axdr import Data, encode_data
from smmc.dlms.errors import DecodeError, EncodeError
from smmc.dlms.obis import Obis

__all__ = [
    "CosemAttributeDescriptor",
    "CosemMethodDescriptor",
    "DataAccessResult",
    "DataBlockSA",
    "InvokeIdAndPriority",
    "LongInvokeIdAndPriority",
    "ServiceApdu",
    "decode_get_data_result",
    "default_invoke_id",
    "dispatch_choice",
    "encode_block_number",
    "encode_get_data_result",
    "open_apdu",
]

T = TypeVar("T")


class DataAccessResult(IntEnum):
    """Outcome of reading or writing one attribute (Blue Book numbering)."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_GET_ABORTED = 15
    NO_LONG_GET_IN_PROGRESS = 16
    LONG_SET_ABORTED = 17
    NO_LONG_SET_IN_PROGRESS = 18
    DATA_BLOCK_NUMBER_INVALID = 19
    OTHER_REASON = 250


@dataclass(frozen=True, slots=True)
class InvokeIdAndPriority:
    """The one-byte Invoke-Id-And-Priority: id in bits 0–3, service class 6, priority 7.

    It lets a client match responses to requests; reserved bits 4–5 are sent as zero and
    ignored on receipt.
    """

    invoke_id: int = 1
    confirmed: bool = True
    high_priority: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.invoke_id <= 0x0F:
            raise EncodeError(f"invoke id {self.invoke_id} does not fit 4 bits")

    def to_byte(self) -> int:
        """The encoded byte (0xC1 for id 1, confirmed, high priority)."""
        return (
            self.invoke_id | (0x40 if self.confirmed else 0) | (0x80 if self.high_priority else 0)
        )

    @classmethod
    def from_byte(cls, value: int) -> InvokeIdAndPriority:
        """Decode the byte."""
        return cls(value & 0x0F, bool(value & 0x40), bool(value & 0x80))

    @classmethod
    def read(cls, reader: Reader) -> InvokeIdAndPriority:
        """Decode the byte at the reader's position."""
        return cls.from_byte(reader.u8("invoke-id-and-priority"))


@dataclass(frozen=True, slots=True)
class LongInvokeIdAndPriority:
    """Long-Invoke-Id-And-Priority (4 bytes) used by DataNotification.

    Bits 0–23 invoke id, 28 self-descriptive, 29 processing option (break on error),
    30 service class (confirmed), 31 priority (high); reserved bits are ignored on receipt.
    """

    invoke_id: int = 0
    self_descriptive: bool = False
    break_on_error: bool = False
    confirmed: bool = False
    high_priority: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.invoke_id <= 0xFFFFFF:
            raise EncodeError(f"long invoke id {self.invoke_id} does not fit 24 bits")

    def to_bytes(self) -> bytes:
        """The encoded four bytes."""
        value = (
            self.invoke_id
            | (1 << 28 if self.self_descriptive else 0)
            | (1 << 29 if self.break_on_error else 0)
            | (1 << 30 if self.confirmed else 0)
            | (1 << 31 if self.high_priority else 0)
        )
        return value.to_bytes(4, "big")

    @classmethod
    def read(cls, reader: Reader) -> LongInvokeIdAndPriority:
        """Decode the four bytes at the reader's position."""
        value = reader.u32("long-invoke-id-and-priority")
        return cls(
            value & 0xFFFFFF,
            bool(value >> 28 & 1),
            bool(value >> 29 & 1),
            bool(value >> 30 & 1),
            bool(value >> 31 & 1),
        )


@dataclass(frozen=True, slots=True)
class CosemAttributeDescriptor:
    """Which attribute: class id, logical name, attribute index (negative = manufacturer)."""

    class_id: int
    instance_id: Obis
    attribute_id: int

    def to_bytes(self) -> bytes:
        """Class id (2 bytes), logical name (6), attribute id (signed byte)."""
        return (
            u16(self.class_id, "class id")
            + self.instance_id.to_bytes()
            + i8(self.attribute_id, "attribute id")
        )

    @classmethod
    def read(cls, reader: Reader) -> CosemAttributeDescriptor:
        """Decode a descriptor at the reader's position."""
        return cls(reader.u16("class id"), reader.obis("instance id"), reader.i8("attribute id"))


@dataclass(frozen=True, slots=True)
class CosemMethodDescriptor:
    """Which method: class id, logical name, method index (negative = manufacturer)."""

    class_id: int
    instance_id: Obis
    method_id: int

    def to_bytes(self) -> bytes:
        """Class id (2 bytes), logical name (6), method id (signed byte)."""
        return (
            u16(self.class_id, "class id")
            + self.instance_id.to_bytes()
            + i8(self.method_id, "method id")
        )

    @classmethod
    def read(cls, reader: Reader) -> CosemMethodDescriptor:
        """Decode a descriptor at the reader's position."""
        return cls(reader.u16("class id"), reader.obis("instance id"), reader.i8("method id"))


@dataclass(frozen=True, slots=True)
class DataBlockSA:
    """DataBlock-SA: one block of a long SET or ACTION (raw slice of the encoded Data)."""

    last_block: bool
    block_number: int
    raw_data: bytes

    def to_bytes(self) -> bytes:
        """last-block, block-number (4 bytes), length-prefixed raw data."""
        return (
            (b"\x01" if self.last_block else b"\x00")
            + u32(self.block_number, "block number")
            + octet_string(self.raw_data)
        )

    @classmethod
    def read(cls, reader: Reader) -> DataBlockSA:
        """Decode a block at the reader's position."""
        last = reader.boolean("last block")
        number = reader.u32("block number")
        return cls(last, number, reader.octet_string("raw data"))


class ServiceApdu:
    """Mixin of the GET/SET/ACTION APDUs: ``tag ‖ choice ‖ invoke-id-and-priority ‖ …``."""

    __slots__ = ()
    TAG: ClassVar[int]
    CHOICE: ClassVar[int]
    invoke_id_and_priority: InvokeIdAndPriority

    def _head(self) -> bytes:
        return bytes([self.TAG, self.CHOICE, self.invoke_id_and_priority.to_byte()])


def encode_get_data_result(result: Data | DataAccessResult) -> bytes:
    """Get-Data-Result CHOICE: ``00 Data`` or ``01 data-access-result``."""
    if isinstance(result, DataAccessResult):
        return bytes([1, result])
    return b"\x00" + encode_data(result)


def decode_get_data_result(reader: Reader) -> Data | DataAccessResult:
    """Decode a Get-Data-Result at the reader's position."""
    offset = reader.pos
    choice = reader.u8("get-data-result choice")
    if choice == 0:
        return reader.data()
    if choice == 1:
        return reader.enum(DataAccessResult, "data-access-result")
    raise DecodeError(f"get-data-result: unknown choice {choice}", offset)


def open_apdu(buf: Buffer, tag: int, choice: int | None, what: str) -> Reader:
    """Check the APDU tag (and CHOICE byte) and return a reader positioned after them."""
    reader = Reader(buf)
    if reader.u8(f"{what} tag") != tag:
        raise DecodeError(f"not a {what}: tag is not {tag:#04x}", 0)
    if choice is not None and reader.u8(f"{what} choice") != choice:
        raise DecodeError(f"not a {what}: choice is not {choice}", 1)
    return reader


def dispatch_choice(
    buf: Buffer,
    tag: int,
    table: Mapping[int, Callable[[Buffer], T]],
    what: str,
) -> T:
    """Decode a CHOICE-style APDU (GET/SET/ACTION) by its second byte."""
    reader = Reader(buf)
    if reader.u8(f"{what} tag") != tag:
        raise DecodeError(f"not a {what}: tag is not {tag:#04x}", 0)
    choice = reader.u8(f"{what} choice")
    decoder = table.get(choice)
    if decoder is None:
        raise DecodeError(f"{what}: unknown choice {choice}", 1)
    return decoder(buf)


def default_invoke_id() -> InvokeIdAndPriority:
    """Default factory for ``invoke_id_and_priority`` fields (0xC1)."""
    return InvokeIdAndPriority()


def encode_block_number(block_number: int) -> bytes:
    """Unsigned32 block number used by GET/SET/ACTION block transfer."""
    return u32(block_number, "block number")
