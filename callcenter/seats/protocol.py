"""The agent console's websocket protocol, version 1: every message, as pydantic models.

Client -> server: a *request* ``{"v": 1, "id": "<client id>", "type": "<command>", ...}``.
Server -> client: a *reply* ``{"v": 1, "type": "result", "id": ..., "data": {...}}`` or
``{"v": 1, "type": "error", "id": ..., "code": "<ErrorCode>", "message": "..."}``, and *events*
``{"v": 1, "type": "event", "event": "<name>", "data": {...}}`` pushed at any time.

``docs/console-protocol.md`` describes the same; this module is the authority. Numbers that go to
Asterisk (transfer, click-to-call, consult, conference) are checked here with the engine's one
phone-number rule (``telephony.values.PHONE_NUMBER``: an optional ``+`` and 2-20 digits).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from callcenter.acd.targets import AGENT_ID, Target

PROTOCOL_VERSION = 1
#: a fax number as the fax server dials it: an optional + and 3-20 digits ("" allowed: optional)
FAX_NUMBER = r"^(\+?[0-9]{3,20})?$"
#: a time of day, HH:MM (optional field: "" allowed)
HHMM = r"^(([01][0-9]|2[0-3]):[0-5][0-9])?$"
#: an inbound contact's id (``channels.messages.Inbound.contact_id``)
CONTACT_ID = r"^[A-Za-z0-9_.-]{8,64}$"


class Role(enum.StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class ErrorCode(enum.StrEnum):
    MALFORMED = "malformed"              # not JSON, not an object, or fails validation
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_COMMAND = "unknown_command"
    LOGIN_REQUIRED = "login_required"    # a command before login
    BAD_CREDENTIALS = "bad_credentials"  # wrong id or password (never says which)
    LOGIN_PAUSED = "login_paused"        # too many failures: logins for this id are paused
                                         # (known and unknown ids alike)
    LOGIN_TIMEOUT = "login_timeout"      # no login within the deadline: the server closes
    ALREADY_LOGGED_IN = "already_logged_in"
    FORBIDDEN = "forbidden"              # the role may not do this
    RATE_LIMITED = "rate_limited"        # too many messages: this one was dropped
    TOO_LARGE = "too_large"              # (close code 1009 for frames over the limit)
    INVALID_STATE = "invalid_state"      # the seat's state does not allow it
    DISPOSITION_REQUIRED = "disposition_required"  # save the wrap-up before leaving it
    NO_CALL = "no_call"                  # a call control without a call
    BAD_NUMBER = "bad_number"            # outside digits, + * #
    NOT_FOUND = "not_found"              # unknown agent, queue, call or account
    UNAVAILABLE = "unavailable"          # Asterisk link down, etc.
    INTERNAL = "internal"


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=4000)

    v: Literal[1] = 1
    id: str = Field("", max_length=64)


# -- requests ------------------------------------------------------------------------------------


class Login(_Msg):
    type: Literal["login"]
    agent_id: str = Field(pattern=AGENT_ID)
    password: str = Field(min_length=1, max_length=128, repr=False)
    #: the console's language for texts the server composes (zh or en)
    lang: Literal["zh", "en"] = "zh"


class Ping(_Msg):
    """Allowed before login. The reply's data: ``{"time": <the server's unix time, s>}``."""

    type: Literal["ping"]


class SetState(_Msg):
    type: Literal["set_state"]
    state: Literal["ready", "not_ready", "logged_out"]
    reason: str = Field("", max_length=64)


class UsePhone(_Msg):
    """Work from another phone until logging out (hot-desking): an extension (digits) or a
    dial string such as ``PJSIP/1001``; the ACD rings it from then on."""

    type: Literal["use_phone"]
    phone: str = Field(pattern=r"^([0-9]{2,12}|(PJSIP|SIP|IAX2|Local)/[A-Za-z0-9_.@+#*-]{1,64})$")


class Hangup(_Msg):
    type: Literal["hangup"]


class Hold(_Msg):
    type: Literal["hold"]


class Resume(_Msg):
    type: Literal["resume"]


class Transfer(_Msg):
    """Blind transfer of the caller; the agent's leg ends."""

    type: Literal["transfer"]
    target: Target


