"""CPU lists and affinity (``callcenter/cpu_affinity.py``), the relay's ``console.fanout_cpus``
and the console benchmark's split of the CPUs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from callcenter.bench_console import cpu_counters, cpu_split
from callcenter.config import ConsoleSettings, load_settings
from callcenter.cpu_affinity import (
    available,
    check_cpus,
    format_cpus,
    online,
    parse_cpus,
    pin,
    split,
)
from callcenter.engine import console_fanout
from callcenter.errors import ConfigError


def test_cpu_lists_are_read_and_written_as_the_kernel_writes_them() -> None:
    assert parse_cpus("0,2-3") == {0, 2, 3}
    assert parse_cpus(" 1 ") == {1}
    assert format_cpus({0, 2, 3, 5, 6, 7}) == "0,2-3,5-7"
    assert format_cpus([]) == ""
    for bad in ("", "a", "3-1", "-1", "1,,2", "1-", "0-4000000000"):
        with pytest.raises(ConfigError, match="not a CPU list"):
            parse_cpus(bad)


def test_a_split_gives_each_side_at_least_one_cpu() -> None:
    assert split({0, 1}) == (frozenset({0}), frozenset({1}))
    assert split({0, 1, 2}) == (frozenset({0, 1}), frozenset({2}))
    assert split({4, 5, 6, 7}) == (frozenset({4, 5}), frozenset({6, 7}))
    with pytest.raises(ConfigError, match="two or more"):
        split({0})


def test_the_console_bench_splits_the_cpus_as_asked() -> None:
    have = frozenset({0, 1, 2, 3})
    assert cpu_split("none", have) is None
    assert cpu_split("auto", have) == (frozenset({0, 1}), frozenset({2, 3}))
    assert cpu_split("auto", frozenset({0})) is None      # one CPU: nothing to split
    assert cpu_split("3", have) == (frozenset({0, 1, 2}), frozenset({3}))
    with pytest.raises(ConfigError, match="CPU 7 is not available"):
        cpu_split("3,7", have)
    with pytest.raises(ConfigError, match="leave at least one CPU"):
        cpu_split("0-3", have)
    with pytest.raises(ConfigError, match="'all' is neither auto, none nor a CPU list"):
        cpu_split("all", have)


def test_busy_time_is_summed_over_the_cpus_asked_for() -> None:
    stat = ("cpu  10 0 10 100 0 0 0 0 0 0\n"
            "cpu0 4 0 6 50 0 0 0 0 0 0\n"
            "cpu1 6 0 4 50 0 0 0 0 0 0\n"
            "intr 12345\n")
    assert cpu_counters(stat) == [10, 0, 10, 100, 0, 0, 0, 0]
    assert cpu_counters(stat, frozenset({1})) == [6, 0, 4, 50, 0, 0, 0, 0]
    assert cpu_counters(stat, frozenset({0, 1})) == [10, 0, 10, 100, 0, 0, 0, 0]


def test_fanout_cpus_must_be_a_cpu_list_of_this_machine() -> None:
    assert ConsoleSettings(fanout_cpus=" 0 ").fanout_cpus == "0"
    assert ConsoleSettings(fanout_cpus=3).fanout_cpus == "3"   # as TOML gives a number
    with pytest.raises(ValidationError, match="not a CPU list"):
        ConsoleSettings(fanout_cpus="first")
    beyond = max(online()) + 1
    with pytest.raises(ConfigError, match=f"console.fanout_cpus: CPU {beyond} is not"):
        console_fanout(load_settings(console={"fanout_cpus": str(beyond)}))
    assert check_cpus({max(available())}, "x") == {max(available())}
    with pytest.raises(ConfigError, match="no CPU given"):
        check_cpus(set(), "x")


def test_pin_keeps_every_thread_of_a_process_on_the_cpus() -> None:
    child = subprocess.Popen([sys.executable, "-c",
                              "import threading, time\n"
                              "threading.Thread(target=time.sleep, args=(30,), daemon=True)"
                              ".start()\ntime.sleep(30)"])
    try:
        cpu = max(available())
        pin(child.pid, {cpu})
        tasks = os.listdir(f"/proc/{child.pid}/task")
        assert all(os.sched_getaffinity(int(t)) == {cpu} for t in tasks)
        pin(2**22 + 1, {cpu})   # no such process: nothing to do
    finally:
        child.kill()
        child.wait()
