"""Settings: embedded defaults, overridden by a TOML file and by ``CALLCENTER_*`` variables.

Precedence (highest first): init arguments, environment (``CALLCENTER_AMI__PORT=5039``), the TOML
file named by ``CALLCENTER_CONFIG`` (default ``./callcenter.toml`` when present), defaults.
Secrets are ``SecretStr`` so they never print; the sandbox AMI secret lives in a 0600 file that
``callcenter pbx up`` generates, never in the repository.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from callcenter.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "callcenter"


class AmiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str = "callcenter"
    secret: SecretStr | None = None
    #: read when ``secret`` is unset; the sandbox writes it (defaults to ``<state_dir>/ami.secret``)
    secret_file: Path | None = None
    connect_timeout: float = Field(5.0, gt=0)
    #: a Ping goes out this often; no answer within ``ping_timeout`` means the link is dead
    ping_interval: float = Field(2.0, gt=0)
    ping_timeout: float = Field(3.0, gt=0)
    action_timeout: float = Field(10.0, gt=0)
    reconnect_min: float = Field(0.2, gt=0)
    reconnect_max: float = Field(5.0, gt=0)


class AgiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(4573, ge=0, le=65535)
    #: the whole agi_* environment must arrive within this time and size
    header_timeout: float = Field(5.0, gt=0)
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    max_line_bytes: int = Field(8 * 1024, ge=256)
    #: an AGI command reply must arrive within this (a prompt may play for a while)
    reply_timeout: float = Field(120.0, gt=0)
    max_sessions: int = Field(500, ge=1)


class PbxSettings(BaseModel):
    #: ``sandbox``: Debian sid chroot provisioned by us; ``system``: an Asterisk already installed
    mode: Literal["sandbox", "system"] = "sandbox"
    root: Path = Path("/var/cache/callcenter/pbx-root")
    suite: str = "sid"
    #: Debian mirror for debootstrap; empty means "read it from this machine's apt sources"
    mirror: str = ""
    conf_dir: Path = REPO_ROOT / "asterisk_conf"
    sounds_dir: Path = REPO_ROOT / "sounds"
    #: system mode: where the system Asterisk reads its configuration, and how to start it
    system_etc: Path = Path("/etc/asterisk")
    start_timeout: float = Field(60.0, gt=0)


class BackOfficeSettings(BaseModel):
    """The sandbox back office's rules that a brokerage sets (the rest: broker/rules.py)."""

    holidays: list[dt.date] = []
    trading_password_attempts: int = Field(5, ge=1, le=20)
    fund_password_attempts: int = Field(3, ge=1, le=20)
    transfer_daily_limit: Decimal = Field(Decimal("500000.00"), gt=0)
    commission_rate: Decimal = Field(Decimal("0.00025"), ge=0)
    commission_min: Decimal = Field(Decimal("5.00"), ge=0)

    @field_validator("transfer_daily_limit", "commission_rate", "commission_min", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("write money as a quoted decimal, e.g. \"500000.00\" (never float)")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLCENTER_", env_nested_delimiter="__", extra="forbid"
    )

    state_dir: Path = Field(default_factory=_default_state_dir)
    db_path: Path | None = None
    #: the embedded sandbox back office (default ``<state_dir>/backoffice.db``)
    backoffice_path: Path | None = None
    flows_dir: Path = REPO_ROOT / "ivr_flows"
    log_level: str = "INFO"
    ami: AmiSettings = AmiSettings()
    agi: AgiSettings = AgiSettings()
    pbx: PbxSettings = PbxSettings()
    backoffice: BackOfficeSettings = BackOfficeSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("CALLCENTER_CONFIG", "callcenter.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @property
    def database(self) -> Path:
        return self.db_path or self.state_dir / "callcenter.db"

    @property
    def backoffice_db(self) -> Path:
        return self.backoffice_path or self.state_dir / "backoffice.db"

    @property
    def ami_secret_file(self) -> Path:
        return self.ami.secret_file or self.state_dir / "ami.secret"

    def ami_secret(self) -> SecretStr:
        """The AMI secret: from settings, else from the secret file the sandbox wrote."""
        if self.ami.secret is not None:
            return self.ami.secret
        path = self.ami_secret_file
        try:
            return SecretStr(path.read_text(encoding="ascii").strip())
        except OSError as exc:
            raise ConfigError(
                f"no AMI secret: set CALLCENTER_AMI__SECRET or run 'callcenter pbx up' "
                f"(which writes {path})"
            ) from exc


def load_settings(**overrides: object) -> Settings:
    """Load settings, turning validation errors into one readable ``ConfigError``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
