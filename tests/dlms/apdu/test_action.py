"""ACTION-Request / ACTION-Response, including pblocks."""

from __future__ import annotations

import pytest
from apdu_strategies import (
    blocks,
    data_values,
    get_data_results,
    invoke_ids,
    method_descriptors,
    u32s,
)
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu._common import CosemMethodDescriptor, DataAccessResult, DataBlockSA
from smmc.dlms.apdu.action import (
    ActionRequestNextPblock,
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithList,
    ActionRequestWithListAndFirstPblock,
    ActionRequestWithPblock,
    ActionResponseNextPblock,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithOptionalData,
    ActionResponseWithPblock,
    ActionResult,
    decode_action_request,
    decode_action_response,
)
from smmc.dlms.axdr import Data
from smmc.dlms.errors import DecodeError, EncodeError
from smmc.dlms.obis import Obis

REMOTE_DISCONNECT = CosemMethodDescriptor(70, Obis(0, 0, 96, 3, 10, 255), 1)
REPLY_TO_HLS = CosemMethodDescriptor(15, Obis(0, 0, 40, 0, 0, 255), 1)


def test_remote_disconnect_vector() -> None:
    request = ActionRequestNormal(REMOTE_DISCONNECT, Data.integer(0))
    encoded = bytes.fromhex("C301C1 0046 00006003 0AFF 01 01 0F00")
    assert request.to_bytes() == encoded
    assert decode_action_request(encoded) == request
    assert ActionRequestNormal(REMOTE_DISCONNECT).to_bytes() == encoded[:12] + b"\x00"


def test_hls_reply_response_vector() -> None:
    response = ActionResponseNormal(ActionResult.SUCCESS, Data.octet_string(b"\x10" + bytes(16)))
    encoded = bytes.fromhex("C701C1 00 01 00 0911 10") + bytes(16)
    assert response.to_bytes() == encoded
    assert decode_action_response(encoded) == response
    assert ActionResponseNormal(ActionResult.SUCCESS).to_bytes() == bytes.fromhex("C701C10000")
    denied = ActionResponseNormal(ActionResult.OBJECT_UNDEFINED, DataAccessResult.OBJECT_UNDEFINED)
    assert denied.to_bytes() == bytes.fromhex("C701C1 04 01 01 04")


def test_pblock_vectors() -> None:
    first = ActionRequestWithFirstPblock(REPLY_TO_HLS, DataBlockSA(False, 1, b"\x09\x20"))
    assert first.to_bytes() == bytes.fromhex("C304C1 000F 0000280000FF 01 00 00000001 02 0920")
    assert decode_action_request(first.to_bytes()) == first
    assert ActionRequestWithPblock(DataBlockSA(True, 2, b"")).to_bytes() == bytes.fromhex(
        "C306C1 01 00000002 00"
    )
    assert ActionRequestNextPblock(5).to_bytes() == bytes.fromhex("C302C1 00000005")
    assert ActionResponseNextPblock(1).to_bytes() == bytes.fromhex("C704C1 00000001")
    assert ActionResponseWithPblock(DataBlockSA(True, 1, b"\x0f\x01")).to_bytes() == bytes.fromhex(
        "C702C1 01 00000001 02 0F01"
    )


def test_with_list_vectors() -> None:
    request = ActionRequestWithList(
        (REMOTE_DISCONNECT, REPLY_TO_HLS), (Data.integer(0), Data.null())
    )
    assert request.to_bytes() == bytes.fromhex(
        "C303C1 02 004600006003 0AFF01 000F0000280000FF01 02 0F00 00"
    )
    response = ActionResponseWithList(
        (
            ActionResponseWithOptionalData(ActionResult.SUCCESS),
            ActionResponseWithOptionalData(ActionResult.SUCCESS, Data.boolean(True)),
        )
    )
    assert response.to_bytes() == bytes.fromhex("C703C1 02 0000 0001000301")
    assert decode_action_request(request.to_bytes()) == request
    assert decode_action_response(response.to_bytes()) == response


def test_with_list_needs_one_parameter_per_method() -> None:
    with pytest.raises(EncodeError):
        ActionRequestWithList((REMOTE_DISCONNECT,), ()).to_bytes()
    with pytest.raises(DecodeError):
        decode_action_request(bytes.fromhex("C303C1 01 004600006003 0AFF01 02 0F00 0F00"))


optional_data = st.builds(
    ActionResponseWithOptionalData, st.sampled_from(ActionResult), st.none() | get_data_results
)


@given(
    st.one_of(
        st.builds(ActionRequestNormal, method_descriptors(), st.none() | data_values, invoke_ids),
        st.builds(ActionRequestNextPblock, u32s, invoke_ids),
        st.lists(st.tuples(method_descriptors(), data_values), max_size=4).flatmap(
            lambda pairs: st.builds(
                ActionRequestWithList,
                st.just(tuple(p[0] for p in pairs)),
                st.just(tuple(p[1] for p in pairs)),
                invoke_ids,
            )
        ),
        st.builds(ActionRequestWithFirstPblock, method_descriptors(), blocks, invoke_ids),
        st.builds(
            ActionRequestWithListAndFirstPblock,
            st.lists(method_descriptors(), max_size=4).map(tuple),
            blocks,
            invoke_ids,
        ),
        st.builds(ActionRequestWithPblock, blocks, invoke_ids),
    )
)
def test_request_round_trip(request: object) -> None:
    assert decode_action_request(request.to_bytes()) == request  # type: ignore[attr-defined]


@given(
    st.one_of(
        st.builds(
            ActionResponseNormal,
            st.sampled_from(ActionResult),
            st.none() | get_data_results,
            invoke_ids,
        ),
        st.builds(ActionResponseWithPblock, blocks, invoke_ids),
        st.builds(
            ActionResponseWithList, st.lists(optional_data, max_size=4).map(tuple), invoke_ids
        ),
        st.builds(ActionResponseNextPblock, u32s, invoke_ids),
    )
)
def test_response_round_trip(response: object) -> None:
    assert decode_action_response(response.to_bytes()) == response  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "bad",
    [
        "C301C1 0046 00006003 0AFF 01",  # parameters flag missing
        "C301C1 0046 00006003 0AFF 01 01",  # parameters missing
        "C301C1 0046 00006003 0AFF 01 00 00",  # trailing
        "C307C1",  # unknown choice
        "C303C1 05 0046",  # method count larger than what follows
        "C701C1 05 00",  # action-result 5 undefined
        "C701C1 00 02",  # presence flag 2
        "C701C1 00 01 02 00",  # Get-Data-Result choice 2
        "C703C1 02 0000",  # second result missing
        "C704C1 0000",  # short block number
    ],
)
def test_malformed_raises(bad: str) -> None:
    buf = bytes.fromhex(bad)
    decode = decode_action_request if buf[0] == 0xC3 else decode_action_response
    with pytest.raises(DecodeError):
        decode(buf)


@given(st.sampled_from([0xC3, 0xC7]), st.integers(0, 7), st.binary(max_size=60))
def test_garbage_raises_only_decode_error(tag: int, choice: int, tail: bytes) -> None:
    decode = decode_action_request if tag == 0xC3 else decode_action_response
    try:
        apdu = decode(bytes([tag, choice]) + tail)
    except DecodeError:
        return
    assert decode(apdu.to_bytes()) == apdu
