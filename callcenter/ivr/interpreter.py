"""The flow interpreter: a sans-IO generator that walks a flow and asks its driver to do I/O.

``Interpreter.run()`` yields *steps* (``Ask``: play prompts then collect digits; ``Say``: play;
``Call``: run a back-office action; ``RecordMessage``; ``Transfer``; ``End``) and receives their
results through ``send``. The Asterisk driver (``ivr.runner``), ``callcenter flows try`` and the
unit tests all drive the same generator, so what an operator tries is what a caller gets.

Secrets (``collect`` with ``secret: true``) never enter the variables: they wait in a separate
slot for the next action, which receives them in ``Call.secrets``; the slot is wiped after it.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from callcenter.ivr import speech
from callcenter.ivr.flow_check import STAR_PROMPT, TOO_LONG_PROMPT, fail_target, ref_name
from callcenter.ivr.flow_model import (
    DECIMAL_VALIDATORS,
    Action,
    Branch,
    Collect,
    Condition,
    Confirm,
    Hangup,
    Hours,
    MenuNode,
    Node,
    Play,
    PromptItem,
    Queue,
    Record,
    Return,
    Say,
    Schedule,
    SetVars,
    SubFlow,
)
from callcenter.ivr.flowset import FlowSet

#: the languages a flow's ``title`` is given in (the screen pop shows the path in both)
LANGS: Final[tuple[Literal["zh", "en"], ...]] = ("zh", "en")

MAX_TRANSITIONS = 1000   # a runaway flow ends instead of spinning forever
MAX_SUBFLOW_DEPTH = 8

# -- steps (interpreter -> driver) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ask:
    """Play ``prompts`` (a key press interrupts them) and collect up to ``max_digits``."""

    prompts: tuple[str, ...]
    max_digits: int
    timeout_s: float
    terminator: str | None
    #: keys that end the collection at once when pressed first (back, agent)
    first_keys: str
    secret: bool = False
    #: drop keys pressed ahead: the caller must hear this question (an order's readback)
    fresh: bool = False


@dataclass(frozen=True, slots=True)
class SayStep:
    prompts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Call:
    action: str
    args: Mapping[str, Any]
    secrets: Mapping[str, SecretStr] = field(default_factory=dict, repr=False)
    #: which visit of a flow made the call: every entry into a flow (a sub-flow, a jump, the
    #: return to the caller's flow) is a new visit. What an action keeps for a later action of
    #: the same visit (a checked password) is not valid in another one.
    visit: int = 0


@dataclass(frozen=True, slots=True)
class RecordMessage:
    prompts: tuple[str, ...]
    kind: str
    max_seconds: int


@dataclass(frozen=True, slots=True)
class Transfer:
    prompts: tuple[str, ...]
    queue: str
    context: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class End:
    prompts: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Proof:
    """Start (``key``: the idempotency key of an order's or transfer's confirm) or end
    (``key`` None) the recording that proves it: from the readback the caller confirms, through
    the outcome read to them, to the next question (so never a password, which only a question
    collects), a hand-off to a queue or the end of the call."""

    key: str | None


Step = Ask | SayStep | Call | RecordMessage | Proof | Transfer | End

# -- results (driver -> interpreter) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Digits:
    text: str
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """An action's result: ``ok`` with a value, a refusal code with params, or ``error``."""

    outcome: str
    value: Any = None
    params: Mapping[str, str] = field(default_factory=dict)


# -- input validation ---------------------------------------------------------------------------

_AMOUNT = re.compile(r"^\d{1,12}(\*\d{1,2})?$")  # '*' is the decimal point on a phone keypad


