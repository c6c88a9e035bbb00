"""decode_apdu: dispatch by tag, and only DecodeError on hostile input."""

from __future__ import annotations

import pytest
from apdu_strategies import (
    attribute_descriptors,
    attributes_with_selection,
    blocks,
    ciphered,
    data_values,
    get_data_results,
    initiate_requests,
    initiate_responses,
    invoke_ids,
    method_descriptors,
    protected_contents,
    selections,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from smmc.dlms.apdu import (
    Aare,
    Aarq,
    AcseServiceUserDiagnostic,
    ActionRequestNormal,
    ActionRequestWithList,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithOptionalData,
    ActionResult,
    AssociationResult,
    CipheredApdu,
    CipheredTag,
    ConfirmedServiceError,
    DataNotification,
    EventNotificationRequest,
    ExceptionResponse,
    ExceptionServiceError,
    GeneralDedCiphering,
    GeneralGloCiphering,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    InitiateRequest,
    InitiateResponse,
    ReleaseRequest,
    ReleaseResponse,
    SetRequestWithFirstDatablock,
    SetRequestWithList,
    SetResponseLastDatablockWithList,
    StateError,
    decode_apdu,
)
from smmc.dlms.errors import DecodeError

VECTORS: list[tuple[str, type]] = [
    ("601DA109060760857405080101BE10040E01000000065F1F0400007E1F04B0", Aarq),
    (
        "6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F040000501F01F40007",
        Aare,
    ),
    ("6203800100", ReleaseRequest),
    ("6303800100", ReleaseResponse),
    ("01000000065F1F0400007E1F04B0", InitiateRequest),
    ("0800065F1F040000501F01F40007", InitiateResponse),
    ("0E010602", ConfirmedServiceError),
    ("0F00000001000904DEADBEEF", DataNotification),
    ("C2000001 0000600B00FF 02 120028", EventNotificationRequest),
    ("D80102", ExceptionResponse),
    ("C001C1 0008 0000010000FF 02 00", GetRequestNormal),
    ("C402C1 01 00000002 00 03 110203", GetResponseWithDatablock),
    ("C104C1 01 00050100010400FF0800 01 0600000384", SetRequestWithList),
    ("C504C1 02 0003 00000007", SetResponseLastDatablockWithList),
    ("C301C1 0046 00006003 0AFF 01 01 0F00", ActionRequestNormal),
    ("C701C1 00 00", ActionResponseNormal),
    ("C80630000000010A", CipheredApdu),
    ("DB08 4142434445464748 05 3000000001", GeneralGloCiphering),
    ("DC00053000000001", GeneralDedCiphering),
]


@pytest.mark.parametrize(("hexed", "cls"), VECTORS)
def test_dispatches_on_the_first_byte(hexed: str, cls: type) -> None:
    buf = bytes.fromhex(hexed)
    apdu = decode_apdu(buf)
    assert type(apdu) is cls
    assert apdu.to_bytes() == buf


@pytest.mark.parametrize(("hexed", "cls"), VECTORS)
def test_every_truncation_raises(hexed: str, cls: type) -> None:
    buf = bytes.fromhex(hexed)
    for cut in range(len(buf)):
        with pytest.raises(DecodeError):
            decode_apdu(buf[:cut])


@pytest.mark.parametrize("buf", [b"", b"\x00", b"\x02\x00", b"\xff", b"\xc6\x01", b"\xd9"])
def test_unknown_tags_raise(buf: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_apdu(buf)


def test_memoryview_input() -> None:
    buf = bytes.fromhex(VECTORS[0][0])
    assert decode_apdu(memoryview(buf)) == decode_apdu(buf)


def _check(buf: bytes) -> None:
    try:
        apdu = decode_apdu(buf)
    except DecodeError:
        return
    # Whatever decodes must re-encode to bytes that decode to the same value.
    assert decode_apdu(apdu.to_bytes()) == apdu


@settings(max_examples=400)
@given(st.binary(max_size=120))
def test_random_bytes(buf: bytes) -> None:
    _check(buf)


_KNOWN_TAGS = sorted({bytes.fromhex(h)[0] for h, _ in VECTORS} | {0x21, 0x28, 0xCA, 0xD7})


@settings(max_examples=600)
@given(st.sampled_from(_KNOWN_TAGS), st.binary(max_size=120))
def test_random_bodies_behind_known_tags(tag: int, body: bytes) -> None:
    _check(bytes([tag]) + body)


@settings(max_examples=600)
@given(
    st.sampled_from([bytes.fromhex(h) for h, _ in VECTORS]),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_vectors(buf: bytes, edits: list[tuple[int, int]]) -> None:
    mutated = bytearray(buf)
    for position, value in edits:
        mutated[position % len(mutated)] = value
    _check(bytes(mutated))


apdus = st.one_of(
    st.builds(Aarq, user_information=st.none() | initiate_requests),
    st.builds(
        Aare,
        st.sampled_from(AssociationResult),
        st.sampled_from(AcseServiceUserDiagnostic),
        user_information=st.none() | initiate_responses,
    ),
    st.builds(ReleaseRequest, user_information=ciphered(CipheredTag.GLO_INITIATE_REQUEST)),
    initiate_requests,
    initiate_responses,
    st.builds(GetRequestNormal, attribute_descriptors(), selections, invoke_ids),
    st.builds(GetRequestNext, st.integers(0, 2**32 - 1), invoke_ids),
    st.builds(GetRequestWithList, st.lists(attributes_with_selection, max_size=3).map(tuple)),
    st.builds(GetResponseNormal, get_data_results, invoke_ids),
    st.builds(GetResponseWithList, st.lists(get_data_results, max_size=3).map(tuple)),
    st.builds(SetRequestWithFirstDatablock, attribute_descriptors(), blocks, selections),
    st.builds(
        ActionRequestWithList,
        st.lists(method_descriptors(), min_size=2, max_size=2).map(tuple),
        st.lists(data_values, min_size=2, max_size=2).map(tuple),
    ),
    st.builds(
        ActionResponseWithList,
        st.lists(
            st.builds(
                ActionResponseWithOptionalData,
                st.sampled_from(ActionResult),
                st.none() | get_data_results,
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(DataNotification, data_values),
    st.builds(EventNotificationRequest, attribute_descriptors(), data_values),
    st.builds(
        ExceptionResponse, st.sampled_from(StateError), st.just(ExceptionServiceError.PDU_TOO_LONG)
    ),
    st.builds(CipheredApdu, st.sampled_from(CipheredTag), protected_contents),
    st.builds(GeneralGloCiphering, st.binary(max_size=8), protected_contents),
)


@settings(max_examples=300)
@given(apdus)
def test_every_strict_prefix_of_a_valid_apdu_raises(apdu: object) -> None:
    encoded = apdu.to_bytes()  # type: ignore[attr-defined]
    assert decode_apdu(encoded) == apdu
    for cut in range(len(encoded)):
        with pytest.raises(DecodeError):
            decode_apdu(encoded[:cut])
