"""The running engine's process as ``callcenter run`` leaves it: its pid file, and ``SIGHUP``,
which makes it reload what operators edit by hand (the IVR flows and the service strategies)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Final

from callcenter.errors import ConfigError

PID_FILE: Final = "engine.pid"


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


def signal_reload(state_dir: Path) -> int:
    """Tell the running engine to reload (``SIGHUP``); its pid, or a ``ConfigError`` saying
    why not."""
    path = pid_file(state_dir)
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"no running engine to reload ({path}: {exc})") from exc
    return pid
