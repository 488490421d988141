"""File-system helpers shared by the stores that must survive a crash (the write-ahead spool,
sealed recordings, keys)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Put a folder's entries (a file made, renamed or removed in it) on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
