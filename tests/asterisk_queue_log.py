"""A reader of Asterisk's queue_log format, for the tests: written from Asterisk's own sources,
not from our formatter, so a test that parses our file checks it against Asterisk.

Sources: Asterisk 22.9.0 ``main/logger.c`` ``ast_queue_log`` (the line is
``"%ld|%s|%s|%s|%s|"`` then the event's data: epoch, callid, queuename, agent, event) and
``apps/app_queue.c``'s ``ast_queue_log`` calls, whose format strings give each event's data
fields (``"%s|%s|%d"`` is three). QUEUESTART and CONFIGRELOAD come from ``logger.c``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: event -> (data field count, which of them are integers), from the format strings of
#: app_queue.c's ast_queue_log calls (Asterisk 22.9.0)
SPEC: dict[str, tuple[int, frozenset[int]]] = {
    "QUEUESTART": (1, frozenset()),                        # logger.c: "%s", ""
    "CONFIGRELOAD": (1, frozenset()),
    "ENTERQUEUE": (3, frozenset({2})),                     # "%s|%s|%d": url|callerid|opos
    "RINGNOANSWER": (1, frozenset({0})),                   # "%d": ms
    "RINGCANCELED": (1, frozenset({0})),                   # "%d": ms
    "CONNECT": (3, frozenset({0, 2})),                     # "%ld|%s|%ld"
    "COMPLETECALLER": (3, frozenset({0, 1, 2})),           # "%ld|%ld|%d"
    "COMPLETEAGENT": (3, frozenset({0, 1, 2})),
    "ABANDON": (3, frozenset({0, 1, 2})),                  # "%d|%d|%ld"
    "EXITEMPTY": (3, frozenset({0, 1, 2})),
    "EXITWITHTIMEOUT": (3, frozenset({0, 1, 2})),
    "EXITWITHKEY": (4, frozenset({1, 2, 3})),              # "%s|%d|%d|%ld"
    "BLINDTRANSFER": (5, frozenset({2, 3, 4})),            # "%s|%s|%ld|%ld|%d"
    # "%s|%ld|%ld|%d" where %s is "BRIDGE|id" or "APP|app" (2 fields) or "LINK|a|b" (3)
    "ATTENDEDTRANSFER": (5, frozenset({2, 3, 4})),
    "ADDMEMBER": (1, frozenset()),                         # "%s": "PAUSED" or ""
    "REMOVEMEMBER": (1, frozenset()),
    "PAUSE": (1, frozenset()),                             # "%s": reason
    "UNPAUSE": (1, frozenset()),
    "PAUSEALL": (1, frozenset()),
    "UNPAUSEALL": (1, frozenset()),
}

_INT = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class QueueLogLine:
    epoch: int
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]


def parse(text: str) -> QueueLogLine:
    """One line as Asterisk's format; AssertionError saying why not."""
    assert "\n" not in text and "\r" not in text, text
    fields = text.split("|")
    assert len(fields) >= 6, f"fewer than 6 fields: {text!r}"
    epoch, callid, queue, agent, event, *data = fields
    assert re.fullmatch(r"[0-9]{9,11}", epoch), f"epoch {epoch!r}: {text!r}"
    assert event in SPEC, f"unknown event {event!r}: {text!r}"
    count, ints = SPEC[event]
    if event == "ATTENDEDTRANSFER" and data and data[0] == "LINK":
        count, ints = 6, frozenset({3, 4, 5})
    assert len(data) == count, f"{event} has {len(data)} data fields, not {count}: {text!r}"
    for i in ints:
        assert _INT.fullmatch(data[i]), f"{event} field {i + 1} not an integer: {text!r}"
    assert callid and queue and agent, f"empty callid, queue or agent: {text!r}"
    if event in ("ENTERQUEUE", "ABANDON", "EXITEMPTY", "EXITWITHTIMEOUT", "EXITWITHKEY"):
        assert agent == "NONE", text
    if event in ("PAUSEALL", "UNPAUSEALL", "QUEUESTART"):
        assert queue == "NONE", text
    return QueueLogLine(int(epoch), callid, queue, agent, event, tuple(data))


def parse_file(content: str) -> list[QueueLogLine]:
    assert content == "" or content.endswith("\n"), "the last line is not complete"
    return [parse(text) for text in content.splitlines()]
