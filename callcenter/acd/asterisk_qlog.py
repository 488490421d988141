"""The ACD's queue events as Asterisk's ``queue_log`` lines, sans-IO: what qpanel, QueueMetrics
or Asternic read.

The ACD keeps its own ``queue_log`` table (``acd/core.py`` ``_qlog``) and tells its listeners
each row (``QueueLogged``) and each seat move (``SeatChanged``). :class:`AsteriskQueueLog` turns
those into the lines Asterisk's ``app_queue`` would have written for the same calls; the file
edge (``acd/asterisk_qlog_file.py``) appends them. No clock, no I/O: the lines carry the
events' own times.

The format, as Asterisk 22 writes it (``main/logger.c`` ``ast_queue_log``: one line
``"%ld|%s|%s|%s|%s|" + data``, so a line always has at least six fields, the last one possibly
empty)::

    epoch|callid|queue|agent|EVENT|data1|data2|...

Sources, read for the field lists (not guessed): Asterisk's ``apps/app_queue.c`` at tag 22.9.0
(the sandbox runs Debian's 22.10.1), its ``ast_queue_log`` calls; ``main/logger.c`` (the line,
``QUEUESTART``); the Asterisk documentation page "Queue Logs"
(docs.asterisk.org/Operation/Logging/Queue-Logs/). Per event, our equivalent:

===================  =====================================  ======================================
Asterisk event       data fields (app_queue.c)              written for our
===================  =====================================  ======================================
QUEUESTART           (empty)                                the file being opened (engine start)
ENTERQUEUE           url|callerid|origposition              ``enter``
RINGNOANSWER         ringtime in ms                         ``noanswer``
RINGCANCELED         ringtime in ms                         ``abandon`` while an agent rang
CONNECT              holdtime|bridged uniqueid|ringtime(s)  ``connect``
COMPLETECALLER       holdtime|calltime|origposition         ``complete``, the caller hung up first
COMPLETEAGENT        holdtime|calltime|origposition         ``complete``, the agent hung up first;
                                                            ``agent_lost`` (the agent's phone went)
ABANDON              position|origposition|waittime         ``abandon``
EXITEMPTY            position|origposition|waittime         ``leave`` (a closed queue; a call-back
                                                            number that cannot be dialled)
EXITWITHTIMEOUT      position|origposition|waittime         ``overflow`` (then ENTERQUEUE in the
                                                            next queue, as our log has it)
EXITWITHKEY          key|position|origposition|waittime     ``callback`` (key ``1``: the caller
                                                            booked a call-back that keeps the
                                                            place; its later CONNECT counts the
                                                            hold from the first entry)
BLINDTRANSFER        exten|context|holdtime|calltime|       ``transfer`` to a number, queue or
                     origposition                           agent (context: ``number``,
                                                            ``queue`` or ``agent``)
ATTENDEDTRANSFER     BRIDGE|target|holdtime|calltime|       ``transfer`` after a consultation
                     origposition
ADDMEMBER            ``PAUSED`` or empty                    a login, per queue the agent serves
REMOVEMEMBER         (empty)                                a logout, per queue
PAUSEALL/PAUSE       reason                                 a move into not ready (PAUSEALL with
                                                            queue ``NONE``, then PAUSE per queue,
                                                            as app_queue does for a pause without
                                                            a queue name)
UNPAUSEALL/UNPAUSE   reason                                 not ready to ready
===================  =====================================  ======================================

Asterisk 22 no longer writes the old ``TRANSFER`` event (Asterisk 1.4 to 11): it writes
BLINDTRANSFER with the same fields, and ATTENDEDTRANSFER; so do we. After a transfer the call
has left the queue, as in Asterisk: the transferring agent's COMPLETE is not written, nor
anything else of that call until it enters a queue again (a transfer to a queue does).

Choices:

- ``callid`` is our ``call_id``: the caller channel's Asterisk linkedid (a uniqueid such as
  ``1764800000.42``), unique per call, the same id the engine's call records, recordings and
  our own ``queue_log`` table use. Lines without a call carry ``NONE``, as Asterisk's.
- ``agent`` is ``Agent/<agent_id>``: the member *name* (Asterisk writes ``membername``), not
  the phone. Our agents change phones (desk, browser, extension); the member name stays, so
  QueueMetrics' agent records (keyed by this field, ``Agent/XXX`` in its own examples and in
  Wazo's) keep one agent one code. ``NONE`` where Asterisk writes ``NONE`` (ENTERQUEUE, ABANDON,
  EXIT*).
- The caller ID of ENTERQUEUE is left empty (Asterisk writes it empty when the caller's number
  is unknown or withheld). A caller's number is a customer's personal data: the engine keeps it
  in its private database only and masks it on the agents' screens (``seats/masking.py``,
  docs/security.md); this file is meant to be shipped to reporting tools and kept for years.
  The queue reports need the call, not the number.
- ``origposition``/``position``: Asterisk's positions count from 1 in the queue's order. Our
  queues are ranked by tier and aging (``acd/routing.py``), which this formatter does not
  repeat: positions here are the order of arrival among the callers still waiting (1 = the
  longest waiting), which is what the reporting tools use them for.
- Times are whole seconds, truncated as Asterisk's ``time(NULL)`` differences are, except the
  ring times of RINGNOANSWER and RINGCANCELED (milliseconds, as Asterisk).
- Our own events without an Asterisk equivalent (``ring``, ``closed``) write nothing; unknown
  ones neither.
- No field may contain ``|`` or a line break: each is replaced by ``_`` (Asterisk does the same
  to the caller's name), so every line parses.

Known limit: who left first (COMPLETECALLER or COMPLETEAGENT) is inferred by the ACD from
the order Asterisk reports the two legs' hangups; when both legs go at once that order can
be the other way round, so the choice between the two may be wrong (the line is still
written, with its times).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from callcenter.acd.figures import QueueEvent
from callcenter.acd.notices import SeatChanged

__all__ = ["AsteriskQueueLog", "agent_field", "line", "masked_number"]

#: states that are "paused" in Asterisk's terms (the seat takes no calls by its own choice)
_PAUSED = "not_ready"
_OUT = "logged_out"


def _clean(value: object) -> str:
    text = str(value)
    for bad in ("|", "\r", "\n"):
        text = text.replace(bad, "_")
    return text


def line(at: float, callid: str, queue: str, agent: str, event: str,
         *data: object) -> str:
    """One queue_log line (without its newline), as ``ast_queue_log`` formats it."""
    fields: list[object] = [int(at), callid or "NONE", queue or "NONE", agent or "NONE", event]
    fields += list(data) if data else [""]
    return "|".join(_clean(f) for f in fields)


def agent_field(agent_id: str) -> str:
    return f"Agent/{agent_id}" if agent_id else "NONE"


@dataclass(slots=True)
class _Call:
    """What Asterisk's queue entry would know of one call in one queue."""

    queue: str
    entered_at: float
    opos: int
    rings: dict[str, float] = field(default_factory=dict)   # agent -> ring start
    agent: str = ""          # the agent it connected to
    hold_s: float = 0.0      # the wait the CONNECT line gave
    gone: bool = False       # transferred away: nothing more until it enters a queue again


