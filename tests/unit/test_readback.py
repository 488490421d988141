"""Readback as people speak, through the shipped flows: whole yuan without 点零零, 两 before
measure words, 至 in ranges, and a short pause after each value that more follows."""

from __future__ import annotations

import math
import shutil
import wave
from decimal import Decimal
from pathlib import Path

import pytest

from callcenter.cli import main
from callcenter.config import REPO_ROOT
from callcenter.engine import ACTION_NAMES
from callcenter.ivr import speech
from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.flowset import FlowSet
from callcenter.ivr.interpreter import say_refusal
from callcenter.ivr.prompts import (
    PromptText,
    backoffice_prompts,
    build_prompts,
    load_prompts,
    recording_path,
)
from callcenter.ivr.tryout import try_flow

TEXTS = {**speech.fragment_texts(),
         **{k: {"zh": v.zh, "en": v.en}
            for k, v in {**load_prompts(REPO_ROOT / "ivr_flows" / "prompts_hotline.yaml"),
                         **backoffice_prompts()}.items()}}
LOGIN = "10000001# 135790"


@pytest.fixture(scope="module")
def flows() -> FlowSet:
    return load_flowset(REPO_ROOT / "ivr_flows", actions=ACTION_NAMES)


def heard(ids: list[str], start: str, end: str) -> str:
    """What is said from the prompt ``start`` up to (not including) the next ``end``, as text;
    a pause shows as '|'."""
    lang = start.split("/", 1)[0]
    i = ids.index(start)
    j = ids.index(end, i)
    words = ["|" if p == f"{lang}/{speech.PAUSE}" else TEXTS[p.split("/", 1)[1]][lang]
             for p in ids[i:j]]
    return ("" if lang == "zh" else " ").join(words)


async def test_a_whole_transfer_amount_is_read_without_point_zero_zero(flows: FlowSet) -> None:
    got = await try_flow(flows, "hotline", f"3 2 {LOGIN} 1 246801 802413 500# 1")
    assert heard(got.prompts, "zh/transfer_in_readback", "zh/confirm_or_cancel") == (
        "您将从银行转入证券账户五百元|")
    # the new balance ends its play: no pause after it
    assert heard(got.prompts, "zh/transfer_new_balance", "zh/main_menu") == (
        "转账后可用资金五万零五百元")


async def test_the_order_readback_pauses_between_fields(flows: FlowSet) -> None:
    keys = f"2 {LOGIN} 1 600000 10*20# 200# 2"
    got = await try_flow(flows, "hotline", keys)
    assert heard(got.prompts, "zh/order_readback", "zh/confirm_or_cancel") == (
        "您将买入浦发银行|价格十点二元|数量两百股|预计费用五点零二元|合计金额两千零四十五点零二元|")
    got = await try_flow(flows, "hotline", keys, lang="en")
    assert heard(got.prompts, "en/order_readback", "en/confirm_or_cancel") == (
        "You are about to buy SPD Bank | at ten point two yuan | quantity two hundred shares | "
        "estimated fees five point zero two yuan | total two thousand forty five point zero two "
        "yuan |")


async def test_the_price_band_is_read_with_zhi(flows: FlowSet) -> None:
    got = await try_flow(flows, "hotline", f"2 {LOGIN} 1 600000 12# 100#")
    assert heard(got.prompts, "zh/refusal/price_limit", "zh/order_menu") == (
        "委托价格超出涨跌停范围，今日允许的价格范围是九点一八元至十一点二二元")


async def test_a_quote_is_read_field_by_field(flows: FlowSet) -> None:
    got = await try_flow(flows, "hotline", "1 600519")
    said = heard(got.prompts, "zh/stock/600519", "zh/quote_next")
    assert said.startswith("贵州茅台|最新价一千四百八十元|涨跌")
    assert "点零零" not in said


