"""The sans-IO FastAGI core: environment, replies, HANGUP, limits, states, command quoting."""

from __future__ import annotations

import pytest

from callcenter.errors import AgiProtocolError, UnsafeValueError
from callcenter.telephony.agi_protocol import (
    MAX_COMMAND_BYTES,
    TRANSITIONS,
    AgiConnection,
    Closed,
    Environment,
    Event,
    HangupNotice,
    LocalProtocolError,
    NeedData,
    Reply,
    State,
)

ENV = (
    b"agi_network: yes\n"
    b"agi_network_script: hotline\n"
    b"agi_request: agi://127.0.0.1:4573/hotline\n"
    b"agi_channel: Local/9500@hotline-00000001;2\n"
    b"agi_language: en\n"
    b"agi_type: Local\n"
    b"agi_uniqueid: 1718000000.42\n"
    b"agi_version: 22.0.0\n"
    b"agi_callerid: 13800138000\n"
    b"agi_calleridname: unknown\n"
    b"agi_callingpres: 0\n"
    b"agi_dnid: unknown\n"
    b"agi_context: hotline\n"
    b"agi_extension: 9500\n"
    b"agi_priority: 2\n"
    b"agi_enhanced: 0.0\n"
    b"agi_accountcode: \n"
    b"agi_threadid: 140000000000000\n"
    b"\n"
)


def events(conn: AgiConnection) -> list[Event]:
    """Every event available now, up to and including the first NeedData or Closed."""
    out: list[Event] = []
    while True:
        event = conn.next_event()
        out.append(event)
        if isinstance(event, NeedData | Closed):
            return out


def ready(env: bytes = ENV) -> AgiConnection:
    conn = AgiConnection()
    conn.receive_data(env)
    assert isinstance(conn.next_event(), Environment)
    return conn


def reply_to(raw: bytes, command: str = "ANSWER") -> Reply:
    conn = ready()
    conn.send_command(command)
    conn.receive_data(raw)
    event = conn.next_event()
    assert isinstance(event, Reply)
    assert conn.state is State.IDLE
    return event


# -- environment --------------------------------------------------------------------------------


def test_environment_is_parsed() -> None:
    conn = AgiConnection()
    conn.receive_data(ENV)
    env = conn.next_event()
    assert isinstance(env, Environment)
    assert env.script == "hotline"
    assert env.arguments == []
    assert env.variables["agi_uniqueid"] == "1718000000.42"
    assert env.variables["agi_accountcode"] == ""
    assert env.variables["agi_network"] == "yes"
    assert conn.state is State.IDLE
    assert isinstance(conn.next_event(), NeedData)


def test_environment_with_arguments_in_order() -> None:
    env_bytes = ENV[:-1] + b"agi_arg_1: 95\nagi_arg_2: a b: c\nagi_arg_10: ten\nagi_arg_3:\n\n"
    conn = AgiConnection()
    conn.receive_data(env_bytes)
    env = conn.next_event()
    assert isinstance(env, Environment)
    assert env.arguments == ["95", "a b: c", "", "ten"]


def test_environment_with_crlf_equals_lf() -> None:
    lf = AgiConnection()
    lf.receive_data(ENV)
    crlf = AgiConnection()
    crlf.receive_data(ENV.replace(b"\n", b"\r\n"))
    assert lf.next_event() == crlf.next_event()


def test_environment_fed_one_byte_at_a_time() -> None:
    conn = AgiConnection()
    seen: list[Event] = []
    for byte in ENV:
        conn.receive_data(bytes([byte]))
        seen.extend(e for e in events(conn) if not isinstance(e, NeedData))
    assert len(seen) == 1 and isinstance(seen[0], Environment)


def test_script_falls_back_to_request_path() -> None:
    conn = AgiConnection()
    conn.receive_data(b"agi_request: agi://127.0.0.1:4573/queue-hold?x=1\n\n")
    env = conn.next_event()
    assert isinstance(env, Environment) and env.script == "queue-hold"


def test_script_drops_query_of_network_script() -> None:
    conn = AgiConnection()
    conn.receive_data(b"agi_network: yes\nagi_network_script: hotline?lang=zh\n\n")
    env = conn.next_event()
    assert isinstance(env, Environment) and env.script == "hotline"


