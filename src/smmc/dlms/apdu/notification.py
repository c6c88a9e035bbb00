"""Unsolicited server APDUs: DataNotification (push) and EventNotificationRequest.

They carry no invoke-id to match and need no answer, so a head-end listener decodes them on
their own, usually after unwrapping a general-glo-ciphering APDU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from smmc.dlms.apdu._common import CosemAttributeDescriptor, LongInvokeIdAndPriority, open_apdu
from smmc.dlms.apdu._reader import Buffer
from smmc.dlms.axdr import Data, encode_data
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import DecodeError

__all__ = ["DataNotification", "EventNotificationRequest"]

_DATE_TIME_SIZE = 12


@dataclass(frozen=True, slots=True)
class DataNotification:
    """``0F long-invoke-id date-time body``.

    ``date_time`` is an OCTET STRING on the wire: empty when absent, otherwise the 12-byte
    COSEM date-time of the push.
    """

    TAG: ClassVar[int] = 0x0F

    body: Data
    date_time: CosemDateTime | None = None
    long_invoke_id_and_priority: LongInvokeIdAndPriority = field(
        default_factory=LongInvokeIdAndPriority
    )

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        stamp = b"\x00" if self.date_time is None else b"\x0c" + self.date_time.to_bytes()
        return (
            bytes([self.TAG])
            + self.long_invoke_id_and_priority.to_bytes()
            + stamp
            + encode_data(self.body)
        )

    @classmethod
    def from_bytes(cls, buf: Buffer) -> DataNotification:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, None, "data-notification")
        iid = LongInvokeIdAndPriority.read(reader)
        offset = reader.pos
        stamp = reader.octet_string("date-time")
        if len(stamp) not in (0, _DATE_TIME_SIZE):
            raise DecodeError(f"data-notification: date-time of {len(stamp)} bytes", offset)
        date_time = CosemDateTime.from_bytes(stamp) if stamp else None
        body = reader.data()
        reader.expect_end("data-notification")
        return cls(body, date_time, iid)


@dataclass(frozen=True, slots=True)
class EventNotificationRequest:
    """``C2 [time] attribute value``: the server reports a changed attribute value.

    ``time`` is a Cosem-Date-Time (fixed 12-byte OCTET STRING, so no length on the wire).
    """

    TAG: ClassVar[int] = 0xC2

    attribute: CosemAttributeDescriptor
    value: Data
    time: CosemDateTime | None = None

    def to_bytes(self) -> bytes:
        """Encode the APDU."""
        stamp = b"\x00" if self.time is None else b"\x01" + self.time.to_bytes()
        return bytes([self.TAG]) + stamp + self.attribute.to_bytes() + encode_data(self.value)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> EventNotificationRequest:
        """Decode a complete APDU; trailing bytes are an error."""
        reader = open_apdu(buf, cls.TAG, None, "event-notification-request")
        time = None
        if reader.optional("time"):
            time = CosemDateTime.from_bytes(reader.take(_DATE_TIME_SIZE, "time"))
        attribute = CosemAttributeDescriptor.read(reader)
        value = reader.data()
        reader.expect_end("event-notification-request")
        return cls(attribute, value, time)
