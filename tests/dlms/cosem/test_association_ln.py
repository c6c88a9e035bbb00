"""Interface class 15 (Association LN): object list from access rights, LLS/HLS hooks."""

from __future__ import annotations

import pytest

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.association_ln import (
    CURRENT_ASSOCIATION_OBIS,
    AssociationLN,
    AssociationStatus,
    AuthenticationMechanism,
    ContextName,
    XdlmsContext,
)
from smmc.dlms.cosem.base import (
    AccessRights,
    AttributeAccess,
    CosemAccessError,
    LogicalDevice,
    MethodAccess,
)
from smmc.dlms.cosem.data import DataObject
from smmc.dlms.cosem.profile_generic import ProfileGeneric
from smmc.dlms.obis import Obis

SERIAL = Obis.parse("0.0.96.1.0.255")
LP = Obis.parse("1.0.99.1.0.255")
RO = AttributeAccess.READ_ONLY
OWN = AccessRights(dict.fromkeys(range(1, 10), RO), {1: MethodAccess.ACCESS})


def _device() -> tuple[LogicalDevice, AssociationLN, AssociationLN]:
    device = LogicalDevice()
    device.add(DataObject(SERIAL, Data.visible_string("X")), {16: AccessRights({2: RO}), 48: OWN})
    device.add(ProfileGeneric(LP), {48: AccessRights({2: RO, 3: RO})})
    public = device.add_private(16, AssociationLN(client_sap=16), OWN)
    hes = device.add_private(
        48,
        AssociationLN(
            client_sap=48,
            context=ContextName.LOGICAL_NAME_WITH_CIPHERING,
            mechanism=AuthenticationMechanism.HIGH_GMAC,
            secret=b"secret",
            xdlms=XdlmsContext(conformance=0x00101D),
        ),
        OWN,
    )
    return device, public, hes


def test_object_list_per_association() -> None:
    device, _, _ = _device()
    listed = device.get(15, CURRENT_ASSOCIATION_OBIS, 2, client_sap=16).to_python()
    assert [(e[0], e[2]) for e in listed] == [
        (1, SERIAL.to_bytes()),
        (15, bytes((0, 0, 40, 0, 0, 255))),
    ]
    serial = listed[0]
    # attribute 1 not granted to the public client: listed as no-access.
    assert serial[3][0] == [[1, 0, None], [2, 1, None]]
    assert serial[3][1] == []
    hes_list = device.get(15, CURRENT_ASSOCIATION_OBIS, 2, client_sap=48).to_python()
    assert [e[0] for e in hes_list] == [1, 7, 15]
    profile = hes_list[1]
    assert profile[1] == 1  # version
    assert profile[3][0][1] == [2, 1, [1, 2]]  # buffer: selective access by range and entry
    assert profile[3][1] == [[1, 0], [2, 0]]


def test_current_association_is_per_client() -> None:
    device, _, _ = _device()
    assert device.get(15, CURRENT_ASSOCIATION_OBIS, 3, client_sap=16).to_python() == [16, 1]
    assert device.get(15, CURRENT_ASSOCIATION_OBIS, 3, client_sap=48).to_python() == [48, 1]
    with pytest.raises(CosemAccessError) as exc:
        device.get(15, CURRENT_ASSOCIATION_OBIS, 3, client_sap=1)
    assert exc.value.result == 4
    assert len(device) == 4
    assert device.client_saps == (16, 48)


def test_context_mechanism_and_xdlms() -> None:
    _, public, hes = _device()
    assert public.get(4) == Data.octet_string(bytes.fromhex("60857405080101"))
    assert hes.get(4) == Data.octet_string(bytes.fromhex("60857405080103"))
    assert public.get(6) == Data.octet_string(bytes.fromhex("60857405080200"))
    assert hes.get(6) == Data.octet_string(bytes.fromhex("60857405080205"))
    xdlms = hes.get(5)
    assert xdlms.tag is DataTag.STRUCTURE
    conformance = xdlms.to_python()[0]
    assert str(conformance) == format(0x00101D, "024b")
    assert xdlms.to_python()[1:] == [0xFFFF, 0xFFFF, 6, 0, b""]
    assert hes.get(8) == Data.enum(0)
    assert hes.get(9) == Data.octet_string(b"")


def test_lls_password_and_change_secret() -> None:
    _, _, hes = _device()
    changed: list[bytes] = []
    hes.on_secret_change = changed.append
    assert hes.check_password(b"secret")
    assert not hes.check_password(b"secreT")
    hes.set(7, Data.octet_string(b"new"))
    hes.action(2, Data.octet_string(b"newer"))
    assert hes.secret == b"newer"
    assert changed == [b"new", b"newer"]
    with pytest.raises(CosemAccessError):
        hes.set(3, Data.null())


def test_hls_reply() -> None:
    _, _, hes = _device()
    with pytest.raises(CosemAccessError) as exc:
        hes.action(1, Data.octet_string(b"f(StoC)"))
    assert exc.value.result == 3
    hes.status = AssociationStatus.ASSOCIATION_PENDING
    hes.hls_responder = lambda f_stoc: b"f(CtoS)" if f_stoc == b"good" else None
    with pytest.raises(CosemAccessError):
        hes.action(1, Data.octet_string(b"bad"))
    assert hes.status is AssociationStatus.NON_ASSOCIATED
    hes.status = AssociationStatus.ASSOCIATION_PENDING
    assert hes.action(1, Data.octet_string(b"good")) == Data.octet_string(b"f(CtoS)")
    assert hes.get(8) == Data.enum(2)
    with pytest.raises(CosemAccessError) as exc:
        hes.action(1, Data.long(1))
    assert exc.value.result == 12


def test_private_objects_need_unique_keys() -> None:
    device, _, _ = _device()
    with pytest.raises(ValueError, match="duplicate"):
        device.add_private(16, AssociationLN(client_sap=16), OWN)


def test_without_device_object_list_is_empty() -> None:
    assert AssociationLN().get(2) == Data.array(())


def test_each_client_sees_its_own_current_association_object() -> None:
    device, public, hes = _device()
    assert device.visible_object(16, 15, CURRENT_ASSOCIATION_OBIS) is public
    assert device.visible_object(48, 15, CURRENT_ASSOCIATION_OBIS) is hes
    assert device.visible_object(48, 7, LP) is device.find(7, LP)  # shared, with rights
    with pytest.raises(CosemAccessError, match="not visible to client 16"):
        device.visible_object(16, 7, LP)
    with pytest.raises(CosemAccessError, match="no object class 15"):
        device.visible_object(1, 15, CURRENT_ASSOCIATION_OBIS)