class Consult(_Msg):
    """Put the caller on hold and call the target (agent or number) for a word first."""

    type: Literal["consult"]
    target: Target


class ConsultComplete(_Msg):
    """Join the caller to the consulted party; the agent's leg ends."""

    type: Literal["consult_complete"]


class ConsultCancel(_Msg):
    """Hang up the consulted party and take the caller back."""

    type: Literal["consult_cancel"]


class Conference(_Msg):
    """Bring a third party (agent or number) into the call with the caller and agent."""

    type: Literal["conference"]
    target: Target


class Recording(_Msg):
    type: Literal["recording"]
    action: Literal["pause", "resume"]


class WrapUp(_Msg):
    type: Literal["wrap_up"]
    call_id: str = Field(min_length=1, max_length=64)
    disposition: Literal["resolved", "follow_up", "complaint", "order_help", "info", "other"]
    notes: str = Field("", max_length=2000)


class CreateTask(_Msg):
    """A follow-up task. With ``call_id`` (the agent's current or last call) the account, and
    the phone when none is given, come from that call: the page never sees the full account."""

    type: Literal["create_task"]
    text: str = Field(min_length=1, max_length=1000)
    account: str = Field("", pattern=r"^[0-9]{0,16}$")
    phone: str = Field("", pattern=r"^[0-9+*#]{0,32}$")
    #: the agent's current or last call ("" for none); it is compared, never sent anywhere
    call_id: str = Field("", max_length=64)
    #: unix seconds; none means "no deadline"
    due_at: float | None = None
    #: who should do it (default: the agent who creates it)
    agent_id: str = Field("", pattern=r"^[A-Za-z0-9_.-]{0,32}$")


class ClickToCall(_Msg):
    """Ring the agent, then dial ``number``. With ``call_id`` (the agent's current or last
    call) the account comes from that call, and so does the number when none is given."""

    type: Literal["click_to_call"]
    number: str = Field("", pattern=r"^[0-9+*#]{0,32}$")
    account: str = Field("", pattern=r"^[0-9]{0,16}$")
    #: the agent's current or last call ("" for none); it is compared, never sent anywhere
    call_id: str = Field("", max_length=64)

    @model_validator(mode="after")
    def _number_or_call(self) -> ClickToCall:
        if not self.number and not self.call_id:
            raise ValueError("give number, or call_id to call that call's customer back")
        return self


class _AboutCustomer(_Msg):
    """A request about one customer: ``account``, or the customer of ``call_id`` (the agent's
    current or last call); at least one must be given."""

    account: str = Field("", pattern=r"^[0-9]{0,16}$")
    #: the agent's current or last call ("" for none); it is compared, never sent anywhere
    call_id: str = Field("", max_length=64)

    @model_validator(mode="after")
    def _account_or_call(self) -> Self:
        if not self.account and not self.call_id:
            raise ValueError("give account or call_id")
        return self


class SendMessage(_AboutCustomer):
    """A statement, the day's trade confirmations or a note to the customer, through the outbox
    (fax, e-mail or SMS). The address comes from the back office (SMS: the first registered
    phone; e-mail: the address on file); a fax goes to ``fax``, which the agent gives."""

    type: Literal["send_message"]
    channel: Literal["sms", "email", "fax"]
    template: Literal["statement", "confirmations", "note"]
    #: the note's text (a note needs one; statements and confirmations take none)
    text: str = Field("", max_length=500)
    #: the fax number for ``channel`` fax (required there): digits and ``+`` only
    fax: str = Field("", pattern=FAX_NUMBER)

    @model_validator(mode="after")
    def _complete(self) -> SendMessage:
        if self.channel == "fax" and not self.fax:
            raise ValueError("a fax needs the fax number (fax)")
        if self.channel != "fax" and self.fax:
            raise ValueError("fax goes with the fax channel only")
        if self.template == "note" and not self.text.strip():
            raise ValueError("a note needs its text")
        if self.template != "note" and self.text:
            raise ValueError("text goes with a note only")
        return self


