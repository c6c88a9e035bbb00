"""LogicalDevice dispatch and per-association access rights."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.axdr import Data
from smmc.dlms.cosem.base import (
    AccessResult,
    AccessRights,
    AttributeAccess,
    CosemAccessError,
    LogicalDevice,
    MethodAccess,
)
from smmc.dlms.cosem.data import DataObject
from smmc.dlms.cosem.register import Register, Unit
from smmc.dlms.errors import DlmsError
from smmc.dlms.obis import Obis

SERIAL = Obis.parse("0.0.96.1.0.255")
ENERGY = Obis.parse("1.0.1.8.0.255")
PUBLIC, HES = 16, 48


def _device() -> LogicalDevice:
    device = LogicalDevice(b"SMMC0001")
    device.add(
        DataObject(SERIAL, Data.visible_string("UAAEEDN17305249807")),
        {
            PUBLIC: AccessRights({1: AttributeAccess.READ_ONLY, 2: AttributeAccess.READ_ONLY}),
            HES: AccessRights({1: AttributeAccess.READ_ONLY, 2: AttributeAccess.READ_WRITE}),
        },
    )
    device.add(
        Register(ENERGY, Data.double_long_unsigned(1234), 0, Unit.WATT_HOUR),
        {
            HES: AccessRights(
                {
                    1: AttributeAccess.READ_ONLY,
                    2: AttributeAccess.AUTHENTICATED_READ_WRITE,
                    3: AttributeAccess.READ_ONLY,
                },
                {1: MethodAccess.AUTHENTICATED_ACCESS},
            )
        },
    )
    return device


def _result(exc: pytest.ExceptionInfo[CosemAccessError]) -> int:
    return exc.value.result


def test_get_logical_name_and_value() -> None:
    device = _device()
    assert device.get(1, SERIAL, 1, client_sap=PUBLIC) == Data.octet_string(SERIAL.to_bytes())
    assert device.get(1, SERIAL, 2, client_sap=PUBLIC).value == "UAAEEDN17305249807"


def test_unknown_object_is_undefined() -> None:
    with pytest.raises(CosemAccessError) as exc:
        _device().get(3, SERIAL, 2)
    assert _result(exc) == 4
    assert AccessResult.OBJECT_UNDEFINED.value == 4


def test_object_invisible_to_association_is_undefined() -> None:
    with pytest.raises(CosemAccessError) as exc:
        _device().get(3, ENERGY, 2, client_sap=PUBLIC)
    assert _result(exc) == 4


def test_unknown_attribute_is_undefined_even_without_rights() -> None:
    with pytest.raises(CosemAccessError) as exc:
        _device().get(1, SERIAL, 9, client_sap=PUBLIC)
    assert _result(exc) == 4


def test_write_denied_for_read_only_association() -> None:
    device = _device()
    with pytest.raises(CosemAccessError) as exc:
        device.set(1, SERIAL, 2, Data.visible_string("X"), client_sap=PUBLIC)
    assert _result(exc) == AccessResult.READ_WRITE_DENIED.value == 3
    device.set(1, SERIAL, 2, Data.visible_string("X"), client_sap=HES)
    assert device.get(1, SERIAL, 2).value == "X"


def test_logical_name_is_never_writable() -> None:
    with pytest.raises(CosemAccessError) as exc:
        _device().set(1, SERIAL, 1, Data.octet_string(bytes(6)))
    assert _result(exc) == 3


def test_authenticated_modes_need_authentication() -> None:
    device = _device()
    with pytest.raises(CosemAccessError) as exc:
        device.get(3, ENERGY, 2, client_sap=HES)
    assert _result(exc) == 3
    assert device.get(3, ENERGY, 2, client_sap=HES, authenticated=True).value == 1234
    with pytest.raises(CosemAccessError) as exc:
        device.action(3, ENERGY, 1, Data.integer(0), client_sap=HES)
    assert _result(exc) == 3
    device.action(3, ENERGY, 1, Data.integer(0), client_sap=HES, authenticated=True)
    assert device.get(3, ENERGY, 2).value == 0


def test_unknown_method_is_undefined() -> None:
    with pytest.raises(CosemAccessError) as exc:
        _device().action(3, ENERGY, 7, None, client_sap=HES, authenticated=True)
    assert _result(exc) == 4


def test_local_access_bypasses_rights() -> None:
    device = _device()
    device.set(3, ENERGY, 2, Data.double_long_unsigned(5))
    assert device.get(3, ENERGY, 2).value == 5


def test_duplicate_object_rejected() -> None:
    device = _device()
    with pytest.raises(ValueError, match="duplicate"):
        device.add(DataObject(SERIAL))


def test_visible_lists_only_granted_objects() -> None:
    device = _device()
    assert [o.logical_name for o, _ in device.visible(PUBLIC)] == [SERIAL]
    assert [o.logical_name for o, _ in device.visible(HES)] == [SERIAL, ENERGY]
    assert device.client_saps == (PUBLIC, HES)


def test_grant_changes_rights() -> None:
    device = _device()
    obj = device.find(3, ENERGY)
    device.grant(PUBLIC, obj, AccessRights({2: AttributeAccess.READ_ONLY}))
    assert device.get(3, ENERGY, 2, client_sap=PUBLIC).value == 1234
    with pytest.raises(ValueError, match="not part"):
        device.grant(PUBLIC, Register(Obis.parse("1.0.2.8.0.255")), AccessRights())


def test_access_error_is_a_dlms_error_and_pickles() -> None:
    import pickle

    err = CosemAccessError(12, "bad")
    assert isinstance(err, DlmsError)
    back = pickle.loads(pickle.dumps(err))
    assert (back.result, back.message) == (12, "bad")
    assert "TYPE_UNMATCHED" in str(err)


@given(st.sampled_from(list(AttributeAccess)), st.booleans())
def test_attribute_access_modes(mode: AttributeAccess, authenticated: bool) -> None:
    readable = mode in (1, 3) or (authenticated and mode in (4, 6))
    writable = mode in (2, 3) or (authenticated and mode in (5, 6))
    assert mode.can_read(authenticated) is readable
    assert mode.can_write(authenticated) is writable
