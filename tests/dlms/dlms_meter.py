"""A small COSEM meter for the association, client/server and interop tests.

Three client SAPs: 16 public (lowest), 32 reader (LLS), 1 management (HLS-GMAC, with
authenticated and encrypted APDUs). The keys are the Green Book example keys.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from smmc.dlms.apdu import AuthenticationMechanism, CaptureObjectDefinition
from smmc.dlms.axdr import Data
from smmc.dlms.connection import SecurityPolicy, ServerAssociation
from smmc.dlms.cosem.association_ln import AssociationLN
from smmc.dlms.cosem.association_ln import AuthenticationMechanism as AssociationMechanism
from smmc.dlms.cosem.base import AccessRights, AttributeAccess, LogicalDevice, MethodAccess
from smmc.dlms.cosem.clock import CLOCK_OBIS, Clock
from smmc.dlms.cosem.data import DataObject
from smmc.dlms.cosem.disconnect_control import DisconnectControl
from smmc.dlms.cosem.profile_generic import ProfileGeneric
from smmc.dlms.cosem.register import Register, Unit
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.obis import Obis

PUBLIC_SAP = 16
READER_SAP = 32
MANAGEMENT_SAP = 1
LLS_PASSWORD = b"12345678"
ENCRYPTION_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AUTHENTICATION_KEY = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
SERVER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
CLIENT_TITLE = bytes.fromhex("4D4D4D0000000001")

ENERGY = Obis(1, 0, 1, 8, 0, 255)
VOLTAGE = Obis(1, 0, 32, 7, 0, 255)
SERIAL = Obis(0, 0, 96, 1, 0, 255)
DISCONNECT = Obis(0, 0, 96, 3, 10, 255)
LOAD_PROFILE = Obis(1, 0, 99, 1, 0, 255)
NOW = dt.datetime(2026, 3, 1, 12, 0, 30, tzinfo=dt.UTC)
PROFILE_START = dt.datetime(2026, 2, 1, 0, 0, tzinfo=dt.UTC)
PROFILE_ROWS = 96 * 3  # three days of 15-minute rows


READ = AttributeAccess.READ_ONLY
READ_WRITE = AttributeAccess.READ_WRITE


def _rights(attributes: dict[int, AttributeAccess], methods: tuple[int, ...] = ()) -> AccessRights:
    return AccessRights(attributes, dict.fromkeys(methods, MethodAccess.ACCESS))


@dataclass
class Meter:
    """The device and handles on the objects the tests look at."""

    device: LogicalDevice
    associations: dict[int, ServerAssociation]
    clock: Clock
    energy: Register
    voltage: Register
    disconnect: DisconnectControl
    profile: ProfileGeneric
    outputs: list[bool]


def profile_time(row: int) -> dt.datetime:
    """Capture time of profile row ``row`` (0-based)."""
    return PROFILE_START + dt.timedelta(minutes=15 * row)


def build_meter(max_pdu_size: int = 0x0400) -> Meter:
    """A fresh meter; every SAP reads everything, only management may act on the breaker."""
    device = LogicalDevice(b"SMM0000012345678")
    clock = device.add(Clock(CLOCK_OBIS, time_source=lambda: NOW))
    energy = device.add(Register(ENERGY, Data.double_long_unsigned(123456), -1, Unit.WATT_HOUR))
    voltage = device.add(Register(VOLTAGE, Data.long_unsigned(2301), -1, Unit.VOLT))
    serial = device.add(DataObject(SERIAL, Data.octet_string(b"SMM0000012345678")))
    outputs: list[bool] = []
    disconnect = device.add(DisconnectControl(DISCONNECT, on_output_change=outputs.append))
    columns = (
        CaptureObjectDefinition(8, CLOCK_OBIS, 2, 0),
        CaptureObjectDefinition(3, ENERGY, 2, 0),
    )
    profile = device.add(
        ProfileGeneric(LOAD_PROFILE, columns, capture_period=900, profile_entries=10_000)
    )
    for i in range(PROFILE_ROWS):
        stamp = CosemDateTime.from_datetime(profile_time(i))
        profile.append((Data.octet_string(stamp.to_bytes()), Data.double_long_unsigned(1000 + i)))

    for sap in (PUBLIC_SAP, READER_SAP, MANAGEMENT_SAP):
        for obj in (clock, energy, voltage, serial, profile):
            attributes = dict.fromkeys(range(1, obj.ATTRIBUTE_COUNT + 1), READ)
            device.grant(sap, obj, _rights(attributes))
        methods = (1, 2) if sap == MANAGEMENT_SAP else ()
        device.grant(sap, disconnect, _rights({1: READ, 2: READ, 3: READ, 4: READ}, methods))
    device.grant(MANAGEMENT_SAP, clock, _rights(dict.fromkeys(range(1, 10), READ_WRITE)))

    reader = device.add_private(
        READER_SAP,
        AssociationLN(
            client_sap=READER_SAP, mechanism=AssociationMechanism.LOW, secret=LLS_PASSWORD
        ),
        _rights(dict.fromkeys(range(1, 10), READ)),
    )
    management = device.add_private(
        MANAGEMENT_SAP,
        AssociationLN(client_sap=MANAGEMENT_SAP, mechanism=AssociationMechanism.HIGH_GMAC),
        _rights({**dict.fromkeys(range(1, 10), READ), 7: READ_WRITE}, (1,)),
    )
    associations = {
        PUBLIC_SAP: ServerAssociation(max_pdu_size=max_pdu_size),
        READER_SAP: ServerAssociation(
            AuthenticationMechanism.LOW, association=reader, max_pdu_size=max_pdu_size
        ),
        MANAGEMENT_SAP: ServerAssociation(
            AuthenticationMechanism.HIGH_GMAC,
            encryption_key=ENCRYPTION_KEY,
            authentication_key=AUTHENTICATION_KEY,
            security=SecurityPolicy(authenticated=True, encrypted=True),
            association=management,
            max_pdu_size=max_pdu_size,
        ),
    }
    return Meter(device, associations, clock, energy, voltage, disconnect, profile, outputs)
