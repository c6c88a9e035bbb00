"""SMMC's DLMS/COSEM stack: sans-IO codecs, APDUs, COSEM objects, client and server roles.

The names below are the core codecs most callers need; everything else lives in its
module (``smmc.dlms.apdu``, ``smmc.dlms.framing``, ``smmc.dlms.cosem`` ...).
"""

from smmc.dlms.axdr import (
    BitString,
    CompactArray,
    Data,
    DataTag,
    TypeDescription,
    decode_data,
    decode_length,
    encode_data,
    encode_length,
)
from smmc.dlms.cosem_time import ClockStatus, CosemDate, CosemDateTime, CosemTime
from smmc.dlms.errors import (
    AccessDenied,
    AssociationRejected,
    CipheringError,
    DecodeError,
    DlmsError,
    DlmsTimeout,
    EncodeError,
    ProtocolError,
    ReplayError,
    ServiceError,
)
from smmc.dlms.obis import Obis

__all__ = [
    "AccessDenied",
    "AssociationRejected",
    "BitString",
    "CipheringError",
    "ClockStatus",
    "CompactArray",
    "CosemDate",
    "CosemDateTime",
    "CosemTime",
    "Data",
    "DataTag",
    "DecodeError",
    "DlmsError",
    "DlmsTimeout",
    "EncodeError",
    "Obis",
    "ProtocolError",
    "ReplayError",
    "ServiceError",
    "TypeDescription",
    "decode_data",
    "decode_length",
    "encode_data",
    "encode_length",
]