class Deliveries(_AboutCustomer):
    """The customer's outbox messages (statements, notes, the financial secretary's notices),
    newest first, with their delivery state."""

    type: Literal["deliveries"]
    limit: int = Field(50, ge=1, le=200)


class Subscriptions(_AboutCustomer):
    """The customer's active financial-secretary subscriptions."""

    type: Literal["subscriptions"]


class Subscribe(_AboutCustomer):
    """Subscribe the customer to notices of ``kind`` by ``channel``. Price alerts need ``code``
    and ``price``; fax needs ``fax``; quiet hours are both given or neither."""

    type: Literal["subscribe"]
    kind: Literal["fill", "fund", "price_above", "price_below", "ipo", "daily_summary"]
    channel: Literal["sms", "email", "fax"]
    code: str = Field("", pattern=r"^([0-9]{6})?$")
    #: the price level, as text (never a float): above zero, at most 2 decimals
    price: str = Field("", pattern=r"^([0-9]{1,9}(\.[0-9]{1,2})?)?$")
    fax: str = Field("", pattern=FAX_NUMBER)
    quiet_start: str = Field("", pattern=HHMM)
    quiet_end: str = Field("", pattern=HHMM)

    @model_validator(mode="after")
    def _consistent(self) -> Subscribe:
        price_alert = self.kind in ("price_above", "price_below")
        if price_alert and not (self.code and self.price):
            raise ValueError("a price alert needs code and price")
        if not price_alert and (self.code or self.price):
            raise ValueError("code and price go with price alerts only")
        if (self.channel == "fax") != bool(self.fax):
            raise ValueError("fax (the number) goes with the fax channel, and it needs one")
        if bool(self.quiet_start) != bool(self.quiet_end):
            raise ValueError("quiet hours need both quiet_start and quiet_end")
        return self


class Unsubscribe(_AboutCustomer):
    """End one of the customer's subscriptions."""

    type: Literal["unsubscribe"]
    subscription_id: int = Field(ge=1)


class Contacts(_Msg):
    """Recent inbound contacts (mail, fax), newest first; ``state`` filters."""

    type: Literal["contacts"]
    state: Literal["new", "taken", "done", ""] = ""
    limit: int = Field(50, ge=1, le=200)


class TakeContact(_Msg):
    """The agent takes an inbound contact (it was ``new``, or already theirs)."""

    type: Literal["take_contact"]
    contact_id: str = Field(pattern=CONTACT_ID)


class CloseContact(_Msg):
    """The contact is dealt with (``done``)."""

    type: Literal["close_contact"]
    contact_id: str = Field(pattern=CONTACT_ID)


class Directory(_Msg):
    """Who and what a call may go to (the transfer / consult / conference dialog): the other
    agents with their seat state (ready ones first; ``available`` only when a transfer to them
    can succeed now), the queues with how many wait, and the saved numbers
    (``console.directory_numbers``). A saved number still passes the dial rules when used."""

    type: Literal["directory"]


class Wallboard(_Msg):
    """Supervisor: the wallboard now, and ``wallboard`` events from then on."""

    type: Literal["wallboard"]


class Spy(_Msg):
    """Supervisor: ring the supervisor's phone and listen / whisper / barge on an agent."""

    type: Literal["spy"]
    agent_id: str = Field(pattern=AGENT_ID)
    mode: Literal["listen", "whisper", "barge"]


class SpyStop(_Msg):
    """Supervisor: stop listening / whispering / barging on an agent's call."""

    type: Literal["spy_stop"]
    agent_id: str = Field(pattern=AGENT_ID)