def validate(validator: str, text: str) -> Any | None:
    """The typed value of a caller's input, or None if it is not acceptable."""
    if validator in ("price", "amount"):
        if not _AMOUNT.fullmatch(text):
            return None
        try:
            value = Decimal(text.replace("*", "."))
        except InvalidOperation:
            return None
        return value if value > 0 else None
    if not text.isdigit():
        return None
    if validator == "stock_code":
        return text if len(text) == 6 else None
    if validator == "quantity":
        number = int(text)
        return number if number > 0 else None
    if validator == "account":
        return text if 6 <= len(text) <= 16 else None
    if validator in ("password", "new_password"):
        return text if len(text) == 6 else None
    if validator == "rating":
        return int(text) if len(text) == 1 and "1" <= text <= "5" else None
    if validator == "phone":
        return text if 5 <= len(text) <= 16 else None
    if validator == "date_mmdd":
        return text if len(text) == 4 and _valid_mmdd(text) else None
    return text


def _valid_mmdd(text: str) -> bool:
    try:
        dt.date(2024, int(text[:2]), int(text[2:]))  # a leap year accepts 0229
    except ValueError:
        return False
    return True


# -- the interpreter ----------------------------------------------------------------------------


class ListEnd(Exception):
    """Raised by a list action (``next_item``) with nothing more: the node's ``end`` outcome."""


class FlowEnded(Exception):
    """Raised inside the walk to stop it; carries the final step."""

    def __init__(self, step: End | Transfer) -> None:
        super().__init__(step)
        self.step = step


