"""The voice of each language in the prompt build: flite for English by default, espeak-ng on
request and for Mandarin (docs/speech.md, "Voice")."""

from __future__ import annotations

import json
import os
import shutil
import wave
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from callcenter.cli import main
from callcenter.config import PbxSettings
from callcenter.errors import ConfigError
from callcenter.ivr.prompts import (
    DEFAULT_VOICES,
    MANIFEST,
    VOICE_CHOICES,
    PromptText,
    build_prompts,
    check_voices,
)

needs_tools = pytest.mark.skipif(
    not shutil.which("sox") or not shutil.which("espeak-ng") or not shutil.which("flite"),
    reason="the prompt build needs sox, espeak-ng and flite (./dev installs them)")

WELCOME = PromptText(zh="欢迎致电证券服务热线。", en="Welcome to the securities hotline.")


def _telephony(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() > 0.5 * 8000  # a sentence, not the synthesizer's silence
        return w.readframes(w.getnframes())


def test_each_language_has_a_default_voice_and_the_settings_offer_the_same_choices() -> None:
    assert check_voices(DEFAULT_VOICES) == {"zh": "espeak-ng", "en": "flite"}
    fields = PbxSettings.model_fields
    for lang in ("zh", "en"):
        assert get_args(fields[f"voice_{lang}"].annotation) == VOICE_CHOICES[lang]
        assert fields[f"voice_{lang}"].default == DEFAULT_VOICES[lang]
    assert PbxSettings(voice_en="espeak-ng").voice_en == "espeak-ng"
    with pytest.raises(ValidationError):
        PbxSettings(voice_en="festival")
    with pytest.raises(ValidationError):
        PbxSettings(voice_zh="flite")  # flite has no Mandarin voice


def test_a_voice_a_language_cannot_be_spoken_with_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no voice 'flite' for zh"):
        check_voices({"zh": "flite", "en": "flite"})
    with pytest.raises(ConfigError, match="no voice 'festival' for en"):
        build_prompts({"welcome": WELCOME}, tmp_path,
                      voices={"en": "festival"})  # type: ignore[dict-item]
    assert not (tmp_path / "en").exists()  # refused before anything is built


@needs_tools
def test_english_is_flite_by_default_and_espeak_ng_when_chosen(tmp_path: Path) -> None:
    assert build_prompts({"welcome": WELCOME}, tmp_path).written == 2
    flite_en = _telephony(tmp_path / "en" / "welcome.wav")
    zh = _telephony(tmp_path / "zh" / "welcome.wav")
    # another voice is another rendering: English alone is built again, Mandarin is up to date
    assert build_prompts({"welcome": WELCOME}, tmp_path, voices={"en": "espeak-ng"}).written == 1
    espeak_en = _telephony(tmp_path / "en" / "welcome.wav")
    assert espeak_en != flite_en
    assert _telephony(tmp_path / "zh" / "welcome.wav") == zh  # not built again
    assert build_prompts({"welcome": WELCOME}, tmp_path, voices={"en": "espeak-ng"}).written == 0
    assert build_prompts({"welcome": WELCOME}, tmp_path).written == 1
    # the same text and voice give the same bytes
    assert _telephony(tmp_path / "en" / "welcome.wav") == flite_en
    manifest = json.loads((tmp_path / "en" / MANIFEST).read_text())
    assert set(manifest) == {"welcome"}


@needs_tools
def test_the_language_offer_is_spoken_by_the_other_language_s_voice(tmp_path: Path) -> None:
    offer = PromptText(zh="For English, press nine.", en="中文服务请按九。", other_voice=True)
    build_prompts({"offer": offer}, tmp_path / "offer")
    plain = PromptText(zh="中文服务请按九。", en="For English, press nine.")
    build_prompts({"plain": plain}, tmp_path / "plain")
    # the English sentence in the Mandarin menu is flite's, the Mandarin one espeak-ng's
    offer_zh, offer_en = (_telephony(tmp_path / "offer" / lang / "offer.wav")
                          for lang in ("zh", "en"))
    plain_zh, plain_en = (_telephony(tmp_path / "plain" / lang / "plain.wav")
                          for lang in ("zh", "en"))
    assert offer_zh == plain_en and offer_en == plain_zh and offer_zh != plain_zh


@needs_tools
def test_without_flite_english_is_missing_and_the_report_says_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with sox and espeak-ng but no flite
    bin_dir.mkdir()
    for tool in ("sox", "espeak-ng"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    report = build_prompts({"welcome": WELCOME}, tmp_path / "sounds")
    assert report.sources == {("welcome", "zh"): "synthesised", ("welcome", "en"): "missing"}
    [problem] = report.problems
    assert "flite is not installed" in problem and "pbx.voice_en" in problem
    assert not (tmp_path / "sounds" / "en" / "welcome.wav").exists()
    monkeypatch.setenv("PATH", os.defpath + os.pathsep + str(bin_dir))
    report = build_prompts({"welcome": WELCOME}, tmp_path / "sounds", voices={"en": "espeak-ng"})
    assert report.problems == [] and report.count("en", "synthesised") == 1


@needs_tools
def test_prompts_build_speaks_english_with_the_configured_voice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "prompts.yaml").write_text(
        'welcome: {zh: "欢迎致电证券服务热线。", en: "Welcome to the securities hotline."}\n')
    monkeypatch.setenv("CALLCENTER_FLOWS_DIR", str(flows))
    monkeypatch.setenv("CALLCENTER_PBX__SOUNDS_DIR", str(tmp_path / "sounds"))
    monkeypatch.setenv("CALLCENTER_PBX__RECORDED_DIR", str(tmp_path / "recorded"))
    monkeypatch.setattr("callcenter.ivr.prompts.backoffice_prompts", dict)
    for voice in ("flite", "espeak-ng"):
        build_prompts({"welcome": WELCOME}, tmp_path / voice, voices={"en": voice})
    assert main(["prompts", "build"]) == 0  # the default: flite
    built = tmp_path / "sounds" / "en" / "welcome.wav"
    assert _telephony(built) == _telephony(tmp_path / "flite" / "en" / "welcome.wav")
    monkeypatch.setenv("CALLCENTER_PBX__VOICE_EN", "espeak-ng")
    assert main(["prompts", "build"]) == 0
    assert _telephony(built) == _telephony(tmp_path / "espeak-ng" / "en" / "welcome.wav")
    assert _telephony(built) != _telephony(tmp_path / "flite" / "en" / "welcome.wav")


@needs_tools
def test_espeak_ng_renders_the_same_audio_build_after_build(tmp_path: Path) -> None:
    # pyttsx3, which drove espeak-ng before, left a WAV whose header said "no samples" when a
    # second build ran in the same process: a silent prompt, reported as synthesised
    for n in (1, 2):
        build_prompts({"welcome": WELCOME}, tmp_path / str(n), voices={"en": "espeak-ng"})
    for lang in ("zh", "en"):
        assert (_telephony(tmp_path / "1" / lang / "welcome.wav")
                == _telephony(tmp_path / "2" / lang / "welcome.wav"))


@needs_tools
def test_a_synthesizer_that_writes_no_samples_leaves_the_prompt_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "flite").write_text("#!/bin/sh\necho 'no voice here' >&2\n")  # exits 0, no WAV
    (bin_dir / "flite").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ["PATH"])
    report = build_prompts({"welcome": WELCOME}, tmp_path / "sounds")
    assert report.sources[("welcome", "en")] == "missing"
    assert report.problems == ["welcome (en): flite rendered nothing: no voice here"]
    (bin_dir / "flite").write_bytes(b"\x7fELF not a program")  # found, but cannot be run
    report = build_prompts({"welcome": WELCOME}, tmp_path / "sounds")
    assert report.sources[("welcome", "en")] == "missing"
    [problem] = report.problems
    assert problem.startswith("welcome (en): flite cannot run:")
