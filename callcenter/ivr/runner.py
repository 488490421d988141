"""Driving the interpreter: on a real call (``AgiFlowIO``) or from a script (``ScriptFlowIO``).

``drive`` feeds the interpreter's steps to a ``FlowIO`` and actions to the ``ActionRunner``, and
hands timeline notes to ``note`` as they happen. Digits pressed during a prompt that does not
collect them are kept (type-ahead) and become the start of the next answer.

On a live channel an answer is collected by Asterisk in one command (``GET DATA``: the question's
last prompt with barge-in, then every key until ``max_digits``, ``#`` or the timeout). Between
two AGI commands Asterisk reads and drops the caller's keys (``res_agi``'s idle loop), so
collecting key by key (``WAIT FOR DIGIT``) lost the keys pressed while the engine was busy: 2-21%
of calls under SIP load. Keys pressed between two questions (after a barge-in, while the engine
thinks) come back through the key tap (``telephony/key_tap.py``) and join the answer in the order
they were typed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from callcenter.errors import AgiHangup, BrokerError, BrokerRefusal, CallCenterError
from callcenter.ivr.interpreter import (
    Ask,
    Call,
    Digits,
    End,
    Interpreter,
    ListEnd,
    Outcome,
    Proof,
    RecordMessage,
    SayStep,
    Transfer,
)
from callcenter.telephony.agi import Channel
from callcenter.telephony.pbx import RECORDINGS

log = logging.getLogger(__name__)

DIGIT_KEYS = "0123456789*#"
Notes = Callable[[str, Mapping[str, str]], None]


class ProofRecorder(Protocol):
    """Where a call's proof recordings are written and filed (``engine.py``)."""

    def path(self, call_id: str, key: str) -> str: ...
    async def started(self, call_id: str, key: str, path: str) -> int: ...
    async def ended(self, row: int) -> None: ...


class ActionRunner(Protocol):
    async def __call__(self, call: Call) -> Outcome: ...


class FlowIO(Protocol):
    async def ask(self, step: Ask) -> Digits: ...
    async def say(self, step: SayStep) -> None: ...
    async def record(self, step: RecordMessage) -> str | None: ...
    async def proof(self, step: Proof) -> None: ...
    async def finish(self, step: End | Transfer) -> None: ...


async def run_action(actions: Mapping[str, Callable[[Call], Awaitable[Any]]],
                     call: Call) -> Outcome:
    """Run one action; a refusal or a back-office failure becomes an outcome, not a crash."""
    handler = actions.get(call.action)
    if handler is None:
        return Outcome("error", params={"reason": "unknown action"})
    try:
        return Outcome("ok", await handler(call))
    except ListEnd:
        return Outcome("end")
    except BrokerRefusal as refusal:
        return Outcome(refusal.code, params=dict(refusal.params))
    except (BrokerError, CallCenterError) as exc:
        log.warning("action %s failed: %s", call.action, type(exc).__name__)
        return Outcome("error", params={"reason": type(exc).__name__})
    except Exception:
        # A bug or an unexpected store error: the caller hears an apology, not silence.
        log.exception("action %s failed unexpectedly", call.action)
        return Outcome("error", params={"reason": "internal"})


async def drive(interp: Interpreter, io: FlowIO, actions: ActionRunner,
                note: Notes) -> End | Transfer:
    """Run a flow to its end; return how it ended."""
    gen = interp.run()
    step = next(gen)
    while True:
        for kind, detail in interp.drain_notes():
            note(kind, detail)
        reply: Any = None
        prompts = getattr(step, "prompts", ())
        if prompts:
            # What the caller is played, in order: agents and tests read it; never a secret.
            note("ivr.prompts", {"ids": " ".join(prompts)})
        if isinstance(step, Transfer):
            note("ivr.handoff", {"queue": step.queue, **step.context})
        match step:
            case Ask():
                reply = await io.ask(step)
            case SayStep():
                await io.say(step)
            case Call():
                reply = await actions(step)
            case RecordMessage():
                reply = await io.record(step)
            case Proof():
                note("ivr.proof", {"state": "start" if step.key else "end"})
                await io.proof(step)
            case End() | Transfer():
                await io.finish(step)
                gen.close()
                return step
        step = gen.send(reply)


def asterisk_collects(step: Ask) -> bool:
    """Asterisk can collect this answer in one ``GET DATA`` (its only terminator is ``#``)."""
    return step.terminator in (None, "#")


