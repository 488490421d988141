"""``callcenter strategies try|run``: what a newcomer reads, against a seeded sandbox ledger and
a database of their own."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from pathlib import Path

import pytest

from callcenter.broker.rules import SHANGHAI
from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import GOLD, seed_demo
from callcenter.cli import main

NINE = dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("strategies-cli") / "bo.db"

    async def build() -> None:
        bo = await SandboxBackOffice.open(path, clock=lambda: NINE)
        await seed_demo(bo)
        await bo.close()

    asyncio.run(build())
    return path


@pytest.fixture
def state(ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(ledger, tmp_path / "bo.db")
    monkeypatch.setenv("CALLCENTER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CALLCENTER_BACKOFFICE_PATH", str(tmp_path / "bo.db"))
    return tmp_path


def test_try_on_a_synthetic_population(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["strategies", "try", "birthday-greeting", "--day", "2026-11-23",
                 "--population", "100"]) == 0
    out = capsys.readouterr().out
    assert "run day 2026-11-23 at 09:00 (every_day): runs that day" in out
    assert "8 matched:" in out                                # i % 13 == 0 below 100
    assert "  20000013 " in out and ": birthday today" in out
    assert "the plan: 8 messages; 0 skipped" in out
    assert out.rstrip().endswith("nothing was written (try only shows)")


def test_try_an_unknown_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["strategies", "try", "nope", "--population", "10"]) == 1
    assert "no strategy 'nope' (known: " in capsys.readouterr().err


def test_try_and_run_on_the_sandbox(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["strategies", "try", "complaint-callback", "--day", "2026-11-23",
                 "--sandbox"]) == 0
    out = capsys.readouterr().out
    assert f"  {GOLD} 王芳: complaint CP-0001 handled" in out
    assert "the plan: 1 tasks; 0 skipped" in out
    assert not (state / "state" / "callcenter.db").exists()           # try writes nothing
    # a run sends its messages now: another day than today is refused (try shows it)
    assert main(["strategies", "run", "--day", "2026-11-23"]) == 1
    assert "runs today only" in capsys.readouterr().err
    assert not (state / "state" / "callcenter.db").exists()
    assert main(["strategies", "run"]) == 0                            # today, the site's day
    out = capsys.readouterr().out
    assert "complaint-callback " in out and " matched, " in out
    assert main(["strategies", "run", "--only", "complaint-callback"]) == 0
    assert capsys.readouterr().out == "complaint-callback: not run (already run)\n"


def test_a_bad_day_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["strategies", "run", "--day", "23.11.2026"]) == 1
    assert "--day '23.11.2026': not a date like 2026-11-23" in capsys.readouterr().err


def test_reload_says_why_it_cannot(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No engine running: one line saying so (the running engine's reload is
    tests/integration/test_cli.py's). Whether the engine runs the strategies is its own
    settings' say, not this shell's: the command does not judge it."""
    assert main(["strategies", "reload"]) == 1
    err = capsys.readouterr().err
    assert f"no running engine to reload ({state / 'state' / 'engine.pid'}:" in err