def masked_number(number: str) -> str:
    """A phone number as the queue_log shows it: its last four digits only."""
    return "*" * max(0, len(number) - 4) + number[-4:] if len(number) > 4 else "****"


class AsteriskQueueLog:
    """Feed it the ACD's notices (:meth:`feed`); it answers the queue_log lines they make.

    ``members(agent_id)`` names the queues an agent serves (ADDMEMBER at login); the queues
    an agent was added to are remembered, so its logout removes it from exactly those."""

    def __init__(self, members: Callable[[str], Iterable[str]]) -> None:
        self.members = members
        self._calls: dict[str, _Call] = {}
        #: the callers waiting per queue, in order of arrival (for the positions)
        self._waiting: dict[str, dict[str, None]] = {}
        self._joined: dict[str, list[str]] = {}
        #: the reason of each paused agent's pause (a seat row that changes nothing else, such
        #: as a phone change, writes no second PAUSE)
        self._paused: dict[str, str] = {}

    def start(self, at: float) -> list[str]:
        """The log was opened (Asterisk writes this when its logger starts)."""
        return [line(at, "NONE", "NONE", "NONE", "QUEUESTART")]

    def feed(self, notice: object) -> list[str]:
        if isinstance(notice, QueueEvent):
            return self.queue_event(notice)
        if isinstance(notice, SeatChanged):
            seat = notice.seat
            return self.seat_moved(float(str(seat.get("since", 0.0))), notice.agent_id,
                                   notice.from_state, str(seat.get("state", "")),
                                   str(seat.get("reason", "") or ""))
        return []

    # -- calls -----------------------------------------------------------------------------

    def _position(self, queue: str, call_id: str) -> int:
        order = list(self._waiting.get(queue, {}))
        return order.index(call_id) + 1 if call_id in order else len(order) + 1

    @property
    def tracked(self) -> int:
        """How many calls the formatter still remembers (each is forgotten at its end)."""
        return len(self._calls)

    def _leave_line(self, call_id: str, queue: str) -> None:
        self._waiting.get(queue, {}).pop(call_id, None)

    def queue_event(self, ev: QueueEvent) -> list[str]:
        detail: Mapping[str, str] = ev.detail or {}
        cid, at, queue = ev.call_id, ev.at, ev.queue
        call = self._calls.get(cid)
        kind = ev.event
        if kind == "enter":
            waiting = self._waiting.setdefault(queue, {})
            waiting.pop(cid, None)
            opos = len(waiting) + 1
            waiting[cid] = None
            self._calls[cid] = _Call(queue, at, opos)
            return [line(at, cid, queue, "NONE", "ENTERQUEUE", "", "", opos)]
        if call is None:
            return []
        if call.gone:   # sent on: nothing more is written; its end forgets it
            if kind == "complete":
                del self._calls[cid]
            return []
        member = agent_field(ev.agent_id)
        waited = int(max(0.0, ev.wait_s if ev.wait_s is not None else at - call.entered_at))
        if kind == "ring":
            call.rings[ev.agent_id] = at
            return []
        if kind == "noanswer":
            rang = at - call.rings.pop(ev.agent_id, at)
            return [line(at, cid, queue, member, "RINGNOANSWER", int(rang * 1000))]
        if kind == "connect":
            rang = at - call.rings.pop(ev.agent_id, at)
            call.rings.clear()
            self._leave_line(cid, call.queue)
            call.agent, call.hold_s = ev.agent_id, float(waited)
            bridged = detail.get("agent_uniqueid", "") or f"{cid}-agent"
            return [line(at, cid, queue, member, "CONNECT", waited, bridged, int(rang))]
        if kind in ("complete", "agent_lost"):
            talk = int(max(0.0, ev.talk_s or 0.0))
            event = ("COMPLETEAGENT" if kind == "agent_lost" or detail.get("by") == "agent"
                     else "COMPLETECALLER")
            if kind == "complete":
                del self._calls[cid]
            return [line(at, cid, queue or call.queue, member, event, int(call.hold_s), talk,
                         call.opos)]
        if kind == "transfer":
            target = detail.get("target", "")
            how = detail.get("kind", "")
            by = agent_field(call.agent or ev.agent_id)
            talk = int(max(0.0, at - (call.entered_at + call.hold_s)))
            call.gone = True
            if how == "consultation":
                return [line(at, cid, queue, by, "ATTENDEDTRANSFER", "BRIDGE",
                             agent_field(target), int(call.hold_s), talk, call.opos)]
            # a number is a customer's or a third party's: masked like everywhere the file
            # may travel (reporting tools keep it for years); agents and queues are names
            exten = (agent_field(target) if how == "agent"
                     else masked_number(target) if how in ("number", "") else target)
            return [line(at, cid, queue, by, "BLINDTRANSFER", exten, how or "number",
                         int(call.hold_s), talk, call.opos)]
        exits = {"abandon": "ABANDON", "leave": "EXITEMPTY", "overflow": "EXITWITHTIMEOUT",
                 "callback": "EXITWITHKEY"}
        if kind in exits:
            pos = self._position(call.queue, cid)
            self._leave_line(cid, call.queue)
            out = []
            if kind == "abandon":
                for agent_id, since in call.rings.items():
                    out.append(line(at, cid, queue, agent_field(agent_id), "RINGCANCELED",
                                    int((at - since) * 1000)))
                call.rings.clear()
            key = ["1"] if kind == "callback" else []
            out.append(line(at, cid, queue, "NONE", exits[kind], *key, pos, call.opos, waited))
            if kind != "callback":
                del self._calls[cid]
            return out
        return []

    # -- members ---------------------------------------------------------------------------

    def seat_moved(self, at: float, agent_id: str, from_state: str, to_state: str,
                   reason: str) -> list[str]:
        member = agent_field(agent_id)
        if from_state == _OUT and to_state != _OUT:
            queues = list(self.members(agent_id))
            self._joined[agent_id] = queues
            paused = "PAUSED" if to_state == _PAUSED else ""
            if paused:
                self._paused[agent_id] = reason
            return [line(at, "NONE", q, member, "ADDMEMBER", paused) for q in queues]
        known = self._joined.get(agent_id)
        # logged in before the log was opened: the queues it serves now
        queues = known if known is not None else list(self.members(agent_id))
        self._joined[agent_id] = queues
        if to_state == _OUT:
            del self._joined[agent_id]
            self._paused.pop(agent_id, None)
            return [line(at, "NONE", q, member, "REMOVEMEMBER", "") for q in queues]
        if to_state == _PAUSED:
            if self._paused.get(agent_id) == reason:
                return []
            self._paused[agent_id] = reason
            event, why = "PAUSE", reason
        elif from_state == _PAUSED:
            self._paused.pop(agent_id, None)
            event, why = "UNPAUSE", ""
        else:
            return []
        return ([line(at, "NONE", "NONE", member, event + "ALL", why)]
                + [line(at, "NONE", q, member, event, why) for q in queues])
