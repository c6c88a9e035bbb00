"""The server-side COSEM object model: one module per interface class.

``LogicalDevice`` holds the objects of one device with per-association access rights and
dispatches GET/SET/ACTION; a device is usually built from a profile
(:mod:`smmc.dlms.profiles`).
"""

from smmc.dlms.apdu.selective_access import CaptureObjectDefinition, SelectiveAccessDescriptor
from smmc.dlms.cosem.activity_calendar import ActivityCalendar, Calendar
from smmc.dlms.cosem.association_ln import AssociationLN, AuthenticationMechanism, ContextName
from smmc.dlms.cosem.base import (
    AccessResult,
    AccessRights,
    AttributeAccess,
    CosemAccessError,
    CosemObject,
    LogicalDevice,
    MethodAccess,
)
from smmc.dlms.cosem.clock import Clock
from smmc.dlms.cosem.data import DataObject
from smmc.dlms.cosem.demand_register import DemandRegister
from smmc.dlms.cosem.disconnect_control import ControlState, DisconnectControl
from smmc.dlms.cosem.extended_register import ExtendedRegister
from smmc.dlms.cosem.image_transfer import ImageTransfer
from smmc.dlms.cosem.limiter import Limiter
from smmc.dlms.cosem.profile_generic import ProfileGeneric
from smmc.dlms.cosem.push_setup import PushSetup
from smmc.dlms.cosem.register import Register, Unit
from smmc.dlms.cosem.script_table import ScriptTable
from smmc.dlms.cosem.security_setup import SecuritySetup

__all__ = [
    "INTERFACE_CLASSES",
    "AccessResult",
    "AccessRights",
    "ActivityCalendar",
    "AssociationLN",
    "AttributeAccess",
    "AuthenticationMechanism",
    "Calendar",
    "CaptureObjectDefinition",
    "Clock",
    "ContextName",
    "ControlState",
    "CosemAccessError",
    "CosemObject",
    "DataObject",
    "DemandRegister",
    "DisconnectControl",
    "ExtendedRegister",
    "ImageTransfer",
    "Limiter",
    "LogicalDevice",
    "MethodAccess",
    "ProfileGeneric",
    "PushSetup",
    "Register",
    "ScriptTable",
    "SecuritySetup",
    "SelectiveAccessDescriptor",
    "Unit",
]

INTERFACE_CLASSES: dict[int, type[CosemObject]] = {
    cls.CLASS_ID: cls
    for cls in (
        DataObject,
        Register,
        ExtendedRegister,
        DemandRegister,
        ProfileGeneric,
        Clock,
        ScriptTable,
        AssociationLN,
        ImageTransfer,
        ActivityCalendar,
        PushSetup,
        SecuritySetup,
        DisconnectControl,
        Limiter,
    )
}
"""Class id → implementation, for the interface classes this package provides."""
