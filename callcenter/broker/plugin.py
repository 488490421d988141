"""Which back office the engine runs: a factory registered under the entry point group
``callcenter.backoffice``, chosen by the setting ``backoffice.kind`` (default ``sandbox``).

A factory is an async callable taking one ``BackOfficeContext`` and returning an opened
``BackOfficeAdapter``: every ``BackOffice`` method, plus ``now()`` (the back office's time, which
the IVR's business hours follow) and ``close()``. The engine checks what it gets before it takes
a call and refuses, naming what is missing, one that does not answer all of them.
docs/backoffice.md, "Connecting the brokerage's counter system", is the integrator's guide.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from callcenter.broker.interface import BackOffice
from callcenter.broker.rules import Rules
from callcenter.entry_points import registered
from callcenter.errors import ConfigError

if TYPE_CHECKING:
    from callcenter.broker.sandbox import SandboxBackOffice
    from callcenter.config import Settings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "callcenter.backoffice"
Clock = Callable[[], dt.datetime]


class BackOfficeAdapter(BackOffice, Protocol):
    """What a factory returns: a ``BackOffice`` that tells its time and can be closed."""

    def now(self) -> dt.datetime:
        """The back office's current time, aware (a real system: the real time in Beijing)."""
        ...

    async def close(self) -> None:
        """Let calls in flight finish, then release connections."""
        ...


@dataclass(frozen=True, slots=True)
class BackOfficeContext:
    """What a factory is given."""

    #: the whole configuration; an adapter's own table is ``settings.backoffice.options``
    settings: Settings
    #: the A-share rules with the brokerage's settings applied (holidays, fees, lock counts)
    rules: Rules
    #: a simulated back office runs on this clock (tests pin a trading day; the setting
    #: ``backoffice.clock_start``); None: the real time. A real trading system ignores it.
    clock: Clock | None = None


BackOfficeFactory = Callable[[BackOfficeContext], Awaitable[BackOfficeAdapter]]


def installed_kinds() -> list[str]:
    return sorted(registered(ENTRY_POINT_GROUP))


def load_factory(kind: str) -> BackOfficeFactory:
    """The factory registered as ``kind``; a ``ConfigError`` naming the installed kinds if none
    is, or if it cannot be loaded or called with a context."""
    found = registered(ENTRY_POINT_GROUP)
    candidates = found.get(kind, [])
    if not candidates:
        raise ConfigError(f"backoffice.kind {kind!r}: no back office of that kind is installed "
                          f"(entry point group {ENTRY_POINT_GROUP}; installed: "
                          f"{', '.join(sorted(found)) or 'none'})")
    if len(candidates) > 1:
        raise ConfigError(f"more than one back office claims kind {kind!r}: "
                          + ", ".join(ep.value for ep in candidates))
    where = candidates[0].value
    try:
        factory = candidates[0].load()
    except Exception as exc:
        raise ConfigError(f"back office {kind!r} ({where}) cannot be loaded: {exc}") from exc
    try:
        inspect.signature(factory).bind(None)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"back office {kind!r} ({where}) is not a factory taking one "
                          "BackOfficeContext (docs/backoffice.md)") from exc
    result: BackOfficeFactory = factory
    return result


async def open_backoffice(context: BackOfficeContext) -> BackOfficeAdapter:
    """Open the back office ``settings.backoffice.kind`` names, checked against the protocol."""
    kind = context.settings.backoffice.kind
    factory = load_factory(kind)
    if kind != "sandbox" and context.settings.backoffice.clock_start is not None:
        log.warning("backoffice.clock_start is for the sandbox; the %s back office keeps its"
                    " own time", kind)
    opening = factory(context)
    if not inspect.isawaitable(opening):
        raise ConfigError(f"back office {kind!r}: its factory must be async (it returned "
                          f"{type(opening).__name__})")
    office: Any = await opening
    problems = protocol_problems(office)
    if problems:
        close = getattr(office, "close", None)
        if inspect.iscoroutinefunction(close):
            await close()
        raise ConfigError(f"back office {kind!r} ({type(office).__qualname__}) does not "
                          f"satisfy the BackOffice protocol: {'; '.join(problems)}")
    log.info("back office: %s (%s)", kind, type(office).__qualname__)
    adapter: BackOfficeAdapter = office
    return adapter


def protocol_problems(office: object) -> list[str]:
    """What ``office`` lacks of ``BackOfficeAdapter``: each method missing, not a coroutine
    function where one is needed, or not callable with the protocol's arguments."""
    problems = []
    for name, expected in _protocol_methods().items():
        method = getattr(office, name, None)
        if method is None or not callable(method):
            problems.append(f"{name}: missing")
            continue
        wants_async = inspect.iscoroutinefunction(expected)
        if inspect.iscoroutinefunction(method) != wants_async:
            problems.append(f"{name}: {'not ' if wants_async else ''}a coroutine function")
            continue
        params = list(inspect.signature(expected).parameters)[1:]  # without self
        try:
            inspect.signature(method).bind(*params)
        except (TypeError, ValueError):
            problems.append(f"{name}: does not take ({', '.join(params)})")
    return problems


def _protocol_methods() -> dict[str, Callable[..., Any]]:
    methods: dict[str, Callable[..., Any]] = {}
    for cls in (BackOffice, BackOfficeAdapter):
        methods.update({name: fn for name, fn in vars(cls).items()
                        if inspect.isfunction(fn) and not name.startswith("_")})
    return methods


async def open_sandbox(context: BackOfficeContext) -> SandboxBackOffice:
    """The ``sandbox`` kind: the embedded ledger at ``settings.backoffice_db``, on the
    context's clock, with the context's rules."""
    from callcenter.broker.sandbox import SandboxBackOffice

    return await SandboxBackOffice.open(context.settings.backoffice_db, clock=context.clock,
                                        rules=context.rules)
