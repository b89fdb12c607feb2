"""The AGI wire format: what Asterisk sends us, and what we may send it."""

from __future__ import annotations

import random

import pytest

from agi_scripts.errors import (
    AgiArgumentError,
    AgiDeadChannel,
    AgiHangup,
    AgiInvalidCommand,
    AgiUsageError,
)
from agi_scripts.protocol import (
    HANGUP,
    MAX_LINE_BYTES,
    AgiReply,
    ReplyParser,
    build_command,
    clean_text,
    parse_env,
    parse_reply_line,
    quote,
    reply_error,
    split_words,
)

ENV = (
    b"agi_network: yes\n"
    b"agi_network_script: ivr?lang=zh\n"
    b"agi_request: agi://127.0.0.1:4573/ivr?lang=zh\n"
    b"agi_channel: PJSIP/carrier-00000001\n"
    b"agi_uniqueid: 1763841600.12\n"
    b"agi_callerid: 13800001111\n"
    b"agi_calleridname: \xe5\xbc\xa0\xe4\xb8\x89: a \xff\xfe name\n"
    b"agi_dnid: 12345\n"
    b"agi_enhanced: 0.0\n"
    b"agi_arg_1: first\n"
    b"agi_arg_2: second: with colon\n"
    b"\n"
)


# ---- environment ------------------------------------------------------------------------
def test_env_block_from_a_carrier_call_is_read_whole() -> None:
    env = parse_env(ENV)
    assert env["agi_uniqueid"] == "1763841600.12"
    assert env.route == "ivr"
    assert env.args == ("first", "second: with colon")
    assert env.anomalies == ()


def test_caller_name_with_invalid_utf8_is_replaced_not_fatal() -> None:
    env = parse_env(ENV)
    name = env["agi_calleridname"]
    assert name.startswith("张三: a ")
    assert "\ufffd" in name


def test_env_lines_that_are_not_agi_variables_are_set_aside() -> None:
    env = parse_env(b"agi_uniqueid: 1\nEXEC Dial PJSIP/evil\nagi_uniqueid: 2\n\n")
    assert env["agi_uniqueid"] == "1"
    assert len(env.anomalies) == 2


def test_env_stops_at_the_first_empty_line() -> None:
    env = parse_env(b"agi_uniqueid: 1\n\nagi_callerid: 99\n\n")
    assert "agi_callerid" not in env


# ---- replies ----------------------------------------------------------------------------
def test_stream_file_reply_with_digit_and_endpos() -> None:
    reply = parse_reply_line("200 result=50 endpos=12345")
    assert (reply.code, reply.result_int, reply.extra["endpos"]) == (200, ord("2"), "12345")


def test_reply_with_data_in_parentheses() -> None:
    reply = parse_reply_line("200 result=0 (timeout) endpos=800")
    assert reply.data == "timeout" and reply.extra == {"endpos": "800"}


def test_get_variable_value_with_parentheses_and_spaces_is_kept_whole() -> None:
    reply = parse_reply_line("200 result=1 (公积金 (gjj) endpos=1)")
    assert reply.result == "1"
    assert reply.data == "公积金 (gjj) endpos=1"


def test_get_data_result_is_a_digit_string_not_a_number() -> None:
    assert parse_reply_line("200 result=0123#").result == "0123#"
    timed_out = parse_reply_line("200 result= (timeout)")
    assert (timed_out.result, timed_out.data) == ("", "timeout")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("510 Invalid or unknown command", AgiInvalidCommand),
        ("511 Command Not Permitted on a dead channel or intercept routine", AgiDeadChannel),
        ("520 Invalid command syntax.  Proper usage not available.", AgiUsageError),
    ],
)
def test_error_replies_become_typed_errors(line: str, error: type[Exception]) -> None:
    err = reply_error("STREAM FILE", parse_reply_line(line))
    assert isinstance(err, error)


def test_dead_channel_counts_as_a_hangup() -> None:
    assert isinstance(reply_error("X", parse_reply_line("511 Not permitted")), AgiHangup)


