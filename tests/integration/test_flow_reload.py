"""Live reload with calls in progress: a valid edit serves new calls only, a broken edit is
refused and the last good version stays in service."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import seed_demo
from callcenter.config import REPO_ROOT, Settings
from callcenter.engine import Engine
from callcenter.ivr.registry import ReloadResult
from callcenter.telephony.simcall import SimCaller

from .conftest import trading_clock, wait_no_channels
from .hotline import hotline_call


@pytest.fixture
async def editable(settings: Settings, tmp_path: Path) -> AsyncIterator[Engine]:
    """An engine serving a copy of the shipped flows that the test may edit."""
    flows = tmp_path / "flows"
    shutil.copytree(REPO_ROOT / "ivr_flows", flows)
    eng = Engine(settings.model_copy(update={"flows_dir": flows}),
                 backoffice_clock=trading_clock)
    await eng.start()
    assert isinstance(eng.backoffice, SandboxBackOffice) and eng.ami is not None
    await seed_demo(eng.backoffice)
    try:
        yield eng
    finally:
        leftovers = await wait_no_channels(eng.ami)
        await eng.stop()
        assert leftovers == []


async def test_edits_reach_new_calls_only_and_broken_edits_are_refused(
        editable: Engine) -> None:
    engine = editable
    assert engine.ami is not None and engine.controller is not None
    caller = SimCaller(engine.ami)
    old_version = engine.flows.current.version
    started = asyncio.Event()
    results: asyncio.Queue[ReloadResult] = asyncio.Queue()
    engine.flows.listeners.append(results.put_nowait)

    def on_note(call_id: str, kind: str, detail: Mapping[str, str]) -> None:
        if kind == "ivr.flow":
            started.set()

    engine.controller.note_listeners.append(on_note)
    # Call A starts now but presses "1" (quotes) only after 8 s.
    call_a = asyncio.create_task(hotline_call(engine, caller, "1w600519",
                                              until="zh/quote_last", wait_s=8))
    await asyncio.wait_for(started.wait(), 20)

    hotline = engine.flows.directory / "hotline.yaml"
    text = hotline.read_text()
    edited = text.replace("quotes: {type: subflow, flow: quotes, next: main_menu}",
                          "quotes: {type: hangup, prompts: [goodbye]}")
    assert edited != text
    hotline.write_text(edited)  # the file watcher sees it
    accepted = await asyncio.wait_for(results.get(), 10)
    assert accepted.accepted and accepted.version != old_version
    new_version = accepted.version

    hotline.write_text(text.replace("next: main_menu", "next: nowhere", 1))  # broken
    refused = await asyncio.wait_for(results.get(), 10)
    assert not refused.accepted and refused.version == new_version
    assert any("unknown node 'nowhere'" in p for p in refused.problems)
    assert engine.flows.current.version == new_version

    heard_a = await call_a
    heard_b = await hotline_call(engine, caller, "1", until="zh/goodbye")
    # A finishes on the version it started with: "1" still means quotes.
    assert heard_a.ivr("ivr.flow")[0]["version"] == old_version
    assert heard_a.outcomes("quote") == ["ok"]
    # B, a new call, gets the edited menu: "1" now says goodbye.
    assert heard_b.ivr("ivr.flow")[0]["version"] == new_version
    assert heard_b.outcomes("quote") == [] and "zh/goodbye" in heard_b.prompts()
