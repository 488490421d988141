"""Splicing one ``## `` section into docs/benchmarks.md, which several benchmarks write.

``docs/benchmarks.md`` holds one level-2 section per benchmark. A benchmark replaces its own
section (from its ``## Heading`` line up to the next level-2 heading or the end of the file) and
leaves every other byte alone; a section not there yet is appended. Headings inside fenced code
blocks are not headings.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_TITLE = "# Benchmarks\n"


def _is_fence(line: str) -> bool:
    return line.lstrip().startswith(("```", "~~~"))


def section_bounds(document: str, heading: str) -> tuple[int, int] | None:
    """Line indexes ``[first, end)`` of the section headed ``## heading``, or None."""
    lines = document.splitlines(keepends=True)
    target = f"## {heading}"
    first: int | None = None
    fenced = False
    for n, line in enumerate(lines):
        if _is_fence(line):
            fenced = not fenced
            continue
        if fenced or not line.startswith("## "):
            continue
        if first is not None:
            return first, n
        if line.rstrip() == target:
            first = n
    return None if first is None else (first, len(lines))


def replace_section(document: str, heading: str, body: str) -> str:
    """``document`` with the section ``## heading`` replaced by ``body`` (or appended).

    ``body`` must start with that heading line; it is stored with exactly one blank line
    before the next section.
    """
    if not body.startswith(f"## {heading}\n"):
        raise ValueError(f"the body must start with '## {heading}'")
    body = body.rstrip("\n") + "\n"
    if not document.strip():
        return f"{DEFAULT_TITLE}\n{body}"
    lines = document.splitlines(keepends=True)
    bounds = section_bounds(document, heading)
    if bounds is None:
        return document.rstrip("\n") + "\n\n" + body
    first, end = bounds
    after = "".join(lines[end:])
    return "".join(lines[:first]) + body + ("\n" + after if after else "")


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace (or add) one section of the markdown file at ``path``, creating it if needed."""
    try:
        document = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        document = ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(document, heading, body), encoding="utf-8")
