"""Which CPUs a process may run on (Linux ``sched_setaffinity``).

``console.fanout_cpus`` gives the fan-out relay CPUs of its own, so that writing wallboards to
many consoles never takes a CPU from Asterisk or the engine; ``callcenter bench console`` splits
the machine's CPUs between the system under test and the consoles it simulates (which on a site
run on the agents' PCs). CPU lists are written as the kernel writes them: ``0,2-3``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from callcenter.errors import ConfigError

#: no machine this runs on has more: a list beyond is a typing error, not a set to build
MAX_CPU = 4095


def parse_cpus(text: str) -> frozenset[int]:
    """``"0,2-3"`` -> {0, 2, 3}; a clear error for anything else."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last if dash else first)
        except ValueError:
            raise ConfigError(f"not a CPU list: {text!r} (write it as 0,2-3)") from None
        if low < 0 or high < low or high > MAX_CPU:
            raise ConfigError(f"not a CPU list: {text!r} (write it as 0,2-3)")
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def format_cpus(cpus: Iterable[int]) -> str:
    """{0, 2, 3} -> ``"0,2-3"``."""
    runs: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def available() -> frozenset[int]:
    """The CPUs this process may run on."""
    return frozenset(os.sched_getaffinity(0))


#: where the kernel lists the CPUs processes here may be given: a container's cpuset (cgroup v2,
#: then v1), else the machine's CPUs online
_CPU_LISTS = ("/sys/fs/cgroup/cpuset.cpus.effective",
              "/sys/fs/cgroup/cpuset/cpuset.effective_cpus",
              "/sys/devices/system/cpu/online")


def online() -> frozenset[int]:
    """The CPUs a process here may be given (beyond its own affinity)."""
    for name in _CPU_LISTS:
        try:
            return parse_cpus(Path(name).read_text(encoding="ascii"))
        except (OSError, ConfigError):
            continue
    return available()


def check_cpus(cpus: Iterable[int], what: str) -> frozenset[int]:
    """``cpus`` if every one of them is online, else a ``ConfigError``."""
    wanted, have = frozenset(cpus), online()
    if not wanted:
        raise ConfigError(f"{what}: no CPU given")
    missing = wanted - have
    if missing:
        raise ConfigError(f"{what}: CPU {format_cpus(missing)} is not available here"
                          f" (available: {format_cpus(have)})")
    return wanted


def pin(pid: int, cpus: Iterable[int]) -> None:
    """Keep process ``pid`` on ``cpus``: every thread it has (a thread started later inherits
    the CPUs of the thread that starts it). A thread that ends meanwhile is skipped."""
    wanted = frozenset(cpus)
    done: set[str] = set()
    while True:   # again for the threads started meanwhile (they may copy the old CPUs)
        try:
            tasks = {t.name for t in Path(f"/proc/{pid}/task").iterdir()} - done
        except FileNotFoundError:
            return   # the process is gone
        if not tasks:
            return
        for task in sorted(tasks):
            with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                os.sched_setaffinity(int(task), wanted)
        done |= tasks


def split(cpus: Iterable[int]) -> tuple[frozenset[int], frozenset[int]]:
    """The CPUs in two sets, the first half (rounded up) and the rest; at least one each."""
    ordered = sorted(set(cpus))
    if len(ordered) < 2:
        raise ConfigError(f"splitting the CPUs needs two or more (this process has"
                          f" {format_cpus(ordered) or 'none'})")
    half = (len(ordered) + 1) // 2
    return frozenset(ordered[:half]), frozenset(ordered[half:])