def test_multi_line_usage_is_one_reply() -> None:
    parser = ReplyParser()
    lines = [
        "520-Invalid command syntax.  Proper usage follows:",
        " Usage: WAIT FOR DIGIT <timeout>",
        "  Waits up to 'timeout' milliseconds for channel to receive a DTMF digit.",
        "520 End of proper usage.",
    ]
    events = [parser.feed(line) for line in lines]
    assert events[:3] == [None, None, None]
    reply = events[3]
    assert isinstance(reply, AgiReply) and reply.code == 520
    assert "WAIT FOR DIGIT" in reply.text
    err = reply_error("WAIT FOR DIGIT", reply)
    assert isinstance(err, AgiUsageError) and "Waits up to" in err.usage
    # the parser is back to normal afterwards
    after = parser.feed("200 result=0")
    assert isinstance(after, AgiReply) and after.ok


def test_hangup_line_is_an_event_not_a_reply() -> None:
    parser = ReplyParser()
    assert parser.feed("200 result=-1 endpos=4000") == AgiReply(
        200, "-1", None, {"endpos": "4000"}, "200 result=-1 endpos=4000"
    )
    assert parser.feed("HANGUP") is HANGUP
    assert parser.feed("HANGUP\r") is HANGUP


def test_garbage_is_a_protocol_error() -> None:
    from agi_scripts.errors import AgiProtocolError

    with pytest.raises(AgiProtocolError):
        ReplyParser().feed("agi_callerid: 1")