def answered(step: Ask, keys: str) -> tuple[Digits, str] | None:
    """The answer, if the keys typed so far complete it, and the keys typed after it (none
    after a back or agent key: the caller leaves the question, keys typed into it go with it).

    An answer that fills a question ended by its terminator without it is the start of an
    entry too long (the interpreter asks one digit more than it allows): the rest of that
    entry, up to and with its terminator, goes with it, never into the next answer."""
    if keys and keys[0] in step.first_keys:
        return Digits(keys[0]), ""
    if step.terminator:
        end = keys.find(step.terminator, 0, step.max_digits + 1)
        if end >= 0:
            return Digits(keys[:end]), keys[end + 1:]
    if len(keys) >= step.max_digits:
        rest = keys[step.max_digits:]
        if step.terminator:
            rest = rest[rest.find(step.terminator) + 1:] if step.terminator in rest else ""
        return Digits(keys[:step.max_digits]), rest
    return None


def from_get_data(step: Ask, before: str, text: str, timed_out: bool,
                  asked: int) -> tuple[Digits, str]:
    """The answer (and any keys after it) from the keys typed before ``GET DATA`` (``before``)
    and what it collected: ``text`` without the ``#`` that ended it, ``timed_out`` when the
    caller stopped typing, ``asked`` the digits it was asked for.

    A key of ``first_keys`` pressed first (back, agent) is the answer on its own: the caller
    pressed it and then waited (or pressed ``#``). A ``#`` that ended the input early is part of
    the answer when ``#`` is not the step's terminator (a menu key, or a key the validator
    refuses), as key-by-key collection had it.
    """
    keys = before + text
    if not timed_out and len(text) < asked:
        keys += "#"  # what ended it early; GET DATA leaves it out
    done = answered(step, keys)
    if done is not None:
        return done
    return Digits(keys, timed_out=timed_out), ""


def sound(prompt: str) -> str:
    """``zh/welcome`` -> the Asterisk sound name ``callcenter/zh/welcome``."""
    return f"callcenter/{prompt}"


class KeysAhead(Protocol):
    """Keys the caller typed while no AGI command ran (``telephony/key_tap.py``)."""

    def ahead(self) -> str: ...
    async def before_last(self, answer: str) -> str: ...
    def seal(self) -> None: ...


class NoKeysAhead:
    """Without the key tap: keys typed between two commands are not known."""

    def ahead(self) -> str:
        return ""

    async def before_last(self, answer: str) -> str:
        return ""

    def seal(self) -> None:
        return None


class AgiFlowIO:
    """Steps on a live channel: barge-in on every prompt, type-ahead kept between steps.

    ``typed`` gives back the keys Asterisk dropped between two commands: those typed since the
    last command (``ahead``) start the next answer, those that turn out to have come before the
    command just answered (``before_last``) go in front of what it collected."""

    def __init__(self, channel: Channel, call_id: str, typed: KeysAhead | None = None,
                 proofs: ProofRecorder | None = None) -> None:
        self.channel = channel
        self.call_id = call_id
        self.typed: KeysAhead = typed or NoKeysAhead()
        self.pending = ""    # digits pressed ahead of the question that wants them
        #: where proof recordings go and are filed (None: not recorded)
        self.proofs = proofs
        self._proof: int | None = None   # its row while one runs

    async def say(self, step: SayStep) -> None:
        self.pending += self.typed.ahead()
        if self.pending:
            return  # the caller is already answering ahead: do not make them listen
        digit = await self.channel.play([sound(p) for p in step.prompts], DIGIT_KEYS) or ""
        self.pending += await self.typed.before_last(digit) + digit

    async def ask(self, step: Ask) -> Digits:
        ahead = self.typed.ahead()
        got = "" if step.fresh else self.pending + ahead
        self.pending = ""
        answer = await self._collect(step, got)
        if step.secret:
            self.pending = ""  # keys after a password never reach a menu (or its timeline)
            self.typed.seal()
        return answer

    async def _late(self, answer: str, drop: bool) -> str:
        """Keys typed before the command just answered (with ``answer``); dropped on a question
        that must be heard (``fresh``) when they came before it."""
        late = await self.typed.before_last(answer)
        return "" if drop else late

    def _done(self, step: Ask, keys: str) -> Digits | None:
        done = answered(step, keys)
        if done is None:
            return None
        answer, self.pending = done
        return answer

    async def _collect(self, step: Ask, got: str) -> Digits:
        timeout_ms = int(step.timeout_s * 1000)
        if asterisk_collects(step):
            return await self._get_data(step, got, timeout_ms)
        if not got:
            digit = await self.channel.play([sound(p) for p in step.prompts], DIGIT_KEYS) or ""
            got = await self._late(digit, step.fresh) + digit
        while True:
            got += self.typed.ahead()
            done = self._done(step, got)
            if done is not None:
                return done
            key = await self.channel.wait_for_digit(timeout_ms)
            got += await self._late(key or "", False) + (key or "")
            if key is None:
                return self._done(step, got) or Digits(got, timed_out=True)

    async def _get_data(self, step: Ask, got: str, timeout_ms: int) -> Digits:
        """The whole answer in one ``GET DATA``: no key falls between two commands."""
        prompt, fresh = "", step.fresh
        if not got and step.prompts:
            *lead, last = step.prompts
            if lead:
                digit = await self.channel.play([sound(p) for p in lead], DIGIT_KEYS) or ""
                got = await self._late(digit, fresh) + digit + self.typed.ahead()
                fresh = False
            prompt = "" if got else sound(last)
        done = self._done(step, got)
        if done is not None:
            return done
        asked = step.max_digits - len(got)
        text, timed_out = await self.channel.get_data(prompt, timeout_ms, asked)
        answer, self.pending = from_get_data(step, got + await self._late(text, fresh), text,
                                             timed_out, asked)
        return answer

    async def record(self, step: RecordMessage) -> str | None:
        await self.channel.play([sound(p) for p in step.prompts], "")
        # Record() beeps, stops on '#' or 3 s of silence, and keeps what it has on hang-up (k).
        path = f"{RECORDINGS}/{self.call_id}-{step.kind}.wav"
        try:
            await self.channel.exec("Record", path, "3", str(step.max_seconds), "k")
        except AgiHangup:
            # Hanging up is how many callers finish a message: keep it. The flow goes on to
            # file it; its next prompt meets the hang-up and ends the session.
            log.info("caller hung up while recording a %s; keeping it", step.kind)
        return path

    async def proof(self, step: Proof) -> None:
        """MixMonitor on the caller's channel from the readback on (both directions: what the
        caller heard and said); StopMixMonitor at the end. The row is filed first, so a call
        that drops mid-proof still has its recording found and sealed."""
        if self.proofs is None:
            return
        if step.key is None:
            running, self._proof = self._proof, None
            if running is not None:
                await self.proofs.ended(running)
                await self.channel.exec("StopMixMonitor", "")
            return
        path = self.proofs.path(self.call_id, step.key)
        self._proof = await self.proofs.started(self.call_id, step.key, path)
        await self.channel.exec("MixMonitor", path)

    async def finish(self, step: End | Transfer) -> None:
        if step.prompts:
            await self.channel.play([sound(p) for p in step.prompts], "")
        if isinstance(step, Transfer):
            await self.channel.set_variable("CC_QUEUE", step.queue)
            # Leave AGI for the holding context; the ACD picks the call up from there.
            await self.channel.exec("Goto", "queue-hold", "s", "1")


