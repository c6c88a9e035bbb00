"""ACTION-Request / ACTION-Response (LN referencing): method invocation, with pblocks.

Long method parameters (an image block, a big script) go as DataBlock-SA "pblocks"; long
return parameters come back the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

from smmc.dlms.apdu._common import (
    CosemMethodDescriptor,
    DataAccessResult,
    DataBlockSA,
    InvokeIdAndPriority,
    ServiceApdu,
    decode_get_data_result,
    default_invoke_id,
    dispatch_choice,
    encode_block_number,
    encode_get_data_result,
    open_apdu,
)
from smmc.dlms.apdu._reader import Buffer, Reader, encode_length
from smmc.dlms.axdr import Data, encode_data
from smmc.dlms.errors import DecodeError, EncodeError

__all__ = [
    "ActionRequest",
    "ActionRequestNextPblock",
    "ActionRequestNormal",
    "ActionRequestWithFirstPblock",
    "ActionRequestWithList",
    "ActionRequestWithListAndFirstPblock",
    "ActionRequestWithPblock",
    "ActionResponse",
    "ActionResponseNextPblock",
    "ActionResponseNormal",
    "ActionResponseWithList",
    "ActionResponseWithOptionalData",
    "ActionResponseWithPblock",
    "ActionResult",
    "decode_action_request",
    "decode_action_response",
]

REQUEST_TAG = 0xC3
RESPONSE_TAG = 0xC7
_METHOD_DESCRIPTOR_SIZE = 9


class ActionResult(IntEnum):
    """Outcome of a method invocation (Blue Book numbering)."""

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
    LONG_ACTION_ABORTED = 15
    NO_LONG_ACTION_IN_PROGRESS = 16
    OTHER_REASON = 250


def _encode_methods(methods: tuple[CosemMethodDescriptor, ...]) -> bytes:
    return encode_length(len(methods)) + b"".join(m.to_bytes() for m in methods)


def _read_methods(reader: Reader) -> tuple[CosemMethodDescriptor, ...]:
    count = reader.count("method list", _METHOD_DESCRIPTOR_SIZE)
    return tuple(CosemMethodDescriptor.read(reader) for _ in range(count))


def _encode_optional_data(value: Data | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + encode_data(value)


@dataclass(frozen=True, slots=True)
class ActionRequestNormal(ServiceApdu):
    """Invoke one method, with optional parameters."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 1

    method: CosemMethodDescriptor
    parameters: Data | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + self.method.to_bytes() + _encode_optional_data(self.parameters)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ActionRequestNormal:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "action-request-normal")
        iid = InvokeIdAndPriority.read(reader)
        method = CosemMethodDescriptor.read(reader)
        parameters = reader.data() if reader.optional("method parameters") else None
        reader.expect_end("action-request-normal")
        return cls(method, parameters, iid)


@dataclass(frozen=True, slots=True)
class ActionRequestNextPblock(ServiceApdu):
    """Ask for the next block of long return parameters."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 2

    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + encode_block_number(self.block_number)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ActionRequestNextPblock:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "action-request-next-pblock")
        iid = InvokeIdAndPriority.read(reader)
        block_number = reader.u32("block number")
        reader.expect_end("action-request-next-pblock")
        return cls(block_number, iid)


@dataclass(frozen=True, slots=True)
class ActionRequestWithList(ServiceApdu):
    """Invoke several methods; ``parameters`` pairs with ``methods`` one to one."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 3

    methods: tuple[CosemMethodDescriptor, ...]
    parameters: tuple[Data, ...]
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU; the two lists must have the same length."""
        if len(self.methods) != len(self.parameters):
            raise EncodeError("action-request-with-list needs one parameter per method")
        return (
            self._head()
            + _encode_methods(self.methods)
            + encode_length(len(self.parameters))
            + b"".join(encode_data(p) for p in self.parameters)
        )

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ActionRequestWithList:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "action-request-with-list")
        iid = InvokeIdAndPriority.read(reader)
        methods = _read_methods(reader)
        offset = reader.pos
        count = reader.count("parameter list")
        if count != len(methods):
            raise DecodeError(f"{count} parameter(s) for {len(methods)} method(s)", offset)
        parameters = tuple(reader.data() for _ in range(count))
        reader.expect_end("action-request-with-list")
        return cls(methods, parameters, iid)


@dataclass(frozen=True, slots=True)
class ActionRequestWithFirstPblock(ServiceApdu):
    """First block of long method parameters."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 4

    method: CosemMethodDescriptor
    block: DataBlockSA
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + self.method.to_bytes() + self.block.to_bytes()

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ActionRequestWithFirstPblock:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "action-request-with-first-pblock")
        iid = InvokeIdAndPriority.read(reader)
        method = CosemMethodDescriptor.read(reader)
        block = DataBlockSA.read(reader)
        reader.expect_end("action-request-with-first-pblock")
        return cls(method, block, iid)