# ---- quoting ----------------------------------------------------------------------------
HOSTILE_NAMES = [
    '"a\nEXEC Dial PJSIP/9999@evil',
    'a" "b',
    "back\\slash\\",
    'end with quote"',
    '\\"',
    "cr\rlf\n",
    "nul\x00byte",
    "张三\t李四 ☎ ﷽ עברית",
    "x" * 5000,
    "",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_caller_name_is_one_line_one_word_or_refused(name: str) -> None:
    """Whatever the caller ID name, SET VARIABLE writes one line whose 3rd word is the name
    (cleaned of CR/LF/NUL and capped) -- never a second command."""
    value = clean_text(name, 1024)
    wire = build_command("SET VARIABLE", "CALLERNAME", value)
    assert wire.endswith(b"\n") and wire.count(b"\n") == 1
    assert b"\r" not in wire and b"\x00" not in wire
    assert len(wire) <= MAX_LINE_BYTES
    words = split_words(wire.decode()[:-1])
    assert words == ["SET", "VARIABLE", "CALLERNAME", value]


@pytest.mark.parametrize("bad", ["a\nEXEC Dial x", "a\rb", "a\x00b"])
def test_quote_refuses_line_breaks_and_nul(bad: str) -> None:
    with pytest.raises(AgiArgumentError):
        quote(bad)
    with pytest.raises(AgiArgumentError):
        build_command("SET VARIABLE", "X", bad)


def test_line_longer_than_asterisks_buffer_is_refused_not_split() -> None:
    with pytest.raises(AgiArgumentError, match="at most 2047"):
        build_command("VERBOSE", "字" * 700, 1)  # 2100 bytes of UTF-8
    assert len(build_command("VERBOSE", "a" * 2020, 1)) <= MAX_LINE_BYTES


def test_command_names_cannot_carry_arguments() -> None:
    with pytest.raises(AgiArgumentError):
        build_command('EXEC Dial "x"')
    with pytest.raises(AgiArgumentError):
        build_command("exec")


def test_quotes_and_backslashes_round_trip() -> None:
    for text in ['say "hi"', "C:\\path\\", '\\"', ""]:
        assert split_words(quote(text)) == [text]


def _random_text(rng: random.Random) -> str:
    alphabet = ' "\\\t\r\n\x00\x0b\x7f\u2028\ufffd张三李四()${}[],;|&=:#*abcXYZ019'
    n = rng.randint(0, 60)
    return "".join(rng.choice(alphabet) if rng.random() < 0.8 else chr(rng.randint(1, 0x10FFFF))
                   for _ in range(n))  # fmt: skip


def test_any_text_becomes_exactly_one_command_line() -> None:
    rng = random.Random(12345)
    for _ in range(3000):
        args = [_random_text(rng) for _ in range(rng.randint(1, 4))]
        cleaned = [clean_text(a) for a in args]
        wire = build_command("EXEC", *cleaned)
        assert wire.count(b"\n") == 1 and wire.endswith(b"\n")
        assert b"\x00" not in wire and b"\r" not in wire
        words = split_words(wire.decode("utf-8")[:-1])
        assert words == ["EXEC", *cleaned], args


# ---- bytes recorded from Asterisk 22.10.1 (Debian sid build) on this machine ------------
# A Local channel ran AGI(agi://127.0.0.1:39573/probe); the FastAGI side logged every byte.
RECORDED_ENV = (
    b"agi_network: yes\nagi_network_script: probe\nagi_request: agi://127.0.0.1:39573/probe\n"
    b"agi_channel: Local/s@probe-00000003;2\nagi_language: en\nagi_type: Local\n"
    b"agi_uniqueid: 1795378805.7\nagi_version: 22.10.1+dfsg+~cs6.17.60671434-1\n"
    b"agi_callerid: unknown\nagi_calleridname: unknown\nagi_callingpres: 0\n"
    b"agi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: unknown\n"
    b"agi_rdnis: unknown\nagi_context: probe\nagi_extension: s\nagi_priority: 2\n"
    b"agi_enhanced: 0.0\nagi_accountcode: \nagi_threadid: 140575917029056\n\n"
)
RECORDED_USAGE = [
    "520-Invalid command syntax.  Proper usage follows:",
    "Waits up to <replaceable>timeout</replaceable> milliseconds for channel to receive a DTMF"
    " digit. Returns <literal>-1</literal> on channel failure, <literal>0</literal> if no digit"
    " is received in the timeout, or the numerical value of the ascii of the digit if one is"
    " received. Use <literal>-1</literal> for the <replaceable>timeout</replaceable> value if"
    " you desire the call to block indefinitely.",
    "520 End of proper usage.",
]


def test_recorded_asterisk_22_environment_parses_cleanly() -> None:
    from agi_scripts.handlers.ivr import call_info_from_env

    env = parse_env(RECORDED_ENV)
    assert env.anomalies == ()
    assert env.route == "probe" and env["agi_accountcode"] == ""
    info = call_info_from_env(env)
    assert info.call_id == "1795378805.7"
    assert info.caller == ""  # "unknown" is a withheld number, not a caller called unknown
    assert info.dialed == "s"  # no DNID: the extension


def test_recorded_usage_block_for_wait_for_digit_without_timeout() -> None:
    parser = ReplyParser()
    events = [parser.feed(line) for line in RECORDED_USAGE]
    err = reply_error("WAIT FOR DIGIT", events[-1])  # type: ignore[arg-type]
    assert isinstance(err, AgiUsageError) and "DTMF digit" in err.usage


def test_recorded_hangup_during_wait_for_digit() -> None:
    """Hang-up 2 s into WAIT FOR DIGIT: the reply (-1), 43 ms later HANGUP, then 511."""
    parser = ReplyParser()
    reply = parser.feed("200 result=-1")
    assert isinstance(reply, AgiReply) and reply.result_int == -1
    assert parser.feed("HANGUP") is HANGUP
    dead = parser.feed("511 Command Not Permitted on a dead channel or intercept routine")
    assert isinstance(reply_error("STREAM FILE", dead), AgiDeadChannel)  # type: ignore[arg-type]


def test_recorded_missing_prompt_answers_minus_one_at_endpos_zero() -> None:
    reply = parse_reply_line("200 result=-1 endpos=0")
    assert (reply.result_int, reply.extra["endpos"]) == (-1, "0")


def test_quoted_value_round_trips_as_asterisk_22_stored_it() -> None:
    """SET VARIABLE with this exact line, then GET VARIABLE, returned the value unchanged."""
    value = 'a"b\\c \t d "EXEC Dial PJSIP/x" 张三 \\'
    wire = build_command("SET VARIABLE", "HOSTILE", value)
    assert wire == (
        b'SET VARIABLE "HOSTILE" "a\\"b\\\\c \t d \\"EXEC Dial PJSIP/x\\" '
        + "张三".encode()
        + b' \\\\"\n'
    )
    echoed = parse_reply_line(f"200 result=1 ({value})")
    assert echoed.data == value


@pytest.mark.parametrize(
    ("line", "result", "extra"),
    [
        ("200 result=0", "0", {}),
        ("200 result=", "", {}),
        ("200 result= endpos=5", "", {"endpos": "5"}),
        ("200 result=1 (digit) digit=5 endpos=1200", "1", {"digit": "5", "endpos": "1200"}),
        ("200 result=-1 endpos=16160", "-1", {"endpos": "16160"}),
    ],
)
def test_reply_fields_with_and_without_parenthesised_data(
    line: str, result: str, extra: dict[str, str]
) -> None:
    reply = parse_reply_line(line)
    assert (reply.code, reply.result, dict(reply.extra), reply.text) == (200, result, extra, line)
