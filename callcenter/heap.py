"""Python's cyclic garbage collector in a process that must answer within milliseconds.

A full collection walks every container object the process holds and holds the event loop
while it does. In the engine under load with a thousand consoles open (``bench console``), one
came every minute or so and took 190-230 ms: every FastAGI reply, AMI event and console push in
flight waited that long, and it was the setup p99 of whichever phase it fell in. Most of what
it walked never dies: modules, classes, the web application, settings, compiled flows.

``settle()`` runs once a process has started (the engine, the fan-out relay, the benchmarks'
engine): one collection, then ``gc.freeze()``, which moves everything alive into a generation
the collector never walks again. What is created later (calls, console sessions) is collected
as before. A frozen object still goes when its last reference does; only a frozen *cycle* that
turns garbage later stays (with what it holds then): what a process sets up at start-up lives
as long as the process, the rare exception (the first AMI link's objects after a reconnect, the
flows of start-up after a reload, which hold no cycles) costs a few kilobytes once, not per hour.

Full collections then walk about half as much (43 ms of CPU instead of 102 ms in ``bench
console``); they may come more often, as Python schedules them by the growth of what it walks.
"""

from __future__ import annotations

import gc

__all__ = ["settle"]


def settle() -> int:
    """Collect once, then exempt every object alive now from later collections; returns how
    many objects are exempt."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
