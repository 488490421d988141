"""The running engine's process as ``callcenter run`` leaves it: its pid file, and the signals
that make it read again what operators edit by hand: ``SIGHUP`` the IVR flows, ``SIGUSR1`` the
service strategies (``RELOAD``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Final

from callcenter.errors import ConfigError

PID_FILE: Final = "engine.pid"
#: what to reload -> the signal that asks the engine to
RELOAD: Final = {"flows": signal.SIGHUP, "strategies": signal.SIGUSR1}


def pid_file(state_dir: Path) -> Path:
    return state_dir / PID_FILE


def engine_pid(state_dir: Path) -> int | None:
    """The pid in the pid file, if that process is alive."""
    try:
        pid = int(pid_file(state_dir).read_text().strip())
        os.kill(pid, 0)
    except PermissionError:
        return pid  # alive, another user's
    except (OSError, ValueError):
        return None
    return pid


def signal_reload(state_dir: Path, what: str) -> int:
    """Tell the running engine to read ``what`` again (``RELOAD``); its pid, or a
    ``ConfigError`` saying why not. The pid must be a ``callcenter`` process: a stale pid file
    whose number the system gave to another program is not signalled."""
    path = pid_file(state_dir)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"no running engine to reload ({path}: {exc})") from exc
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        command = b""
    if b"callcenter" not in command:
        raise ConfigError(f"no running engine to reload ({path} names pid {pid}, which is not"
                          " a callcenter engine: the file is left from a run that ended)")
    try:
        os.kill(pid, RELOAD[what])
    except PermissionError as exc:
        raise ConfigError(f"engine {pid} runs as another user: run this as that user") from exc
    except OSError as exc:
        raise ConfigError(f"no running engine to reload ({path}: {exc})") from exc
    return pid
