"""Hypothesis strategies shared by the APDU tests (imported by module name from this folder)."""

from __future__ import annotations

from hypothesis import strategies as st

from smmc.dlms.apdu._ber import ApplicationContextName, AuthenticationMechanism
from smmc.dlms.apdu._common import (
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
    DataBlockSA,
    InvokeIdAndPriority,
)
from smmc.dlms.apdu.ciphered import CipheredApdu, CipheredTag
from smmc.dlms.apdu.get import CosemAttributeWithSelection
from smmc.dlms.apdu.initiate import Conformance, InitiateRequest, InitiateResponse
from smmc.dlms.apdu.selective_access import SelectiveAccessDescriptor
from smmc.dlms.axdr import Data
from smmc.dlms.obis import Obis

u8s = st.integers(0, 0xFF)
u16s = st.integers(0, 0xFFFF)
u32s = st.integers(0, 0xFFFFFFFF)
i8s = st.integers(-128, 127)
conformances = st.integers(0, 0xFFFFFF).map(Conformance)
context_names = st.sampled_from(ApplicationContextName)
mechanisms = st.sampled_from(AuthenticationMechanism)
obis_codes = st.builds(Obis, u8s, u8s, u8s, u8s, u8s, u8s)
protected_contents = st.binary(min_size=5, max_size=300)

initiate_requests = st.builds(
    InitiateRequest,
    proposed_conformance=conformances,
    client_max_receive_pdu_size=u16s,
    proposed_dlms_version_number=u8s,
    dedicated_key=st.none() | st.binary(max_size=32),
    response_allowed=st.booleans(),
    proposed_quality_of_service=st.none() | i8s,
)
initiate_responses = st.builds(
    InitiateResponse,
    negotiated_conformance=conformances,
    server_max_receive_pdu_size=u16s,
    negotiated_dlms_version_number=u8s,
    negotiated_quality_of_service=st.none() | i8s,
    vaa_name=u16s,
)


def ciphered(tag: CipheredTag) -> st.SearchStrategy[CipheredApdu]:
    """Ciphered APDUs with a fixed tag."""
    return st.builds(CipheredApdu, st.just(tag), protected_contents)


_scalars = st.one_of(
    st.just(Data.null()),
    st.booleans().map(Data.boolean),
    i8s.map(Data.integer),
    st.integers(-(2**15), 2**15 - 1).map(Data.long),
    u8s.map(Data.unsigned),
    u16s.map(Data.long_unsigned),
    st.integers(-(2**31), 2**31 - 1).map(Data.double_long),
    u32s.map(Data.double_long_unsigned),
    st.integers(0, 2**64 - 1).map(Data.long64_unsigned),
    u8s.map(Data.enum),
    st.binary(max_size=40).map(Data.octet_string),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(
        Data.visible_string
    ),
)

data_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4).map(Data.array)
        | st.lists(children, max_size=4).map(Data.structure)
    ),
    max_leaves=12,
)


def attribute_descriptors() -> st.SearchStrategy[CosemAttributeDescriptor]:
    """Cosem attribute descriptors over the full field ranges."""
    return st.builds(CosemAttributeDescriptor, u16s, obis_codes, i8s)


def method_descriptors() -> st.SearchStrategy[CosemMethodDescriptor]:
    """Cosem method descriptors over the full field ranges."""
    return st.builds(CosemMethodDescriptor, u16s, obis_codes, i8s)


invoke_ids = st.builds(InvokeIdAndPriority, st.integers(0, 15), st.booleans(), st.booleans())
selections = st.none() | st.builds(SelectiveAccessDescriptor, u8s, data_values)
attributes_with_selection = st.builds(
    CosemAttributeWithSelection, attribute_descriptors(), selections
)
access_results = st.sampled_from(DataAccessResult)
get_data_results = data_values | access_results
blocks = st.builds(DataBlockSA, st.booleans(), u32s, st.binary(max_size=300))
