"""Plug-ins registered under an entry point group (channel servers, back offices).

The installed packages' metadata, then this source tree's own ``pyproject.toml`` when there is
one beside the package, for the names the metadata lacks: a checkout run with ``PYTHONPATH=.``,
or an editable install whose metadata predates an entry added since, still finds what the
checkout registers. The same value registered twice counts once.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

#: this source tree's project file (absent when the package is installed from a wheel)
_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def registered(group: str) -> dict[str, list[metadata.EntryPoint]]:
    """Every entry point of ``group`` by name; more than one under a name is a conflict that
    the caller reports."""
    found: dict[str, list[metadata.EntryPoint]] = {}
    for ep in metadata.entry_points(group=group):
        if ep.value not in [e.value for e in found.get(ep.name, [])]:
            found.setdefault(ep.name, []).append(ep)
    for ep in _source_checkout(group):
        found.setdefault(ep.name, [ep])
    return found


def _source_checkout(group: str) -> list[metadata.EntryPoint]:
    try:
        data = tomllib.loads(_PYPROJECT.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return []
    project = data.get("project", {})
    if project.get("name") != "callcenter":
        return []
    entries = project.get("entry-points", {}).get(group, {})
    return [metadata.EntryPoint(name, value, group) for name, value in entries.items()]
