"""The console backend in the engine: console commands in, ACD and call controls out, and the
ACD's happenings pushed to the right consoles (the screen pop, seat changes, the wallboard).

The screen pop is built here from the IVR's hand-off context (account, tier, path, last failure)
and the back office (name, balance summary), plus the customer's recent contacts from the store.
Account numbers and phone numbers are masked before they leave the engine; a console that acts
on the customer of a call (statement, task, call back) names the call, and the account and
number are looked up here, from the agent's own current or last call only.

A consultation's progress comes from Asterisk: the ACD notes the consulted party's channel on
``DialBegin``; this backend, listening to the same AMI events, pushes ``consult`` "talking"
when that channel enters a bridge (it answered) and "ended" when it hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiosqlite

from callcenter.acd.control import CallControl
from callcenter.acd.figures import LiveQueueFigures, QueueEvent, SeatEvent
from callcenter.acd.service import Acd, ActiveCall, SeatRuntime, Waiter
from callcenter.broker.interface import BackOffice
from callcenter.errors import BrokerError, ConsoleError, SeatStateError
from callcenter.seats import protocol as p
from callcenter.seats.console_api import AgentIdentity, ConsolePush
from callcenter.seats.state import DEFAULT_REASONS, IMPLIED_REASONS, SeatState
from callcenter.store import agents as directory
from callcenter.store.hotline import add_request
from callcenter.store.tx import transaction
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.ami_events import AmiEvent, BridgeEnter, DialBegin, Hangup

log = logging.getLogger(__name__)

#: reasons an agent may pick (the machine's own, like "no answer", are not offered)
AGENT_REASONS = [r for r in DEFAULT_REASONS if r not in IMPLIED_REASONS.values()]


def mask(value: str, keep: int = 4) -> str:
    return "" if not value else ("*" * max(0, len(value) - keep)) + value[-keep:]


@dataclass
class _Consult:
    """A consultation in progress, as the consoles were told: "ringing" or "talking"."""

    agent_id: str
    target: str
    state: str = "ringing"
    #: the consulted party's channel, once Asterisk named it (DialBegin)
    channel: str = ""


def _day_start(now: float) -> float:
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


class EngineConsoleBackend:
    def __init__(self, acd: Acd, db: aiosqlite.Connection, backoffice: BackOffice) -> None:
        self.acd = acd
        self.control = CallControl(acd)
        self.db = db
        self.backoffice = backoffice
        self.push: ConsolePush | None = None
        self.pops: dict[str, dict[str, Any]] = {}   # call id -> screen pop
        self._tasks: set[asyncio.Task[None]] = set()
        #: call id -> the consultation going on in it
        self.consults: dict[str, _Consult] = {}
        self.figures = self._new_figures(acd.clock())
        acd.listeners.append(self.on_acd)
        self._ami: AmiClient | None = None
        if acd.ami is not None:
            self.attach(acd.ami)

    def attach(self, ami: AmiClient) -> None:
        """Listen to Asterisk's events (after the ACD's own handler: it notes the channels)."""
        self._detach()
        self._ami = ami
        ami.add_handler(self.on_ami_event)

    def _detach(self) -> None:
        ami, self._ami = self._ami, None
        if ami is not None:
            with contextlib.suppress(ValueError):  # already gone: nothing to undo
                ami.remove_handler(self.on_ami_event)

    def _new_figures(self, now: float) -> LiveQueueFigures:
        return LiveQueueFigures(_day_start(now),
                                {q.name: q.target_s for q in self.acd.queues.values()},
                                seats={a: rt.seat.state for a, rt in self.acd.seats.items()})

    async def load_today(self) -> None:
        """Feed today's logged rows so the wallboard's figures survive a restart."""
        start = self.figures.start
        rows: list[tuple[float, QueueEvent | SeatEvent]] = []
        async with self.db.execute(
                "SELECT at, queue, call_id, event, agent_id, tier, wait_s, talk_s FROM queue_log"
                " WHERE at >= ? ORDER BY id", (start,)) as cur:
            for r in await cur.fetchall():
                rows.append((float(r[0]), QueueEvent(float(r[0]), str(r[1]), str(r[2]),
                                                     str(r[3]), str(r[4]), str(r[5]), r[6],
                                                     r[7])))
        async with self.db.execute(
                "SELECT at, agent_id, from_state, to_state FROM seat_log WHERE at >= ?"
                " ORDER BY id", (start,)) as cur:
            for r in await cur.fetchall():
                rows.append((float(r[0]), SeatEvent(float(r[0]), str(r[1]), SeatState(r[2]),
                                                    SeatState(r[3]))))
        fresh = LiveQueueFigures(start, {q.name: q.target_s for q in self.acd.queues.values()})
        for _, ev in sorted(rows, key=lambda x: x[0]):
            fresh.feed(ev)
        self.figures = fresh

    # -- ConsoleBackend ------------------------------------------------------------------------

    async def authenticate(self, agent_id: str, password: str) -> AgentIdentity | None:
        record = await directory.authenticate(self.db, agent_id, password)
        if record is None:
            return None
        if record.agent_id not in self.acd.seats:
            await self.acd.add_agent(record)
        return AgentIdentity(record.agent_id, record.name, p.Role(record.role))

    async def snapshot(self, agent: AgentIdentity) -> dict[str, Any]:
        rt = self.acd.seat(agent.agent_id)
        if rt.seat.state is SeatState.LOGGED_OUT:
            # Logging in to the console logs the seat in (not ready, reason "login").
            self.acd.set_state(agent.agent_id, "not_ready", "login", by=agent.agent_id)
        call = rt.call or (rt.last_call if rt.seat.state is SeatState.WRAP_UP else None)
        call_data = None
        if call is not None:
            call_data = {**self.pops.get(call.call_id, {"call_id": call.call_id}),
                         **self._call_now(rt, call)}
        return {"agent": {"agent_id": agent.agent_id, "name": agent.name,
                          "role": agent.role.value},
                "seat": rt.data(), "call": call_data, "queues": self.queue_figures(),
                "reasons": AGENT_REASONS}

    def _call_now(self, rt: SeatRuntime, call: ActiveCall) -> dict[str, Any]:
        """What a reloaded page needs beyond the screen pop to draw the call as it is now."""
        in_wrap_up = rt.seat.state is SeatState.WRAP_UP
        consult = self.consults.get(call.call_id)
        recording = "off" if not call.recording else "paused" if call.recording_paused else "on"
        return {"state": _call_state(rt),
                "recording": recording,
                "consult": consult.state if consult is not None and not in_wrap_up else None,
                "connected_at": call.connected_at,
                "wrap_up_until": (rt.seat.since + self.acd.settings.wrap_up_s
                                  if in_wrap_up else None)}

    async def session_closed(self, agent: AgentIdentity, sessions_left: int) -> None:
        # The seat stays as it is: a console reload must not drop a call or a ready state.
        log.info("console session of %s closed (%d left)", agent.agent_id, sessions_left)

    async def command(self, agent: AgentIdentity, request: p.Request) -> dict[str, Any]:
        me = agent.agent_id
        try:
            return await self._command(agent, me, request)
        except SeatStateError as exc:
            raise ConsoleError("invalid_state", str(exc)) from exc

    async def _command(self, agent: AgentIdentity, me: str,
                       request: p.Request) -> dict[str, Any]:
        c = self.control
        match request:
            case p.SetState(state=state, reason=reason):
                rt = self.acd.set_state(me, state, _reason(state, reason), by=me)
                return {"seat": rt.data()}
            case p.ForceState(agent_id=target, state=state, reason=reason):
                rt = self.acd.set_state(target, state, _reason(state, reason) or "forced",
                                        by=me, force=True)
                if state == "logged_out" and self.push is not None:
                    self.push.end_sessions(target, f"logged out by {me}")
                return {"seat": rt.data()}
            case p.Hangup():
                await c.hangup(me)
            case p.Hold():
                await c.hold(me)
            case p.Resume():
                await c.resume(me)
            case p.Recording(action=action):
                await c.recording(me, action == "pause")
            case p.Transfer(target=target):
                await c.transfer(me, target)
            case p.Consult(target=target):
                await c.consult(me, target)
            case p.ConsultComplete():
                await c.consult_complete(me)
            case p.ConsultCancel():
                await c.consult_cancel(me)
            case p.Conference(target=target):
                await c.conference(me, target)
            case p.ClickToCall():
                return self._click_to_call(me, request)
            case p.Spy(agent_id=target, mode=mode):
                await c.spy(me, target, mode)
            case p.WrapUp():
                return await self._wrap_up(me, request)
            case p.CreateTask():
                return await self._task(me, request)
            case p.SendMessage():
                return await self._message(me, request)
            case p.Wallboard():
                return self.wallboard()
            case _:
                raise ConsoleError("unknown_command", f"{request.type} is not handled here")
        return {}

    async def _wrap_up(self, me: str, req: p.WrapUp) -> dict[str, Any]:
        rt = self.acd.seat(me)
        last = rt.last_call
        if last is None or last.call_id != req.call_id:
            raise ConsoleError("not_found", "no such call of yours to wrap up")
        async with transaction(self.db):
            await self.db.execute(
                "INSERT INTO wrapups (call_id, agent_id, account, disposition, notes, at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, agent_id) DO UPDATE SET"
                " disposition = excluded.disposition, notes = excluded.notes, at = excluded.at",
                (req.call_id, me, last.waiter.account, req.disposition, req.notes,
                 self.acd.clock()))
        if rt.seat.state is SeatState.WRAP_UP:
            self.acd.set_state(me, "ready", by=me)
        return {"saved": True, "seat": rt.data()}

    def _callers(self, me: str, call_id: str) -> Waiter:
        """The caller of ``call_id`` if it is ``me``'s current or last call, else ``not_found``
        (an agent may not reach another agent's customers by guessing call ids)."""
        rt = self.acd.seat(me)
        for call in (rt.call, rt.last_call):
            if call is not None and call.call_id == call_id:
                return call.waiter
        raise ConsoleError("not_found", "no such call of yours")

    def _account(self, me: str, call_id: str, account: str) -> str:
        """The account a command is about: the call's customer when ``call_id`` is given (an
        account sent as well must be that one), else ``account``."""
        if not call_id:
            return account
        known = self._callers(me, call_id).account
        if account and account != known:
            raise ConsoleError("not_found", "that account is not the customer of that call")
        return known

    def _click_to_call(self, me: str, req: p.ClickToCall) -> dict[str, Any]:
        number, account = req.number, req.account
        if req.call_id:
            account = self._account(me, req.call_id, account)
            if not number:
                number = self._callers(me, req.call_id).phone
                if not number:
                    raise ConsoleError("not_found", "no number is known for that call")
        return {"call_id": self.control.click_to_call(me, number, account)}

    async def _task(self, me: str, req: p.CreateTask) -> dict[str, Any]:
        owner = req.agent_id or me
        self.acd.seat(owner)
        account, phone = self._account(me, req.call_id, req.account), req.phone
        if req.call_id and not phone:
            phone = self._callers(me, req.call_id).phone
        async with transaction(self.db):
            cur = await self.db.execute(
                "INSERT INTO tasks (created_at, created_by, agent_id, account, phone, due_at,"
                " text) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.acd.clock(), me, owner, account, phone, req.due_at, req.text))
            task_id = cur.lastrowid
        return {"task_id": task_id}

    async def _message(self, me: str, req: p.SendMessage) -> dict[str, Any]:
        account = self._account(me, req.call_id, req.account)
        if not account:
            raise ConsoleError("not_found", "the caller of that call was not identified")
        try:
            customer = await self.backoffice.customer(account)
        except BrokerError as exc:
            # the account itself stays out of the reply: it may have come from the call
            raise ConsoleError("not_found", "no such customer") from exc
        payload = {"account": account, "template": req.template, "lang": customer.language,
                   "text": req.text, "requested_by": me}
        ref = await add_request(self.db, f"{req.template}", req.call_id or f"console-{me}",
                                account=account, phone=None,
                                detail={"channel": req.channel, "by": me},
                                outbox=[(req.channel, f"callcenter/outbox/{req.channel}",
                                         payload)])
        return {"ref": ref}

    # -- pushes --------------------------------------------------------------------------------

    def on_acd(self, audience: str, event: str, data: dict[str, Any]) -> None:
        now = self.acd.clock()
        if now - self.figures.start >= 86400:
            self.figures = self._new_figures(now)
        if event == "queue_log":
            self.figures.feed(QueueEvent(data["at"], data["queue"], data["call_id"],
                                         data["event"], data["agent_id"], "", data["wait_s"],
                                         data["talk_s"]))
            return
        if event == "seat" and audience == "*":
            self.figures.feed(SeatEvent(data["since"], data["agent_id"],
                                        SeatState(data["from_state"]), SeatState(data["state"])))
            self._push_role("wallboard", self.wallboard())
            return
        if event == "queues":
            self._push_role("wallboard", self.wallboard())
            self._push_role("queues", {"queues": self.queue_figures()}, p.Role.AGENT)
            return
        if event == "offered":
            call: ActiveCall = data["call"]
            rt: SeatRuntime = data["seat"]
            self._spawn(self._screen_pop(rt.agent.agent_id, call))
            return
        if event == "seat":
            self._push_agent(audience, "seat", data)
            return
        names = {"connected": "call_connected", "held": "call_held", "resumed": "call_resumed",
                 "ended": "call_ended", "recording": "recording", "consult": "consult",
                 "conference": "conference"}
        if event in names:
            if event == "ended":
                data = {**data, "disposition_required": bool(data.get("answered"))}
                self.consults.pop(str(data.get("call_id", "")), None)
            elif event == "consult":
                self._consult_dialled(audience, data)
            elif event == "resumed":
                # the caller is back with the agent: any consultation is over
                self.consults.pop(str(data.get("call_id", "")), None)
            self._push_agent(audience, names[event], data)

    # -- consultations, from Asterisk's events -------------------------------------------------

    def _consult_dialled(self, agent_id: str, data: dict[str, Any]) -> None:
        """The ACD dialled a consultation ("ringing"). Asterisk's DialBegin may already have
        come; the consulted channel is then found on the call when it answers."""
        call_id = str(data.get("call_id", ""))
        self.consults[call_id] = _Consult(agent_id, str(data.get("target", "")))

    def on_ami_event(self, event: AmiEvent) -> None:
        match event:
            case DialBegin(_, dest, _):
                self._consult_of(dest.channel)
            case BridgeEnter(info):
                found = self._consult_of(info.channel)
                if found is not None and found[1].state == "ringing":
                    call_id, consult = found
                    consult.state = "talking"
                    self._push_agent(consult.agent_id, "consult", {
                        "call_id": call_id, "state": "talking", "target": consult.target})
            case Hangup(info):
                found = self._consult_of(info.channel)
                if found is not None:
                    call_id, consult = found
                    del self.consults[call_id]
                    self._push_agent(consult.agent_id, "consult", {
                        "call_id": call_id, "state": "ended", "target": consult.target})
            case _:
                pass

    def _consult_of(self, channel: str) -> tuple[str, _Consult] | None:
        """The consultation whose consulted party is ``channel``: one this backend was told of
        (the ``consult`` event) whose call's ``consult_channel`` the ACD set to it on DialBegin.
        Other dials from an agent's leg (a call-back dialling the customer) are not consults."""
        if not channel:
            return None
        for call_id, consult in self.consults.items():
            if consult.channel == channel:
                return call_id, consult
        for agent_id, rt in self.acd.seats.items():
            call = rt.call
            if call is None or call.consult_channel != channel:
                continue
            told = self.consults.get(call.call_id)
            if told is None or told.agent_id != agent_id:
                return None
            told.channel = channel
            return call.call_id, told
        return None

    async def _screen_pop(self, agent_id: str, call: ActiveCall) -> None:
        w = call.waiter
        customer: dict[str, Any] | None = None
        if w.account:
            try:
                info = await self.backoffice.customer(w.account)
                cash = await self.backoffice.cash(w.account)
                positions = await self.backoffice.positions(w.account)
                value = sum((pos.market_value for pos in positions), start=cash.balance * 0)
                customer = {"name": info.name, "tier": info.tier.value,
                            "account_masked": mask(w.account),
                            "balance_summary": {"currency": "CNY", "cash": str(cash.balance),
                                                "market_value": str(value),
                                                "total": str(cash.balance + value)}}
            except BrokerError as exc:
                log.warning("screen pop for %s: back office: %s", w.call_id, exc)
        pop = {"call_id": w.call_id, "queue": w.queue,
               "waited_s": round(call.offered_at - w.arrived_at, 1),
               "customer": customer, "caller": mask(w.phone or "", 4),
               "ivr": {"path": w.context.get("path", ""),
                       "last_failure": w.context.get("last_failure", ""),
                       "lang": w.context.get("lang", "zh")},
               "recent_contacts": await self._recent_contacts(w.account),
               "callback": w.callback}
        self.pops[w.call_id] = pop
        if len(self.pops) > 1000:
            for key in list(self.pops)[:500]:
                del self.pops[key]
        self._push_agent(agent_id, "call_offered", pop)

    async def _recent_contacts(self, account: str) -> list[dict[str, Any]]:
        if not account:
            return []
        async with self.db.execute(
                "SELECT at, disposition, notes FROM wrapups WHERE account = ?"
                " ORDER BY at DESC LIMIT 5", (account,)) as cur:
            rows = await cur.fetchall()
        out = [{"at": r[0], "kind": "call", "summary": f"{r[1]}: {r[2]}"[:200]} for r in rows]
        async with self.db.execute(
                "SELECT created_at, kind, detail FROM service_requests WHERE account = ?"
                " ORDER BY created_at DESC LIMIT 5", (account,)) as cur:
            for r in await cur.fetchall():
                out.append({"at": r[0], "kind": str(r[1]),
                            "summary": str(json.loads(str(r[2])).get("channel", r[1]))})
        return sorted(out, key=lambda x: -float(x["at"]))[:8]

    def queue_figures(self) -> list[dict[str, Any]]:
        now = self.acd.clock()
        live = {f.queue: f for f in self.figures.queues(now)}
        out = []
        for name, queue in self.acd.waiting.items():
            f = live.get(name)
            waits = [now - w.arrived_at for w in queue.values()]
            out.append({"name": name, "waiting": len(queue),
                        "longest_wait_s": round(max(waits), 1) if waits else 0.0,
                        "answered": f.answered if f else 0,
                        "abandoned": f.abandoned if f else 0,
                        "service_level": f.service_level if f else None,
                        "asa_s": f.asa_s if f else None,
                        "aht_s": f.aht_s if f else None,
                        "target_s": self.acd.queues[name].target_s,
                        "target_share": self.acd.queues[name].target_share})
        return out

    def wallboard(self) -> dict[str, Any]:
        return {"queues": self.queue_figures(),
                "seats": [rt.data() for rt in self.acd.seats.values()]}

    def _push_agent(self, agent_id: str, name: str, data: dict[str, Any]) -> None:
        if self.push is not None:
            self.push.to_agent(agent_id, p.Event(event=name, data=data))

    def _push_role(self, name: str, data: dict[str, Any], role: p.Role = p.Role.SUPERVISOR
                   ) -> None:
        if self.push is not None:
            self.push.to_role(role, p.Event(event=name, data=data))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._detach()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _reason(state: str, reason: str) -> str:
    return reason if state == "not_ready" else ""


def _call_state(rt: SeatRuntime) -> str:
    return {SeatState.RINGING: "ringing", SeatState.ON_CALL: "talking",
            SeatState.ON_HOLD: "held", SeatState.WRAP_UP: "wrap_up"}.get(rt.seat.state, "")
