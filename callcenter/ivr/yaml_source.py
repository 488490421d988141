"""YAML that remembers where things are, so every error can say ``file:line:col: message``.

``load_located`` returns plain dicts/lists/scalars plus a ``Locations`` index from a path of keys
and list indexes (the same shape as pydantic's error ``loc``) to the 1-based line and column.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from callcenter.ivr.yaml_plain import doubts, explain, traps

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Where:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class Locations:
    file: str
    index: dict[tuple[str | int, ...], Where] = field(default_factory=dict)

    def at(self, path: tuple[str | int, ...]) -> Where:
        """The closest known location: the path itself, else its nearest ancestor."""
        for end in range(len(path), -1, -1):
            where = self.index.get(tuple(path[:end]))
            if where is not None:
                return where
        return Where(self.file, 1, 1)


class YamlSyntaxError(Exception):
    def __init__(self, where: Where, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def load_located(path: Path) -> tuple[Any, Locations]:
    text = path.read_text(encoding="utf-8")
    return loads_located(text, str(path))


def loads_located(text: str, name: str) -> tuple[Any, Locations]:
    """Parse ``text``; a syntax error, or the first key or value YAML would silently turn into
    something else (``yaml_plain.traps``), raises ``YamlSyntaxError`` in plain words; what may
    be such a trap or a comment (``yaml_plain.doubts``) is logged as a warning."""
    locations = Locations(name)
    lines = text.splitlines()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line, col, message = explain(exc, lines)
        raise YamlSyntaxError(Where(name, line, col), message) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(Where(name, 1, 1), f"YAML: {exc}") from exc
    if node is None:
        return None, locations
    trap = next(traps(node, lines), None)
    if trap is not None:
        line, col, message = trap
        raise YamlSyntaxError(Where(name, line, col), message)
    for line, col, message in doubts(node, lines):
        log.warning("%s: %s", Where(name, line, col), message)
    return _convert(node, (), locations), locations


def _where(node: yaml.Node, name: str) -> Where:
    return Where(name, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(node: yaml.Node, path: tuple[str | int, ...], locs: Locations) -> Any:
    locs.index.setdefault(path, _where(node, locs.file))
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlSyntaxError(_where(key_node, locs.file), "keys must be plain scalars")
            # Keys are always text: YAML 1.1 would read on/yes/no as booleans, 1 as int.
            skey = str(key_node.value)
            if skey in out:
                raise YamlSyntaxError(_where(key_node, locs.file), f"duplicate key {skey!r}")
            locs.index[(*path, skey)] = _where(key_node, locs.file)
            out[skey] = _convert(value_node, (*path, skey), locs)
            # The value's own position is more useful for errors about the value.
            locs.index[(*path, skey)] = _where(key_node, locs.file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), locs) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    """A scalar the YAML 1.2 way: only true/false are booleans, digits with a leading zero
    (stock codes such as 000001) stay text instead of becoming octal or stripped integers, and
    times such as 22:00 stay text instead of becoming base-60 numbers (1320)."""
    assert isinstance(node, yaml.ScalarNode)
    if node.style is not None:  # quoted
        return node.value
    value = yaml.SafeLoader(node.value).construct_object(node)
    if isinstance(value, bool) and node.value.lower() not in ("true", "false"):
        return node.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    sexagesimal = ":" in node.value
    leading_zero = isinstance(value, int) and len(node.value) > 1 \
        and node.value.lstrip("+-").startswith("0")
    if sexagesimal or leading_zero:
        return node.value
    return value
