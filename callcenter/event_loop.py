"""Which asyncio event loop the engine's processes run on.

``uvloop`` (libuv under asyncio's API) when it is installed and the settings allow it, else the
standard loop. Measured with ``callcenter bench load`` on the sandbox Asterisk: the engine's CPU
per FastAGI call falls by about a sixth on uvloop, most of it in socket reads and writes and
timer handling, with the same code. ``event_loop = "asyncio"`` (``CALLCENTER_EVENT_LOOP``) turns
it off, e.g. to compare or to debug with asyncio's debug mode.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from callcenter.errors import ConfigError

T = TypeVar("T")

LoopChoice = Literal["auto", "uvloop", "asyncio"]


def loop_factory(choice: LoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``asyncio.Runner``; ``None`` means the standard loop.

    ``auto`` takes uvloop when it can be imported; ``uvloop`` insists on it (a clear error
    when it is missing rather than a silent fall-back the operator did not ask for).
    """
    if choice == "asyncio":
        return None
    if importlib.util.find_spec("uvloop") is None:
        if choice == "uvloop":
            raise ConfigError("event_loop = uvloop, but uvloop is not installed "
                              "(pip install uvloop, or set event_loop = asyncio)")
        return None
    import uvloop

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: LoopChoice) -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: what the current process runs on (for logs and reports)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "none"
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
