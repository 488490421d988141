"""The engine -> relay feed, and the state both ends keep of it (sans-IO).

The engine tells the relay three things, one line each (UTF-8, ``\\n``-terminated):

``A <token> <rank> <agent id>``
    a console session logged in: a relay socket opened with ``<token>`` gets the pushes of
    rank ``<rank>`` and below (0 agent, 1 supervisor, 2 admin);
``E <token>``
    that session ended: its relay sockets close and the token is void;
``P <rank> <name> <json>``
    an event for every session of rank ``<rank>`` or above; the relay keeps the latest per
    (rank, name) and gives it to a socket that joins later, so the pushes carried this way are
    states (a wallboard, the queues' figures), each replacing the one before.

The JSON is an event as the console's ``/ws`` sends it (compact, so it holds no raw newline).
Tokens go only over this pipe, never on a command line (``ps`` shows those) or in a log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from callcenter.errors import FanoutError

__all__ = ["PATH", "Allow", "End", "FeedDecoder", "FeedState", "Push", "encode"]

#: where a console's second socket connects on the relay's port
PATH: Final = "/fanout"
#: a token, an agent id, an event name: one word of safe characters
_WORD: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
#: the longest line the relay reads: a wallboard of many seats is tens of kB
MAX_LINE: Final = 4 * 1024 * 1024


@dataclass(frozen=True)
class Allow:
    """A console session logged in: sockets with ``token`` see pushes up to ``rank``."""

    token: str
    rank: int
    agent_id: str


@dataclass(frozen=True)
class End:
    """That session ended: its sockets close, its token is void."""

    token: str


@dataclass(frozen=True)
class Push:
    """A state for every session of ``rank`` or above, replacing the last one named ``name``."""

    rank: int
    name: str
    text: str


Message = Allow | End | Push


def _word(value: str, what: str) -> str:
    if not _WORD.fullmatch(value):
        raise FanoutError(f"feed: bad {what}")  # never the value: it may be a token
    return value


def _rank(value: str) -> int:
    if value not in ("0", "1", "2"):
        raise FanoutError("feed: bad rank")
    return int(value)


def encode(message: Message) -> bytes:
    """One feed line; refuses what ``decode`` would refuse (the relay never sees it)."""
    if isinstance(message, Allow):
        return (f"A {_word(message.token, 'token')} {_rank(str(message.rank))} "
                f"{_word(message.agent_id, 'agent id')}\n").encode()
    if isinstance(message, End):
        return f"E {_word(message.token, 'token')}\n".encode()
    if "\n" in message.text:
        raise FanoutError("feed: a pushed event holds a newline")
    if not message.text:
        raise FanoutError("feed: a pushed event is empty")
    line = (f"P {_rank(str(message.rank))} {_word(message.name, 'event name')} "
            f"{message.text}\n").encode()
    if len(line) > MAX_LINE:
        raise FanoutError(f"feed: a pushed {message.name} of {len(line)} bytes is over the"
                          f" limit ({MAX_LINE})")
    return line


def decode(line: bytes) -> Message:
    """One feed line (without its newline)."""
    try:
        text = line.decode()
    except UnicodeDecodeError:
        raise FanoutError("feed: not UTF-8") from None
    kind, _, rest = text.partition(" ")
    if kind == "A":
        parts = rest.split(" ")
        if len(parts) != 3:
            raise FanoutError("feed: an A line has three fields")
        return Allow(_word(parts[0], "token"), _rank(parts[1]), _word(parts[2], "agent id"))
    if kind == "E":
        return End(_word(rest, "token"))
    if kind == "P":
        rank, _, rest = rest.partition(" ")
        name, _, body = rest.partition(" ")
        if not body:
            raise FanoutError("feed: a P line without its event")
        return Push(_rank(rank), _word(name, "event name"), body)
    raise FanoutError(f"feed: unknown line kind {kind[:8]!r}")


@dataclass
class FeedDecoder:
    """Bytes in, messages out; a partial line waits for its end. A line it cannot read is
    skipped and said in ``errors`` (never the line itself: it may hold a token); the lines
    after it are read as usual."""

    _buffer: bytearray = field(default_factory=bytearray)
    #: skipping the rest of a line over ``MAX_LINE``, up to its newline
    _skipping: bool = False
    errors: list[str] = field(default_factory=list)

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        out: list[Message] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            if self._skipping:
                self._skipping = False
            else:
                try:
                    out.append(decode(bytes(self._buffer[start:end])))
                except FanoutError as exc:
                    self.errors.append(str(exc))
            start = end + 1
        del self._buffer[:start]
        if len(self._buffer) > MAX_LINE:
            if not self._skipping:
                self.errors.append("feed: a line over the limit")
            self._buffer.clear()
            self._skipping = True
        return out


@dataclass
class FeedState:
    """What the feed has said so far that still holds: the live tokens and the latest push per
    (rank, name), in the order they were last pushed. The relay answers joins from it; the
    engine replays it to a relay that was restarted."""

    allowed: dict[str, Allow] = field(default_factory=dict)
    latest: dict[tuple[int, str], Push] = field(default_factory=dict)

    def apply(self, message: Message) -> None:
        if isinstance(message, Allow):
            self.allowed[message.token] = message
        elif isinstance(message, End):
            self.allowed.pop(message.token, None)
        else:
            key = (message.rank, message.name)
            self.latest.pop(key, None)   # re-inserted last: the dict keeps push order
            self.latest[key] = message

    def visible(self, rank: int) -> list[Push]:
        """The latest pushes a session of ``rank`` may see, oldest first."""
        return [push for push in self.latest.values() if push.rank <= rank]

    def replay(self) -> bytes:
        return b"".join([*(encode(a) for a in self.allowed.values()),
                         *(encode(p) for p in self.latest.values())])
