"""The JSON Schemas of flow and strategy files (for editors): committed copies that never go
stale, a modeline in every shipped file, every shipped file valid (as our loader reads it and as
an editor's YAML 1.2 parser reads it), and what the loader refuses refused by the schema too."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from callcenter import cli
from callcenter.ivr.flow_model import Flow
from callcenter.ivr.flow_schema import SCHEMA_FILE as FLOW_SCHEMA_FILE
from callcenter.ivr.flow_schema import flow_schema, flow_schema_text
from callcenter.ivr.flowset import is_flow_file
from callcenter.ivr.yaml_schema import modeline
from callcenter.ivr.yaml_source import load_located, loads_located
from callcenter.strategies import cli as strategies_cli
from callcenter.strategies.load import StrategySetError, load_files, strategy_files
from callcenter.strategies.model import Strategy
from callcenter.strategies.schema import SCHEMA_FILE as STRATEGY_SCHEMA_FILE
from callcenter.strategies.schema import strategy_schema, strategy_schema_text

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "ivr_flows"
STRATEGIES = ROOT / "strategies"
FLOW_FILES = sorted(p for p in FLOWS.glob("*.yaml") if is_flow_file(p))
STRATEGY_FILES = strategy_files(STRATEGIES)


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


FLOW_V = validator(flow_schema())
STRATEGY_V = validator(strategy_schema())


def errors(v: jsonschema.Draft202012Validator, data: Any) -> list[str]:
    """Every error, with those under an ``anyOf`` (an optional field) too."""
    out: list[str] = []
    todo = list(v.iter_errors(data))
    while todo:
        e = todo.pop(0)
        out.append(f"{'/'.join(map(str, e.absolute_path))}: {e.message}")
        todo.extend(e.context or ())
    return out


# -- what an editor sees: YAML 1.2 (the YAML language server's default) ------------------------

_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


def yaml12(text: str) -> Any:
    """``text`` read by the YAML 1.2 core schema: only true/false are booleans, ``0123`` is a
    number, ``22:00`` is text; keys as text."""
    def convert(node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return {str(k.value): convert(v) for k, v in node.value}
        if isinstance(node, yaml.SequenceNode):
            return [convert(item) for item in node.value]
        assert isinstance(node, yaml.ScalarNode)
        value = node.value
        if node.style is not None:
            return value
        if value in ("", "~", "null", "Null", "NULL"):
            return None
        if value in ("true", "True", "TRUE", "false", "False", "FALSE"):
            return value.lower() == "true"
        if _INT.fullmatch(value):
            return int(value, 0) if value[:2] in ("0o", "0x") else int(value)
        if _FLOAT.fullmatch(value):
            return float(value)
        return value
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    assert root is not None
    return convert(root)


# -- committed copies and modelines -----------------------------------------------------------

def test_the_committed_schemas_are_what_the_generators_write_now() -> None:
    assert (FLOWS / FLOW_SCHEMA_FILE).read_text(encoding="utf-8") == flow_schema_text(), \
        "run: callcenter flows schema -o ivr_flows/flow.schema.json"
    assert (STRATEGIES / STRATEGY_SCHEMA_FILE).read_text(encoding="utf-8") \
        == strategy_schema_text(), \
        "run: callcenter strategies schema -o strategies/strategy.schema.json"


def test_the_cli_prints_and_writes_the_schemas(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["flows", "schema"]) == 0
    assert capsys.readouterr().out == flow_schema_text()
    assert cli.main(["flows", "schema", "-o", str(tmp_path / "f.json")]) == 0
    assert (tmp_path / "f.json").read_text(encoding="utf-8") == flow_schema_text()
    parser = cli.build_parser()
    args = parser.parse_args(["strategies", "schema", "-o", str(tmp_path / "s.json")])
    assert strategies_cli.cmd_strategies(args) == 0
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == strategy_schema_text()


@pytest.mark.parametrize("path, schema_file",
                         [(p, FLOW_SCHEMA_FILE) for p in FLOW_FILES]
                         + [(p, STRATEGY_SCHEMA_FILE) for p in STRATEGY_FILES],
                         ids=lambda x: x.name if isinstance(x, Path) else "")
def test_every_shipped_file_names_its_schema_on_its_first_line(path: Path,
                                                               schema_file: str) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == modeline(schema_file)
    assert (path.parent / schema_file).is_file()


def test_there_are_shipped_files_to_check() -> None:
    assert len(FLOW_FILES) >= 10 and len(STRATEGY_FILES) >= 5


# -- every shipped file validates -------------------------------------------------------------

@pytest.mark.parametrize("path", FLOW_FILES, ids=lambda p: p.name)
def test_every_shipped_flow_validates(path: Path) -> None:
    raw, _ = load_located(path)
    assert errors(FLOW_V, raw) == []
    assert errors(FLOW_V, yaml12(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("path", STRATEGY_FILES, ids=lambda p: p.name)
def test_every_shipped_strategy_validates(path: Path) -> None:
    raw, _ = load_located(path)
    assert errors(STRATEGY_V, raw) == []
    assert errors(STRATEGY_V, yaml12(path.read_text(encoding="utf-8"))) == []


# -- the schema refuses what the loader refuses (and takes what it takes) ---------------------

HOTLINE, _ = load_located(FLOWS / "hotline.yaml")


def flow_with(change: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = copy.deepcopy(HOTLINE)
    raw["nodes"]["probe"] = change
    return raw


def loader_takes_flow(raw: dict[str, Any]) -> bool:
    try:
        Flow.model_validate(raw)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("node, why", [
    ({"type": "play", "prompts": ["greet_default"], "next": "main_menu", "colour": "red"},
     "Additional properties are not allowed ('colour' was unexpected)"),
    ({"type": "play", "prompts": "greet_default", "next": "main_menu"}, "is not of type 'array'"),
    ({"type": "menu", "prompts": ["x"], "options": {"1": "greet"}, "timeout": "soon"},
     "is not of type"),
    ({"type": "dance", "next": "main_menu"}, "'dance' is not one of ['action', 'branch'"),
    ({"type": "menu", "prompts": ["x"], "options": {"A": "greet"}}, "does not match"),
    ({"type": "menu", "prompts": ["x"], "options": {}}, "should be non-empty"),
    ({"type": "collect", "prompts": ["x"], "var": "pin", "max_digits": 6,
      "validator": "password", "next": "greet"}, "'secret' is a required property"),
    ({"type": "action", "action": "identify_caller", "on": {"error": "greet"}},
     "is not valid under any of the given schemas"),
    ({"type": "branch", "cases": [{"when": {"var": "known.tier"}, "goto": "greet"}],
      "else": "greet"}, "is not valid under any of the given schemas"),
    ({"type": "branch", "cases": [{"when": {"var": "Known tier", "equals": 1},
                                   "goto": "greet"}], "else": "greet"},
     "'Known tier' does not match"),
])
def test_a_flow_the_loader_refuses_the_schema_refuses(node: dict[str, Any], why: str) -> None:
    raw = flow_with(node)
    assert not loader_takes_flow(raw)
    found = errors(FLOW_V, raw)
    assert found and any(why in e for e in found), found


def test_a_node_name_and_a_top_level_field_by_the_schema() -> None:
    raw = copy.deepcopy(HOTLINE)
    raw["nodes"]["Bad-Name"] = {"type": "return"}
    assert not loader_takes_flow(raw) and errors(FLOW_V, raw)
    raw = {**copy.deepcopy(HOTLINE), "owner": "ops"}
    assert not loader_takes_flow(raw)
    assert any("'owner' was unexpected" in e for e in errors(FLOW_V, raw))
    raw = copy.deepcopy(HOTLINE)
    del raw["start"]
    assert not loader_takes_flow(raw)
    assert any("'start' is a required property" in e for e in errors(FLOW_V, raw))


@pytest.mark.parametrize("node", [
    # keys written as numbers, the aliases else/in, no terminator, a Say item
    {"type": "confirm", "prompts": ["x"], "yes_key": 1, "no_key": 2, "yes": "a", "no": "b"},
    {"type": "branch", "cases": [{"when": {"var": "known.tier", "in": ["gold", 3]},
                                  "goto": "greet"}], "else": "greet"},
    {"type": "collect", "prompts": [{"say": "price", "value": "quote.last"}], "var": "pin",
     "max_digits": 6, "terminator": None, "validator": "password", "secret": True,
     "next": "greet"},
])
def test_what_the_loader_takes_the_schema_takes(node: dict[str, Any]) -> None:
    raw = flow_with(node)
    assert loader_takes_flow(raw)
    assert errors(FLOW_V, raw) == []


CORE, _ = load_located(STRATEGIES / "core-customers.yaml")


def loader_takes_strategy(raw: dict[str, Any], tmp_path: Path) -> bool:
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    try:
        load_files([path])
    except StrategySetError:
        return False
    return True


def strategy_with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    raw: dict[str, Any] = copy.deepcopy(CORE)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


@pytest.mark.parametrize("path, value, why", [
    (("colour",), "red", "'colour' was unexpected"),
    (("id",), "core-customers", "'id' was unexpected"),
    (("priority",), "high", "is not of type 'integer'"),
    (("population", "assets"), {"min": 1000.5}, "is not valid under any of the given schemas"),
    (("population", "assets"), {}, "should be non-empty"),
    (("schedule", "at"), "25:00", "is not valid under any of the given schemas"),
    (("action", "task", "dial"), {"timezone": "Europe/Paris"}, "'timezone' was unexpected"),
    (("action", "task", "form"), [{"name": "outcome", "kind": "scale"}],
     "is not one of"),
    (("action", "message"), {"channel": "sms", "text": {"zh": "好", "en": "Hi"}},
     "is valid under each of"),
])
def test_a_strategy_the_loader_refuses_the_schema_refuses(path: tuple[str, ...], value: Any,
                                                          why: str, tmp_path: Path) -> None:
    raw = strategy_with(path, value)
    assert not loader_takes_strategy(raw, tmp_path)
    found = errors(STRATEGY_V, raw)
    assert found and any(why in e for e in found), found


def test_what_the_strategy_loader_takes_the_schema_takes(tmp_path: Path) -> None:
    for raw in (strategy_with(("population", "assets"), {"min": "1000.50", "max": 5000000}),
                strategy_with(("schedule",), {"every_minutes": 30, "from": "09:00",
                                              "until": "17:00", "days": "weekdays"})):
        assert loader_takes_strategy(raw, tmp_path)
        assert errors(STRATEGY_V, raw) == []
    # the model itself has an id (the loader adds the file's name): the schema is the file's
    assert "id" in Strategy.model_fields and "id" not in strategy_schema()["properties"]


def test_the_modeline_keeps_line_and_column_of_problems(tmp_path: Path) -> None:
    text = (STRATEGIES / "core-customers.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("    due_hours:"))
    lines.insert(at + 1, "    colour: red")
    path = tmp_path / "core-customers.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(StrategySetError) as err:
        load_files([path])
    assert err.value.diagnostics == [f"{path}:{at + 2}:5: unknown field 'colour'"]
    _raw, locs = loads_located(path.read_text(encoding="utf-8"), str(path))
    assert locs.at(("title",)).line == 4  # the modeline and two comment lines above it