class Interpreter:
    def __init__(
        self,
        flowset: FlowSet,
        flow: str,
        variables: Mapping[str, Any] | None = None,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        new_key: Callable[[], str] | None = None,
    ) -> None:
        self.fs = flowset
        self.flow = flowset.flows[flow]
        self.root = flow
        self.vars: dict[str, Any] = {"lang": "zh", **(variables or {})}
        self.secrets: dict[str, SecretStr] = {}
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.new_key = new_key or (lambda: uuid.uuid4().hex)
        self.notes: list[tuple[str, dict[str, str]]] = []
        self.path: list[str] = []
        self._menus: list[tuple[str, str]] = []       # (flow, node) visited menus, for "back"
        #: (flow, node to continue at, menus depth) for each sub-flow entered
        self._returns: list[tuple[str, str, int]] = []
        #: entries into a flow so far (``Call.visit``)
        self._flow_visit = 0
        self._transitions = 0
        #: a proof recording is running (``Proof``)
        self._proving = False

    # -- public ---------------------------------------------------------------------------------

    def drain_notes(self) -> list[tuple[str, dict[str, str]]]:
        notes, self.notes = self.notes, []
        return notes

    def run(self) -> Generator[Step, Any, None]:
        """Walk from the start node until the call ends or leaves for a queue."""
        self._note("ivr.flow", flow=self.flow.flow, version=self.fs.version)
        name: str | None = self.flow.start
        try:
            while True:
                assert name is not None
                name = yield from self._visit(name)
        except FlowEnded as ended:
            yield from self._end_proof()
            yield ended.step

    # -- walking --------------------------------------------------------------------------------

    def _visit(self, target: str) -> Generator[Step, Any, str]:
        self._transitions += 1
        if self._transitions > MAX_TRANSITIONS:
            self._note("ivr.end", reason="loop_guard")
            raise FlowEnded(End(self._prompts(("goodbye",)), "loop_guard"))
        if target.startswith("flow:"):
            self._enter_flow(target[5:])
            return self.flow.start
        node = self.flow.nodes[target]
        self.path.append(target if self.flow.flow == self.root else f"{self.flow.flow}.{target}")
        self._note("ivr.node", flow=self.flow.flow, node=target)
        return (yield from self._run_node(target, node))

    def _path_titles(self, lang: Literal["zh", "en"]) -> list[str]:
        """The flows the caller went through, in the words of their ``title`` (flows without
        one are left out): each once in a row, and the return from a sub-flow (back in the flow
        before it, as after a login) not said again."""
        titles: list[str] = []
        for step in self.path:
            flow = self.fs.flows.get(step.split(".", 1)[0] if "." in step else self.root)
            title = flow.title.get(lang, "") if flow is not None else ""
            if title and title not in titles[-2:]:
                titles.append(title)
        return titles

    def _enter_flow(self, name: str) -> None:
        self.flow = self.fs.flows[name]
        self._flow_visit += 1

    def _end_proof(self) -> Generator[Step, Any, None]:
        if self._proving:
            self._proving = False
            yield Proof(None)

    def _run_node(self, name: str, node: Node) -> Generator[Step, Any, str]:
        if isinstance(node, MenuNode | Collect | Confirm | Record):
            yield from self._end_proof()  # a question (a password's too) is never in a proof
        match node:
            case Play():
                yield SayStep(self._prompts(node.prompts))
                return node.next
            case MenuNode():
                return (yield from self._menu(name, node))
            case Collect():
                return (yield from self._collect(name, node))
            case Confirm():
                return (yield from self._confirm(name, node))
            case Action():
                return (yield from self._action(node))
            case Branch():
                for case in node.cases:
                    if self._test(case.when):
                        return case.goto
                return node.otherwise
            case SetVars():
                for var, value in node.values.items():
                    ref = ref_name(value)
                    self.vars[var] = self._resolve(ref) if ref is not None else value
                return node.next
            case SubFlow():
                if len(self._returns) >= MAX_SUBFLOW_DEPTH:
                    self._note("ivr.end", reason="subflow_depth")
                    raise FlowEnded(End(self._prompts(("goodbye",)), "subflow_depth"))
                self._returns.append((self.flow.flow, node.next, len(self._menus)))
                self._enter_flow(node.flow)
                return self.flow.start
            case Return():
                self.secrets.clear()  # nothing collected in a sub-flow outlives it
                if not self._returns:
                    self._note("ivr.end", reason="completed")
                    raise FlowEnded(End((), "completed"))
                flow, after, depth = self._returns.pop()
                del self._menus[depth:]  # the sub-flow's menus are no place to go back to
                self._enter_flow(flow)
                return after
            case Hours():
                return node.open if self._is_open(self.fs.schedules[node.schedule]) \
                    else node.closed
            case Queue():
                context = {var: _text(self._resolve(var)) for var in node.context}
                context["path"] = " ".join(self.path)
                for lang in LANGS:
                    titles = self._path_titles(lang)
                    if titles:
                        context[f"path_{lang}"] = " › ".join(titles)
                if "last_failure" in self.vars:
                    context.setdefault("last_failure", _text(self.vars["last_failure"]))
                self._note("ivr.transfer", queue=node.queue)
                raise FlowEnded(Transfer(self._prompts(node.prompts), node.queue, context))
            case Record():
                recording = yield RecordMessage(self._prompts(node.prompts), node.kind,
                                                node.max_seconds)
                self.vars["recording"] = recording
                self._note("ivr.recorded", kind=node.kind, saved="yes" if recording else "no")
                return node.next
            case Hangup():
                self._note("ivr.end", reason="hangup")
                raise FlowEnded(End(self._prompts(node.prompts), "hangup"))
        raise AssertionError(f"unhandled node {node!r}")  # pragma: no cover

    # -- input nodes -----------------------------------------------------------------------------

    def _limits(self, node: MenuNode | Collect | Confirm) -> tuple[float, int]:
        d = self.flow.defaults
        return (node.timeout or d.timeout,
                node.retries if node.retries is not None else d.retries)

    def _fail(self, name: str, node: MenuNode | Collect | Confirm, why: str) -> str:
        self.vars["last_failure"] = f"{why}:{name}"
        self._note("ivr.retries_exhausted", node=name, why=why)
        target = fail_target(self.flow, node)
        if target is None:
            self._note("ivr.end", reason="retries_exhausted")
            raise FlowEnded(End(self._prompts(("goodbye",)), "retries_exhausted"))
        return target

    def _retry_prompts(self, node: MenuNode | Collect, timed_out: bool) -> tuple[str, ...]:
        d = self.flow.defaults
        if timed_out:
            return self._prompts(node.timeout_prompts or d.timeout_prompts)
        return self._prompts(node.invalid_prompts or d.invalid_prompts)

    def _menu(self, name: str, node: MenuNode) -> Generator[Step, Any, str]:
        here = (self.flow.flow, name)
        if not self._menus or self._menus[-1] != here:
            self._menus.append(here)
        d = self.flow.defaults
        timeout, retries = self._limits(node)
        first_keys = "".join(k for k in (d.back_key, d.agent_key) if k and k not in node.options)
        lead: tuple[str, ...] = ()
        for _ in range(retries + 1):
            got: Digits = yield Ask(lead + self._prompts(node.prompts), 1, timeout, None,
                                    first_keys)
            key = got.text[:1]
            self._note("ivr.input", node=name, digits=key, timed_out=str(got.timed_out).lower())
            if key in node.options:
                return node.options[key]
            if key and key == d.back_key:
                return self._back(name, from_menu=True)
            if key and key == d.agent_key and d.agent:
                self.vars["last_failure"] = self.vars.get("last_failure", f"asked_agent:{name}")
                return d.agent
            lead = self._retry_prompts(node, not key)
        return self._fail(name, node, "menu")

    def _back(self, name: str, *, from_menu: bool) -> str:
        """From a menu: the menu before it. From an input: the menu that led to it."""
        if from_menu and len(self._menus) >= 2:
            self._menus.pop()
        elif from_menu or not self._menus:
            return name  # nowhere to go back to: hear this again
        flow, previous = self._menus[-1]
        # Going back into an outer flow leaves the sub-flows entered since.
        while self._returns and self.flow.flow != flow:
            outer, _, depth = self._returns.pop()
            del self._menus[max(depth, 1):]
            self._enter_flow(outer)
        self._enter_flow(flow)
        return previous

    def _collect(self, name: str, node: Collect) -> Generator[Step, Any, str]:
        """Keys: in a price or amount (``DECIMAL_VALIDATORS``) ``*`` is the decimal point and
        ``#`` on its own goes back; elsewhere the back key pressed first goes back. An entry
        ended by ``#`` is asked one digit longer than allowed, so one too long is heard and
        refused ("too long"), never cut (its rest would be the next answer)."""
        d = self.flow.defaults
        timeout, retries = self._limits(node)
        decimal = node.validator in DECIMAL_VALIDATORS
        back = "" if decimal or d.back_key == node.terminator else (d.back_key or "")
        asked = node.max_digits + 1 if node.terminator else node.max_digits
        lead: tuple[str, ...] = ()
        fresh = False
        for _ in range(retries + 1):
            got: Digits = yield Ask(lead + self._prompts(node.prompts), asked,
                                    timeout, node.terminator, back,
                                    secret=node.secret, fresh=fresh)
            text, fresh = got.text, False
            if node.secret:
                self._note("ivr.input", node=name, masked="yes", length=str(len(text)))
            else:
                self._note("ivr.input", node=name, digits=text,
                           timed_out=str(got.timed_out).lower())
            if back and text == back:
                return self._back(name, from_menu=False)
            if decimal and not text and not got.timed_out:
                return self._back(name, from_menu=False)   # '#' on its own
            if len(text) > node.max_digits:
                # Keys typed after it belong to the same entry: the question is heard afresh.
                lead, fresh = self._prompts((TOO_LONG_PROMPT,)), True
                continue
            if decimal and (text.startswith("*") or text.count("*") > 1):
                lead = self._prompts((STAR_PROMPT,))
                continue
            value = validate(node.validator, text) if len(text) >= node.min_digits else None
            if text and value is not None:
                if node.secret:
                    self.secrets[node.var] = SecretStr(text)
                else:
                    self.vars[node.var] = value
                return node.next
            lead = self._retry_prompts(node, not text)
        return self._fail(name, node, "input")

    def _confirm(self, name: str, node: Confirm) -> Generator[Step, Any, str]:
        timeout, retries = self._limits(node)
        if node.idempotent:
            # One key per visit of the confirm step: a retry keeps it, a new order gets another.
            self.vars["idempotency_key"] = self.new_key()
            self._proving = True
            yield Proof(self.vars["idempotency_key"])
        lead: tuple[str, ...] = ()
        for _ in range(retries + 1):
            got: Digits = yield Ask(lead + self._prompts(node.prompts), 1, timeout, None, "",
                                    fresh=True)
            key = got.text[:1]
            self._note("ivr.input", node=name, digits=key, timed_out=str(got.timed_out).lower())
            if key == node.yes_key:
                return node.yes
            if key == node.no_key:
                return node.no
            lead = self._prompts(self.flow.defaults.timeout_prompts if not key
                                 else self.flow.defaults.invalid_prompts)
        return self._fail(name, node, "confirm")

    # -- actions and values ---------------------------------------------------------------------

    def _action(self, node: Action) -> Generator[Step, Any, str]:
        args: dict[str, Any] = {}
        secrets: dict[str, SecretStr] = {}
        for arg, value in node.args.items():
            ref = ref_name(value)
            if ref is None:
                args[arg] = value
            elif ref.split(".")[0] in self.secrets:
                secrets[arg] = self.secrets[ref.split(".")[0]]
            else:
                args[arg] = self._resolve(ref)
        try:
            result: Outcome = yield Call(node.action, args, secrets, self._flow_visit)
        finally:
            self.secrets.clear()  # used once, whatever happened
        self._note("ivr.action", action=node.action, outcome=result.outcome)
        if result.outcome == "ok":
            if node.result:
                self.vars[node.result] = result.value
        else:
            self.vars["refusal"] = {"code": result.outcome, **result.params}
            self.vars["last_failure"] = f"{node.action}:{result.outcome}"
        target = node.on.get(result.outcome) or node.on.get("default")
        if target is None:
            return self._fail_action(node, result.outcome)
        return target

    def _fail_action(self, node: Action, outcome: str) -> str:
        self._note("ivr.unhandled_outcome", action=node.action, outcome=outcome)
        d = self.flow.defaults
        target = d.fail or d.agent
        if target is None:
            self._note("ivr.end", reason="unhandled_outcome")
            raise FlowEnded(End(self._prompts(("goodbye",)), "unhandled_outcome"))
        return target

    def _resolve(self, ref: str) -> Any:
        parts = ref.split(".")
        value: Any = self.vars.get(parts[0])
        for part in parts[1:]:
            if value is None:
                return None
            value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
        return value

    def _test(self, cond: Condition) -> bool:
        value = self._resolve(cond.var)
        if cond.is_set is not None:
            return (value is not None) == cond.is_set
        if cond.equals is not None:
            return _text(value) == _text(cond.equals)
        if cond.not_equals is not None:
            return _text(value) != _text(cond.not_equals)
        assert cond.is_in is not None
        return _text(value) in {_text(v) for v in cond.is_in}

    def _is_open(self, schedule: Schedule) -> bool:
        return schedule_open(schedule, self.clock())

    def _prompts(self, items: tuple[PromptItem, ...]) -> tuple[str, ...]:
        lang = str(self.vars.get("lang", "zh"))
        out: list[str] = []
        for n, item in enumerate(items):
            if isinstance(item, Say):
                value = self._resolve(item.value)
                if value is None:
                    continue  # nothing to say; the checker made sure the name exists
                out.extend(f"{lang}/{p}" for p in speak(item.say, value, lang))
                if item.say in PAUSE_AFTER and n + 1 < len(items):
                    out.append(f"{lang}/{speech.PAUSE}")  # a breath before the next field
            else:
                out.append(f"{lang}/{item}")
        return tuple(out)

    def _note(self, event: str, **detail: str) -> None:
        self.notes.append((event, detail))