class ForceState(_Msg):
    type: Literal["force_state"]
    agent_id: str = Field(pattern=AGENT_ID)
    state: Literal["ready", "not_ready", "logged_out"]
    reason: str = Field("", max_length=64)


#: the longest period an ``intervals`` request may ask for, in days (both ends included)
MAX_INTERVAL_DAYS = 31
#: a calendar date, YYYY-MM-DD
ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
#: an optional date: YYYY-MM-DD or ""
OPTIONAL_DATE = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$"


class Intervals(_Msg):
    """Supervisor: queue figures per interval (service level, offered, answered, abandoned,
    ASA) of the days ``from`` to ``to`` (both included, the site's days): 30-minute intervals
    for one day, one per day for longer, at most :data:`MAX_INTERVAL_DAYS` days; today is cut
    at now. Reply (``seats/intervals.py``): {from, to, step_s, until, target_shares: {queue:
    share}, intervals: [{start, end, queues: [IntervalFigures], total: IntervalFigures}]},
    times the server's unix seconds; IntervalFigures {queue (null in the total), target_s,
    offered, answered, answered_in_target, abandoned, abandon_rate, service_level, asa_s}."""

    type: Literal["intervals"]
    from_: str = Field(alias="from", pattern=ISO_DATE)
    to: str = Field(pattern=ISO_DATE)

    @field_validator("from_", "to")
    @classmethod
    def _real_date(cls, value: str) -> str:
        try:
            dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from exc
        return value

    @model_validator(mode="after")
    def _period(self) -> Intervals:
        days = (self.last - self.first).days + 1
        if days < 1:
            raise ValueError("to must be on or after from")
        if days > MAX_INTERVAL_DAYS:
            raise ValueError(f"at most {MAX_INTERVAL_DAYS} days at a time, not {days}")
        return self

    @property
    def first(self) -> dt.date:
        return dt.date.fromisoformat(self.from_)

    @property
    def last(self) -> dt.date:
        return dt.date.fromisoformat(self.to)


# -- tasks (callcenter/tasks/; seats/tasks.py) -----------------------------------------------------

#: a team is a queue's name (``QueueSettings.name``)
TEAM = r"^([a-z0-9_-]{1,32})?$"


class Tasks(_Msg):
    """The tasks a console shows. ``mine``: assigned to or claimed by the agent; ``team``: not
    assigned, not claimed, of a queue the agent serves; ``all`` (supervisors): filtered by
    ``state``, ``strategy``, ``agent_id``, ``team``, ``overdue`` (finished ones only when
    ``state`` names one). Reply: {tasks: [ConsoleTask]} (docs/console-protocol.md)."""

    type: Literal["tasks"]
    view: Literal["mine", "team", "all"] = "mine"
    state: Literal["", "open", "claimed", "dialing", "reached", "retry", "review", "done",
                   "failed", "cancelled"] = ""
    strategy: str = Field("", pattern=r"^[a-z0-9_-]{0,64}$")
    agent_id: str = Field("", pattern=r"^[A-Za-z0-9_.-]{0,32}$")
    team: str = Field("", pattern=TEAM)
    overdue: bool = False


class _OneTask(_Msg):
    task_id: int = Field(ge=1)


class ClaimTask(_OneTask):
    """Take a task of one's own or of one's team (two agents racing: one gets it, the other
    ``invalid_state``). Reply: {task}."""

    type: Literal["claim_task"]


class ReleaseTask(_OneTask):
    """Give a claimed task back to its team, not done. Reply: {task}."""

    type: Literal["release_task"]


class TaskCall(_OneTask):
    """Preview dialling: call the task's customer now (the agent's phone rings first). The
    dialer checks its rules (do-not-call, opt-outs, the calling window...). Reply: {call_id}."""

    type: Literal["task_call"]


