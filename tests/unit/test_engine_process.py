"""``ops/engine_process.py``: which process a reload is sent to, and the errors a newcomer reads."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from callcenter.errors import ConfigError
from callcenter.ops.engine_process import RELOAD, engine_pid, pid_file, signal_reload


def test_no_pid_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no running engine to reload \(.*engine\.pid: "):
        signal_reload(tmp_path, "flows")
    assert engine_pid(tmp_path) is None


def test_a_stale_pid_given_to_another_program_is_not_signalled(tmp_path: Path) -> None:
    """The pid file of a run that ended names a pid the system gave to something else (here a
    sleep): it is not told to reload (SIGHUP would end it)."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        pid_file(tmp_path).write_text(f"{other.pid}\n")
        with pytest.raises(ConfigError, match="which is not a callcenter engine"):
            signal_reload(tmp_path, "flows")
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_the_engine_gets_the_signal_of_what_to_reload(tmp_path: Path) -> None:
    """A process whose command line names callcenter gets SIGHUP for the flows, SIGUSR1 for the
    strategies."""
    script = ("import signal, sys, time\n"
              "got = []\n"
              "for s in (signal.SIGHUP, signal.SIGUSR1):\n"
              "    signal.signal(s, lambda n, f: got.append(n))\n"
              "print('ready', flush=True)\n"
              "while len(got) < 2: time.sleep(0.01)\n"
              "print(*got, flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, "callcenter"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        pid_file(tmp_path).write_text(f"{proc.pid}\n")
        assert engine_pid(tmp_path) == proc.pid
        assert signal_reload(tmp_path, "flows") == proc.pid
        assert signal_reload(tmp_path, "strategies") == proc.pid
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert sorted(out.split()) == sorted(str(int(s)) for s in RELOAD.values())
    assert {RELOAD["flows"], RELOAD["strategies"]} == {signal.SIGHUP, signal.SIGUSR1}
