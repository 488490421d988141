"""Sans-IO FastAGI framing: the environment block, command lines, replies, HANGUP notices.

No sockets and no event loop here (h11 style): feed bytes with ``receive_data`` (``b""`` is EOF),
pull events with ``next_event``, and get the bytes to write from ``send_command``. The asyncio edge
(``agi.py``) is a thin adapter around this.

Who is at fault is in the exception class:

* ``AgiProtocolError`` (from ``callcenter.errors``): the peer broke the protocol (malformed or
  oversized data, a reply nobody asked for, EOF inside the environment). The connection moves to
  ``FAILED`` and every later ``next_event`` raises again.
* ``LocalProtocolError`` (a ``RuntimeError``): our own code misused the connection (a command
  while another is outstanding, data after EOF). The state does not change.
* ``UnsafeValueError``: a command or argument was refused before anything was produced.

Every error message describes the problem without quoting received or refused data: it may hold
digits a caller typed.

States and their allowed moves live in one table, ``TRANSITIONS``; anything not in it raises.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from callcenter.errors import AgiProtocolError, UnsafeValueError
from callcenter.telephony.values import check_agi_arg

__all__ = [
    "MAX_COMMAND_BYTES",
    "TRANSITIONS",
    "AgiConnection",
    "Closed",
    "Environment",
    "Event",
    "HangupNotice",
    "Input",
    "LocalProtocolError",
    "NeedData",
    "Reply",
    "State",
]

#: res_agi reads a command with fgets() into a 2048-byte buffer: a longer line is cut there and
#: the remainder is parsed as a *second command*. So a longer command is refused, not sent.
MAX_COMMAND_BYTES = 2047
#: res_agi's MAX_ARGS is 128 words, command words included; extra words are dropped silently.
MAX_COMMAND_ARGS = 100

_COMMAND_NAME = re.compile(r"[A-Z]+(?: [A-Z]+)*")
_ENV_KEY = re.compile(r"agi_[A-Za-z0-9_]+")
_ARG_KEY = re.compile(r"agi_arg_([0-9]+)")
_REPLY_LINE = re.compile(r"([0-9]{3})([ -])(.*)", re.DOTALL)
_RESULT = re.compile(r"result=(\S*)(?: (.*))?", re.DOTALL)
# Greedy: the data runs to the last ")" that is followed only by key=value words, so values that
# contain parentheses themselves survive.
_PAREN_DATA = re.compile(r"\((.*)\)((?: [A-Za-z_]+=\S*)*)", re.DOTALL)
_KEY_VALUE = re.compile(r"([A-Za-z_]+)=(\S*)")
_INTEGER = re.compile(r"-?[0-9]+")
_USAGE_END = "520 End of proper usage."


class LocalProtocolError(RuntimeError):
    """Our code used the connection out of order (a bug here, never the peer's fault)."""


class State(enum.Enum):
    AWAIT_ENVIRONMENT = "await-environment"
    IDLE = "idle"
    AWAIT_REPLY = "await-reply"
    IN_USAGE = "in-usage"  # inside a "520-" multi-line usage block
    CLOSED = "closed"
    FAILED = "failed"


class Input(enum.Enum):
    ENVIRONMENT = "environment"  # peer: the blank line ending the agi_* block
    SEND_COMMAND = "send-command"  # local
    REPLY = "reply"  # peer: a final "NNN ..." reply line
    USAGE_START = "usage-start"  # peer: a "520-" line
    HANGUP_NOTICE = "hangup-notice"  # peer: the unsolicited "HANGUP" line
    EOF = "eof"  # peer closed the connection


_PEER_INPUTS = frozenset(Input) - {Input.SEND_COMMAND}

TRANSITIONS: dict[State, dict[Input, State]] = {
    State.AWAIT_ENVIRONMENT: {Input.ENVIRONMENT: State.IDLE, Input.EOF: State.CLOSED},
    State.IDLE: {
        Input.SEND_COMMAND: State.AWAIT_REPLY,
        Input.HANGUP_NOTICE: State.IDLE,
        Input.EOF: State.CLOSED,
    },
    State.AWAIT_REPLY: {
        Input.REPLY: State.IDLE,
        Input.USAGE_START: State.IN_USAGE,
        Input.HANGUP_NOTICE: State.AWAIT_REPLY,
        Input.EOF: State.CLOSED,
    },
    State.IN_USAGE: {Input.REPLY: State.IDLE, Input.EOF: State.CLOSED},
    State.CLOSED: {},
    State.FAILED: {},
}


@dataclass(frozen=True)
class NeedData:
    """Nothing complete yet: feed more bytes."""


@dataclass(frozen=True)
class Environment:
    """The ``agi_*`` block Asterisk sends first."""

    variables: dict[str, str]
    script: str
    arguments: list[str]


@dataclass(frozen=True)
class Reply:
    """A command reply. For non-200 codes ``data`` holds Asterisk's message (520: all lines)."""

    code: int
    result: str
    data: str | None
    endpos: int | None
    raw: str

    @property
    def numeric_result(self) -> int | None:
        return int(self.result) if _INTEGER.fullmatch(self.result) else None


@dataclass(frozen=True)
class HangupNotice:
    """Asterisk's unsolicited ``HANGUP`` line: the channel is gone, commands now run "dead"."""


@dataclass(frozen=True)
class Closed:
    """The peer closed the connection."""


Event = NeedData | Environment | Reply | HangupNotice | Closed


class AgiConnection:
    """One FastAGI connection, seen from the server (our) side."""

    def __init__(self, *, max_header_bytes: int = 16 * 1024, max_line_bytes: int = 8 * 1024):
        self._max_header_bytes = max_header_bytes
        self._max_line_bytes = max_line_bytes
        self._state = State.AWAIT_ENVIRONMENT
        self._buffer = bytearray()
        self._eof = False
        self._bytes_received = 0
        self._header: dict[str, str] = {}
        self._header_bytes = 0
        self._usage: list[str] = []
        self._usage_bytes = 0
        self._pending_command: str | None = None
        self._hangup_received = False

    @property
    def state(self) -> State:
        return self._state

    @property
    def bytes_received(self) -> int:
        return self._bytes_received

    @property
    def hangup_received(self) -> bool:
        return self._hangup_received

    @property
    def pending_command(self) -> str | None:
        """The name of the command awaiting its reply, if any."""
        return self._pending_command

    # -- input ---------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer; ``b""`` means EOF."""
        if self._eof:
            raise LocalProtocolError("receive_data() after EOF")
        if self._state is State.FAILED:
            raise LocalProtocolError("receive_data() on a failed connection")
        if not data:
            self._eof = True
            return
        self._buffer += data
        self._bytes_received += len(data)

    def next_event(self) -> Event:
        """The next complete event, ``NeedData`` if more bytes are needed."""
        if self._state is State.FAILED:
            raise AgiProtocolError("the FastAGI connection already failed")
        if self._state is State.CLOSED:
            return Closed()
        try:
            return self._next_event()
        except AgiProtocolError:
            self._state = State.FAILED
            raise

    # -- output --------------------------------------------------------------------------------

    def send_command(self, command: str, *args: str) -> bytes:
        """The bytes for one command line; every argument is checked and sent quoted."""
        if not _COMMAND_NAME.fullmatch(command):
            raise UnsafeValueError("AGI command name must be uppercase words; refused")
        if len(args) > MAX_COMMAND_ARGS:
            raise UnsafeValueError(f"AGI {command} has {len(args)} arguments; refused")
        for index, arg in enumerate(args, start=1):
            check_agi_arg(arg, what=f"AGI {command} argument {index}")
        payload = "".join([command, *(f' "{arg}"' for arg in args), "\n"]).encode()
        if len(payload) > MAX_COMMAND_BYTES:
            raise UnsafeValueError(
                f"AGI {command} is {len(payload)} bytes, over the {MAX_COMMAND_BYTES} Asterisk "
                "reads as one command; refused"
            )
        self._transition(Input.SEND_COMMAND)
        self._pending_command = command
        return payload

    # -- internals -----------------------------------------------------------------------------

    def _transition(self, what: Input) -> None:
        new_state = TRANSITIONS[self._state].get(what)
        if new_state is None:
            message = f"{what.value} is not allowed in state {self._state.value}"
            if what in _PEER_INPUTS:
                raise AgiProtocolError(f"FastAGI peer: {message}")
            raise LocalProtocolError(message)
        self._state = new_state

    def _next_event(self) -> Event:
        while True:
            line = self._take_line()
            if line is None:
                return self._on_eof() if self._eof else NeedData()
            event = self._on_line(line)
            if event is not None:
                return event

    def _take_line(self) -> str | None:
        # Only the first max_line_bytes+1 bytes are searched, so a flood costs no rescans.
        end = self._buffer.find(b"\n", 0, self._max_line_bytes + 1)
        if end < 0:
            if len(self._buffer) > self._max_line_bytes:
                raise AgiProtocolError(f"FastAGI line longer than {self._max_line_bytes} bytes")
            self._check_header_budget(len(self._buffer))
            return None
        self._check_header_budget(end + 1)
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        if self._state is State.AWAIT_ENVIRONMENT:
            self._header_bytes += end + 1
        return raw.removesuffix(b"\r").decode("utf-8", errors="replace")

    def _check_header_budget(self, pending: int) -> None:
        # Counted before the block is complete, so an endless header fails as soon as it is
        # too long instead of after it was buffered.
        if self._state is not State.AWAIT_ENVIRONMENT:
            return
        if self._header_bytes + pending > self._max_header_bytes:
            raise AgiProtocolError(
                f"FastAGI environment larger than {self._max_header_bytes} bytes"
            )

    def _on_eof(self) -> Event:
        if self._state is State.AWAIT_ENVIRONMENT and (self._header or self._buffer):
            raise AgiProtocolError(
                f"FastAGI peer closed inside the environment after {self._bytes_received} bytes"
            )
        self._transition(Input.EOF)
        self._pending_command = None
        return Closed()

    def _on_line(self, line: str) -> Event | None:
        if self._state is State.AWAIT_ENVIRONMENT:
            return self._on_environment_line(line)
        if self._state is State.IN_USAGE:
            return self._on_usage_line(line)
        if line == "HANGUP":
            self._transition(Input.HANGUP_NOTICE)
            self._hangup_received = True
            return HangupNotice()
        if not line:
            return None  # stray blank lines carry nothing; being liberal costs nothing here
        return self._on_reply_line(line)

    def _on_environment_line(self, line: str) -> Event | None:
        if not line:
            if not self._header:
                raise AgiProtocolError("FastAGI environment is empty")
            self._transition(Input.ENVIRONMENT)
            return _build_environment(self._header)
        key, sep, value = line.partition(":")
        if not sep or not _ENV_KEY.fullmatch(key):
            raise AgiProtocolError(
                f"FastAGI environment line {len(self._header) + 1} is not 'agi_name: value'"
            )
        self._header[key] = value.removeprefix(" ")
        return None

    def _on_reply_line(self, line: str) -> Event | None:
        match = _REPLY_LINE.fullmatch(line)
        if match is None:
            raise AgiProtocolError("FastAGI reply line is not 'NNN text'")
        code, separator, text = match.groups()
        if separator == "-":
            self._transition(Input.USAGE_START)
            self._usage = [line]
            self._usage_bytes = len(line) + 1
            return None
        self._transition(Input.REPLY)
        self._pending_command = None
        return _parse_reply(int(code), text, line)

    def _on_usage_line(self, line: str) -> Event | None:
        self._usage_bytes += len(line) + 1
        if self._usage_bytes > self._max_header_bytes:
            raise AgiProtocolError(
                f"FastAGI 520 usage block larger than {self._max_header_bytes} bytes"
            )
        # res_agi prints the usage text verbatim, possibly without a final newline, which glues
        # the end marker to the last usage line.
        if line.startswith("520 "):
            self._usage.append(line)
        elif line.endswith(_USAGE_END):
            self._usage += [line.removesuffix(_USAGE_END), _USAGE_END]
        else:
            self._usage.append(line)
            return None
        self._transition(Input.REPLY)
        self._pending_command = None
        raw = "\n".join(self._usage)
        lines = [self._usage[0][4:], *self._usage[1:-1], self._usage[-1][4:]]
        self._usage = []
        return Reply(code=520, result="", data="\n".join(lines), endpos=None, raw=raw)


def _build_environment(variables: dict[str, str]) -> Environment:
    numbered = [
        (int(match.group(1)), value)
        for key, value in variables.items()
        if (match := _ARG_KEY.fullmatch(key))
    ]
    arguments = [value for _, value in sorted(numbered)]
    script = variables.get("agi_network_script", "")
    if not script:
        script = urlsplit(variables.get("agi_request", "")).path
    script = script.split("?", 1)[0].strip("/")
    return Environment(variables=dict(variables), script=script, arguments=arguments)


def _parse_reply(code: int, text: str, raw: str) -> Reply:
    match = _RESULT.fullmatch(text)
    if match is None:
        return Reply(code=code, result="", data=text or None, endpos=None, raw=raw)
    result, rest = match.group(1), match.group(2) or ""
    data: str | None = None
    tail = rest
    if rest.startswith("("):
        paren = _PAREN_DATA.fullmatch(rest)
        if paren is not None:
            data, tail = paren.group(1), paren.group(2)
    fields: dict[str, str] = {}
    for word in tail.split():
        if pair := _KEY_VALUE.fullmatch(word):
            fields[pair.group(1)] = pair.group(2)
    endpos_text = fields.get("endpos", "")
    endpos = int(endpos_text) if _INTEGER.fullmatch(endpos_text) else None
    return Reply(code=code, result=result, data=data, endpos=endpos, raw=raw)
