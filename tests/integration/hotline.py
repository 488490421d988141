"""Helpers for hotline tests: place a scripted call, then read what the IVR did."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from callcenter.engine import Engine
from callcenter.errors import AmiActionError
from callcenter.recordings import store
from callcenter.store.calls import CallRecord, get_call
from callcenter.telephony.simcall import SimCaller, new_call_id

STRANGER = "13700000000"  # a number no customer registered


@dataclass
class Heard:
    record: CallRecord

    def ivr(self, kind: str) -> list[dict[str, str]]:
        return [e.detail for e in self.record.events if e.kind == kind]

    def outcomes(self, action: str) -> list[str]:
        return [d["outcome"] for d in self.ivr("ivr.action") if d["action"] == action]

    def prompts(self) -> list[str]:
        return [p for d in self.ivr("ivr.prompts") for p in d["ids"].split()]

    def nodes(self) -> list[str]:
        return [d["node"] for d in self.ivr("ivr.node")]


def _caller_channel(engine: Engine, call_id: str) -> str:
    assert engine.controller is not None
    view = engine.controller.model.channels.get(call_id)
    assert view is not None, f"call {call_id} has no caller channel"
    return view.name


async def hotline_call(engine: Engine, caller: SimCaller, dtmf: str, *,
                       until: str | None = None, times: int = 1, caller_id: str = STRANGER,
                       hold_s: int = 60, wait_s: int = 1) -> Heard:
    """Dial 9500 and send ``dtmf`` (``w`` = 0.5 s pause).

    The caller hangs up as soon as the IVR is about to play the prompt ``until`` (e.g.
    ``zh/order_placed``) for the ``times``-th time, when the IVR ends the call, or after
    ``hold_s`` at the latest.
    """
    assert engine.controller is not None and engine.ami is not None
    reached = asyncio.Event()
    wanted = new_call_id()  # known before the call exists: no early prompt can be missed
    seen = 0

    def listen(call_id: str, kind: str, detail: Mapping[str, str]) -> None:
        nonlocal seen
        if call_id == wanted and until and kind == "ivr.prompts" and \
                until in detail["ids"].split():
            seen += 1
            if seen >= times:
                reached.set()

    engine.controller.note_listeners.append(listen)
    try:
        # Keys at a brisk 120 ms cadence: Local channels carry DTMF as frames, not tones.
        call_id = await caller.place("9500", dtmf, hold_s=hold_s, wait_s=wait_s,
                                     caller_id=caller_id, gap_ms=60, tone_ms=60,
                                     call_id=wanted)
        ended = asyncio.ensure_future(caller.wait_end(call_id, hold_s + 120))
        waiter = asyncio.ensure_future(reached.wait())
        try:
            await asyncio.wait({ended, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not ended.done():
                # The point under test was reached: hang up like a caller would.
                with contextlib.suppress(AmiActionError):
                    await engine.ami.action("Hangup", Channel=_caller_channel(engine, call_id))
            await ended
        finally:
            waiter.cancel()
            ended.cancel()
    finally:
        engine.controller.note_listeners.remove(listen)
    assert engine.recorder is not None and engine.db is not None
    await engine.recorder.flush()
    record = await get_call(engine.db, call_id)
    assert record is not None
    return Heard(record)


async def sealed(engine: Engine, rec: store.Recording) -> store.Recording:
    """The recording once the keeper has sealed it: after Asterisk has closed the WAV (its
    header's data size is the file's: MixMonitor writes it at the close), the keeper's round
    is run as if ``seal_after_s`` had passed."""
    assert engine.recordings is not None and engine.db is not None
    plain = engine.settings.pbx_path(rec.path)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while (rec := await store.get(engine.db, rec.id)).sealed_at is None:
        assert loop.time() < deadline, f"{plain.name}: never closed by Asterisk, or not sealed"
        if _wav_closed(plain):   # (the engine's own round may seal it first: fine too)
            ended = rec.ended_at or time.time()
            await engine.recordings.round(max(time.time(), ended)
                                          + engine.settings.recordings.seal_after_s + 1)
        await asyncio.sleep(0.1)
    assert rec.bytes is not None
    return rec


def _wav_closed(path: Path) -> bool:
    try:
        with path.open("rb") as wav:
            head = wav.read(44)
            size = os.fstat(wav.fileno()).st_size
    except OSError:
        return False
    return len(head) == 44 and int.from_bytes(head[40:44], "little") == size - 44 > 0
