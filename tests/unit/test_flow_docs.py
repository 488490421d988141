"""The docs' YAML examples, run as tests: every ```yaml block of docs/flows.md says, in an HTML
comment just above it, how it is meant, and is checked that way against a copy of the shipped
flows (with the default settings' queues):

- ``<!-- check: fragment -->``: a piece of a file; it must parse cleanly.
- ``<!-- check: NAME file F -->``: the whole file ``F``.
- ``<!-- check: NAME merge F [under a.b] -->``: its keys added to (or replacing those of) the
  file ``F``, at the top or under the key path ``a.b``.
- ``<!-- check: NAME scenario -->``: scenarios that must pass on the flows as example NAME left
  them (the shipped flows when NAME changes nothing).
- ``<!-- check: error F:LINE "TEXT" -->``: written as the file ``F``, ``flows check`` reports a
  problem at line LINE of it containing TEXT.

The blocks of one NAME are applied together, in order; the result must pass ``flows check``.
A ```yaml block of flow YAML in any other doc must be marked the same way.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.config import REPO_ROOT, AcdSettings
from callcenter.engine import ACTION_NAMES
from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.flowset import FlowSet, FlowSetError
from callcenter.ivr.tryout import Scenario, run_scenario
from callcenter.ivr.yaml_source import loads_located

DOCS = REPO_ROOT / "docs"
FLOWS = REPO_ROOT / "ivr_flows"
QUEUES = frozenset(q.name for q in AcdSettings().queues)
MARK = re.compile(r"<!--\s*check:\s*(.*?)\s*-->")
FENCE = re.compile(r"^( *)```(\S*)\s*$")
#: what makes an unmarked yaml block in another doc look like flow YAML
FLOWISH = re.compile(r"^\s*(flow|nodes|start):|^\s+type: (menu|play|collect|action|queue)\b",
                     re.MULTILINE)


@dataclass(frozen=True)
class Block:
    doc: str
    line: int               # of the opening fence
    text: str
    mark: str | None
    #: the plain ``` block right after it, if any (the message an error example prints)
    shown: str | None = None

    @property
    def label(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(path: Path) -> Iterator[Block]:
    """The ```yaml blocks of a Markdown file, dedented by their fence's indentation, each with
    the check marker of the nearest non-blank line above its fence (if any)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent, lang = len(fence.group(1)), fence.group(2)
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        if lang == "yaml":
            above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            mark = MARK.search(above)
            body = "\n".join(line[indent:] if not line[:indent].strip() else line.lstrip()
                             for line in lines[i + 1:end])
            after = next((j for j in range(end + 1, len(lines)) if lines[j].strip()), None)
            shown = None
            if after is not None and lines[after].strip() == "```":
                close = next(j for j in range(after + 1, len(lines)) if lines[j].strip() == "```")
                shown = "\n".join(lines[after + 1:close])
            yield Block(path.name, i + 1, body + "\n", mark.group(1) if mark else None, shown)
        i = end + 1


FLOW_DOC_BLOCKS = list(blocks(DOCS / "flows.md"))
OTHER_BLOCKS = [b for p in sorted([*DOCS.glob("*.md"), REPO_ROOT / "README.md"])
                if p.name != "flows.md" for b in blocks(p)]
MARKED = [b for b in FLOW_DOC_BLOCKS + OTHER_BLOCKS if b.mark is not None]


def _examples() -> dict[str, list[tuple[list[str], Block]]]:
    out: dict[str, list[tuple[list[str], Block]]] = {}
    for block in MARKED:
        assert block.mark is not None
        words = block.mark.split()
        if words[0] not in ("fragment", "error"):
            out.setdefault(words[0], []).append((words[1:], block))
    return out


EXAMPLES = _examples()


def _parse(block: Block) -> Any:
    return loads_located(block.text, block.label)[0]


def _apply(directory: Path, how: list[str], block: Block) -> None:
    """Write a ``file`` or ``merge`` block into the flows copy in ``directory``."""
    if how[0] == "file":
        (directory / how[1]).write_text(block.text, encoding="utf-8")
        return
    assert how[0] == "merge", f"{block.label}: unknown check {how}"
    target = directory / how[1]
    data = loads_located(target.read_text(encoding="utf-8"), str(target))[0]
    node = data
    if len(how) == 4 and how[2] == "under":
        for key in how[3].split("."):
            node = node[key]
    else:
        assert len(how) == 2, f"{block.label}: merge F [under a.b]"
    node.update(_parse(block))
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                      encoding="utf-8")


def _flows_of(name: str, tmp_path: Path) -> FlowSet:
    directory = tmp_path / "ivr_flows"
    shutil.copytree(FLOWS, directory)
    for how, block in EXAMPLES[name]:
        if how[0] != "scenario":
            _apply(directory, how, block)
    return load_flowset(directory, actions=ACTION_NAMES, queues=QUEUES)


def test_every_yaml_block_of_the_flow_docs_says_how_it_is_meant() -> None:
    assert len(FLOW_DOC_BLOCKS) >= 10
    unmarked = [b.label for b in FLOW_DOC_BLOCKS if b.mark is None]
    unmarked += [b.label for b in OTHER_BLOCKS if b.mark is None and FLOWISH.search(b.text)]
    assert unmarked == [], "add <!-- check: ... --> above these blocks (see this test's doc)"


@pytest.mark.parametrize("block", [b for b in MARKED if b.mark == "fragment"],
                         ids=lambda b: b.label)
def test_a_fragment_parses_cleanly(block: Block) -> None:
    assert _parse(block) is not None


@pytest.mark.parametrize("name", sorted(EXAMPLES))
async def test_an_example_applied_literally_checks_clean(name: str, tmp_path: Path) -> None:
    try:
        flows = _flows_of(name, tmp_path)
    except FlowSetError as exc:
        pytest.fail(f"example {name!r} ({EXAMPLES[name][0][1].label}), applied as the docs "
                    f"say, fails flows check:\n{exc}")
    for how, block in EXAMPLES[name]:
        if how[0] == "scenario":
            for item in _parse(block):
                scenario = Scenario.model_validate(item)
                assert await run_scenario(flows, scenario) == [], (block.label, scenario.name)


ERRORS = [b for b in MARKED if b.mark is not None and b.mark.startswith("error ")]


@pytest.mark.parametrize("block", ERRORS, ids=lambda b: b.label)
def test_an_error_example_gives_the_error_the_docs_show(block: Block, tmp_path: Path) -> None:
    assert block.mark is not None
    marked = re.fullmatch(r'error (\S+):(\d+) "(.+)"', block.mark)
    assert marked is not None, f"{block.label}: error F:LINE \"TEXT\""
    name, line, text = marked.group(1), int(marked.group(2)), marked.group(3)
    directory = tmp_path / "ivr_flows"
    shutil.copytree(FLOWS, directory)
    (directory / name).write_text(block.text, encoding="utf-8")
    with pytest.raises(FlowSetError) as caught:
        load_flowset(directory, actions=ACTION_NAMES, queues=QUEUES)
    found = [d for d in caught.value.diagnostics
             if Path(d.where.file).name == name and text in d.message]
    assert found, f"{block.label}: no {text!r} in\n{caught.value}"
    assert found[0].where.line == line, str(found[0])
    if block.shown is not None:  # the message the docs print under it, exactly
        assert str(found[0]).replace(f"{directory}/", "ivr_flows/") == block.shown