#: values read back as a field (a name, a price, a count): a short pause follows when more comes
PAUSE_AFTER = frozenset({"price", "amount", "quantity", "integer", "attempts", "volume",
                         "percent", "change", "digits", "stock", "date", "time"})


def speak(kind: str, value: Any, language: str) -> list[str]:
    """Fragment prompt ids for a dynamic value (``ivr.speech``)."""
    lang = speech.check_lang(language)
    match kind:
        case "price":
            return speech.say_price(as_decimal(value), lang)
        case "amount":
            return speech.say_amount(as_decimal(value), lang)
        case "quantity":
            return speech.say_quantity(int(value), lang)
        case "integer":
            return speech.say_integer(int(value), lang)
        case "attempts":
            return speech.say_attempts(int(value), lang)
        case "volume":
            return speech.say_volume(int(value), lang)
        case "percent":
            return speech.say_percent(as_decimal(value), lang)
        case "change":
            return speech.say_change(as_decimal(value), lang)
        case "digits":
            return speech.say_digits(str(value), lang)
        case "stock":
            return speech.say_stock(str(value), lang)
        case "date":
            return speech.say_date(value, lang)
        case "time":
            return speech.say_time(value, lang)
        case "prompt":
            return [str(value)]
        case "refusal":
            return say_refusal(value, lang)
    raise ValueError(f"cannot say {kind!r}")


