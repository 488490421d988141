"""The engine's event loop choice (callcenter/event_loop.py)."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from callcenter import event_loop
from callcenter.config import Settings
from callcenter.errors import ConfigError


async def _name() -> str:
    await asyncio.sleep(0)
    return event_loop.running_loop_name()


def test_asyncio_choice_is_the_standard_loop() -> None:
    assert event_loop.loop_factory("asyncio") is None
    assert event_loop.run(_name(), "asyncio") == "asyncio"


def test_auto_takes_uvloop_when_installed() -> None:
    # uvloop is a dependency of the project: a fresh install has it
    assert importlib.util.find_spec("uvloop") is not None
    assert event_loop.run(_name(), "auto") == "uvloop"
    assert event_loop.run(_name(), "uvloop") == "uvloop"


def test_missing_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert event_loop.loop_factory("auto") is None  # auto falls back quietly
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        event_loop.loop_factory("uvloop")


def test_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().event_loop == "auto"
    monkeypatch.setenv("CALLCENTER_EVENT_LOOP", "asyncio")
    assert Settings().event_loop == "asyncio"
    monkeypatch.setenv("CALLCENTER_EVENT_LOOP", "tokio")
    with pytest.raises(ValueError):
        Settings()


def test_outside_a_loop() -> None:
    assert event_loop.running_loop_name() == "none"
