"""SET-Request / SET-Response (LN referencing), including block transfer.

A value too long for one APDU is encoded once and sent as numbered DataBlock-SA slices; the
server acknowledges each block and answers the last one with the data-access-result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from smmc.dlms.apdu._common import (
    CosemAttributeDescriptor,
    DataAccessResult,
    DataBlockSA,
    InvokeIdAndPriority,
    ServiceApdu,
    default_invoke_id,
    dispatch_choice,
    encode_block_number,
    open_apdu,
)
from smmc.dlms.apdu._reader import Buffer, Reader, encode_length
from smmc.dlms.apdu.get import (
    CosemAttributeWithSelection,
    encode_attribute_list,
    read_attribute_list,
)
from smmc.dlms.apdu.selective_access import (
    SelectiveAccessDescriptor,
    encode_optional_selection,
    read_optional_selection,
)
from smmc.dlms.axdr import Data, encode_data
from smmc.dlms.errors import DecodeError, EncodeError

__all__ = [
    "SetRequest",
    "SetRequestNormal",
    "SetRequestWithDatablock",
    "SetRequestWithFirstDatablock",
    "SetRequestWithList",
    "SetRequestWithListAndFirstDatablock",
    "SetResponse",
    "SetResponseDatablock",
    "SetResponseLastDatablock",
    "SetResponseLastDatablockWithList",
    "SetResponseNormal",
    "SetResponseWithList",
    "decode_set_request",
    "decode_set_response",
]

REQUEST_TAG = 0xC1
RESPONSE_TAG = 0xC5


def _encode_results(results: tuple[DataAccessResult, ...]) -> bytes:
    return encode_length(len(results)) + bytes(results)


def _read_results(reader: Reader) -> tuple[DataAccessResult, ...]:
    count = reader.count("result list")
    return tuple(reader.enum(DataAccessResult, "data-access-result") for _ in range(count))


@dataclass(frozen=True, slots=True)
class SetRequestNormal(ServiceApdu):
    """Write one attribute."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 1

    attribute: CosemAttributeDescriptor
    value: Data
    access_selection: SelectiveAccessDescriptor | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return (
            self._head()
            + self.attribute.to_bytes()
            + encode_optional_selection(self.access_selection)
            + encode_data(self.value)
        )

    @classmethod
    def from_bytes(cls, buf: Buffer) -> SetRequestNormal:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "set-request-normal")
        iid = InvokeIdAndPriority.read(reader)
        attribute = CosemAttributeDescriptor.read(reader)
        selection = read_optional_selection(reader)
        value = reader.data()
        reader.expect_end("set-request-normal")
        return cls(attribute, value, selection, iid)


@dataclass(frozen=True, slots=True)
class SetRequestWithFirstDatablock(ServiceApdu):
    """First block of a long write: the attribute and the first slice of its encoded value."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 2

    attribute: CosemAttributeDescriptor
    block: DataBlockSA
    access_selection: SelectiveAccessDescriptor | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return (
            self._head()
            + self.attribute.to_bytes()
            + encode_optional_selection(self.access_selection)
            + self.block.to_bytes()
        )

    @classmethod
    def from_bytes(cls, buf: Buffer) -> SetRequestWithFirstDatablock:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "set-request-with-first-datablock")
        iid = InvokeIdAndPriority.read(reader)
        attribute = CosemAttributeDescriptor.read(reader)
        selection = read_optional_selection(reader)
        block = DataBlockSA.read(reader)
        reader.expect_end("set-request-with-first-datablock")
        return cls(attribute, block, selection, iid)


@dataclass(frozen=True, slots=True)
class SetRequestWithDatablock(ServiceApdu):
    """A following block of a long write."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 3

    block: DataBlockSA
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + self.block.to_bytes()

    @classmethod
    def from_bytes(cls, buf: Buffer) -> SetRequestWithDatablock:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "set-request-with-datablock")
        iid = InvokeIdAndPriority.read(reader)
        block = DataBlockSA.read(reader)
        reader.expect_end("set-request-with-datablock")
        return cls(block, iid)


@dataclass(frozen=True, slots=True)
class SetRequestWithList(ServiceApdu):
    """Write several attributes; ``values`` pairs with ``attributes`` one to one."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 4

    attributes: tuple[CosemAttributeWithSelection, ...]
    values: tuple[Data, ...]
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU; the two lists must have the same length."""
        if len(self.attributes) != len(self.values):
            raise EncodeError("set-request-with-list needs one value per attribute")
        return (
            self._head()
            + encode_attribute_list(self.attributes)
            + encode_length(len(self.values))
            + b"".join(encode_data(value) for value in self.values)
        )

    @classmethod
    def from_bytes(cls, buf: Buffer) -> SetRequestWithList:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "set-request-with-list")
        iid = InvokeIdAndPriority.read(reader)
        attributes = read_attribute_list(reader)
        offset = reader.pos
        count = reader.count("value list")
        if count != len(attributes):
            raise DecodeError(f"{count} value(s) for {len(attributes)} attribute(s)", offset)
        values = tuple(reader.data() for _ in range(count))
        reader.expect_end("set-request-with-list")
        return cls(attributes, values, iid)


