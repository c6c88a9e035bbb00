"""Device profiles as data: the JSON format, its loader, the builder and our meter's profile.

``load_builtin("nexy_m")`` → :class:`DeviceProfile`; ``build_device(profile)`` → the
``LogicalDevice`` a simulator serves; ``DecodeMap(profile)`` → types and scaler/units for a
client reading that device.
"""

from smmc.dlms.profiles.builder import (
    AttributeInfo,
    DecodeMap,
    build_device,
    check_device,
    default_value,
)
from smmc.dlms.profiles.schema import (
    FORMAT,
    AssociationSpec,
    AttributeSpec,
    DeviceProfile,
    ObjectSpec,
    ProfileError,
    load_builtin,
    load_profile,
    parse_profile,
)

__all__ = [
    "FORMAT",
    "AssociationSpec",
    "AttributeInfo",
    "AttributeSpec",
    "DecodeMap",
    "DeviceProfile",
    "ObjectSpec",
    "ProfileError",
    "build_device",
    "check_device",
    "default_value",
    "load_builtin",
    "load_profile",
    "parse_profile",
]
