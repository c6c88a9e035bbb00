"""Transport framings of DLMS/COSEM: the IEC 62056-47 wrapper and HDLC (IEC 62056-46)."""

from smmc.dlms.framing.hdlc import (
    HdlcAddress,
    HdlcConnection,
    HdlcDecoder,
    HdlcFrame,
    HdlcParameters,
)
from smmc.dlms.framing.wrapper import WrapperDecoder, WrapperFrame

__all__ = [
    "HdlcAddress",
    "HdlcConnection",
    "HdlcDecoder",
    "HdlcFrame",
    "HdlcParameters",
    "WrapperDecoder",
    "WrapperFrame",
]
