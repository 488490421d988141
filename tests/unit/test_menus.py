"""Menus a caller can take in (issue 13, the ear): at most five keys a level (``flows check``
refuses a sixth; the agent key counts, a language switch does not), the most used first, the
agent option said in every level of the hotline's tree, the main menu under 10 s in Mandarin,
every service still reachable, and the durations report (``prompts build --durations``)."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest

from callcenter.cli import main
from callcenter.config import REPO_ROOT
from callcenter.engine import ACTION_NAMES
from callcenter.errors import ConfigError
from callcenter.ivr.flow_check import MAX_MENU_OPTIONS, menu_keys
from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.flow_model import MenuNode
from callcenter.ivr.flowset import FlowSet, FlowSetError, read_flowset
from callcenter.ivr.menu_report import format_timings, menu_timings, wav_seconds
from callcenter.ivr.prompts import build_prompts, load_prompt_files
from callcenter.ivr.tryout import try_flow
from tests.unit.test_flows import PROMPTS, SCHEDULES, write

needs_tools = pytest.mark.skipif(
    not shutil.which("sox") or not shutil.which("espeak-ng"),
    reason="the prompt build needs sox and espeak-ng (./dev installs them)")

LOGIN = "10000001# 135790"

#: the levels of the hotline's menu tree: each says its agent option
LEVELS = [("hotline", "main_menu"), ("hotline", "account_services"),
          ("hotline", "more_services"), ("account", "menu"), ("orders", "menu"),
          ("transfer", "menu"), ("statements", "kind"), ("services", "menu"),
          ("services", "appointment"), ("services", "notice_kind")]


@pytest.fixture(scope="module")
def shipped() -> FlowSet:
    return load_flowset(REPO_ROOT / "ivr_flows", actions=ACTION_NAMES)


# -- the flows check rule ----------------------------------------------------------------------

def menu_flow(options: str, agent: bool = True) -> str:
    return f"""\
flow: main
start: menu
defaults: {{agent: {"to_agent" if agent else "null"}, fail: to_agent}}
nodes:
  menu:
    type: menu
    prompts: [main_menu]
    options: {options}
  pick: {{type: play, prompts: [welcome], next: menu}}
  language:
    type: branch
    cases: [{{when: {{var: lang, equals: en}}, goto: chinese}}]
    else: english
  english: {{type: set, values: {{lang: en}}, next: menu}}
  chinese: {{type: set, values: {{lang: zh}}, next: menu}}
  to_agent: {{type: queue, queue: general}}