@dataclass(frozen=True, slots=True)
class SetRequestWithListAndFirstDatablock(ServiceApdu):
    """First block of a long with-list write (the encoded values are sliced into blocks)."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 5

    attributes: tuple[CosemAttributeWithSelection, ...]
    block: DataBlockSA
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + encode_attribute_list(self.attributes) + self.block.to_bytes()

    @classmethod
    def from_bytes(cls, buf: Buffer) -> SetRequestWithListAndFirstDatablock:
        """Decode a complete APDU; trailing bytes are an error."""
        what = "set-request-with-list-and-first-datablock"
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, what)
        iid = InvokeIdAndPriority.read(reader)
        attributes = read_attribute_list(reader)
        block = DataBlockSA.read(reader)
        reader.expect_end(what)
        return cls(attributes, block, iid)


@dataclass(frozen=True, slots=True)
class SetResponseNormal(ServiceApdu):
    """Outcome of a SetRequestNormal."""

    TAG: ClassVar[int] = RESPONSE_TAG
    CHOICE: ClassVar[int] = 1

    result: DataAccessResult
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + bytes([self.result])

    @classmethod
    def from_bytes(cls, buf: Buffer) -> SetResponseNormal:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "set-response-normal")
        iid = InvokeIdAndPriority.read(reader)
        result = reader.enum(DataAccessResult, "data-access-result")
        reader.expect_end("set-response-normal")
        return cls(result, iid)


@dataclass(frozen=True, slots=True)
class SetResponseDatablock(ServiceApdu):
    """Acknowledges block ``block_number`` of a long write; the client sends the next."""

    TAG: ClassVar[int] = RESPONSE_TAG
    CHOICE: ClassVar[int] = 2

    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + encode_block_number(self.block_number)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> SetResponseDatablock:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "set-response-datablock")
        iid = InvokeIdAndPriority.read(reader)
        block_number = reader.u32("block number")
        reader.expect_end("set-response-datablock")
        return cls(block_number, iid)


@dataclass(frozen=True, slots=True)
class SetResponseLastDatablock(ServiceApdu):
    """Outcome of a long write, sent after its last block."""

    TAG: ClassVar[int] = RESPONSE_TAG
    CHOICE: ClassVar[int] = 3

    result: DataAccessResult
    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + bytes([self.result]) + encode_block_number(self.block_number)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> SetResponseLastDatablock:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "set-response-last-datablock")
        iid = InvokeIdAndPriority.read(reader)
        result = reader.enum(DataAccessResult, "data-access-result")
        block_number = reader.u32("block number")
        reader.expect_end("set-response-last-datablock")
        return cls(result, block_number, iid)


@dataclass(frozen=True, slots=True)
class SetResponseLastDatablockWithList(ServiceApdu):
    """Outcomes of a long with-list write, sent after its last block."""

    TAG: ClassVar[int] = RESPONSE_TAG
    CHOICE: ClassVar[int] = 4

    results: tuple[DataAccessResult, ...]
    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + _encode_results(self.results) + encode_block_number(self.block_number)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> SetResponseLastDatablockWithList:
        """Decode a complete APDU; trailing bytes are an error."""
        what = "set-response-last-datablock-with-list"
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, what)
        iid = InvokeIdAndPriority.read(reader)
        results = _read_results(reader)
        block_number = reader.u32("block number")
        reader.expect_end(what)
        return cls(results, block_number, iid)


@dataclass(frozen=True, slots=True)
class SetResponseWithList(ServiceApdu):
    """Outcomes of a SetRequestWithList, in order."""

    TAG: ClassVar[int] = RESPONSE_TAG
    CHOICE: ClassVar[int] = 5

    results: tuple[DataAccessResult, ...]
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + _encode_results(self.results)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> SetResponseWithList:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "set-response-with-list")
        iid = InvokeIdAndPriority.read(reader)
        results = _read_results(reader)
        reader.expect_end("set-response-with-list")
        return cls(results, iid)


SetRequest = (
    SetRequestNormal
    | SetRequestWithFirstDatablock
    | SetRequestWithDatablock
    | SetRequestWithList
    | SetRequestWithListAndFirstDatablock
)
SetResponse = (
    SetResponseNormal
    | SetResponseDatablock
    | SetResponseLastDatablock
    | SetResponseLastDatablockWithList
    | SetResponseWithList
)

_REQUESTS: dict[int, Callable[[Buffer], SetRequest]] = {
    cls.CHOICE: cls.from_bytes
    for cls in (
        SetRequestNormal,
        SetRequestWithFirstDatablock,
        SetRequestWithDatablock,
        SetRequestWithList,
        SetRequestWithListAndFirstDatablock,
    )
}
_RESPONSES: dict[int, Callable[[Buffer], SetResponse]] = {
    cls.CHOICE: cls.from_bytes
    for cls in (
        SetResponseNormal,
        SetResponseDatablock,
        SetResponseLastDatablock,
        SetResponseLastDatablockWithList,
        SetResponseWithList,
    )
}


def decode_set_request(buf: Buffer) -> SetRequest:
    """Decode any SET-Request by its CHOICE byte."""
    return dispatch_choice(buf, REQUEST_TAG, _REQUESTS, "set-request")


def decode_set_response(buf: Buffer) -> SetResponse:
    """Decode any SET-Response by its CHOICE byte."""
    return dispatch_choice(buf, RESPONSE_TAG, _RESPONSES, "set-response")