#: how each refusal parameter is spoken after the refusal's own prompt
_REFUSAL_PARAMS: dict[str, tuple[tuple[str, str], ...]] = {
    "bad_password": (("remaining", "attempts"),),
    "price_tick": (("tick", "price"),),
    "lot_size": (("lot", "quantity"),),
    "insufficient_funds": (("available", "amount"),),
    "insufficient_shares": (("sellable", "quantity"),),
    "over_available": (("available", "amount"),),
    "over_withdrawable": (("withdrawable", "amount"),),
    "cancel_closed": (("until", "time"),),
    "min_quantity": (("minimum", "quantity"),),
    "max_quantity": (("maximum", "quantity"),),
    "odd_lot": (("odd", "quantity"),),
    "daily_limit": (("remaining", "amount"),),
}
#: refusals whose parameters are a price band, read as one: 十元至十一元
_REFUSAL_RANGES: dict[str, tuple[str, str]] = {"price_limit": ("low", "high")}
#: refusals with a ``reason`` that has a prompt of its own: ``refusal/<code>_<reason>``
_REFUSAL_REASONS: dict[str, frozenset[str]] = {"cancel_closed": frozenset({"closing"})}


def say_refusal(refusal: Any, lang: speech.Lang) -> list[str]:
    """``refusal/<code>`` then the values that make it actionable (range, what is left)."""
    if not isinstance(refusal, Mapping) or "code" not in refusal:
        return ["refusal/error"]
    code = str(refusal["code"])
    reason = refusal.get("reason")
    if reason in _REFUSAL_REASONS.get(code, ()):
        return [f"refusal/{code}_{reason}"]
    out = [f"refusal/{code}"]
    if code in _REFUSAL_RANGES:
        low, high = (refusal.get(param) for param in _REFUSAL_RANGES[code])
        if low is not None and high is not None:
            out += speech.say_price_range(as_decimal(low), as_decimal(high), lang)
    for param, kind in _REFUSAL_PARAMS.get(code, ()):
        value = refusal.get(param)
        if kind == "time" and isinstance(value, str):
            value = dt.time.fromisoformat(value)        # refusal params are text: "09:30"
        if value is not None:
            out.extend(speak(kind, value, lang))
    return out


def as_decimal(value: Any) -> Decimal:
    """Money from a flow value: Decimal, int or text (never float)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str):
        return Decimal(value)
    raise TypeError(f"cannot speak {type(value).__name__} as money")


def _text(value: Any) -> str:
    if isinstance(value, SecretStr):
        raise TypeError("a secret never becomes text")
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def schedule_open(schedule: Schedule, when: dt.datetime) -> bool:
    """Whether ``schedule`` is open at ``when`` (an aware datetime): holidays, weekly windows,
    and make-up working days (which keep Monday's hours)."""
    now = when.astimezone(ZoneInfo(schedule.timezone))
    day = now.date().isoformat()
    if day in schedule.holidays:
        return False
    weekday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[now.weekday()]
    windows = schedule.weekly.get(weekday, ())
    if not windows and day in schedule.workdays:
        windows = schedule.weekly.get("mon", ())
    hhmm = now.strftime("%H:%M")
    return any(w[:5] <= hhmm < w[6:] for w in windows)