"""


def load(tmp_path: Path, flow: str) -> FlowSet:
    write(tmp_path, prompts=PROMPTS, schedules=SCHEDULES, main=flow)
    return load_flowset(tmp_path)


def test_a_menu_of_five_keys_with_the_agent_passes(tmp_path: Path) -> None:
    fs = load(tmp_path, menu_flow('{"1": pick, "2": pick, "3": pick, "4": pick, "9": language}'))
    flow = fs.flows["main"]
    # the language switch is said to those who do not follow this language: not counted
    assert menu_keys(flow, "menu") == ["1", "2", "3", "4", "0"]


def test_a_sixth_key_is_refused_at_the_line_of_the_options(tmp_path: Path) -> None:
    flow = menu_flow('{"1": pick, "2": pick, "3": pick, "4": pick, "5": pick, "9": language}')
    write(tmp_path, prompts=PROMPTS, schedules=SCHEDULES, main=flow)
    with pytest.raises(FlowSetError) as info:
        load_flowset(tmp_path)
    [problem] = [str(d) for d in info.value.diagnostics]
    assert problem.startswith(f"{tmp_path / 'main.yaml'}:8:")
    assert "menu offers 6 options (1 2 3 4 5 0); a caller takes in at most 5" in problem
    assert main(["flows", "check", str(tmp_path)]) == 1


def test_a_language_key_that_goes_on_to_a_service_counts(tmp_path: Path) -> None:
    flow = menu_flow('{"1": pick, "2": pick, "3": pick, "4": pick, "9": english_quotes}') \
        + "  english_quotes: {type: set, values: {lang: en}, next: pick}\n"
    write(tmp_path, prompts=PROMPTS, schedules=SCHEDULES, main=flow)
    with pytest.raises(FlowSetError) as info:
        load_flowset(tmp_path)
    assert "menu offers 6 options (1 2 3 4 9 0)" in str(info.value.diagnostics[0])


def test_without_an_agent_five_options_pass(tmp_path: Path) -> None:
    fs = load(tmp_path, menu_flow(
        '{"1": pick, "2": pick, "3": pick, "4": pick, "5": pick, "9": language}', agent=False))
    assert menu_keys(fs.flows["main"], "menu") == ["1", "2", "3", "4", "5"]


# -- the shipped hotline --------------------------------------------------------------------------

def test_every_shipped_menu_offers_five_keys_at_most(shipped: FlowSet) -> None:
    counts = {f"{flow.flow}/{name}": len(menu_keys(flow, name))
              for flow in shipped.flows.values() for name, node in flow.nodes.items()
              if isinstance(node, MenuNode)}
    assert counts["hotline/main_menu"] == 5
    assert max(counts.values()) <= MAX_MENU_OPTIONS


def test_the_main_menu_puts_the_most_used_first_and_says_five_options(shipped: FlowSet) -> None:
    menu = shipped.flows["hotline"].nodes["main_menu"]
    assert isinstance(menu, MenuNode)
    assert menu.options["1"] == "quotes" and menu.options["2"] == "orders"
    text = shipped.prompts["main_menu"]
    assert text["zh"].count("请按") == 5 and text["zh"].endswith("人工服务请按零。")
    assert len(text["zh"]) <= 40  # 18.9 s before with 88 characters (docs/speech.md)


@pytest.mark.parametrize(("flow", "node"), LEVELS)
def test_every_level_says_the_agent_option(shipped: FlowSet, flow: str, node: str) -> None:
    menu = shipped.flows[flow].nodes[node]
    assert isinstance(menu, MenuNode)
    said = [shipped.prompts[p] for p in menu.prompts if isinstance(p, str)]
    assert any("人工服务请按零" in t["zh"] for t in said)
    assert any("an agent zero" in t["en"] for t in said)
    assert "0" in menu_keys(shipped.flows[flow], node)


@pytest.mark.parametrize(("keys", "reached"), [
    ("1", "zh/enter_stock_code"),
    (f"2 {LOGIN}", "zh/order_menu"),
    (f"3 1 {LOGIN}", "zh/account_menu"),
    (f"3 2 {LOGIN}", "zh/transfer_menu"),
    (f"3 3 {LOGIN}", "zh/statement_menu"),
    (f"3 4 {LOGIN}", "zh/enter_old_password"),
    ("4 1", "zh/announcements_intro"),
    ("4 2 1", "zh/appointment_menu"),
    ("4 2 2", "zh/callback_booked"),
    ("4 2 3", "zh/leave_message"),
    (f"4 2 4 {LOGIN}", "zh/secretary_menu"),
    ("4 3", "zh/survey_ask"),
    ("9", "en/main_menu"),
    ("0", "zh/agent_connecting"),
])
async def test_every_service_is_reachable(shipped: FlowSet, keys: str, reached: str) -> None:
    got = await try_flow(shipped, "hotline", keys)
    assert reached in got.prompts, got.prompts


async def test_star_in_a_sub_menu_goes_back_to_the_main_menu(shipped: FlowSet) -> None:
    got = await try_flow(shipped, "hotline", "3 * 1 600519")
    heard = [p for p in got.prompts if p in ("zh/main_menu", "zh/account_services_menu",
                                             "zh/enter_stock_code")]
    assert heard == ["zh/main_menu", "zh/account_services_menu", "zh/main_menu",
                     "zh/enter_stock_code"]


@needs_tools
def test_the_mandarin_main_menu_speaks_under_ten_seconds(tmp_path: Path) -> None:
    texts = load_prompt_files(REPO_ROOT / "ivr_flows")
    build_prompts({k: texts[k] for k in ("main_menu", "language_offer")}, tmp_path)
    menu = wav_seconds(tmp_path / "zh" / "main_menu.wav")
    offer = wav_seconds(tmp_path / "zh" / "language_offer.wav")  # "For English, press nine."
    assert menu + offer < 10.0, (menu, offer)


# -- the durations report -------------------------------------------------------------------------

def tone(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * int(8000 * seconds))


def test_menu_timings_sum_the_fixed_prompts_per_language(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    write(flows, prompts=PROMPTS, schedules=SCHEDULES, main=menu_flow(
        '{"1": pick, "2": pick, "3": pick, "4": pick, "5": pick, "9": language}'))
    fs, problems = read_flowset(flows)  # a menu of six: not loadable, but measurable
    assert fs is not None and problems == []
    sounds = tmp_path / "sounds"
    tone(sounds / "zh" / "main_menu.wav", 1.5)
    [timing] = menu_timings(fs, sounds)
    assert (timing.flow, timing.node, timing.keys) == ("main", "menu",
                                                        ("1", "2", "3", "4", "5", "0"))
    assert timing.seconds == {"zh": 1.5, "en": None}  # en not built
    [_, line] = format_timings([timing])
    assert line.split()[:9] == ["main/menu", "1", "2", "3", "4", "5", "0", "!", "1.50"]
    with pytest.raises(ConfigError, match="not a readable WAV"):
        (sounds / "en").mkdir()
        (sounds / "en" / "main_menu.wav").write_text("no audio")
        menu_timings(fs, sounds)


@needs_tools
def test_prompts_build_reports_menu_durations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    write(flows, prompts=PROMPTS, schedules=SCHEDULES,
          main=menu_flow('{"1": pick, "9": language}'))
    monkeypatch.setenv("CALLCENTER_FLOWS_DIR", str(flows))
    monkeypatch.setenv("CALLCENTER_PBX__SOUNDS_DIR", str(tmp_path / "sounds"))
    monkeypatch.setenv("CALLCENTER_PBX__RECORDED_DIR", str(tmp_path / "recorded"))
    monkeypatch.setattr("callcenter.ivr.prompts.backoffice_prompts", dict)
    assert main(["prompts", "build"]) == 0
    assert "menus of" not in capsys.readouterr().out  # only on request
    assert main(["prompts", "build", "--durations"]) == 0
    out = capsys.readouterr().out
    assert f"menus of {flows} (seconds of their fixed prompts):" in out
    [row] = [line.split() for line in out.splitlines() if "main/menu" in line]
    assert row[:3] == ["main/menu", "1", "0"]
    zh, en = float(row[3]), float(row[4])
    assert zh == pytest.approx(wav_seconds(tmp_path / "sounds" / "zh" / "main_menu.wav"),
                               abs=0.01)
    assert 0.3 < zh < 5 and 0.3 < en < 5 and row[5] == "main_menu"