class TaskOutcome(_OneTask):
    """Record what came of a task: ``values`` by the task's form (``fields``), checked by the
    engine (``malformed`` names the field). Reply: {task}."""

    type: Literal["task_outcome"]
    values: dict[str, str | bool | int | float | None] = Field(max_length=40)


class RescheduleTask(_OneTask):
    """A new time for a task (unix seconds) and an optional note. Reply: {task}."""

    type: Literal["reschedule_task"]
    due_at: float = Field(gt=0)
    note: str = Field("", max_length=500)


class AssignTask(_OneTask):
    """Supervisor: give a task to an agent, or to a team (a queue: anyone there may claim it).
    Reply: {task}."""

    type: Literal["assign_task"]
    agent_id: str = Field("", pattern=r"^[A-Za-z0-9_.-]{0,32}$")
    team: str = Field("", pattern=TEAM)

    @model_validator(mode="after")
    def _someone(self) -> AssignTask:
        if not self.agent_id and not self.team:
            raise ValueError("give agent_id or team")
        return self


class CancelTask(_OneTask):
    """Supervisor: end a task that is not finished. Reply: {task}."""

    type: Literal["cancel_task"]
    reason: str = Field("", max_length=200)


class DialerJoin(_Msg):
    """Progressive dialling on: the dialer calls the agent's team's tasks for them while they
    are ready. Reply: {dialer: true}."""

    type: Literal["dialer_join"]


class DialerLeave(_Msg):
    """Progressive dialling off. Reply: {dialer: false}."""

    type: Literal["dialer_leave"]


class TaskProgress(_Msg):
    """Supervisor: tasks by state per strategy and per agent (open ones, and those finished
    today), and ``task_progress`` events from then on. Reply: TaskProgress."""

    type: Literal["task_progress"]


class TaskReport(_Msg):
    """Supervisor: the task report of the days ``from`` to ``to`` (both included, the site's
    days; at most :data:`MAX_INTERVAL_DAYS`). Reply: ``tasks/report.py`` ``TaskReport.data()``."""

    type: Literal["task_report"]
    from_: str = Field(alias="from", pattern=ISO_DATE)
    to: str = Field(pattern=ISO_DATE)

    @model_validator(mode="after")
    def _period(self) -> TaskReport:
        try:
            days = (dt.date.fromisoformat(self.to) - dt.date.fromisoformat(self.from_)).days + 1
        except ValueError as exc:
            raise ValueError(f"not a date (YYYY-MM-DD): {exc}") from exc
        if not 1 <= days <= MAX_INTERVAL_DAYS:
            raise ValueError(f"from..to: 1 to {MAX_INTERVAL_DAYS} days, not {days}")
        return self


class Recordings(_Msg):
    """Supervisors: recordings by customer (the whole account), agent, an order's or
    transfer's number, and days (the site's dates, both included); newest first. Each as
    ``recordings.store.Recording.view`` with ``account_masked`` for the account, no digest."""

    type: Literal["recordings"]
    account: str = Field("", pattern=r"^[0-9A-Za-z]{0,32}$")
    agent_id: str = Field("", pattern=r"^([A-Za-z0-9_.-]{1,32})?$")
    reference: str = Field("", pattern=r"^[0-9A-Za-z-]{0,32}$")
    day_from: str = Field("", pattern=OPTIONAL_DATE)
    day_to: str = Field("", pattern=OPTIONAL_DATE)
    limit: int = Field(50, ge=1, le=200)

    @model_validator(mode="after")
    def _days(self) -> Recordings:
        try:
            first, last = self.day_from_date(), self.day_to_date()
        except ValueError as exc:
            raise ValueError(f"not a date (YYYY-MM-DD): {exc}") from exc
        if first is not None and last is not None and last < first:
            raise ValueError("day_to is before day_from")
        return self

    def day_from_date(self) -> dt.date | None:
        return dt.date.fromisoformat(self.day_from) if self.day_from else None

    def day_to_date(self) -> dt.date | None:
        return dt.date.fromisoformat(self.day_to) if self.day_to else None


