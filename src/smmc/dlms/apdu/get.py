"""GET-Request / GET-Response (LN referencing): normal, next block, with-list, data blocks.

A long attribute value (a load profile) comes back in numbered raw blocks that the client
requests one by one with GetRequestNext and concatenates before decoding the Data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from smmc.dlms.apdu._common import (
    CosemAttributeDescriptor,
    DataAccessResult,
    InvokeIdAndPriority,
    ServiceApdu,
    decode_get_data_result,
    default_invoke_id,
    dispatch_choice,
    encode_block_number,
    encode_get_data_result,
    open_apdu,
)
from smmc.dlms.apdu._reader import Buffer, Reader, encode_length, octet_string
from smmc.dlms.apdu.selective_access import (
    SelectiveAccessDescriptor,
    encode_optional_selection,
    read_optional_selection,
)
from smmc.dlms.axdr import Data
from smmc.dlms.errors import DecodeError

__all__ = [
    "CosemAttributeWithSelection",
    "GetRequest",
    "GetRequestNext",
    "GetRequestNormal",
    "GetRequestWithList",
    "GetResponse",
    "GetResponseNormal",
    "GetResponseWithDatablock",
    "GetResponseWithList",
    "decode_get_request",
    "decode_get_response",
]

REQUEST_TAG = 0xC0
RESPONSE_TAG = 0xC4
_ATTRIBUTE_WITH_SELECTION_MIN = 10  # descriptor (9 bytes) + presence flag
_GET_DATA_RESULT_MIN = 2


@dataclass(frozen=True, slots=True)
class CosemAttributeWithSelection:
    """One item of a with-list request: an attribute and its optional selective access."""

    attribute: CosemAttributeDescriptor
    access_selection: SelectiveAccessDescriptor | None = None

    def to_bytes(self) -> bytes:
        """Descriptor followed by the OPTIONAL access selection."""
        return self.attribute.to_bytes() + encode_optional_selection(self.access_selection)

    @classmethod
    def read(cls, reader: Reader) -> CosemAttributeWithSelection:
        """Decode one item at the reader's position."""
        return cls(CosemAttributeDescriptor.read(reader), read_optional_selection(reader))


def encode_attribute_list(items: tuple[CosemAttributeWithSelection, ...]) -> bytes:
    """SEQUENCE OF Cosem-Attribute-Descriptor-With-Selection."""
    return encode_length(len(items)) + b"".join(item.to_bytes() for item in items)


def read_attribute_list(reader: Reader) -> tuple[CosemAttributeWithSelection, ...]:
    """Decode a SEQUENCE OF Cosem-Attribute-Descriptor-With-Selection."""
    count = reader.count("attribute list", _ATTRIBUTE_WITH_SELECTION_MIN)
    return tuple(CosemAttributeWithSelection.read(reader) for _ in range(count))


@dataclass(frozen=True, slots=True)
class GetRequestNormal(ServiceApdu):
    """Read one attribute, optionally with selective access."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 1

    attribute: CosemAttributeDescriptor
    access_selection: SelectiveAccessDescriptor | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return (
            self._head()
            + self.attribute.to_bytes()
            + encode_optional_selection(self.access_selection)
        )

    @classmethod
    def from_bytes(cls, buf: Buffer) -> GetRequestNormal:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "get-request-normal")
        iid = InvokeIdAndPriority.read(reader)
        attribute = CosemAttributeDescriptor.read(reader)
        selection = read_optional_selection(reader)
        reader.expect_end("get-request-normal")
        return cls(attribute, selection, iid)


@dataclass(frozen=True, slots=True)
class GetRequestNext(ServiceApdu):
    """Ask for the block after ``block_number`` (the last one received)."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 2

    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + encode_block_number(self.block_number)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> GetRequestNext:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "get-request-next")
        iid = InvokeIdAndPriority.read(reader)
        block_number = reader.u32("block number")
        reader.expect_end("get-request-next")
        return cls(block_number, iid)


