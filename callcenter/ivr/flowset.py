"""A checked, immutable set of flows with their prompts and schedules: one version of the IVR.

``read_flowset`` reads every ``*.yaml`` flow in a directory (``prompts*.yaml`` and
``schedules.yaml`` are not flows) and validates each against the schema; ``flow_load.py``'s
``load_flowset`` then checks the whole set against ``flow_check``. That never half-loads: it
returns a ``FlowSet`` or raises ``FlowSetError`` listing every problem as
``file:line:col: message``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callcenter.broker.exchange_calendar import Calendar, load_calendar
from callcenter.errors import FlowError
from callcenter.ivr.flow_model import Flow, Schedule
from callcenter.ivr.prompts import PromptText
from callcenter.ivr.schedules import with_calendar
from callcenter.ivr.yaml_source import Locations, Where, YamlSyntaxError, load_located

NOT_FLOWS = ("prompts", "schedules")


@dataclass(frozen=True, slots=True)
class Diagnostic:
    where: Where
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class FlowSetError(FlowError):
    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.where.file, d.where.line,
                                                              d.where.col))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


@dataclass(frozen=True)
class FlowSet:
    flows: dict[str, Flow]
    locations: dict[str, Locations]
    prompts: dict[str, dict[str, str]]          # id -> {lang: text}
    schedules: dict[str, Schedule]              # with the exchange calendar's days in them
    version: str                                # content hash, for logs and call records
    files: tuple[Path, ...] = field(default=())
    #: what loads but deserves a look (a schedule's date against the exchange calendar)
    warnings: tuple[Diagnostic, ...] = field(default=())


def is_flow_file(path: Path) -> bool:
    return path.suffix == ".yaml" and not path.stem.startswith(NOT_FLOWS)


def _validation_diagnostics(exc: ValidationError, locs: Locations, raw: Any,
                            prefix: tuple[str | int, ...] = ()) -> list[Diagnostic]:
    out = []
    for err in exc.errors():
        path = _real_path(raw, tuple(err["loc"]))
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = (*path, "type")  # point at the node's type line
        full = (*prefix, *path)
        message = err["msg"].removeprefix("Value error, ")
        name = ".".join(str(p) for p in full)
        out.append(Diagnostic(locs.at(full), f"{name}: {message}" if name else message))
    return out


def _real_path(raw: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """pydantic's ``loc`` without the union tags it inserts (``nodes.a.menu.options``)."""
    out: list[str | int] = []
    node: Any = raw
    for part in loc:
        if _holds(node, part):
            node = node[part]
        elif isinstance(node, dict) and part == node.get("type"):
            continue  # the union tag pydantic adds, not a key of the file
        elif isinstance(node, dict) and isinstance(part, str):
            out.append(part)  # a missing field: locs.at() falls back to its parent
            continue
        else:
            continue
        out.append(part)
    return tuple(out)


def _holds(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and part < len(node)


def _load_yaml(path: Path, problems: list[Diagnostic]) -> tuple[Any, Locations] | None:
    try:
        return load_located(path)
    except YamlSyntaxError as exc:
        problems.append(Diagnostic(exc.where, exc.message))
    except OSError as exc:
        problems.append(Diagnostic(Where(str(path), 1, 1), f"cannot read: {exc}"))
    return None


def _load_prompts(directory: Path, problems: list[Diagnostic]) -> dict[str, dict[str, str]]:
    prompts: dict[str, dict[str, str]] = {}
    for path in sorted(directory.glob("prompts*.yaml")):
        loaded = _load_yaml(path, problems)
        if loaded is None:
            continue
        raw, locs = loaded
        if not isinstance(raw, dict):
            problems.append(Diagnostic(locs.at(()), "expected prompt id: {zh: ..., en: ...}"))
            continue
        for ident, texts in raw.items():
            if not isinstance(texts, dict) or not all(
                    isinstance(texts.get(lang), str) and texts[lang].strip()
                    for lang in ("zh", "en")):
                problems.append(Diagnostic(locs.at((ident,)),
                                           f"prompt {ident!r} needs zh and en texts"))
                continue
            if ident in prompts:
                problems.append(Diagnostic(locs.at((ident,)), f"prompt {ident!r} defined twice"))
            prompts[ident] = {"zh": texts["zh"], "en": texts["en"]}
            unknown = set(texts) - set(PromptText.model_fields)  # what the builder reads
            if unknown:
                problems.append(Diagnostic(locs.at((ident,)), f"prompt {ident!r}: unknown "
                                           f"key(s) {', '.join(sorted(unknown))}"))
    return prompts


def _load_schedules(directory: Path, problems: list[Diagnostic], calendar: Calendar,
                    warnings: list[Diagnostic]) -> dict[str, Schedule]:
    path = directory / "schedules.yaml"
    if not path.exists():
        return {}
    loaded = _load_yaml(path, problems)
    if loaded is None:
        return {}
    raw, locs = loaded
    out: dict[str, Schedule] = {}
    for name, body in (raw or {}).items():
        try:
            written = Schedule.model_validate(body)
        except ValidationError as exc:
            problems.extend(_validation_diagnostics(exc, locs, body, (name,)))
            continue
        out[name], notes = with_calendar(written, calendar)
        warnings.extend(Diagnostic(locs.at((name, n.field, n.index)), f"{name}: {n.message}")
                        for n in notes)
    return out


def read_flowset(directory: Path, extra_prompts: dict[str, dict[str, str]] | None = None,
                 calendar: Calendar | None = None,
                 ) -> tuple[FlowSet | None, list[Diagnostic]]:
    """Read every flow in ``directory`` (syntax and shape only): the flow set, or None when the
    directory is missing, and the problems found. ``flow_load.load_flowset`` adds the meaning
    checks (``flow_check``) and raises on any problem. The schedules take ``calendar``'s days
    (None: the packaged exchange calendar)."""
    problems: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    if not directory.is_dir():
        return None, [Diagnostic(Where(str(directory), 1, 1), "no such directory")]
    prompts = {**(extra_prompts or {}), **_load_prompts(directory, problems)}
    schedules = _load_schedules(directory, problems,
                                calendar if calendar is not None else load_calendar(), warnings)
    flows: dict[str, Flow] = {}
    locations: dict[str, Locations] = {}
    digest = hashlib.sha256()
    files = tuple(sorted(p for p in directory.glob("*.yaml") if is_flow_file(p)))
    for path in sorted(directory.glob("*.yaml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for path in files:
        loaded = _load_yaml(path, problems)
        if loaded is None:
            continue
        raw, locs = loaded
        if not isinstance(raw, dict):
            problems.append(Diagnostic(locs.at(()), "a flow file is a mapping with flow, "
                                                    "start and nodes"))
            continue
        try:
            flow = Flow.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_validation_diagnostics(exc, locs, raw))
            continue
        if flow.flow != path.stem:
            problems.append(Diagnostic(locs.at(("flow",)),
                                       f"flow {flow.flow!r} must be in a file named "
                                       f"{flow.flow}.yaml"))
            continue
        flows[flow.flow] = flow
        locations[flow.flow] = locs
    return FlowSet(flows, locations, prompts, schedules, digest.hexdigest()[:12], files,
                   tuple(warnings)), problems
