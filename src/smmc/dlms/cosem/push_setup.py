"""Interface class 40, Push setup: what a meter pushes (alarms, readings) and where."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import ClassVar

from smmc.dlms.apdu.selective_access import CaptureObjectDefinition
from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import (
    AccessResult,
    CosemAccessError,
    CosemObject,
    SelectiveAccessDescriptor,
    expect_bytes,
    expect_int,
    expect_items,
)
from smmc.dlms.cosem.profile_generic import element_of, parse_definition
from smmc.dlms.obis import Obis

__all__ = ["PUSH_SETUP_OBIS", "PushSetup", "TransportService"]

PUSH_SETUP_OBIS = Obis(0, 0, 25, 9, 0, 255)


class TransportService(IntEnum):
    """transport_service of send_destination_and_method."""

    TCP = 0
    UDP = 1
    FTP = 2
    SMTP = 3
    SMS = 4
    HDLC = 5
    M_BUS = 6
    ZIGBEE = 7


PushHandler = Callable[["PushSetup", tuple[Data, ...]], None]
"""Receives the setup (destination, retries…) and the values to send, in list order."""


class PushSetup(CosemObject):
    """IC 40 v0: push_object_list (2), send_destination_and_method (3),
    communication_window (4), randomisation_start_interval (5), number_of_retries (6),
    repetition_delay (7); method push (1).

    ``push`` collects the listed attributes; sending them (DataNotification over TCP/UDP) is
    the server role's job, reached through ``on_push``.
    """

    CLASS_ID: ClassVar[int] = 40
    VERSION: ClassVar[int] = 0
    ATTRIBUTE_COUNT: ClassVar[int] = 7
    METHOD_COUNT: ClassVar[int] = 1
    ATTRIBUTE_TYPES: ClassVar[dict[int, tuple[DataTag, ...]]] = {
        5: (DataTag.LONG_UNSIGNED,),
        6: (DataTag.UNSIGNED,),
        7: (DataTag.LONG_UNSIGNED,),
    }

    def __init__(
        self,
        logical_name: Obis = PUSH_SETUP_OBIS,
        objects: Sequence[CaptureObjectDefinition] = (),
        transport: TransportService = TransportService.TCP,
        destination: bytes = b"",
        on_push: PushHandler | None = None,
    ) -> None:
        super().__init__(logical_name)
        self.objects: tuple[CaptureObjectDefinition, ...] = tuple(objects)
        self.transport = transport
        self.destination = destination
        self.on_push = on_push
        self._values.update(
            {
                4: Data.array(()),
                5: Data.long_unsigned(0),
                6: Data.unsigned(0),
                7: Data.long_unsigned(0),
            }
        )

    @property
    def number_of_retries(self) -> int:
        """Attribute 6."""
        return expect_int(self._values[6])

    @property
    def repetition_delay(self) -> int:
        """Attribute 7, seconds between retries."""
        return expect_int(self._values[7])

    def push(self) -> tuple[Data, ...]:
        """Method 1: read the push objects and hand them to ``on_push``."""
        device = self.device
        if device is None:
            raise CosemAccessError(AccessResult.TEMPORARY_FAILURE, f"{self!r} is not in a device")
        values = tuple(
            element_of(device.get(o.class_id, o.logical_name, o.attribute_index), o)
            for o in self.objects
        )
        if self.on_push is not None:
            self.on_push(self, values)
        return values

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        if attribute == 2:
            return Data.array(o.to_data() for o in self.objects)
        if attribute == 3:
            return Data.structure(
                (Data.enum(self.transport), Data.octet_string(self.destination), Data.enum(0))
            )
        return super()._get(attribute, selective_access)

    def _set(self, attribute: int, value: Data) -> None:
        if attribute == 2:
            items = expect_items(value, DataTag.ARRAY, None, "push_object_list")
            self.objects = tuple(parse_definition(i) for i in items)
        elif attribute == 3:
            transport, destination, message = expect_items(
                value, DataTag.STRUCTURE, 3, "send_destination_and_method"
            )
            service = expect_int(transport, DataTag.ENUM, what="transport_service")
            if service not in TransportService._value2member_map_:
                raise CosemAccessError(AccessResult.OTHER_REASON, f"transport {service}")
            expect_int(message, DataTag.ENUM, what="message")
            self.transport = TransportService(service)
            self.destination = expect_bytes(destination, "destination")
        elif attribute == 4:
            for window in expect_items(value, DataTag.ARRAY, None, "communication_window"):
                for edge in expect_items(window, DataTag.STRUCTURE, 2, "window"):
                    expect_bytes(edge, "window edge", 12)
            self._values[4] = value
        else:
            super()._set(attribute, value)

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        self.push()
        return None
