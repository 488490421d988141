"""An SMSC simulator: SMPP 3.4 over TCP, with the same sans-IO core as the SMS plug-in
(``smpp.py``), for tests and demos. Its own process::

    SMSC_SIM_PASSWORD=Y python -m callcenter.channels.smsc_sim --port N --system-id X \\
        --out messages.jsonl [--host H] [--throttle-first K] [--reject-dest PREFIX] \\
        [--undeliv-dest PREFIX] [--no-receipts] [--hold-receipts] [--mo SENDER:TEXT]

The password comes from the environment (``SMSC_SIM_PASSWORD``), so it is not on the command
line for every local user to read; ``--password`` still works for tests and is discouraged.
Started by the engine (``sandbox.SandboxPeers``) it dies with the engine (``die_with_parent``).

It accepts ``bind_transceiver`` with the given credentials only (``ESME_RINVSYSID`` /
``ESME_RINVPASWD`` otherwise), answers ``enquire_link`` and ``unbind``, and for each
``submit_sm`` answers ``submit_sm_resp`` with a fresh message id; the first K submits are
answered ``ESME_RTHROTTLED``, a destination starting with ``--reject-dest`` ``ESME_RINVDSTADR``.
Concatenated parts (UDH) are put back together; each complete message is appended to ``--out``
as one JSON line ``{"system_id", "source", "dest", "text", "parts", "message_ids",
"data_coding"}``.

Every accepted part that asked for one (``registered_delivery``) gets a delivery receipt
``deliver_sm`` (``stat:DELIVRD``, or ``UNDELIV`` for a destination starting with
``--undeliv-dest``), with the ``receipted_message_id`` and ``message_state`` TLVs too. Receipts
go to a bound session right after the ``submit_sm_resp``; with ``--hold-receipts`` they wait for
the *next* bind (as an SMSC queues receipts while no receiver is bound: a plug-in restarted in
between still gets them). A receipt not acknowledged with ``ESME_ROK`` is kept for the next bind.
``--mo SENDER:TEXT`` sends one SMS from a customer (concatenated if long) after the first bind.

On stdout, one line per event, for tests to wait on: ``READY <port>`` once listening (``--port
0`` picks a free port), ``BIND <ok|STATUS>``, ``MESSAGE <json>`` after the line was written,
``RECEIPT <message id> <stat> ACKED``. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hmac
import json
import os
import signal
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from callcenter.channels import smpp
from callcenter.channels.sandbox import SMSC_PASSWORD_ENV, die_with_parent
from callcenter.errors import ChannelError


@dataclass(frozen=True)
class SimConfig:
    system_id: str
    password: str = field(repr=False)
    out: Path
    throttle_first: int = 0
    reject_dest: str | None = None
    undeliv_dest: str | None = None
    receipts: bool = True
    hold_receipts: bool = False
    mo: tuple[str, str] | None = None


@dataclass
class _Held:
    """A receipt waiting to be sent: to a session whose bind number is at least ``after``."""

    pdu: smpp.DeliverSm
    stat: str
    after: int


class _Session:
    def __init__(self, writer: asyncio.StreamWriter, number: int) -> None:
        self.writer = writer
        self.conn = smpp.SmppConnection(smpp.Role.SMSC)
        self.number = number  # its bind number, once bound
        self.awaiting: dict[int, _Held] = {}

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()


def _emit(*words: str) -> None:
    print(*words, flush=True)


def _now() -> str:
    return dt.datetime.now().strftime("%y%m%d%H%M")


class Smsc:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.submits = 0
        self.ids = 0
        self.binds = 0
        self.sessions: list[_Session] = []
        self.held: list[_Held] = []
        self.reassembler = smpp.Reassembler()
        self.mo_sent = False
        self._write_lock = asyncio.Lock()
        #: every open connection: its handler task and writer, to end them on stop
        self.connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    # -- connections -----------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer, 0)
        task = asyncio.current_task()
        assert task is not None
        self.connections[task] = writer
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                session.conn.receive_data(data)
                for pdu in session.conn.events_received():
                    await self._on_pdu(session, pdu)
                await session.flush()
                if session.conn.state is smpp.State.CLOSED:
                    break
        except (OSError, ChannelError) as exc:
            print(f"session ended: {exc}", file=sys.stderr, flush=True)
        finally:
            self.connections.pop(task, None)
            if session in self.sessions:
                self.sessions.remove(session)
            for held in session.awaiting.values():  # never acknowledged: keep for a later bind
                held.after = self.binds + 1
                self.held.append(held)
            session.awaiting.clear()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _on_pdu(self, session: _Session, pdu: smpp.Pdu) -> None:
        if isinstance(pdu, smpp.BindTransceiver):
            await self._bind(session, pdu)
        elif isinstance(pdu, smpp.SubmitSm):
            await self._submit(session, pdu)
        elif isinstance(pdu, smpp.DeliverSmResp):
            held = session.awaiting.pop(pdu.sequence, None)
            if held is None:
                return
            if pdu.status == smpp.Status.ESME_ROK:
                _emit("RECEIPT", _receipted_id(held.pdu), held.stat, "ACKED")
            else:
                held.after = self.binds + 1
                self.held.append(held)

    async def _bind(self, session: _Session, pdu: smpp.BindTransceiver) -> None:
        status = smpp.Status.ESME_ROK
        if not hmac.compare_digest(pdu.system_id.encode(), self.cfg.system_id.encode()):
            status = smpp.Status.ESME_RINVSYSID
        elif not hmac.compare_digest(pdu.password.encode(), self.cfg.password.encode()):
            status = smpp.Status.ESME_RINVPASWD
        session.conn.send(smpp.response_to(pdu, status, system_id="SMSCSIM"))
        await session.flush()
        _emit("BIND", "ok" if status == smpp.Status.ESME_ROK else smpp.status_name(status))
        if status != smpp.Status.ESME_ROK:
            return
        self.binds += 1
        session.number = self.binds
        self.sessions.append(session)
        due = [h for h in self.held if h.after <= session.number]
        self.held = [h for h in self.held if h.after > session.number]
        for held in due:
            await self._send_receipt(session, held)
        if self.cfg.mo and not self.mo_sent:
            self.mo_sent = True
            await self._send_mo(session, *self.cfg.mo)

    async def _submit(self, session: _Session, pdu: smpp.SubmitSm) -> None:
        self.submits += 1
        status = smpp.Status.ESME_ROK
        if self.submits <= self.cfg.throttle_first:
            status = smpp.Status.ESME_RTHROTTLED
        elif self.cfg.reject_dest and pdu.destination_addr.startswith(self.cfg.reject_dest):
            status = smpp.Status.ESME_RINVDSTADR
        elif pdu.data_coding not in (smpp.DC_DEFAULT, 0x01, 0x03, smpp.DC_UCS2):
            status = smpp.Status.ESME_RSUBMITFAIL
        assembled: smpp.Assembled | None = None
        message_id = ""
        if status == smpp.Status.ESME_ROK:
            self.ids += 1
            message_id = f"{self.ids:010x}"
            try:
                assembled = self.reassembler.feed(
                    (pdu.source_addr, pdu.destination_addr), pdu.esm_class, pdu.data_coding,
                    pdu.payload, message_id)
            except ValueError:
                status, message_id = smpp.Status.ESME_RINVESMCLASS, ""
        session.conn.send(smpp.response_to(pdu, status, message_id=message_id))
        await session.flush()
        if status != smpp.Status.ESME_ROK:
            return
        if assembled is not None:
            record: dict[str, Any] = {
                "system_id": self.cfg.system_id, "source": pdu.source_addr,
                "dest": pdu.destination_addr, "text": assembled.text, "parts": assembled.parts,
                "message_ids": list(assembled.tags), "data_coding": pdu.data_coding}
            line = json.dumps(record, ensure_ascii=False)
            async with self._write_lock:
                await asyncio.to_thread(_append, self.cfg.out, line)
            _emit("MESSAGE", line)
        if self.cfg.receipts and pdu.registered_delivery & 0x03:
            receipt = self._receipt(pdu, message_id)
            held = _Held(receipt, _stat_of(receipt), 0)
            if self.cfg.hold_receipts:
                held.after = self.binds + 1
                self.held.append(held)
            else:
                await self._send_receipt(session, held)

    def _receipt(self, submit: smpp.SubmitSm, message_id: str) -> smpp.DeliverSm:
        undeliv = bool(self.cfg.undeliv_dest
                       and submit.destination_addr.startswith(self.cfg.undeliv_dest))
        state = smpp.MessageState.UNDELIVERABLE if undeliv else smpp.MessageState.DELIVERED
        _concat, data = smpp.parse_udh(submit.esm_class, submit.payload)
        first = smpp.decode_text(submit.data_coding, data)[:20]
        text = "".join(c if " " <= c <= "~" else "?" for c in first)
        receipt = smpp.Receipt(message_id=message_id, stat=smpp.STAT_OF_STATE[state],
                               err="001" if undeliv else "000", submit_date=_now(),
                               done_date=_now(), text=text)
        return smpp.DeliverSm(
            source_addr_ton=submit.dest_addr_ton, source_addr_npi=submit.dest_addr_npi,
            source_addr=submit.destination_addr, dest_addr_ton=submit.source_addr_ton,
            dest_addr_npi=submit.source_addr_npi, destination_addr=submit.source_addr,
            esm_class=smpp.ESM_RECEIPT,
            short_message=smpp.format_receipt(receipt).encode("ascii"),
            tlvs=((smpp.Tag.RECEIPTED_MESSAGE_ID, message_id.encode("ascii") + b"\x00"),
                  (smpp.Tag.MESSAGE_STATE, bytes([state]))))

    async def _send_receipt(self, session: _Session, held: _Held) -> None:
        if session.conn.state is not smpp.State.BOUND:
            held.after = self.binds + 1
            self.held.append(held)
            return
        seq = session.conn.next_sequence()
        session.awaiting[seq] = held
        session.conn.send(replace(held.pdu, sequence=seq))
        await session.flush()

    async def _send_mo(self, session: _Session, sender: str, text: str) -> None:
        for part in smpp.split_text(text, ref=self.binds % 256):
            session.conn.send(smpp.DeliverSm(source_addr=sender, source_addr_ton=1,
                                             source_addr_npi=1, esm_class=part.esm_class,
                                             data_coding=part.data_coding,
                                             short_message=part.short_message))
        await session.flush()


def _receipted_id(pdu: smpp.DeliverSm) -> str:
    return smpp.receipt_of(pdu).message_id


def _stat_of(pdu: smpp.DeliverSm) -> str:
    return smpp.receipt_of(pdu).stat


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


async def serve(cfg: SimConfig, host: str, port: int) -> None:
    smsc = Smsc(cfg)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    server = await asyncio.start_server(smsc.handle, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound_port = server.sockets[0].getsockname()[1]
    _emit("READY", str(bound_port))
    async with server:
        await stop.wait()
        server.close()
        handlers = list(smsc.connections)
        for writer in smsc.connections.values():
            writer.close()  # each handler reads EOF and ends
        if handlers:
            await asyncio.wait(handlers, timeout=5.0)
        await server.wait_closed()


def parse_args(argv: list[str] | None = None) -> tuple[SimConfig, str, int]:
    p = argparse.ArgumentParser(prog="python -m callcenter.channels.smsc_sim",
                                description="An SMPP 3.4 SMSC simulator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2775, help="0: a free port (see READY)")
    p.add_argument("--system-id", required=True)
    p.add_argument("--password", help="prefer the SMSC_SIM_PASSWORD environment variable")
    p.add_argument("--out", type=Path, required=True, help="JSON lines of received messages")
    p.add_argument("--throttle-first", type=int, default=0, metavar="K")
    p.add_argument("--reject-dest", metavar="PREFIX")
    p.add_argument("--undeliv-dest", metavar="PREFIX")
    p.add_argument("--no-receipts", action="store_true")
    p.add_argument("--hold-receipts", action="store_true")
    p.add_argument("--mo", metavar="SENDER:TEXT")
    a = p.parse_args(argv)
    password = a.password if a.password is not None else os.environ.get(SMSC_PASSWORD_ENV)
    if not password:
        p.error(f"the password: set {SMSC_PASSWORD_ENV} (or --password)")
    mo: tuple[str, str] | None = None
    if a.mo:
        sender, sep, text = a.mo.partition(":")
        if not sep or not sender or not text:
            p.error("--mo wants SENDER:TEXT")
        mo = (sender, text)
    cfg = SimConfig(system_id=a.system_id, password=password, out=a.out,
                    throttle_first=a.throttle_first, reject_dest=a.reject_dest,
                    undeliv_dest=a.undeliv_dest, receipts=not a.no_receipts,
                    hold_receipts=a.hold_receipts, mo=mo)
    return cfg, a.host, a.port


def main(argv: list[str] | None = None) -> None:
    die_with_parent()
    cfg, host, port = parse_args(argv)
    asyncio.run(serve(cfg, host, port))


if __name__ == "__main__":
    main()