def test_non_utf8_caller_name_does_not_break_parsing() -> None:
    conn = AgiConnection()
    conn.receive_data(b"agi_calleridname: \xff\xfeX\nagi_uniqueid: 1\n\n")
    env = conn.next_event()
    assert isinstance(env, Environment) and env.variables["agi_uniqueid"] == "1"


@pytest.mark.parametrize(
    "data",
    [b"\n", b"GET / HTTP/1.1\r\n\r\n", b"agi_x value\n\n", b"HANGUP\n", b"foo: bar\n\n"],
)
def test_bad_environment_is_the_peers_fault(data: bytes) -> None:
    conn = AgiConnection()
    conn.receive_data(data)
    with pytest.raises(AgiProtocolError):
        events(conn)
    assert conn.state is State.FAILED
    with pytest.raises(AgiProtocolError):
        conn.next_event()


def test_error_messages_do_not_echo_received_data() -> None:
    conn = AgiConnection()
    conn.receive_data(b"secret-1234 no colon\n")
    with pytest.raises(AgiProtocolError) as info:
        conn.next_event()
    assert "secret" not in str(info.value) and "1234" not in str(info.value)


# -- limits -------------------------------------------------------------------------------------


def test_ten_megabyte_header_is_refused_at_the_first_chunk() -> None:
    conn = AgiConnection(max_header_bytes=16 * 1024, max_line_bytes=8 * 1024)
    chunk = b"agi_padding: " + b"x" * 50 + b"\n"
    chunk = chunk * (64 * 1024 // len(chunk))
    fed = 0
    with pytest.raises(AgiProtocolError, match="larger than 16384"):
        while fed < 10 * 1024 * 1024:
            conn.receive_data(chunk)
            fed += len(chunk)
            events(conn)
    assert fed == len(chunk)  # refused without asking for a second chunk


def test_header_limit_counts_before_the_block_ends() -> None:
    # small chunks of short, valid lines: refused once the budget is passed, not at the end
    limit = 4096
    conn = AgiConnection(max_header_bytes=limit, max_line_bytes=1024)
    line = b"agi_padding: 0123456789\n"
    with pytest.raises(AgiProtocolError):
        for _ in range(10_000):
            conn.receive_data(line)
            events(conn)
    assert conn.bytes_received <= limit + len(line)


def test_header_without_newlines_is_refused_early() -> None:
    conn = AgiConnection(max_header_bytes=16 * 1024, max_line_bytes=8 * 1024)
    with pytest.raises(AgiProtocolError, match="longer than 8192"):
        for _ in range(1000):
            conn.receive_data(b"y" * 1024)
            events(conn)
    assert conn.bytes_received <= 8 * 1024 + 1024


def test_oversized_reply_line_is_refused() -> None:
    conn = AgiConnection(max_line_bytes=256)
    conn.receive_data(b"agi_uniqueid: 1\n\n")
    conn.next_event()
    conn.send_command("GET VARIABLE", "X")
    conn.receive_data(b"200 result=1 (" + b"v" * 300)
    with pytest.raises(AgiProtocolError, match="longer than 256"):
        conn.next_event()


def test_reply_lines_are_not_bound_by_the_header_budget() -> None:
    conn = AgiConnection(max_header_bytes=1024, max_line_bytes=4096)
    conn.receive_data(b"agi_uniqueid: 1\n\n")
    conn.next_event()
    for _ in range(5):
        conn.send_command("GET VARIABLE", "X")
        conn.receive_data(b"200 result=1 (" + b"v" * 3000 + b")\n")
        reply = conn.next_event()
        assert isinstance(reply, Reply) and reply.data == "v" * 3000


# -- EOF ----------------------------------------------------------------------------------------


def test_bare_connect_and_close_is_closed() -> None:
    conn = AgiConnection()
    conn.receive_data(b"")
    assert conn.next_event() == Closed()
    assert conn.next_event() == Closed()  # stays closed
    assert conn.state is State.CLOSED


def test_eof_mid_header_is_a_protocol_error() -> None:
    conn = AgiConnection()
    conn.receive_data(ENV[:100])
    assert isinstance(conn.next_event(), NeedData)
    conn.receive_data(b"")
    with pytest.raises(AgiProtocolError, match="inside the environment"):
        conn.next_event()


def test_eof_while_awaiting_a_reply_is_closed() -> None:
    conn = ready()
    conn.send_command("STREAM FILE", "welcome", "")
    conn.receive_data(b"200 resu")
    conn.receive_data(b"")
    assert events(conn) == [Closed()]
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"more")


