"""How long each menu speaks: the keys it offers and the length of its fixed prompts in each
language, read from the built audio (``sounds/<lang>/<id>.wav``).

``callcenter prompts build --durations`` prints it after a build (docs/speech.md, "Menus").
A menu's time is the sum of its fixed prompts, as the caller hears them before pressing a key;
values it speaks (``say:``, such as the bank's name in the transfer menu) change per call, are
not timed and are counted in ``values``. Runs from the CLI, outside the event loop.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

from callcenter.errors import ConfigError
from callcenter.ivr.flow_check import MAX_MENU_OPTIONS, menu_keys
from callcenter.ivr.flow_model import MenuNode
from callcenter.ivr.flowset import FlowSet
from callcenter.ivr.prompts import LANGUAGES


@dataclass(frozen=True)
class MenuTiming:
    flow: str
    node: str
    #: the keys offered, as ``flows check`` counts them (the agent key included)
    keys: tuple[str, ...]
    #: the fixed prompts, in the order played
    prompts: tuple[str, ...]
    #: spoken values (``say:``) in the prompts, not timed
    values: int
    #: seconds per language; None when a prompt of the menu has no audio in that language
    seconds: dict[str, float | None]


def wav_seconds(path: Path) -> float:
    """The length of a WAV file, from its header."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / w.getframerate()
    except (OSError, EOFError, wave.Error) as exc:
        raise ConfigError(f"{path}: not a readable WAV file: {exc}") from exc


def menu_timings(flows: FlowSet, sounds_dir: Path) -> list[MenuTiming]:
    """Every menu of ``flows`` (flow by flow, in file order), timed from ``sounds_dir``."""
    out = []
    for flow in flows.flows.values():
        for name, node in flow.nodes.items():
            if not isinstance(node, MenuNode):
                continue
            fixed = tuple(p for p in node.prompts if isinstance(p, str))
            seconds: dict[str, float | None] = {}
            for lang in LANGUAGES:
                paths = [sounds_dir / lang / f"{ident}.wav" for ident in fixed]
                seconds[lang] = (round(sum(wav_seconds(p) for p in paths), 2)
                                 if all(p.is_file() for p in paths) else None)
            out.append(MenuTiming(flow.flow, name, tuple(menu_keys(flow, name)), fixed,
                                  len(node.prompts) - len(fixed), seconds))
    return out


def format_timings(timings: list[MenuTiming]) -> list[str]:
    """A plain table: menu, keys, seconds per language ('-': not built), prompts."""
    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = [f"{'menu':34} {'keys':14} {'zh s':>6} {'en s':>6}  prompts"]
    for t in timings:
        keys = " ".join(t.keys) + (" !" if len(t.keys) > MAX_MENU_OPTIONS else "")
        extra = f" + {t.values} value(s)" if t.values else ""
        lines.append(f"{t.flow + '/' + t.node:34} {keys:14} {secs(t.seconds['zh']):>6} "
                     f"{secs(t.seconds['en']):>6}  {' '.join(t.prompts)}{extra}")
    return lines
