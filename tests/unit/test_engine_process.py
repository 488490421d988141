"""``ops/engine_process.py``: which process a reload is sent to, and the errors a newcomer reads."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.errors import ConfigError
from callcenter.ops.engine_process import (
    RELOAD,
    catches,
    engine_pid,
    names_pid,
    pid_file,
    signal_reload,
)

#: a stand-in engine: a process named callcenter that catches the signals given on its command
#: line and prints each one it gets
STAND_IN = ("import signal, sys, time\n"
            "for s in sys.argv[2:]:\n"
            "    signal.signal(int(s), lambda n, f: print(n, flush=True))\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)\n")


@pytest.fixture
def stand_in(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", STAND_IN, "callcenter",
                             *(str(int(s)) for s in request.param)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    yield proc
    proc.kill()
    proc.wait()
    proc.stdout.close()


def test_each_reload_has_its_signal() -> None:
    assert RELOAD == {"flows": signal.SIGHUP, "strategies": signal.SIGUSR1}


def test_no_pid_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no running engine to reload \(.*engine\.pid: "):
        signal_reload(tmp_path, "flows")
    assert engine_pid(tmp_path) is None and not names_pid(tmp_path, 1)


def test_a_stale_pid_given_to_another_program_is_not_signalled(tmp_path: Path) -> None:
    """The pid file of a run that ended names a pid the system gave to something else (here a
    sleep): it is not told to reload (SIGHUP would end it)."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        pid_file(tmp_path).write_text(f"{other.pid}\n")
        with pytest.raises(ConfigError, match="does not take a reload of the flows"):
            signal_reload(tmp_path, "flows")
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("stand_in", [(signal.SIGHUP, signal.SIGUSR1)], indirect=True)
def test_the_engine_gets_the_signal_of_what_to_reload(
        tmp_path: Path, stand_in: subprocess.Popen[str]) -> None:
    assert stand_in.stdout is not None
    pid_file(tmp_path).write_text(f"{stand_in.pid}\n")
    assert engine_pid(tmp_path) == stand_in.pid and names_pid(tmp_path, stand_in.pid)
    assert signal_reload(tmp_path, "flows") == stand_in.pid
    assert stand_in.stdout.readline() == f"{int(signal.SIGHUP)}\n"
    assert signal_reload(tmp_path, "strategies") == stand_in.pid
    assert stand_in.stdout.readline() == f"{int(signal.SIGUSR1)}\n"


@pytest.mark.parametrize("stand_in", [(signal.SIGHUP,)], indirect=True)
def test_an_engine_without_that_reload_is_not_ended_by_it(
        tmp_path: Path, stand_in: subprocess.Popen[str]) -> None:
    """An engine of an older version (or one stopping) does not catch SIGUSR1, whose default
    would end it: refused, and it runs on."""
    pid_file(tmp_path).write_text(f"{stand_in.pid}\n")
    assert catches(stand_in.pid, signal.SIGUSR1) is False
    with pytest.raises(ConfigError, match="does not take a reload of the strategies"):
        signal_reload(tmp_path, "strategies")
    assert stand_in.poll() is None
