"""What `callcenter pbx` installs as Asterisk's configuration: the FastAGI key include, and the
simulated parties' dialplan only where they are wanted (no Asterisk runs here)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from callcenter.config import load_settings
from callcenter.telephony.agi_auth import DIALPLAN_KEY_VARIABLE
from callcenter.telephony.pbx import SANDBOX_DIALPLAN, Pbx


def _install(tmp_path: Path, **pbx: object) -> Path:
    """Install into a scratch root (sandbox layout), never into the host's /etc or /usr."""
    root = tmp_path / "root"
    settings = load_settings(state_dir=tmp_path / "state",
                             pbx={"root": root, "sounds_dir": tmp_path / "no-sounds", **pbx})
    Pbx(settings).install_config()
    return root / "etc" / "asterisk"


def test_a_sites_asterisk_gets_no_simulated_parties(tmp_path: Path) -> None:
    assert Pbx(load_settings(pbx={"mode": "system"})).simulated_parties is False
    etc = _install(tmp_path, simulated_parties=False)
    assert (etc / "extensions.conf").is_file()
    assert not (etc / SANDBOX_DIALPLAN).exists() and not (etc / "pjsip_sandbox.conf").exists()
    assert "[caller-sim]" not in (etc / "extensions.conf").read_text()


def test_the_sandbox_has_the_simulated_parties(tmp_path: Path) -> None:
    etc = _install(tmp_path)
    assert "[caller-sim]" in (etc / SANDBOX_DIALPLAN).read_text()


def test_the_fastagi_key_is_shared_with_the_dialplan_and_kept_private(tmp_path: Path) -> None:
    etc = _install(tmp_path)
    key_file = tmp_path / "state" / "agi.key"
    key = key_file.read_text().strip()
    assert len(key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    include = etc / "agi_key.conf"
    assert include.read_text() == f"{DIALPLAN_KEY_VARIABLE} = {key}\n"
    assert stat.S_IMODE(include.stat().st_mode) & 0o007 == 0  # nobody else reads it
    assert '#include "agi_key.conf"' in (etc / "extensions.conf").read_text()
    # A second install keeps the same key (calls in flight keep their tokens valid).
    _install(tmp_path)
    assert key_file.read_text().strip() == key


def test_doctor_can_tell_whether_the_pbx_has_the_engines_key(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state",
                             pbx={"root": tmp_path / "root", "sounds_dir": tmp_path / "x"})
    pbx = Pbx(settings)
    assert pbx.installed_agi_key_matches() is None  # nothing installed yet
    pbx.install_config()
    assert pbx.installed_agi_key_matches() is True
    (tmp_path / "state" / "agi.key").write_text("another-key-of-enough-length-here\n")
    assert pbx.installed_agi_key_matches() is False
    (tmp_path / "root" / "etc" / "asterisk" / "agi_key.conf").unlink()  # an older install
    assert pbx.installed_agi_key_matches() is False


@pytest.mark.parametrize("line", [
    # every AGI() carries the token, computed with the key, for its own script
    "AGI(${AGI_SERVER}/hotline,${CC_AGI_T},${SHA1(${AGI_KEY}:hotline:",
    "AGI(${AGI_SERVER}/first,${CC_AGI_T},${SHA1(${AGI_KEY}:first:",
    "AGI(${AGI_SERVER}/queue-callback,${CC_AGI_T},${SHA1(${AGI_KEY}:queue-callback:",
])
def test_every_agi_in_the_dialplan_carries_a_token(line: str) -> None:
    conf = (Path(__file__).parents[2] / "asterisk_conf" / "extensions.conf").read_text()
    assert line in conf
    agi_lines = [x for x in conf.splitlines() if "AGI(" in x and not x.lstrip().startswith(";")]
    assert all("${SHA1(${AGI_KEY}:" in x for x in agi_lines), agi_lines
    # ... and the call's linkedid, bound by the token (agi_auth.py), so no session asks for it
    assert all(x.endswith(":${CC_AGI_T}:${CHANNEL(linkedid)}:${AGI_KEY})},${CHANNEL(linkedid)})")
               for x in agi_lines), agi_lines


@pytest.mark.parametrize("where", ["setting", "file"])
@pytest.mark.parametrize("key", ["", "short-key"])
def test_an_empty_or_short_fastagi_key_is_refused(tmp_path: Path, where: str, key: str) -> None:
    from callcenter.errors import ConfigError

    if where == "setting":
        settings = load_settings(state_dir=tmp_path, agi={"key": key})
    else:
        (tmp_path / "agi.key").write_text(key + "\n")
        settings = load_settings(state_dir=tmp_path)
    with pytest.raises(ConfigError, match="FastAGI key"):
        settings.agi_key()