class RecordingPlay(_Msg):
    """Supervisors: a one-time ticket to fetch a recording's audio (``seats/playback.py``):
    {recording, url, expires_s, access}. Fetching it logs the playback."""

    type: Literal["recording_play"]
    recording_id: int = Field(ge=1, le=2**62)


TASK_REQUESTS = (Tasks, ClaimTask, ReleaseTask, TaskCall, TaskOutcome, RescheduleTask,
                 AssignTask, CancelTask, DialerJoin, DialerLeave, TaskProgress, TaskReport)


Request = Annotated[
    Login | Ping | SetState | UsePhone | Hangup | Hold | Resume | Transfer | Consult
    | ConsultComplete | ConsultCancel | Conference | Recording | WrapUp | CreateTask
    | ClickToCall | SendMessage
    | Deliveries | Subscriptions | Subscribe | Unsubscribe | Contacts | TakeContact
    | CloseContact | Directory | Wallboard | Spy | SpyStop | ForceState | Intervals
    | Tasks | ClaimTask | ReleaseTask | TaskCall | TaskOutcome | RescheduleTask | AssignTask
    | CancelTask | DialerJoin | DialerLeave | TaskProgress | TaskReport | Recordings
    | RecordingPlay,
    Field(discriminator="type"),
]
REQUEST: TypeAdapter[Request] = TypeAdapter(Request)

#: who may send what (login and ping: anyone; the server checks before the backend sees it)
AGENT_COMMANDS = frozenset({
    "set_state", "use_phone", "hangup", "hold", "resume", "transfer", "consult",
    "consult_complete", "consult_cancel", "conference", "recording", "wrap_up", "create_task",
    "click_to_call",
    "send_message", "deliveries", "subscriptions", "subscribe", "unsubscribe", "contacts",
    "take_contact", "close_contact", "directory",
    "tasks", "claim_task", "release_task", "task_call", "task_outcome", "reschedule_task",
    "dialer_join", "dialer_leave",
})
SUPERVISOR_COMMANDS = AGENT_COMMANDS | {"wallboard", "spy", "spy_stop", "force_state",
                                        "intervals", "assign_task", "cancel_task",
                                        "task_progress", "task_report", "recordings",
                                        "recording_play"}
ALLOWED: dict[Role, frozenset[str]] = {
    Role.AGENT: AGENT_COMMANDS,
    Role.SUPERVISOR: SUPERVISOR_COMMANDS,
    Role.ADMIN: SUPERVISOR_COMMANDS,
}


# -- replies and events --------------------------------------------------------------------------


class Result(BaseModel):
    """A request's answer; ``data`` per command (docs/console-protocol.md), e.g. ``ping``:
    ``{"time": 1718000000.5}``, the server's unix time in seconds."""

    v: Literal[1] = 1
    type: Literal["result"] = "result"
    id: str
    data: dict[str, Any] = {}


class Error(BaseModel):
    v: Literal[1] = 1
    type: Literal["error"] = "error"
    id: str = ""
    code: ErrorCode
    message: str