@dataclass(frozen=True, slots=True)
class ActionRequestWithListAndFirstPblock(ServiceApdu):
    """First block of the parameters of a with-list invocation."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 5

    methods: tuple[CosemMethodDescriptor, ...]
    block: DataBlockSA
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + _encode_methods(self.methods) + self.block.to_bytes()

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ActionRequestWithListAndFirstPblock:
        """Decode a complete APDU; trailing bytes are an error."""
        what = "action-request-with-list-and-first-pblock"
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, what)
        iid = InvokeIdAndPriority.read(reader)
        methods = _read_methods(reader)
        block = DataBlockSA.read(reader)
        reader.expect_end(what)
        return cls(methods, block, iid)


@dataclass(frozen=True, slots=True)
class ActionRequestWithPblock(ServiceApdu):
    """A following block of long method parameters."""

    TAG: ClassVar[int] = REQUEST_TAG
    CHOICE: ClassVar[int] = 6

    block: DataBlockSA
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + self.block.to_bytes()

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ActionRequestWithPblock:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "action-request-with-pblock")
        iid = InvokeIdAndPriority.read(reader)
        block = DataBlockSA.read(reader)
        reader.expect_end("action-request-with-pblock")
        return cls(block, iid)


@dataclass(frozen=True, slots=True)
class ActionResponseWithOptionalData:
    """Action-Response-With-Optional-Data: the result and optional return parameters."""

    result: ActionResult
    return_parameters: Data | DataAccessResult | None = None

    def to_bytes(self) -> bytes:
        """Result byte, then the OPTIONAL Get-Data-Result."""
        if self.return_parameters is None:
            return bytes([self.result, 0])
        return bytes([self.result, 1]) + encode_get_data_result(self.return_parameters)

    @classmethod
    def read(cls, reader: Reader) -> ActionResponseWithOptionalData:
        """Decode one item at the reader's position."""
        result = reader.enum(ActionResult, "action-result")
        if reader.optional("return parameters"):
            return cls(result, decode_get_data_result(reader))
        return cls(result)


@dataclass(frozen=True, slots=True)
class ActionResponseNormal(ServiceApdu):
    """Outcome of one method invocation."""

    TAG: ClassVar[int] = RESPONSE_TAG
    CHOICE: ClassVar[int] = 1

    result: ActionResult
    return_parameters: Data | DataAccessResult | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        body = ActionResponseWithOptionalData(self.result, self.return_parameters).to_bytes()
        return self._head() + body

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ActionResponseNormal:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "action-response-normal")
        iid = InvokeIdAndPriority.read(reader)
        item = ActionResponseWithOptionalData.read(reader)
        reader.expect_end("action-response-normal")
        return cls(item.result, item.return_parameters, iid)


@dataclass(frozen=True, slots=True)
class ActionResponseWithPblock(ServiceApdu):
    """One block of long return parameters."""

    TAG: ClassVar[int] = RESPONSE_TAG
    CHOICE: ClassVar[int] = 2

    block: DataBlockSA
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + self.block.to_bytes()

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ActionResponseWithPblock:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "action-response-with-pblock")
        iid = InvokeIdAndPriority.read(reader)
        block = DataBlockSA.read(reader)
        reader.expect_end("action-response-with-pblock")
        return cls(block, iid)


@dataclass(frozen=True, slots=True)
class ActionResponseWithList(ServiceApdu):
    """Outcomes of an ActionRequestWithList, in order."""

    TAG: ClassVar[int] = RESPONSE_TAG
    CHOICE: ClassVar[int] = 3

    results: tuple[ActionResponseWithOptionalData, ...]
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return (
            self._head()
            + encode_length(len(self.results))
            + b"".join(item.to_bytes() for item in self.results)
        )

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ActionResponseWithList:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "action-response-with-list")
        iid = InvokeIdAndPriority.read(reader)
        count = reader.count("result list", 2)
        results = tuple(ActionResponseWithOptionalData.read(reader) for _ in range(count))
        reader.expect_end("action-response-with-list")
        return cls(results, iid)


@dataclass(frozen=True, slots=True)
class ActionResponseNextPblock(ServiceApdu):
    """Acknowledges parameter block ``block_number``; the client sends the next."""

    TAG: ClassVar[int] = RESPONSE_TAG
    CHOICE: ClassVar[int] = 4

    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default_factory=default_invoke_id)

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        return self._head() + encode_block_number(self.block_number)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ActionResponseNextPblock:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, cls.CHOICE, "action-response-next-pblock")
        iid = InvokeIdAndPriority.read(reader)
        block_number = reader.u32("block number")
        reader.expect_end("action-response-next-pblock")
        return cls(block_number, iid)


ActionRequest = (
    ActionRequestNormal
    | ActionRequestNextPblock
    | ActionRequestWithList
    | ActionRequestWithFirstPblock
    | ActionRequestWithListAndFirstPblock
    | ActionRequestWithPblock
)
ActionResponse = (
    ActionResponseNormal
    | ActionResponseWithPblock
    | ActionResponseWithList
    | ActionResponseNextPblock
)

_REQUESTS: dict[int, Callable[[Buffer], ActionRequest]] = {
    cls.CHOICE: cls.from_bytes
    for cls in (
        ActionRequestNormal,
        ActionRequestNextPblock,
        ActionRequestWithList,
        ActionRequestWithFirstPblock,
        ActionRequestWithListAndFirstPblock,
        ActionRequestWithPblock,
    )
}
_RESPONSES: dict[int, Callable[[Buffer], ActionResponse]] = {
    cls.CHOICE: cls.from_bytes
    for cls in (
        ActionResponseNormal,
        ActionResponseWithPblock,
        ActionResponseWithList,
        ActionResponseNextPblock,
    )
}


def decode_action_request(buf: Buffer) -> ActionRequest:
    """Decode any ACTION-Request by its CHOICE byte."""
    return dispatch_choice(buf, REQUEST_TAG, _REQUESTS, "action-request")


def decode_action_response(buf: Buffer) -> ActionResponse:
    """Decode any ACTION-Response by its CHOICE byte."""
    return dispatch_choice(buf, RESPONSE_TAG, _RESPONSES, "action-response")
