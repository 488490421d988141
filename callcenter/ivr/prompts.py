"""Prompt texts and their audio: load ``prompts.yaml``, render it with pyttsx3 + espeak-ng.

Audio is built, never committed: ``callcenter prompts build`` renders each (id, language) whose
text changed since the last build (a manifest keyed by text hash) into an 8 kHz mono 16-bit WAV,
the format Asterisk plays without transcoding to a narrowband call. Runs from the CLI, outside
the event loop.

Mandarin is voiced from pinyin: espeak-ng 1.51 (Debian 12) reads many Chinese characters with
its English rules ("一" as "yi one"), while its ``cmn-latn-pinyin`` voice speaks tone-numbered
pinyin correctly. pypinyin converts the text, with its phrase dictionary for polyphones
(银行 -> yin2 hang2).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import subprocess
import tempfile
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from callcenter.errors import ConfigError

LANGUAGES = ("zh", "en")
#: espeak-ng voices by language; pyttsx3 picks them by id
VOICES = {"zh": "sit/cmn-latn-pinyin", "en": "gmw/en"}
_PAUSES = {"，": ",", "、": ",", "；": ",", "：": ",", "。": ".", "？": "?", "！": "."}
MANIFEST = ".manifest.json"


class PromptText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zh: str
    en: str
    #: speak each language's text with the other language's voice (the language offer:
    #: "For English, press nine" inside the Mandarin menu)
    other_voice: bool = False

    @field_validator("zh", "en")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt text is empty")
        return value


_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_PERCENT = re.compile(r"(\d+)%")
_NUMBER = re.compile(r"\d+")


def _zh_numbers(text: str) -> str:
    """Digits written in a Mandarin text, spelled out (9:30 -> 九点三十分, 5% -> 百分之五)."""
    from callcenter.ivr import speech

    words = speech.fragment_texts()

    def number(n: str) -> str:
        return "".join(words[f]["zh"] for f in speech.say_integer(int(n), "zh"))

    def clock(m: re.Match[str]) -> str:
        minutes = "" if m.group(2) == "00" else number(m.group(2)) + "分"
        return number(m.group(1)) + "点" + minutes

    text = _TIME.sub(clock, text)
    text = _PERCENT.sub(lambda m: "百分之" + number(m.group(1)), text)
    return _NUMBER.sub(lambda m: number(m.group(0)), text)


def voiced_text(text: str, lang: str) -> str:
    """What the synthesizer is given: pinyin with tone numbers for zh, the text for en."""
    if lang != "zh":
        return text
    from pypinyin import Style, lazy_pinyin

    syllables = lazy_pinyin(_zh_numbers(text), style=Style.TONE3, neutral_tone_with_five=True)
    return " ".join(_PAUSES.get(s, s) for s in syllables if s.strip())


def prompt_id(raw: str) -> str:
    """A back-office identifier as a prompt id segment (``2024-001`` -> ``2024_001``)."""
    return re.sub(r"[^a-z0-9_]", "_", raw.lower())


def backoffice_prompts() -> dict[str, PromptText]:
    """Texts that come from the sandbox back office's data: stock names, announcements."""
    from callcenter.broker.sandbox import load_listings
    from callcenter.broker.seed import DEMO_ANNOUNCEMENTS
    from callcenter.ivr.speech import stock_name_texts

    names = stock_name_texts((li.security.code, li.security.name, li.security.name_en)
                             for li in load_listings())
    out = {ident: PromptText(zh=t["zh"], en=t["en"]) for ident, t in names.items()}
    for a in DEMO_ANNOUNCEMENTS:
        out[f"announcement/{prompt_id(a.id)}"] = PromptText(zh=a.body_zh, en=a.body_en)
    return out


def load_prompt_files(directory: Path) -> dict[str, PromptText]:
    """Every ``prompts*.yaml`` in ``directory`` (flows' texts, speech fragments)."""
    prompts: dict[str, PromptText] = {}
    for path in sorted(directory.glob("prompts*.yaml")):
        for ident, text in load_prompts(path).items():
            if ident in prompts:
                raise ConfigError(f"{path}: prompt {ident!r} is defined in two files")
            prompts[ident] = text
    return prompts


def load_prompts(path: Path) -> dict[str, PromptText]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read prompts: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of prompt id to texts")
    prompts: dict[str, PromptText] = {}
    for key, value in raw.items():
        ident = str(key)
        if not all(part.replace("_", "").isalnum() for part in ident.split("/")):
            raise ConfigError(f"{path}: prompt id {ident!r} must be words joined by '/'")
        try:
            prompts[ident] = PromptText.model_validate(value)
        except ValidationError as exc:
            raise ConfigError(f"{path}: prompt {ident!r}: {exc.errors()[0]['msg']}") from exc
    return prompts


def _digest(text: str, voice: str) -> str:
    return hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()[:16]


def build_prompts(prompts: dict[str, PromptText], out_dir: Path) -> int:
    """Render the prompts whose text changed; return how many files were written."""
    import pyttsx3  # imported here: loading espeak-ng is only needed when building

    engine = pyttsx3.init()
    written = 0
    for lang in LANGUAGES:
        lang_dir = out_dir / lang
        lang_dir.mkdir(parents=True, exist_ok=True)
        manifest_path = lang_dir / MANIFEST
        try:
            manifest: dict[str, str] = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = {}
        for ident, texts in prompts.items():
            voice_lang = ("en" if lang == "zh" else "zh") if texts.other_voice else lang
            engine.setProperty("voice", VOICES[voice_lang])
            text = voiced_text(getattr(texts, lang), voice_lang)
            digest = _digest(text, VOICES[voice_lang])
            target = lang_dir / f"{ident}.wav"
            if manifest.get(ident) == digest and target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                parts = []
                for n, chunk in enumerate(chunks(text)):
                    raw = (Path(tmp) / f"raw{n}.wav").resolve()  # pyttsx3 wants it absolute
                    engine.save_to_file(chunk, str(raw))
                    # pyttsx3 prints "Audio saved to ..." for every file
                    with contextlib.redirect_stdout(io.StringIO()):
                        engine.runAndWait()
                    if not raw.exists():
                        raise ConfigError(f"espeak-ng rendered nothing for {ident} ({lang})")
                    parts.append(raw)
                _to_telephony_wav(parts, target)
            manifest[ident] = digest
            written += 1
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return written


#: pyttsx3's espeak-ng driver writes no file at all for an utterance much over 110 characters
MAX_CHUNK = 90


def chunks(text: str, limit: int = MAX_CHUNK) -> list[str]:
    """Split at clause ends (then words) into pieces the synthesizer renders reliably."""
    clauses = re.findall(r"[^,.?!，。？！；;]+[,.?!，。？！；;]*", text) or [text]
    out: list[str] = []
    for clause in (c.strip() for c in clauses):
        while len(clause) > limit:
            cut = clause.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            out.append(clause[:cut].strip())
            clause = clause[cut:].strip()
        if not clause:
            continue
        if out and len(out[-1]) + 1 + len(clause) <= limit:
            out[-1] = f"{out[-1]} {clause}"
        else:
            out.append(clause)
    return out


def _to_telephony_wav(parts: list[Path], dest: Path) -> None:
    done = subprocess.run(
        ["sox", *map(str, parts), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
         str(dest)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise ConfigError(f"sox could not make {dest}: {done.stderr.strip()}")