# -- replies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "result", "data", "endpos"),
    [
        (b"200 result=1\n", "1", None, None),
        (b"200 result=0\n", "0", None, None),
        (b"200 result=-1\n", "-1", None, None),
        (b"200 result=0 (timeout)\n", "0", "timeout", None),
        (b"200 result=49 endpos=12345\n", "49", None, 12345),
        (b"200 result=-1 endpos=0\n", "-1", None, 0),
        (b"200 result=1 (value with spaces)\n", "1", "value with spaces", None),
        (b"200 result=1 (a (nested) value)\n", "1", "a (nested) value", None),
        (b"200 result=1 ()\n", "1", "", None),
        (b"200 result= (timeout)\n", "", "timeout", None),
        (b"200 result=12 (timeout)\n", "12", "timeout", None),
        (b"200 result=\n", "", None, None),
        (b"200 result=1234#\r\n", "1234#", None, None),
        (b"200 result=1 (speech) endpos=800 results=0\n", "1", "speech", 800),
        (b"200 result=-1 Gosub label not found\n", "-1", None, None),
    ],
)
def test_200_reply_formats(raw: bytes, result: str, data: str | None, endpos: int | None) -> None:
    reply = reply_to(raw)
    assert (reply.code, reply.result, reply.data, reply.endpos) == (200, result, data, endpos)
    assert reply.raw == raw.decode().rstrip("\r\n")


def test_numeric_result() -> None:
    assert reply_to(b"200 result=-1\n").numeric_result == -1
    assert reply_to(b"200 result=123#\n").numeric_result is None


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        (b"510 Invalid or unknown command\n", 510, "Invalid or unknown command"),
        (
            b"511 Command Not Permitted on a dead channel or intercept routine\n",
            511,
            "Command Not Permitted on a dead channel or intercept routine",
        ),
        (
            b"520 Invalid command syntax.  Proper usage not available.\n",
            520,
            "Invalid command syntax.  Proper usage not available.",
        ),
    ],
)
def test_error_replies(raw: bytes, code: int, message: str) -> None:
    reply = reply_to(raw)
    assert (reply.code, reply.result, reply.data) == (code, "", message)


USAGE = (
    b"520-Invalid command syntax.  Proper usage follows:\n"
    b" Usage: STREAM FILE <filename> <escape digits> [sample offset]\n"
    b"\n"
    b"200 result=0 is not a reply inside a usage block\n"
    b"520 End of proper usage.\n"
)


def test_520_multi_line_block_is_one_reply() -> None:
    conn = ready()
    conn.send_command("STREAM FILE", "x")
    conn.receive_data(USAGE + b"HANGUP\n")
    reply = conn.next_event()
    assert isinstance(reply, Reply) and reply.code == 520
    assert reply.data is not None
    assert reply.data.splitlines()[0] == "Invalid command syntax.  Proper usage follows:"
    assert "Usage: STREAM FILE" in reply.data
    assert reply.data.endswith("End of proper usage.")
    assert conn.state is State.IDLE
    assert conn.next_event() == HangupNotice()


def test_520_block_with_end_marker_glued_to_usage() -> None:
    conn = ready()
    conn.send_command("STREAM FILE", "x")
    conn.receive_data(
        b"520-Invalid command syntax.  Proper usage follows:\n Usage: X520 End of proper usage.\n"
    )
    reply = conn.next_event()
    assert isinstance(reply, Reply) and reply.code == 520
    assert reply.data is not None and "Usage: X" in reply.data
    assert conn.state is State.IDLE


def test_520_block_fed_byte_by_byte() -> None:
    conn = ready()
    conn.send_command("STREAM FILE", "x")
    got: list[Event] = []
    for byte in USAGE:
        conn.receive_data(bytes([byte]))
        got.extend(e for e in events(conn) if not isinstance(e, NeedData))
    assert len(got) == 1 and isinstance(got[0], Reply) and got[0].code == 520


