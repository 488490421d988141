"""The running engine's process as ``callcenter run`` leaves it: its pid file, and the signals
that make it read again what operators edit by hand: ``SIGHUP`` the IVR flows, ``SIGUSR1`` the
service strategies (``RELOAD``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Final, Literal

from callcenter.errors import ConfigError

PID_FILE: Final = "engine.pid"
#: what to reload -> the signal that asks the engine to
RELOAD: Final = {"flows": signal.SIGHUP, "strategies": signal.SIGUSR1}


def pid_file(state_dir: Path) -> Path:
    return state_dir / PID_FILE


def read_pid(state_dir: Path) -> int:
    """The pid the pid file names; ``OSError`` or ``ValueError`` when there is none."""
    return int(pid_file(state_dir).read_text().strip())


def names_pid(state_dir: Path, pid: int) -> bool:
    """Does the pid file name ``pid`` (a later run may have written its own since)?"""
    try:
        return read_pid(state_dir) == pid
    except (OSError, ValueError):
        return False


def engine_pid(state_dir: Path) -> int | None:
    """The pid in the pid file, if that process is alive."""
    try:
        pid = read_pid(state_dir)
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:
        return pid  # alive, another user's
    except OSError:
        return None
    return pid


def catches(pid: int, sig: int) -> bool | None:
    """Does process ``pid`` catch ``sig`` (``SigCgt`` in ``/proc/<pid>/status``)? None: it
    cannot be read (gone, or hidden from this user)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return None


def signal_reload(state_dir: Path, what: Literal["flows", "strategies"]) -> int:
    """Tell the running engine to read ``what`` again (``RELOAD``); its pid, or a
    ``ConfigError`` saying why not. Only a process that catches that signal is sent it (the
    signal's default ends a process): not a pid the system gave to another program since the
    engine ended, not an engine of an older version without that reload, not one stopping."""
    path = pid_file(state_dir)
    try:
        pid = read_pid(state_dir)
    except PermissionError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror}): run this as the engine's"
                          " user") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"no running engine to reload ({path}: {exc})") from exc
    sig = RELOAD[what]
    caught = catches(pid, sig)
    if caught is None:
        raise ConfigError(f"no running engine to reload ({path} names pid {pid}, which this"
                          " user cannot see: gone, or another user's)")
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        command = b""
    if not caught or b"callcenter" not in command:
        raise ConfigError(f"pid {pid} (from {path}) does not take a reload of the {what}: not a"
                          " running callcenter engine of this version (restart it, or remove"
                          " the file if none runs)")
    try:
        os.kill(pid, sig)
    except PermissionError as exc:
        raise ConfigError(f"engine {pid} runs as another user: run this as that user") from exc
    except OSError as exc:
        raise ConfigError(f"no running engine to reload ({path}: {exc})") from exc
    return pid