@dataclass(frozen=True, slots=True)
class GetRequestWithList(ServiceApdu):
    """Read several attributes in one request (needs the multiple-references conformance)."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 3

    attributes: tuple[CosemAttributeWithSelection, ...]
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + encode_attribute_list(self.attributes)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> GetRequestWithList:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "get-request-with-list")
        iid = InvokeIdAndPriority.read(reader)
        attributes = read_attribute_list(reader)
        reader.expect_end("get-request-with-list")
        return cls(attributes, iid)


@dataclass(frozen=True, slots=True)
class GetResponseNormal(ServiceApdu):
    """The attribute value, or why it could not be read."""

    TAG: ClassVar[int] = RESPONSE_TAG
    CHOICE: ClassVar[int] = 1

    result: Data | DataAccessResult
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + encode_get_data_result(self.result)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> GetResponseNormal:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "get-response-normal")
        iid = InvokeIdAndPriority.read(reader)
        result = decode_get_data_result(reader)
        reader.expect_end("get-response-normal")
        return cls(result, iid)


@dataclass(frozen=True, slots=True)
class GetResponseWithDatablock(ServiceApdu):
    """One block of a long value: raw bytes of the encoded Data, or a data-access-result."""

    TAG: ClassVar[int] = RESPONSE_TAG
    CHOICE: ClassVar[int] = 2

    last_block: bool
    block_number: int
    result: bytes | DataAccessResult
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU (DataBlock-G)."""
        if isinstance(self.result, DataAccessResult):
            body = bytes([1, self.result])
        else:
            body = b"\x00" + octet_string(self.result)
        return (
            self._head()
            + (b"\x01" if self.last_block else b"\x00")
            + encode_block_number(self.block_number)
            + body
        )

    @classmethod
    def from_bytes(cls, buf: Buffer) -> GetResponseWithDatablock:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "get-response-with-datablock")
        iid = InvokeIdAndPriority.read(reader)
        last = reader.boolean("last block")
        block_number = reader.u32("block number")
        offset = reader.pos
        choice = reader.u8("datablock result choice")
        result: bytes | DataAccessResult
        if choice == 0:
            result = reader.octet_string("raw data")
        elif choice == 1:
            result = reader.enum(DataAccessResult, "data-access-result")
        else:
            raise DecodeError(f"datablock result: unknown choice {choice}", offset)
        reader.expect_end("get-response-with-datablock")
        return cls(last, block_number, result, iid)


@dataclass(frozen=True, slots=True)
class GetResponseWithList(ServiceApdu):
    """One result per attribute of a GetRequestWithList, in the same order."""

    TAG: ClassVar[int] = RESPONSE_TAG
    CHOICE: ClassVar[int] = 3

    results: tuple[Data | DataAccessResult, ...]
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return (
            self._head()
            + encode_length(len(self.results))
            + b"".join(encode_get_data_result(result) for result in self.results)
        )

    @classmethod
    def from_bytes(cls, buf: Buffer) -> GetResponseWithList:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "get-response-with-list")
        iid = InvokeIdAndPriority.read(reader)
        count = reader.count("result list", _GET_DATA_RESULT_MIN)
        results = tuple(decode_get_data_result(reader) for _ in range(count))
        reader.expect_end("get-response-with-list")
        return cls(results, iid)


GetRequest = GetRequestNormal | GetRequestNext | GetRequestWithList
GetResponse = GetResponseNormal | GetResponseWithDatablock | GetResponseWithList

_REQUESTS: dict[int, Callable[[Buffer], GetRequest]] = {
    cls.CHOICE: cls.from_bytes for cls in (GetRequestNormal, GetRequestNext, GetRequestWithList)
}
_RESPONSES: dict[int, Callable[[Buffer], GetResponse]] = {
    cls.CHOICE: cls.from_bytes
    for cls in (GetResponseNormal, GetResponseWithDatablock, GetResponseWithList)
}


def decode_get_request(buf: Buffer) -> GetRequest:
    """Decode any GET-Request by its CHOICE byte."""
    return dispatch_choice(buf, REQUEST_TAG, _REQUESTS, "get-request")


def decode_get_response(buf: Buffer) -> GetResponse:
    """Decode any GET-Response by its CHOICE byte."""
    return dispatch_choice(buf, RESPONSE_TAG, _RESPONSES, "get-response")
