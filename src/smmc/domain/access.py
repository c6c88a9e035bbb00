"""Roles and permissions, mapped to the regulation's interfaces (DOMAIN.md §1).

Permissions are data: a role is a named set of permissions, so the web layer asks "may this
role do X" and never branches on role names. The stakeholder role (I8) is additionally
limited to the service points granted to the account; that restriction lives with the grants
in the store, the flag that switches it on lives here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Permission(StrEnum):
    """What a request may do. Reads and writes are separate so read-only roles are exact."""

    VIEW_ASSETS = "assets:read"
    VIEW_WORK_ORDERS = "workorders:read"
    SUBMIT_WORK_ORDERS = "workorders:write"
    VIEW_MAP = "map:read"
    VIEW_CONTROL_ROOM = "controlroom:read"
    VIEW_METER_DATA = "meterdata:read"
    PROVISION = "provisioning:write"
    MANAGE_USERS = "users:write"
    VIEW_AUDIT = "audit:read"


class Role(StrEnum):
    OPERATOR = "operator"
    SPECIALIST = "specialist"
    ADMINISTRATOR = "administrator"
    INTEGRATION = "integration"
    WAREHOUSE_READER = "warehouse_reader"
    STAKEHOLDER = "stakeholder"


class UnknownRole(ValueError):
    """A role name that is not one of `Role`."""


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """A role as data: its interface in the regulation, permissions and restrictions."""

    interface: str
    permissions: frozenset[Permission]
    read_only: bool = False
    restricted_to_grants: bool = False
    interactive: bool = True


_READS = frozenset(
    {
        Permission.VIEW_ASSETS,
        Permission.VIEW_WORK_ORDERS,
        Permission.VIEW_MAP,
        Permission.VIEW_CONTROL_ROOM,
        Permission.VIEW_METER_DATA,
    }
)
_OPERATE = _READS | {Permission.SUBMIT_WORK_ORDERS}

ROLES: Mapping[Role, RoleSpec] = MappingProxyType(
    {
        # The utility's control-room staff: watch and operate the fleet through the UI.
        Role.OPERATOR: RoleSpec("UI", _OPERATE),
        # SmartMeter specialists also provision assets (the seven templates).
        Role.SPECIALIST: RoleSpec("UI", _OPERATE | {Permission.PROVISION}),
        Role.ADMINISTRATOR: RoleSpec(
            "UI", _OPERATE | {Permission.PROVISION, Permission.MANAGE_USERS, Permission.VIEW_AUDIT}
        ),
        # I6: other utility systems, read/write through REST/SOAP with API tokens. Legacy owns
        # the meters' master data and sends it as ExecuteMeterConfig, which is provisioning.
        Role.INTEGRATION: RoleSpec("I6", _OPERATE | {Permission.PROVISION}, interactive=False),
        # I7: the warehouse reads the central database, never writes.
        Role.WAREHOUSE_READER: RoleSpec("I7", _READS, read_only=True),
        # I8: authorised stakeholders read their own service points' data only.
        Role.STAKEHOLDER: RoleSpec(
            "I8",
            frozenset({Permission.VIEW_ASSETS, Permission.VIEW_METER_DATA}),
            read_only=True,
            restricted_to_grants=True,
        ),
    }
)

WRITE_PERMISSIONS = frozenset(
    {Permission.SUBMIT_WORK_ORDERS, Permission.PROVISION, Permission.MANAGE_USERS}
)


def _check_read_only() -> None:
    """A read-only role holding a write permission would be a configuration bug."""
    for role, spec in ROLES.items():
        if spec.read_only and spec.permissions & WRITE_PERMISSIONS:
            raise RuntimeError(f"read-only role {role} grants a write permission")


_check_read_only()


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        known = ", ".join(role.value for role in Role)
        raise UnknownRole(f"role {text!r} is unknown; expected one of {known}") from None


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLES[role].permissions


def restricted_to_grants(role: Role) -> bool:
    return ROLES[role].restricted_to_grants
