"""Prompt texts and their audio: load ``prompts.yaml``, render it with a voice per language.

Audio is built, never committed: ``callcenter prompts build`` renders each (id, language) whose
text changed since the last build (a manifest keyed by text hash) into an 8 kHz mono 16-bit WAV,
the format Asterisk plays without transcoding to a narrowband call. Runs from the CLI, outside
the event loop.

A human recording replaces the synthesised audio of a prompt in one language: an operator drops
``<recorded_dir>/<lang>/<id>.wav`` (any format sox reads) and builds again; the build reports per
prompt and language what is recorded, synthesised or missing.

Voices (docs/speech.md, "Voice"): Mandarin is espeak-ng; English is flite's ``rms`` voice by
default (``pbx.voice_en``), or espeak-ng. Both run as commands, once per prompt. A prompt's
manifest entry names the voice, so changing it renders that language again.

Mandarin is voiced from pinyin: espeak-ng 1.51 (Debian 12) reads many Chinese characters with
its English rules ("一" as "yi one"), while its ``cmn-latn-pinyin`` voice speaks tone-numbered
pinyin correctly. pypinyin converts the text, with its phrase dictionary for polyphones
(银行 -> yin2 hang2).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from callcenter.errors import ConfigError

LANGUAGES = ("zh", "en")
#: the synthesizers a language can be voiced with (flite has no Mandarin voice)
Voice = Literal["espeak-ng", "flite"]
VOICE_CHOICES: dict[str, tuple[Voice, ...]] = {"zh": ("espeak-ng",), "en": ("flite", "espeak-ng")}
#: what ``build_prompts`` uses unless told otherwise, and the settings' defaults (``pbx.voice_*``)
DEFAULT_VOICES: dict[str, Voice] = {"zh": "espeak-ng", "en": "flite"}
#: espeak-ng voices by language (``espeak-ng -v``)
VOICES = {"zh": "sit/cmn-latn-pinyin", "en": "gmw/en"}
#: espeak-ng's speed in words a minute (pyttsx3's default, which drove espeak-ng before)
ESPEAK_WPM = 200
#: flite's voice (CMU ARCTIC "rms", built into Debian's libflite1) and its speed: 0.9 of its
#: natural durations, the clearest for its length (docs/speech.md, "Voice")
FLITE_VOICE = "rms"
FLITE_DURATION_STRETCH = 0.9
_PAUSES = {"，": ",", "、": ",", "；": ",", "：": ",", "。": ".", "？": "?", "！": "."}
MANIFEST = ".manifest.json"
#: what a trimmed prompt keeps at its ends, in seconds: enough not to clip a soft onset
TRIM_KEEP_S = (0.01, 0.03)
#: below this a sample is the synthesizer's silence (espeak-ng pads every utterance with ~0.24 s)
TRIM_THRESHOLD = "0.1%"


class PromptText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zh: str
    en: str
    #: speak each language's text with the other language's voice (the language offer:
    #: "For English, press nine" inside the Mandarin menu)
    other_voice: bool = False
    #: cut the synthesizer's silence at both ends: fragments read back to back (一万零五百元)
    trim: bool = False
    #: render this much silence instead of the text (the pause between read-back fields)
    silence_ms: int | None = Field(None, ge=10, le=2000)

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
    # a name is read back with values around it, like a fragment
    out = {ident: PromptText(zh=t["zh"], en=t["en"], trim=True) for ident, t in names.items()}
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


Source = Literal["recorded", "synthesised", "missing"]


@dataclass
class BuildReport:
    """What ``build_prompts`` did, per prompt and language."""

    #: files written (rendered or converted) this time; the rest were up to date
    written: int = 0
    #: (id, language) -> where its audio comes from: a human recording, the synthesizer, or
    #: nowhere (the synthesizer failed: the prompt is silent until that is fixed)
    sources: dict[tuple[str, str], Source] = field(default_factory=dict)
    #: recordings whose name is no prompt id (a misspelled file name?)
    unknown_recordings: list[Path] = field(default_factory=list)
    #: what went wrong, one line each (a recording sox cannot read, a synthesizer failure)
    problems: list[str] = field(default_factory=list)

    def count(self, lang: str, source: Source) -> int:
        return sum(1 for (_, lg), src in self.sources.items() if lg == lang and src == source)


def recording_path(recorded_dir: Path, lang: str, ident: str) -> Path:
    """Where an operator drops the human recording of a prompt: ``<dir>/<lang>/<id>.wav``."""
    return recorded_dir / lang / f"{ident}.wav"


def build_prompts(prompts: dict[str, PromptText], out_dir: Path,
                  recorded_dir: Path | None = None,
                  voices: Mapping[str, Voice] | None = None) -> BuildReport:
    """Render the prompts whose text (or recording) changed into ``out_dir/<lang>/<id>.wav``.

    A recording in ``recorded_dir`` (:func:`recording_path`) replaces the synthesised audio of
    that prompt in that language; it is converted to the telephony format (and trimmed like the
    synthesised fragment when the prompt is a fragment). A recording that cannot be read falls
    back to the synthesizer, and a prompt the synthesizer cannot render is reported missing;
    neither stops the build. ``voices`` picks each language's synthesizer (default
    :data:`DEFAULT_VOICES`)."""
    report = BuildReport()
    synth = _Synthesizer(check_voices({**DEFAULT_VOICES, **(voices or {})}))
    for lang in LANGUAGES:
        lang_dir = out_dir / lang
        lang_dir.mkdir(parents=True, exist_ok=True)
        manifest_path = lang_dir / MANIFEST
        try:
            manifest: dict[str, str] = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = {}
        for ident, texts in prompts.items():
            target = lang_dir / f"{ident}.wav"
            target.parent.mkdir(parents=True, exist_ok=True)
            recording = None
            if recorded_dir is not None and texts.silence_ms is None:
                path = recording_path(recorded_dir, lang, ident)
                recording = path if path.is_file() else None
            source: Source = "synthesised"
            if recording is not None:
                digest = _digest(hashlib.sha256(recording.read_bytes()).hexdigest(),
                                 "recorded" + ("+trim" if texts.trim else ""))
                try:
                    if manifest.get(ident) != digest or not target.exists():
                        _to_telephony_wav([recording], target, trim=texts.trim)
                        manifest[ident] = digest
                        report.written += 1
                    report.sources[(ident, lang)] = "recorded"
                    continue
                except ConfigError as exc:
                    report.problems.append(f"{recording}: not used, synthesised instead: {exc}")
            try:
                report.written += synth.render(texts, lang, target, manifest, ident)
            except ConfigError as exc:
                report.problems.append(f"{ident} ({lang}): {exc}")
                manifest.pop(ident, None)
                target.unlink(missing_ok=True)  # stale audio of an older text is worse
                source = "missing"
            report.sources[(ident, lang)] = source
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    if recorded_dir is not None:
        report.unknown_recordings = _unknown_recordings(recorded_dir, prompts)
    return report


def _unknown_recordings(recorded_dir: Path, prompts: dict[str, PromptText]) -> list[Path]:
    out = []
    for lang in LANGUAGES:
        base = recorded_dir / lang
        for path in sorted(base.rglob("*.wav")) if base.is_dir() else ():
            if path.relative_to(base).with_suffix("").as_posix() not in prompts:
                out.append(path)
    return out


def check_voices(voices: Mapping[str, str]) -> dict[str, Voice]:
    """``voices`` if every language has one it can be spoken with, else ConfigError."""
    out: dict[str, Voice] = {}
    for lang in LANGUAGES:
        voice = voices.get(lang)
        choices = VOICE_CHOICES[lang]
        known = next((choice for choice in choices if choice == voice), None)
        if known is None:
            raise ConfigError(f"no voice {voice!r} for {lang}: choose one of {', '.join(choices)}")
        out[lang] = known
    return out


def spoken_with(texts: PromptText, lang: str) -> str:
    """The language whose voice speaks ``texts`` in ``lang`` (the other for a language offer)."""
    return ("en" if lang == "zh" else "zh") if texts.other_voice else lang


class _Synthesizer:
    """The voices of a build: espeak-ng or flite, run once per prompt (per chunk for espeak-ng)."""

    def __init__(self, voices: dict[str, Voice] | None = None) -> None:
        self._voices = voices or dict(DEFAULT_VOICES)

    def render(self, texts: PromptText, lang: str, target: Path, manifest: dict[str, str],
               ident: str) -> int:
        """Render one prompt when its text changed; 1 if a file was written, else 0."""
        voice_lang = spoken_with(texts, lang)
        text = voiced_text(getattr(texts, lang), voice_lang)
        flite = self._voices[voice_lang] == "flite"
        voice_id = (f"flite/{FLITE_VOICE}/{FLITE_DURATION_STRETCH}" if flite
                    else VOICES[voice_lang])
        digest = _digest(text, voice_id + ("+trim" if texts.trim else ""))
        if texts.silence_ms is not None:
            digest = _digest(f"silence {texts.silence_ms}", "sox")
        if manifest.get(ident) == digest and target.exists():
            return 0
        if texts.silence_ms is not None:
            _silence_wav(texts.silence_ms, target)
        elif flite:
            with tempfile.TemporaryDirectory() as tmp:
                raw = Path(tmp) / "raw.wav"
                _flite(text, raw)
                _to_telephony_wav([raw], target, trim=texts.trim)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                parts = []
                for n, chunk in enumerate(chunks(text)):
                    parts.append(Path(tmp) / f"raw{n}.wav")
                    _espeak(chunk, VOICES[voice_lang], parts[-1])
                _to_telephony_wav(parts, target, trim=texts.trim)
        manifest[ident] = digest
        return 1


def _espeak(text: str, voice: str, dest: Path) -> None:
    """Render ``text`` with an espeak-ng voice into ``dest`` (22.05 kHz), at the speed the
    prompts always had (200 words a minute, pyttsx3's default when it drove espeak-ng)."""
    _run_synthesizer("espeak-ng", ["-v", voice, "-s", str(ESPEAK_WPM), "-w", str(dest)], text,
                     dest, fix="./dev installs it")


def _flite(text: str, dest: Path) -> None:
    """Render ``text`` with flite's voice into ``dest`` (16 kHz)."""
    _run_synthesizer(
        "flite", ["-voice", FLITE_VOICE, "--setf", f"duration_stretch={FLITE_DURATION_STRETCH}",
                  "-o", str(dest)], text, dest,
        fix="./dev installs it; or set pbx.voice_en to espeak-ng")


def _run_synthesizer(name: str, args: list[str], text: str, dest: Path, fix: str) -> None:
    """Run a synthesizer on ``text`` (given on its standard input, so no text reads as an
    option); ConfigError when it is missing, fails, or writes no samples."""
    exe = shutil.which(name)
    if exe is None:
        raise ConfigError(f"no synthesizer ({name} is not installed: {fix})")
    try:
        done = subprocess.run([exe, *args], input=text, capture_output=True, text=True,
                              check=False, timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"{name} took over {exc.timeout:.0f} s") from exc
    except OSError as exc:  # found but not runnable
        raise ConfigError(f"{name} cannot run: {exc}") from exc
    if done.returncode != 0 or _frames(dest) == 0:
        raise ConfigError(f"{name} rendered nothing: {done.stderr.strip() or done.returncode}")


def _frames(path: Path) -> int:
    """Samples in a WAV file; 0 when it is missing or unreadable."""
    try:
        with wave.open(str(path)) as w:
            frames: int = w.getnframes()
            return frames
    except (OSError, EOFError, wave.Error):
        return 0


#: espeak-ng is given a long text in pieces: pyttsx3, which drove it before, wrote no file at all
#: for an utterance much over 110 characters, and the pieces keep the prompts sounding as then
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


_TELEPHONY = ["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"]


def trim_effects() -> list[str]:
    """sox effects that cut silence at both ends, then keep ``TRIM_KEEP_S`` of it."""
    cut = ["silence", "1", "0.005", TRIM_THRESHOLD]
    return [*cut, "reverse", *cut, "reverse", "pad", *(str(s) for s in TRIM_KEEP_S)]


def _to_telephony_wav(parts: list[Path], dest: Path, trim: bool = False) -> None:
    effects = trim_effects() if trim else []
    # -R: dither from a fixed seed, so the same text and voice give the same bytes
    _sox(["-R", *map(str, parts), *_TELEPHONY, str(dest), *effects], dest)


def _silence_wav(ms: int, dest: Path) -> None:
    # -D: no dither, so the silence is digital zero
    _sox(["-D", "-n", *_TELEPHONY, str(dest), "trim", "0", f"{ms / 1000:.3f}"], dest)


def _sox(args: list[str], dest: Path) -> None:
    done = subprocess.run(["sox", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigError(f"sox could not make {dest}: {done.stderr.strip()}")
