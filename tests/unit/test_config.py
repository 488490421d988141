"""Settings: environment overrides, secret handling, readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.config import load_settings
from callcenter.errors import ConfigError


def test_env_overrides_nested_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLCENTER_AMI__PORT", "5039")
    monkeypatch.setenv("CALLCENTER_STATE_DIR", str(tmp_path))
    s = load_settings()
    assert s.ami.port == 5039
    assert s.database == tmp_path / "callcenter.db"


def test_bad_value_is_one_readable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_AMI__PORT", "99999")
    with pytest.raises(ConfigError, match=r"ami\.port"):
        load_settings()


def test_secret_comes_from_file_and_never_prints(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("CALLCENTER_STATE_DIR", str(tmp_path))
    s = load_settings()
    with pytest.raises(ConfigError, match="no AMI secret"):
        s.ami_secret()
    (tmp_path / "ami.secret").write_text("topsecret\n")
    secret = s.ami_secret()
    assert secret.get_secret_value() == "topsecret"
    assert "topsecret" not in repr(secret) and "topsecret" not in str(s)


def test_toml_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = tmp_path / "cc.toml"
    conf.write_text('[agi]\nport = 4599\n')
    monkeypatch.setenv("CALLCENTER_CONFIG", str(conf))
    assert load_settings().agi.port == 4599
