"""Reading strategy files and ``check``: every problem as ``file:line:col: message``.

A strategy's id is its file's name (``strategies/birthday.yaml`` is ``birthday``). Besides the
model's own rules (``model.py``: unknown fields and operators, forms that do not parse, dial
plans that do not validate), ``check`` refuses a population that would take every customer, caps
that would let a strategy contact a customer twice in a day, a deadline after a complaint's
handling without a complaint condition, a team that is no ACD queue, a caller ID that is not one
of the site's own numbers, ``mandatory`` on a message, and an id used twice. What the site
offers (its teams, its numbers) comes from the settings as a ``Site``; without one those two
rules are not checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callcenter.config import Settings
from callcenter.dialer.rules import foreign_caller_id, own_numbers
from callcenter.errors import StrategyError
from callcenter.ivr.yaml_source import Locations, YamlSyntaxError, loads_located
from callcenter.strategies.conditions import always_true, condition_count
from callcenter.strategies.model import Strategy

__all__ = ["Site", "StrategySetError", "check_strategy", "load_files", "load_strategies",
           "strategy_files"]


@dataclass(frozen=True)
class Site:
    """What a strategy may name that the site's settings decide: its teams (the ACD queues)
    and the caller IDs a task may show (``dialer/rules.py``'s ``own_numbers``)."""

    teams: frozenset[str]
    caller_ids: frozenset[str]

    @classmethod
    def of(cls, settings: Settings) -> Site:
        return cls(frozenset(q.name for q in settings.acd.queues), own_numbers(settings.trunks))


class StrategySetError(StrategyError):
    """Strategy files with problems; ``diagnostics`` holds one ``file:line:col: message`` each."""

    def __init__(self, diagnostics: Sequence[str]) -> None:
        super().__init__("\n".join(diagnostics))
        self.diagnostics = list(diagnostics)


def strategy_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith("."))


def _message(error: Any) -> str:
    kind, msg = error["type"], str(error["msg"])
    loc = error["loc"]
    if kind == "extra_forbidden":
        return f"unknown field '{loc[-1]}'"
    if kind == "missing":
        return f"'{loc[-1]}' is missing"
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _located(exc: ValidationError, locs: Locations) -> list[str]:
    out = []
    for error in exc.errors():
        path = tuple(p for p in error["loc"] if isinstance(p, str | int))
        out.append(f"{locs.at(path)}: {_message(error)}")
    return out


def check_strategy(strategy: Strategy, site: Site | None = None
                   ) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems beyond the model's: (path in the file, message)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    pop = strategy.population
    always = always_true(pop)
    if condition_count(pop) == len(always):
        why = f" ({'; '.join(always)} always hold)" if always else ""
        problems.append((("population",), "this population takes every customer" + why
                         + ": add a condition that can fail"))
    if strategy.caps.cooldown_days < 1:
        problems.append((("caps", "cooldown_days"),
                         "cooldown_days 0 would let this strategy contact a customer twice in a"
                         " day: 1 or more"))
    if strategy.mandatory and strategy.action.message is not None:
        problems.append((("mandatory",), "a message is never a duty: mandatory is for a task"
                         " (a call the customer must get)"))
    task = strategy.action.task
    if task is not None:
        if (task.deadline is not None and task.deadline.after == "complaint_handled"
                and pop.complaint_handled is None):
            problems.append((("action", "task", "deadline", "after"),
                             "a deadline after complaint_handled needs the population's"
                             " complaint_handled condition"))
        if site is not None and task.team not in site.teams:
            problems.append((("action", "task", "team"),
                             f"team '{task.team}' is no ACD queue (known: "
                             f"{', '.join(sorted(site.teams)) or 'none'})"))
        if site is not None:
            foreign = foreign_caller_id(task.dial, site.caller_ids)
            if foreign is not None:
                problems.append((("action", "task", "dial", "caller_id"), foreign))
    return problems


def _load_one(path: Path, site: Site | None) -> tuple[Strategy | None, list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}:1:1: cannot read: {exc}"]
    try:
        raw, locs = loads_located(text, str(path))
    except YamlSyntaxError as exc:
        return None, [str(exc)]
    if not isinstance(raw, dict):
        return None, [f"{locs.at(())}: a strategy is a mapping of fields (title, population,"
                      f" schedule, action, priority, caps)"]
    if "id" in raw:
        return None, [f"{locs.at(('id',))}: the id is the file's name ('{path.stem}'): leave"
                      f" it out"]
    try:
        strategy = Strategy.model_validate({**raw, "id": path.stem})
    except ValidationError as exc:
        return None, _located(exc, locs)
    return strategy, [f"{locs.at(where)}: {message}"
                      for where, message in check_strategy(strategy, site)]


def load_files(paths: Iterable[Path], site: Site | None = None) -> list[Strategy]:
    """The strategies in ``paths``; ``StrategySetError`` with every problem found."""
    problems: list[str] = []
    strategies: list[Strategy] = []
    seen: dict[str, Path] = {}
    for path in paths:
        strategy, found = _load_one(path, site)
        problems.extend(found)
        if strategy is None:
            continue
        if strategy.id in seen:
            problems.append(f"{path}:1:1: strategy id '{strategy.id}' is also {seen[strategy.id]}")
            continue
        seen[strategy.id] = path
        if not found:
            strategies.append(strategy)
    if problems:
        raise StrategySetError(problems)
    return strategies


def load_strategies(directory: Path, site: Site | None = None) -> list[Strategy]:
    """Every strategy in ``directory`` (``*.yaml``, ``*.yml``)."""
    try:
        files = strategy_files(directory)
    except OSError as exc:
        raise StrategySetError([f"{directory}:1:1: cannot read the strategies: {exc}"]) from exc
    return load_files(files, site)