def test_endless_usage_block_is_refused() -> None:
    conn = AgiConnection(max_header_bytes=1024)
    conn.receive_data(b"agi_uniqueid: 1\n\n")
    conn.next_event()
    conn.send_command("ANSWER")
    conn.receive_data(b"520-Invalid command syntax.  Proper usage follows:\n")
    with pytest.raises(AgiProtocolError, match="usage block"):
        for _ in range(1000):
            conn.receive_data(b"usage text line\n")
            events(conn)


@pytest.mark.parametrize("raw", [b"hello\n", b"20 result=1\n", b"2000 result=1\n"])
def test_garbage_reply_line_is_a_protocol_error(raw: bytes) -> None:
    conn = ready()
    conn.send_command("ANSWER")
    conn.receive_data(raw)
    with pytest.raises(AgiProtocolError):
        conn.next_event()


# -- HANGUP at any moment -----------------------------------------------------------------------


def test_hangup_while_idle() -> None:
    conn = ready()
    conn.receive_data(b"HANGUP\n")
    assert conn.next_event() == HangupNotice()
    assert conn.hangup_received and conn.state is State.IDLE


def test_hangup_in_the_same_chunk_as_the_environment() -> None:
    conn = AgiConnection()
    conn.receive_data(ENV + b"HANGUP\n")
    assert isinstance(conn.next_event(), Environment)
    assert conn.next_event() == HangupNotice()


def test_hangup_before_the_reply_then_511() -> None:
    conn = ready()
    conn.send_command("STREAM FILE", "welcome", "#")
    conn.receive_data(b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n")
    first, second = conn.next_event(), conn.next_event()
    assert first == HangupNotice()
    assert isinstance(second, Reply) and second.code == 511
    assert conn.state is State.IDLE and conn.pending_command is None


def test_hangup_after_the_reply() -> None:
    conn = ready()
    conn.send_command("STREAM FILE", "welcome", "#")
    conn.receive_data(b"200 result=-1 endpos=1600\nHANGUP\n")
    assert isinstance(conn.next_event(), Reply)
    assert conn.next_event() == HangupNotice()
    # dead-channel commands still run
    conn.send_command("GET VARIABLE", "X")
    conn.receive_data(b"200 result=0\n")
    assert isinstance(conn.next_event(), Reply)


# -- illegal moves ------------------------------------------------------------------------------


def test_command_before_environment_is_our_fault() -> None:
    with pytest.raises(LocalProtocolError):
        AgiConnection().send_command("ANSWER")


def test_second_outstanding_command_is_our_fault() -> None:
    conn = ready()
    conn.send_command("ANSWER")
    with pytest.raises(LocalProtocolError):
        conn.send_command("ANSWER")
    assert conn.state is State.AWAIT_REPLY and conn.pending_command == "ANSWER"


def test_reply_nobody_asked_for_is_the_peers_fault() -> None:
    conn = ready()
    conn.receive_data(b"200 result=1\n")
    with pytest.raises(AgiProtocolError, match="not allowed in state idle"):
        conn.next_event()
    assert conn.state is State.FAILED
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")


def test_command_after_close_is_our_fault() -> None:
    conn = ready()
    conn.receive_data(b"")
    assert conn.next_event() == Closed()
    with pytest.raises(LocalProtocolError):
        conn.send_command("ANSWER")


def test_transition_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.CLOSED] == {} and TRANSITIONS[State.FAILED] == {}


# -- commands -----------------------------------------------------------------------------------


def test_command_arguments_are_quoted() -> None:
    conn = ready()
    assert conn.send_command("STREAM FILE", "custom/welcome", "0123456789*#") == (
        b'STREAM FILE "custom/welcome" "0123456789*#"\n'
    )


def test_empty_and_spaced_arguments_are_kept() -> None:
    conn = ready()
    assert conn.send_command("SET VARIABLE", "GREETING", "") == b'SET VARIABLE "GREETING" ""\n'
    conn.receive_data(b"200 result=1\n")
    conn.next_event()
    assert conn.send_command("VERBOSE", "a b", "1") == b'VERBOSE "a b" "1"\n'


def test_utf8_arguments() -> None:
    conn = ready()
    assert conn.send_command("VERBOSE", "张三", "1") == 'VERBOSE "张三" "1"\n'.encode()


