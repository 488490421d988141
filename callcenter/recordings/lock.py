"""One writer of sealed recordings at a time: the engine's keeper (for each round) or
``callcenter recordings rotate-key`` / ``rekey`` (for the whole command).

An exclusive ``flock`` on the state directory itself, taken without waiting: a keeper round
that finds it held is skipped (the next one tries again), a command that finds it held stops
with a clear error. The kernel lets it go when its holder ends, even by a crash. A directory,
not a lock file: a command run as root leaves no file the engine's user could not open.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from callcenter.errors import RecordingError


@contextlib.contextmanager
def holding(state_dir: Path) -> Iterator[bool]:
    """True while this process holds the lock; False (and nothing held) when another does."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise RecordingError(f"cannot take the recordings lock on {state_dir}: {exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError as exc:   # say, a file system without locks
            raise RecordingError(f"cannot take the recordings lock on {state_dir}: {exc}") \
                from exc
        yield True
    finally:
        os.close(fd)   # lets the lock go
