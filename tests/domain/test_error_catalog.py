import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.domain.error_catalog import (
    ACK_CODES,
    CATALOG,
    Action,
    ErrorKey,
    FieldError,
    Meaning,
    UnknownAckCode,
    ack_code,
    format_error,
    parse_error,
)

# Every row of DOMAIN.md §3: text, meaning, action.
ID001_ROWS = [
    ("Concentrator is unreachable", Meaning.DC_REACHABILITY, Action.CHECK_DC_IN_FIELD),
    (
        "Concentrator is unreachable [Open socket is failed]",
        Meaning.DC_REACHABILITY,
        Action.CHECK_DC_IN_FIELD,
    ),
    (
        "Meter not commissioned because not reachable",
        Meaning.METER_REACHABILITY,
        Action.CHECK_METER_IN_FIELD,
    ),
    ("NODE NOT REACHABLE", Meaning.METER_REACHABILITY, Action.CHECK_METER_IN_FIELD),
    (
        "Meter not commissioned for wrong keys",
        Meaning.KEY_MISALIGNMENT,
        Action.ESCALATE_TO_VENDOR,
    ),
    ("REPEATER 2 FAILURE", Meaning.METER_REACHABILITY, Action.CHECK_METER_IN_FIELD),
    (
        "GB_NACK_255 - Error in the function type [ErrorCode: 48]",
        Meaning.BAD_COMMAND,
        Action.ESCALATE_TO_VENDOR,
    ),
    (
        "TB procedure not enable",
        Meaning.BAD_DC_CONFIGURATION,
        Action.RUN_CONCENTRATOR_MODIFICATION,
    ),
    ("2 WAY AUTH REQ FAILURE", Meaning.CANNOT_READ_WRITE, Action.ESCALATE_TO_VENDOR),
    ("2 WAY AUTH RESP FAILURE", Meaning.CANNOT_READ_WRITE, Action.ESCALATE_TO_VENDOR),
    ("ADDRESS ERROR", Meaning.BAD_COMMAND, Action.ESCALATE_TO_VENDOR),
    ("BAD FIELD", Meaning.BAD_COMMAND, Action.ESCALATE_TO_VENDOR),
    ("CE not present in the table", Meaning.DC_TABLE_MISALIGNED, Action.ESCALATE_TO_VENDOR),
    ("DEVICE NOT CAPABLE OF DETECTING PHASE", Meaning.DEVICE_BEHAVIOUR, Action.RECOMMISSION),
    (
        "Id (to be transmitted) already present in B(TRAPE)",
        Meaning.DEVICE_BEHAVIOUR,
        Action.RUN_AGAIN,
    ),
    ("NACK_ResponseNotPresentYet", Meaning.DEVICE_BEHAVIOUR, Action.RUN_AGAIN),
    (
        "Transaction can't be handled due to Modem PLC Failure",
        Meaning.DEVICE_BEHAVIOUR,
        Action.RUN_AGAIN,
    ),
    ("Wrong Key", Meaning.ENCRYPTION_KEY, Action.ESCALATE_TO_VENDOR),
]


@pytest.mark.parametrize(("text", "meaning", "action"), ID001_ROWS)
def test_every_id001_row_is_recognised_with_its_meaning_and_action(
    text: str, meaning: Meaning, action: Action
) -> None:
    error = parse_error(text)
    assert error.key is not ErrorKey.UNKNOWN
    assert error.entry.meaning is meaning
    assert error.entry.action is action
    assert str(error) == text


def test_retryable_follows_the_recommended_action() -> None:
    for entry in CATALOG.values():
        if entry.action in (
            Action.RUN_AGAIN,
            Action.CHECK_METER_IN_FIELD,
            Action.CHECK_DC_IN_FIELD,
        ):
            assert entry.retryable, entry
        else:
            assert not entry.retryable, entry


@pytest.mark.parametrize(
    ("operation", "code", "expected"),
    [
        (
            "READ_METER_MACADDRESS",
            "TB_ACK_40",
            "[READ_METER_MACADDRESS] [TB_ACK_40] REPEATER 1 FAILURE",
        ),
        (
            "READ_METER_MACADDRESS",
            "TB_ACK_42",
            "[READ_METER_MACADDRESS] [TB_ACK_42] REPEATER 3 FAILURE",
        ),
        (
            "SINCRQ_METER_V2",
            "TB_ACK_L21",
            "[SINCRQ_METER_V2] [TB_ACK_L21] NODE NOT REACHABLE AGENT",
        ),
        ("READ_METER_DATA_V2_11", "TB_ACK_50", "[READ_METER_DATA_V2_11] [TB_ACK_50] Phase Missing"),
    ],
)
def test_seed_report_strings(operation: str, code: str, expected: str) -> None:
    error = FieldError.from_ack(operation, code)
    assert str(error) == expected
    assert parse_error(expected) == error


def test_unreachable_concentrator_text() -> None:
    error = FieldError.of(ErrorKey.CONCENTRATOR_SOCKET_FAILED)
    assert str(error) == "Concentrator is unreachable [Open socket is failed]"
    assert error.retryable
    assert str(FieldError.of(ErrorKey.CONCENTRATOR_UNREACHABLE, "timeout")) == (
        "Concentrator is unreachable [timeout]"
    )


@pytest.mark.parametrize("spelling", ["TB_ACK_40", "TBACK_40", "TB ACK_40", "tb_ack_40"])
def test_ack_code_spellings_seen_in_reports(spelling: str) -> None:
    assert ack_code(spelling).code == "TB_ACK_40"


@pytest.mark.parametrize("code", ["TB_ACK_99", "NOPE", "", "TB_ACK_"])
def test_unknown_ack_codes_raise(code: str) -> None:
    with pytest.raises(UnknownAckCode):
        ack_code(code)


def test_every_ack_code_points_at_a_catalog_row() -> None:
    assert {"TB_ACK_21", "TB_ACK_L21", "TB_ACK_23", "TB_ACK_40", "TB_ACK_41", "TB_ACK_42"} <= set(
        ACK_CODES
    )
    assert {"TB_ACK_50", "GB_NACK_255"} <= set(ACK_CODES)
    for ack in ACK_CODES.values():
        assert ack.key in CATALOG


def test_unknown_text_is_kept_whole() -> None:
    error = parse_error("something the DC never said before")
    assert error.key is ErrorKey.UNKNOWN
    assert str(error) == "something the DC never said before"
    assert not error.retryable
    with pytest.raises(ValueError, match="detail"):
        FieldError.of(ErrorKey.UNKNOWN)


_OPERATION = st.from_regex(r"[A-Z][A-Z0-9_]{0,30}", fullmatch=True)


@given(_OPERATION, st.sampled_from(sorted(ACK_CODES)))
def test_format_then_parse_round_trips(operation: str, code: str) -> None:
    error = FieldError.from_ack(operation, code)
    text = str(error)
    assert text.startswith(f"[{operation}] [{code}] ")
    assert parse_error(text) == error


@given(st.text(max_size=80))
def test_parse_never_raises_and_keeps_the_text(text: str) -> None:
    error = parse_error(text)
    assert error.key in CATALOG
    if error.key is ErrorKey.UNKNOWN:
        assert error.text == text.strip()


def test_format_leaves_out_absent_parts() -> None:
    assert format_error("Wrong Key") == "Wrong Key"
    assert format_error("X", ack="TB_ACK_23") == "[TB_ACK_23] X"
    assert format_error("X", operation="OP", detail="d") == "[OP] X [d]"