@pytest.mark.parametrize(
    "arg", ['x" "EXEC', "x\\", "1\n EXEC System", "1\r", "\x00", "a\u2028b", "\x85"]
)
def test_unsafe_arguments_are_refused_and_nothing_changes(arg: str) -> None:
    conn = ready()
    with pytest.raises(UnsafeValueError) as info:
        conn.send_command("SET VARIABLE", "X", arg)
    assert "EXEC" not in str(info.value)
    assert conn.state is State.IDLE  # nothing was produced, the connection is still usable
    assert conn.send_command("ANSWER") == b"ANSWER\n"


@pytest.mark.parametrize(
    "name", ["answer", "ANSWER\nEXEC", "STREAM  FILE", "", "GET VARIABLE ", "SET VAR1ABLE"]
)
def test_command_names_come_from_an_allowlist(name: str) -> None:
    with pytest.raises(UnsafeValueError):
        ready().send_command(name)


def test_overlong_command_is_refused_not_split() -> None:
    # res_agi would cut the line at 2047 bytes and run the rest as a second command
    conn = ready()
    with pytest.raises(UnsafeValueError, match="2047"):
        conn.send_command("SET VARIABLE", "X", "a" * 2100)
    limit = MAX_COMMAND_BYTES - len(b'SET VARIABLE "X" ""\n')
    assert len(conn.send_command("SET VARIABLE", "X", "a" * limit)) == MAX_COMMAND_BYTES


# -- a recorded session -------------------------------------------------------------------------

# An Asterisk 22 FastAGI session as it appears on the wire (Asterisk's side), for
# AGI(agi://127.0.0.1:4573/hotline,95) on a Local channel: ANSWER, a barged-in STREAM FILE,
# GET DATA that timed out after two digits, then the caller hangs up.
TRANSCRIPT_IN = (
    b"agi_network: yes\n"
    b"agi_network_script: hotline\n"
    b"agi_request: agi://127.0.0.1:4573/hotline\n"
    b"agi_channel: Local/9500@hotline-00000000;2\n"
    b"agi_language: en\n"
    b"agi_type: Local\n"
    b"agi_uniqueid: 1718000000.3\n"
    b"agi_version: 22.1.0\n"
    b"agi_callerid: 13800138000\n"
    b"agi_calleridname: Zhang San\n"
    b"agi_callingpres: 0\n"
    b"agi_callingani2: 0\n"
    b"agi_callington: 0\n"
    b"agi_callingtns: 0\n"
    b"agi_dnid: unknown\n"
    b"agi_rdnis: unknown\n"
    b"agi_context: hotline\n"
    b"agi_extension: 9500\n"
    b"agi_priority: 2\n"
    b"agi_enhanced: 0.0\n"
    b"agi_accountcode: \n"
    b"agi_threadid: 139872201000000\n"
    b"agi_arg_1: 95\n"
    b"\n",
    b"200 result=0\n",
    b"200 result=49 endpos=12345\n",
    b"200 result=12 (timeout)\n",
    b"HANGUP\n",
    b"",
)


def test_recorded_transcript() -> None:
    conn = AgiConnection()
    inbound = iter(TRANSCRIPT_IN)
    sent: list[bytes] = []
    got: list[Event] = []

    def pump() -> Event:
        while isinstance(event := conn.next_event(), NeedData):
            conn.receive_data(next(inbound))
        got.append(event)
        return event

    env = pump()
    assert isinstance(env, Environment) and env.script == "hotline" and env.arguments == ["95"]
    sent.append(conn.send_command("ANSWER"))
    assert pump() == Reply(200, "0", None, None, "200 result=0")
    sent.append(conn.send_command("STREAM FILE", "hotline/welcome", "0123456789*#"))
    barge_in = pump()
    assert isinstance(barge_in, Reply) and chr(int(barge_in.result)) == "1"
    assert barge_in.endpos == 12345
    sent.append(conn.send_command("GET DATA", "hotline/enter-account", "5000", "8"))
    data = pump()
    assert isinstance(data, Reply) and (data.result, data.data) == ("12", "timeout")
    assert pump() == HangupNotice()
    assert pump() == Closed()
    assert sent == [
        b"ANSWER\n",
        b'STREAM FILE "hotline/welcome" "0123456789*#"\n',
        b'GET DATA "hotline/enter-account" "5000" "8"\n',
    ]
