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


def test_backoffice_rules_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt
    from decimal import Decimal

    from callcenter.broker.interface import PasswordKind
    from callcenter.engine import sandbox_rules

    monkeypatch.setenv("CALLCENTER_BACKOFFICE__FUND_PASSWORD_ATTEMPTS", "4")
    monkeypatch.setenv("CALLCENTER_BACKOFFICE__TRANSFER_DAILY_LIMIT", "20000.00")
    monkeypatch.setenv("CALLCENTER_BACKOFFICE__HOLIDAYS", '["2026-10-01"]')
    rules = sandbox_rules(load_settings())
    assert rules.max_failures[PasswordKind.FUND] == 4
    assert rules.max_failures[PasswordKind.TRADING] == 5
    assert rules.transfer_daily_limit == Decimal("20000.00")
    # the packaged exchange calendar, plus the configured days
    assert dt.date(2026, 10, 1) in rules.holidays and dt.date(2026, 2, 16) in rules.holidays
    monkeypatch.setenv("CALLCENTER_BACKOFFICE__HOLIDAYS", '["2026-06-03"]')
    assert dt.date(2026, 6, 3) in sandbox_rules(load_settings()).holidays


def test_money_settings_refuse_floats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "cc.toml"
    conf.write_text("[backoffice]\ntransfer_daily_limit = 500000.0\n")
    monkeypatch.setenv("CALLCENTER_CONFIG", str(conf))
    with pytest.raises(ConfigError, match="never float"):
        load_settings()