def test_refusal_values_follow_the_rules() -> None:
    def zh(refusal: dict[str, object]) -> str:
        return "".join(TEXTS[i]["zh"] for i in say_refusal(refusal, "zh"))

    assert zh({"code": "price_limit", "low": "1.80", "high": "2.20"}) == (
        "委托价格超出涨跌停范围，今日允许的价格范围是一点八元至二点二元")
    assert zh({"code": "price_limit", "low": "1.60", "high": "2.00"}).endswith("一点六元至两元")
    # a band with a side missing says no half range
    assert zh({"code": "price_limit", "low": "1.60"}) == TEXTS["refusal/price_limit"]["zh"]
    assert zh({"code": "price_tick", "tick": "0.001"}) == "委托价格的最小变动单位是零点零零一元"
    assert zh({"code": "price_tick", "tick": Decimal("0.01")}).endswith("零点零一元")
    assert zh({"code": "insufficient_funds", "available": "50000.00"}).endswith("五万元")
    assert zh({"code": "min_quantity", "minimum": 200}).endswith("两百股")
    assert zh({"code": "odd_lot", "odd": 2}).endswith("这部分的数量为两股")
    assert zh({"code": "lot_size", "lot": 100}).endswith("每手为一百股")
    # the opening call: cancels again from a time; the closing call: none again today
    assert zh({"code": "cancel_closed", "until": "09:30"}).startswith(
        "集合竞价期间交易所不接受撤单，可以撤单的时间是九点")
    assert zh({"code": "cancel_closed", "reason": "closing"}) == (
        "收盘集合竞价期间交易所不接受撤单，这笔委托今天已不能撤销，收盘时未成交的部分自动失效。")



# --- how fragments are rendered: tight, and the pause as silence ------------------------------

def _frames(path: Path) -> tuple[int, bytes]:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return w.getnframes(), w.readframes(w.getnframes())


needs_tools = pytest.mark.skipif(
    not shutil.which("sox") or not shutil.which("espeak-ng") or not shutil.which("flite"),
    reason="the prompt build needs sox, espeak-ng and flite (./dev installs them)")


@needs_tools
def test_fragments_are_rendered_tight_and_the_pause_is_silence(tmp_path: Path) -> None:
    prompts = {
        "loose": PromptText(zh="五万", en="fifty thousand"),
        "tight": PromptText(zh="五万", en="fifty thousand", trim=True),
        speech.PAUSE: PromptText(zh="，", en=",", silence_ms=speech.PAUSE_MS),
    }
    assert build_prompts(prompts, tmp_path).written == 6
    for lang in ("zh", "en"):
        loose, _ = _frames(tmp_path / lang / "loose.wav")
        tight, _ = _frames(tmp_path / lang / "tight.wav")
        # espeak-ng pads each utterance with ~0.24 s; a tight fragment keeps 0.04 s in all
        assert loose - tight > 0.15 * 8000, (lang, loose, tight)
        frames, data = _frames(tmp_path / lang / f"{speech.PAUSE}.wav")
        assert frames == speech.PAUSE_MS * 8 and data == bytes(len(data))
    assert build_prompts(prompts, tmp_path).written == 0  # nothing changed
    prompts["tight"] = PromptText(zh="五万", en="fifty thousand")
    assert build_prompts(prompts, tmp_path).written == 2  # trimming is part of what is built


def test_the_shipped_fragments_are_tight_and_the_pause_is_short() -> None:
    shipped = load_prompts(REPO_ROOT / "ivr_flows" / "prompts_speech.yaml")
    assert shipped[speech.PAUSE].silence_ms == speech.PAUSE_MS <= 300
    assert all(t.trim for i, t in shipped.items() if i != speech.PAUSE)
    names = {i: t for i, t in backoffice_prompts().items() if i.startswith("stock/")}
    assert names and all(t.trim for t in names.values())  # a name is read back like a value


# --- recorded prompts override the synthesizer, per prompt and language -----------------------