class Event(BaseModel):
    """Pushed by the server. ``event`` names and their ``data``:

    - ``seat``: {agent_id, name, state, reason, since, call_id ("" when none)}
    - ``call_offered``: the screen pop, {call_id, queue, waited_s, customer: {name, tier,
      account_masked, balance_summary: {currency, cash, market_value, total}} | null,
      ivr: {path, last_failure, lang}, recent_contacts: [{at, kind, summary}], caller: masked,
      callback: bool, customer_pending: bool}. Always the first event of a call, pushed as the
      phone starts ringing; with ``customer_pending`` the back office's part (customer and
      recent contacts) follows as ``call_customer``. The full account never leaves the
      engine: commands about this customer name the ``call_id`` instead.
    - ``call_customer``: {call_id, customer, recent_contacts}: the back office's part of the
      screen pop, after ``call_offered``
    - ``call_connected``: {call_id, recording: bool}
    - ``call_held``, ``call_resumed``: {call_id}
    - ``recording``: {call_id, state: "on" | "paused"}
    - ``consult``: {call_id, state, target}: ``state`` "ringing" (the consult was dialled),
      "talking" (the consulted party answered), "ended" (the consulted party's leg hung up:
      no answer, they hung up, or consult_cancel); ``target`` the value dialled (agent id or
      number; "" if unknown)
    - ``conference``: {call_id, target}: a third party joined the call
    - ``monitor``: {supervisor_id, agent_id, call_id, mode ("listen" | "whisper" | "barge"),
      state ("on" | "off")}: a supervisor started or stopped monitoring an agent's call; to the
      supervisor and to the agent (monitoring is shown on both sides); ``spy_stop`` ends it
    - ``call_ended``: {call_id, wrap_up_s, answered: bool, disposition_required: bool}
      (``answered`` false: the call ended while ringing; nothing to wrap up;
      ``disposition_required``: the seat stays in wrap-up until the wrap-up is saved, and
      ``set_state`` out of it answers ``disposition_required``)
    - ``wrap_up_overdue``: {agent_id, call_id, since}: the wrap-up time is over and the
      required disposition is not saved (to the agent and to supervisors)
    - ``queues``: {queues: [QueueFigures]}
    - ``wallboard``: {queues: [QueueFigures], seats: [seat data and caller (the caller's masked
      number, "" when none), talking_since (when the call was answered, null while it rings or
      with no call)], waiting: [{name, waiting:
      [{call_id, tier, arrived_at, waited_s, callback, ringing, lang, reason: {code, until,
      agent, skill, agents}}]}], agents: [AgentFigures], alerts}: the waiting callers per queue in
      the order they will be served, each with why it still waits (``routing.WaitCode``
      values: queue_closed, ringing, others_ahead, manager_only, vip_team_only,
      no_agent_with_skill, excluded_all, all_busy); ``agents`` today's figures per agent
      (``acd.figures.AgentFigures``: {agent_id, handled, aht_s (or null), talk_s, wrap_up_s,
      ringing_s, ready_s, not_ready_s, logged_in_s, occupancy (0..1 or null), no_answers};
      agents with nothing today are left out); ``alerts`` {queue: {longest_wait_s,
      service_level}}: the wallboard alerts when a queue's longest wait passes the first or
      its service level falls below the second (``QueueSettings.alert_*``)
    - ``session_ended``: {reason} (logged out elsewhere, forced by a supervisor)
    - ``delivery``: {message_id, channel, account_masked, ref, state, report, reason, at}: an
      outbox message moved (``state`` queued | sent | delivered | failed, ``report`` the channel
      server's report that moved it or null). To supervisors, and to the agent who asked for
      the message when known.
    - ``contact``: an inbound contact (mail, fax) arrived or changed hands, to every agent:
      {contact_id, channel, sender, subject, text, text_truncated, attachment_name, pages,
      account_masked, received_at, state ("new" | "taken" | "done"), agent_id}

    - ``task``: a task changed (ConsoleTask, without ``customer``): to its agent, the one who
      claimed it, its team's agents while it is open to the team, and supervisors
    - ``task_deadline``: {kind ("soon" | "overdue"), task: ConsoleTask}: a task's deadline is
      near (``console.task_alert_before_s``) or passed; to supervisors, once each
    - ``task_progress``: TaskProgress (a state: each replaces the one before), to supervisors

    QueueFigures: {name, waiting, longest_wait_s, answered, abandoned, service_level (0..1 or
    null), asa_s (or null), aht_s (or null), target_s, target_share (0..1: the share of calls
    to answer within target_s)}.
    """

    v: Literal[1] = 1
    type: Literal["event"] = "event"
    event: str
    data: dict[str, Any] = {}
