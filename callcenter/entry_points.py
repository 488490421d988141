"""Plug-ins registered under an entry point group (channel servers, back offices).

The installed packages' metadata, then this source tree's own ``pyproject.toml`` when there is
one beside the package, for the names the metadata lacks: a checkout run with ``PYTHONPATH=.``,
or an editable install whose metadata predates an entry added since, still finds what the
checkout registers. The same value registered twice counts once. ``stale`` names what the
checkout declares and the installed metadata lacks (``callcenter doctor`` warns of it).
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


def stale(pyproject: Path | None = None) -> list[str]:
    """``group:name`` of each entry point the checkout's ``pyproject`` declares that the
    installed metadata lacks: the install predates them (reinstall: ``pip install -e .``)."""
    missing = []
    for group, entries in _declared(pyproject).items():
        installed = {ep.name for ep in metadata.entry_points(group=group)}
        missing += [f"{group}:{name}" for name in entries if name not in installed]
    return missing


def _declared(pyproject: Path | None = None) -> dict[str, dict[str, str]]:
    """The entry point groups this checkout's project file declares (none from a wheel)."""
    try:
        data = tomllib.loads((pyproject or _PYPROJECT).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    project = data.get("project", {})
    if project.get("name") != "callcenter":
        return {}
    groups: dict[str, dict[str, str]] = project.get("entry-points", {})
    return groups


def _source_checkout(group: str) -> list[metadata.EntryPoint]:
    entries = _declared().get(group, {})
    return [metadata.EntryPoint(name, value, group) for name, value in entries.items()]