class ScriptFlowIO:
    """``callcenter flows try``: keys from a DTMF script, prompts printed as text."""

    def __init__(self, dtmf: str, texts: Mapping[str, Mapping[str, str]],
                 out: Callable[[str], None]) -> None:
        self.keys = [k for k in dtmf if k in DIGIT_KEYS]
        self.texts = texts
        self.out = out

    def _speak(self, prompts: tuple[str, ...]) -> None:
        if not prompts:
            return
        words = []
        for prompt in prompts:
            lang, _, ident = prompt.partition("/")
            words.append(self.texts.get(ident, {}).get(lang, f"<{ident}>"))
        joined = "".join(words) if prompts[0].startswith("zh/") else " ".join(words)
        self.out(f"  ♪ {joined}")

    async def say(self, step: SayStep) -> None:
        self._speak(step.prompts)

    async def ask(self, step: Ask) -> Digits:
        self._speak(step.prompts)
        got = ""
        while self.keys:
            key = self.keys.pop(0)
            if step.terminator and key == step.terminator:
                break
            got += key
            if len(got) >= step.max_digits or (len(got) == 1 and got in step.first_keys):
                if step.terminator and got not in step.first_keys:
                    self._drop_rest(step.terminator)   # an entry too long: its rest too
                break
        else:
            if len(got) < step.max_digits:
                shown = "•" * len(got) if step.secret else got
                self.out(f"  ⌨ {shown or '(nothing)'} … timeout")
                return Digits(got, timed_out=True)
        self.out(f"  ⌨ {'•' * len(got) if step.secret else got}")
        return Digits(got)

    def _drop_rest(self, terminator: str) -> None:
        """The keys up to and with ``terminator`` (a script types an entry whole)."""
        if terminator in self.keys:
            del self.keys[:self.keys.index(terminator) + 1]
        else:
            self.keys.clear()

    async def proof(self, step: Proof) -> None:
        self.out("  ● (the proof recording starts)" if step.key
                 else "  ■ (the proof recording ends)")

    async def record(self, step: RecordMessage) -> str | None:
        self._speak(step.prompts)
        self.out(f"  ● (recording a {step.kind}, up to {step.max_seconds}s)")
        return f"try/{step.kind}.wav"  # no audio is recorded when trying a flow

    async def finish(self, step: End | Transfer) -> None:
        self._speak(step.prompts)