def _tone(path: Path, seconds: float, rate: int = 16000) -> None:
    """A stand-in for a human recording: a tone, at a rate the build must convert."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(int(8000 * math.sin(i / 5)).to_bytes(2, "little", signed=True)
                               for i in range(n)))


@needs_tools
def test_a_recording_replaces_the_synthesised_prompt_in_its_language(tmp_path: Path) -> None:
    out, rec = tmp_path / "sounds", tmp_path / "recorded"
    prompts = {"welcome": PromptText(zh="欢迎", en="Welcome"),
               "num/5": PromptText(zh="五", en="five", trim=True)}
    _tone(recording_path(rec, "zh", "welcome"), 1.5)
    _tone(recording_path(rec, "en", "num/5"), 0.5)
    _tone(rec / "zh" / "welcom.wav", 0.5)  # a misspelled name
    report = build_prompts(prompts, out, rec)
    assert report.sources == {("welcome", "zh"): "recorded", ("num/5", "zh"): "synthesised",
                              ("welcome", "en"): "synthesised", ("num/5", "en"): "recorded"}
    assert report.unknown_recordings == [rec / "zh" / "welcom.wav"]
    assert (report.written, report.problems) == (4, [])
    assert report.count("zh", "recorded") == 1 and report.count("zh", "missing") == 0
    frames, _ = _frames(out / "zh" / "welcome.wav")  # converted to 8 kHz, not trimmed
    assert frames == 1.5 * 8000
    assert build_prompts(prompts, out, rec).written == 0
    # a new take is converted again; a removed one gives the synthesizer back its prompt
    _tone(recording_path(rec, "zh", "welcome"), 1.0)
    assert build_prompts(prompts, out, rec).written == 1
    assert _frames(out / "zh" / "welcome.wav")[0] == 8000
    recording_path(rec, "zh", "welcome").unlink()
    report = build_prompts(prompts, out, rec)
    assert report.written == 1 and report.sources[("welcome", "zh")] == "synthesised"


@needs_tools
def test_an_unreadable_recording_falls_back_and_is_reported(tmp_path: Path) -> None:
    bad = recording_path(tmp_path / "recorded", "zh", "welcome")
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a wav")
    report = build_prompts({"welcome": PromptText(zh="欢迎", en="Welcome")},
                           tmp_path / "sounds", tmp_path / "recorded")
    assert report.sources[("welcome", "zh")] == "synthesised"
    assert len(report.problems) == 1 and str(bad) in report.problems[0]


@needs_tools
def test_without_a_synthesizer_recordings_still_build_and_the_rest_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with sox but no synthesizer
    bin_dir.mkdir()
    (bin_dir / "sox").symlink_to(shutil.which("sox") or "sox")
    monkeypatch.setenv("PATH", str(bin_dir))
    rec = tmp_path / "recorded"
    _tone(recording_path(rec, "zh", "welcome"), 0.5)
    stale = tmp_path / "sounds" / "en" / "welcome.wav"
    _tone(stale, 0.5, rate=8000)  # audio of an older text: not to be played any more
    report = build_prompts({"welcome": PromptText(zh="欢迎", en="Welcome"),
                            speech.PAUSE: PromptText(zh="，", en=",", silence_ms=250)},
                           tmp_path / "sounds", rec)
    assert report.sources == {("welcome", "zh"): "recorded", ("welcome", "en"): "missing",
                              (speech.PAUSE, "zh"): "synthesised",
                              (speech.PAUSE, "en"): "synthesised"}
    assert not stale.exists()
    assert any("no synthesizer" in p for p in report.problems)


@needs_tools
def test_prompts_build_reports_per_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "prompts.yaml").write_text('welcome: {zh: "欢迎", en: "Welcome"}\n')
    _tone(recording_path(tmp_path / "recorded", "en", "welcome"), 0.5)
    monkeypatch.setenv("CALLCENTER_FLOWS_DIR", str(flows))
    monkeypatch.setenv("CALLCENTER_PBX__SOUNDS_DIR", str(tmp_path / "sounds"))
    monkeypatch.setenv("CALLCENTER_PBX__RECORDED_DIR", str(tmp_path / "recorded"))
    monkeypatch.setattr("callcenter.ivr.prompts.backoffice_prompts", dict)
    assert main(["prompts", "build"]) == 0
    out = capsys.readouterr().out
    assert "  en: 1 recorded, 0 synthesised, 0 missing" in out
    assert "  zh: 0 recorded, 1 synthesised, 0 missing" in out
    assert "recorded     en welcome" in out and "zh welcome" not in out
    assert main(["prompts", "build", "--all"]) == 0
    assert "synthesised  zh welcome" in capsys.readouterr().out
