"""Settings: embedded defaults, overridden by a TOML file and by ``CALLCENTER_*`` variables.

Precedence (highest first): init arguments, environment (``CALLCENTER_AMI__PORT=5039``), the TOML
file named by ``CALLCENTER_CONFIG`` (default ``./callcenter.toml`` when present), defaults.
Secrets are ``SecretStr`` so they never print; the sandbox AMI secret lives in a 0600 file that
``callcenter pbx up`` generates, never in the repository.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from callcenter.channels.settings import ChannelsSettings
from callcenter.cpu_affinity import parse_cpus
from callcenter.errors import ConfigError
from callcenter.sip.settings import DialRules, SipSettings, TrunkSettings

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "callcenter"


class AmiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str = "callcenter"
    #: the phones' own AMI user (``phones/link.py``): AstDB writes and registrations need the
    #: "system" class, which the call-control user never gets (manager.conf)
    phones_username: str = "callcenter-phones"
    #: the key tap's user (``telephony/key_tap.py``): DTMF and AGI start/end events only, over TLS
    keys_username: str = "callcenter-keys"
    #: its own secret (default: ``<state_dir>/ami-keys.secret``, written by ``pbx up``)
    keys_secret: SecretStr | None = None
    #: give the IVR back the keys typed between two AGI commands (off: they may be lost)
    key_tap: bool = True
    #: AMI over TLS on ``host`` (manager.conf's TLS listener is generated from it)
    tls_port: int = Field(5039, ge=1, le=65535)
    #: the CA that signed Asterisk's certificate; default: the sandbox's local CA
    #: (``<state_dir>/tls/ca.pem``). Set it when ``sip.tls_cert`` is a site certificate
    tls_ca: Path | None = None
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


#: the shortest FastAGI key accepted (``callcenter pbx`` makes 48 hex digits)
MIN_KEY_LENGTH = 24


#: the sandbox's simulated agent phones (``asterisk_conf/extensions_sandbox.conf``): the default
#: of ``acd.sim_phone_contexts``
SIM_PHONE_CONTEXTS: tuple[str, ...] = ("agent-answer", "agent-slow", "agent-noanswer")


class AgiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(4573, ge=0, le=65535)
    #: the whole agi_* environment must arrive within this time and size
    header_timeout: float = Field(5.0, gt=0)
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    max_line_bytes: int = Field(8 * 1024, ge=256)
    #: an AGI command reply must arrive within this (a prompt may play for a while)
    reply_timeout: float = Field(120.0, gt=0)
    #: simultaneous sessions; unset: as many as the engine's file descriptors allow
    #: (``telephony/host_limits.py``: its hard limit less a reserve). Sessions past it are
    #: refused, counted and logged.
    max_sessions: int | None = Field(None, ge=1)
    #: the listener's accept backlog; unset: the kernel's ``net.core.somaxconn``
    backlog: int | None = Field(None, ge=1)
    #: the key the dialplan's session tokens are made with (telephony/agi_auth.py); read from
    #: ``key_file`` when unset (the sandbox writes it; default ``<state_dir>/agi.key``)
    key: SecretStr | None = None
    key_file: Path | None = None
    #: a session token older (or further in the future) than this is refused
    token_max_age_s: float = Field(60.0, gt=0)


class PbxSettings(BaseModel):
    #: ``sandbox``: Debian sid chroot provisioned by us; ``system``: an Asterisk already installed
    mode: Literal["sandbox", "system"] = "sandbox"
    #: install the simulated parties' dialplan (asterisk_conf/extensions_sandbox.conf: test
    #: callers and agents, the fax machine, benchmark baselines); unset: in sandbox mode only
    simulated_parties: bool | None = None
    root: Path = Path("/var/cache/callcenter/pbx-root")
    suite: str = "sid"
    #: Debian mirror for debootstrap; empty means "read it from this machine's apt sources"
    mirror: str = ""
    conf_dir: Path = REPO_ROOT / "asterisk_conf"
    sounds_dir: Path = REPO_ROOT / "sounds"
    #: human recordings that replace synthesised prompts: ``<dir>/<lang>/<id>.wav``, built into
    #: sounds_dir by ``callcenter prompts build`` (docs/speech.md, "Recorded prompts")
    recorded_dir: Path = REPO_ROOT / "recorded_prompts"
    #: the synthesizer of the prompts with no recording, per language (docs/speech.md, "Voice"):
    #: Mandarin has espeak-ng alone; English flite's rms voice, or espeak-ng as before
    voice_zh: Literal["espeak-ng"] = "espeak-ng"
    voice_en: Literal["flite", "espeak-ng"] = "flite"
    #: system mode: where the system Asterisk reads its configuration, and how to start it
    system_etc: Path = Path("/etc/asterisk")
    start_timeout: float = Field(60.0, gt=0)
    #: a second Asterisk from the same sandbox root, with its own configuration, run, database
    #: and log directories (``/etc/asterisk-<instance>``...): tests that need one beside the
    #: main sandbox (a WebRTC phone in a network namespace). Empty: the main one.
    instance: str = Field("", pattern=r"^[a-z0-9-]{0,16}$")
    #: run that Asterisk (and its CLI) inside this network namespace (``ip netns``)
    netns: str = Field("", pattern=r"^[A-Za-z0-9_-]{0,32}$")


class BackOfficeSettings(BaseModel):
    """Which back office the engine runs, and the rules a brokerage sets (the rest:
    broker/rules.py; the sandbox applies them, the financial secretary reads the calendar)."""

    #: the ``callcenter.backoffice`` entry point the engine opens (broker/plugin.py): the
    #: embedded ``sandbox``, or an adapter to the brokerage's counter system (docs/backoffice.md)
    kind: str = Field("sandbox", pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    #: the adapter's own settings (``[backoffice.options]``), validated by the adapter; the
    #: sandbox has none. Give secrets as files the adapter reads, not here: settings may print.
    options: dict[str, Any] = Field(default_factory=dict, repr=False)
    #: single days the exchanges close on top of the calendar (an unplanned closure)
    holidays: list[dt.date] = []
    #: an exchange calendar of your own (the format of callcenter/broker/data/calendar.yaml):
    #: its years replace the packaged ones, new years are added
    calendar: Path | None = None
    #: orders when the exchange takes none (nights, weekends, lunch, 09:25-09:30): "queue"
    #: sends them when it next does (the opening call auction after hours), as most brokers
    #: do; "refuse" turns them away (market_closed)
    after_hours: Literal["queue", "refuse"] = "queue"
    #: daily price limit of risk-warning (ST, *ST) stocks on the SSE/SZSE main boards: 10%
    #: (like the other main-board stocks) since 2025-07-07, 5% before; set "0.05" to replay
    #: dates before that
    main_risk_warning_limit: Decimal = Field(Decimal("0.10"), gt=0, lt=1)
    #: the sandbox's clock starts at this local (Beijing) time and runs on from there: a demo
    #: outside market and office hours (``CALLCENTER_BACKOFFICE__CLOCK_START=2026-11-23T10:00``).
    #: Unset: the real time. Sandbox only; a site's back office keeps its own time.
    clock_start: dt.datetime | None = None
    trading_password_attempts: int = Field(5, ge=1, le=20)
    fund_password_attempts: int = Field(3, ge=1, le=20)
    #: wrong bank passwords in a row before the sandbox bank locks its password (a real
    #: bank applies its own count: this is the sandbox's)
    bank_password_attempts: int = Field(3, ge=1, le=20)
    transfer_daily_limit: Decimal = Field(Decimal("500000.00"), gt=0)
    commission_rate: Decimal = Field(Decimal("0.00025"), ge=0)
    commission_min: Decimal = Field(Decimal("5.00"), ge=0)

    @field_validator("transfer_daily_limit", "commission_rate", "commission_min",
                     "main_risk_warning_limit", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("write money as a quoted decimal, e.g. \"500000.00\" (never float)")
        return value


class DirectoryNumber(BaseModel):
    """A saved number in the console's transfer directory (``console.directory_numbers``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1, max_length=64)
    #: as the console sends it in a transfer target: an optional + and 2-20 digits (the dial
    #: rules still decide, when it is used, whether it may be dialled)
    number: str = Field(pattern=r"^\+?[0-9]{2,20}$")


class ConsoleSettings(BaseModel):
    """The agents' web console: one HTTP + websocket listener (page at /, protocol at /ws)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    #: serve the page over HTTPS with the SIP edge's certificate (``sip.tls_cert``, else the
    #: sandbox's, made by ``pbx up``). Browsers allow a microphone only on HTTPS or localhost:
    #: agents on other machines need it.
    tls: bool = False
    #: page origins allowed to open the websocket; empty: the listener's own origins only
    allowed_origins: list[str] = []
    static_dir: Path = REPO_ROOT / "agent_console"
    #: a connection must log in within this many seconds
    login_timeout: float = Field(10.0, gt=0)
    #: frames over this size close the connection (1009)
    max_message_bytes: int = Field(16 * 1024, ge=512)
    #: token bucket per connection: sustained messages per second and burst
    rate_per_s: float = Field(10.0, gt=0)
    rate_burst: int = Field(30, ge=1)
    #: wrong passwords for one agent id from one address before logins for that id from that
    #: address pause for ``lockout_s``
    max_login_failures: int = Field(5, ge=1)
    lockout_s: float = Field(60.0, gt=0)
    #: failed logins (any id) from one address within ``address_window_s`` before every login
    #: from that address pauses until the oldest falls out of the window
    max_address_failures: int = Field(20, ge=1)
    address_window_s: float = Field(60.0, gt=0)
    #: failed logins for one agent id (from any address) within ``account_window_s`` before
    #: logins for it are paused, except from addresses that agent has logged in from: guessing
    #: from many addresses is bounded, and the agent at their own desk is never locked out
    max_account_failures: int = Field(30, ge=1)
    account_window_s: float = Field(900.0, gt=0)
    #: when an agent's last console session closes and none comes back within this many
    #: seconds, a ready (or wrapping-up) seat goes not ready ("console gone"); a seat on a call
    #: goes not ready when the call ends
    presence_grace_s: float = Field(30.0, ge=0)
    #: ... and when none comes back within this many seconds the seat is logged out (by
    #: ``system``; a seat on a call once the call is over); 0: never
    absent_logout_s: float = Field(3600.0, ge=0)
    #: supervisors are alerted this many seconds before a task's deadline (a complaint's
    #: call-back), and again when it passes (``tasks/deadlines.py``)
    task_alert_before_s: float = Field(7200.0, ge=0)
    #: how often the deadlines are looked at, in seconds
    task_watch_s: float = Field(30.0, gt=0)
    #: events queued for a slow client before it is disconnected
    max_pending_events: int = Field(256, ge=8)
    #: who writes the pushes meant for many consoles (wallboards, queue figures): ``process``, a
    #: relay process of their own (``callcenter/fanout/``: the engine writes each push once and
    #: the consoles open a second socket to the relay), or ``inline``, the engine itself
    fanout: Literal["process", "inline"] = "process"
    #: the relay's port; unset: the console's port + 1 (any free port when the console's is 0)
    fanout_port: int | None = Field(None, ge=0, le=65535)
    #: how much nicer than the engine the relay runs: when the CPUs are short, calls (Asterisk,
    #: the engine) go first and wallboards wait
    fanout_nice: int = Field(10, ge=0, le=19)
    #: CPUs of the relay's own, as the kernel lists them (``1``, ``2-3``): pushing boards to
    #: many consoles then never takes a CPU from Asterisk or the engine. Empty: any CPU
    fanout_cpus: str = ""
    #: saved numbers the transfer dialog offers (``[{label, number}]``), after agents and queues
    directory_numbers: list[DirectoryNumber] = []

    @field_validator("fanout_cpus", mode="before")
    @classmethod
    def _a_cpu_list(cls, value: object) -> str:
        value = str(value) if isinstance(value, int) else value
        if not isinstance(value, str):
            raise ValueError("a CPU list such as 3 or 2-3")
        if value.strip():
            try:
                parse_cpus(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value.strip()


class QueueSettings(BaseModel):
    """One ACD queue (see docs/acd.md)."""

    name: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    skill: str | None = None
    #: service level: answered within ``target_s`` (the "20" of 80/20) ...
    target_s: float = Field(20.0, gt=0)
    #: ... for this share of calls (the "80")
    target_share: float = Field(0.8, gt=0, le=1)
    tier_weights: dict[str, float] = {"platinum": 90.0, "gold": 60.0, "silver": 30.0,
                                      "ordinary": 0.0}
    aging_per_second: float = Field(1.0, gt=0)
    manager_first_s: float = Field(20.0, ge=0)
    vip_team_s: float = Field(40.0, ge=0)
    seat_choice: Literal["longest_idle", "skill_level", "fewest_calls"] = "longest_idle"
    #: after this wait a caller overflows to ``overflow_queue`` (0: never)
    overflow_after_s: float = Field(0.0, ge=0)
    overflow_queue: str | None = None
    #: callers still waiting after this are offered a call-back or told to call later (0: never)
    max_wait_s: float = Field(0.0, ge=0)
    callback_offer: bool = True
    #: position and estimated wait are announced this often (0: never)
    announce_every_s: float = Field(45.0, ge=0)
    #: a schedule name from ivr_flows/schedules.yaml; none: always open
    hours: str | None = None
    closed_action: Literal["callback", "voicemail", "hangup"] = "callback"
    #: the supervisors' wallboard alerts when a caller has waited longer than this ...
    alert_longest_wait_s: float = Field(60.0, gt=0)
    #: ... or when the day's service level falls below this share (None: ``target_share``)
    alert_service_level: float | None = Field(None, gt=0, le=1)


class AcdSettings(BaseModel):
    queues: list[QueueSettings] = [QueueSettings(name="general")]
    #: seconds an agent's phone rings before the seat goes not ready ("no answer")
    ring_timeout_s: float = Field(15.0, gt=0)
    #: after-call work before the seat is ready again (0: straight back to ready)
    wrap_up_s: float = Field(30.0, ge=0)
    #: the agent saves the call's disposition (the wrap-up form) before the seat is ready again:
    #: Ready is refused until then, and when ``wrap_up_s`` is over the seat stays in wrap-up and
    #: the agent and supervisors are alerted. Off: the timer makes the seat ready, form or not.
    require_disposition: bool = True
    #: the agents' calls are recorded (MixMonitor) here, inside the PBX's file system
    #: (no dots: the dialplan accepts recordings only under it, see ``[acd-agent]``)
    recordings_dir: str = Field("/var/spool/asterisk/monitor/callcenter",
                                pattern=r"^(/[A-Za-z0-9_-]+)+$")
    #: an agent may log in from any phone: its extension becomes this dial string
    phone_endpoint: str = Field("PJSIP/{phone}", pattern=r"^[A-Za-z0-9/@_.{}-]+$")
    #: the only contexts a ``Local/<digits>@<context>`` agent phone may name: the sandbox's
    #: simulated phones (asterisk_conf/extensions.conf). Never one the engine uses itself.
    sim_phone_contexts: list[str] = list(SIM_PHONE_CONTEXTS)
    #: the queue events also as an Asterisk-format queue_log (QueueMetrics, qpanel, Asternic
    #: read it; ``acd/asterisk_qlog.py``); off: only the engine's own queue_log table
    queue_log: bool = True
    #: where (default ``<state_dir>/queue_log``; ``Settings.queue_log_path``)
    queue_log_file: Path | None = None

    @field_validator("sim_phone_contexts")
    @classmethod
    def _only_phone_contexts(cls, value: list[str]) -> list[str]:
        for context in value:
            if context in _ENGINE_CONTEXTS or context.startswith(_ENGINE_CONTEXT_PREFIXES) \
                    or not _CONTEXT_NAME.fullmatch(context):
                raise ValueError(f"{context!r} cannot be a simulated phone's context (a name"
                                 " like agent-answer, not one the engine itself uses)")
        return value

    @field_validator("queues")
    @classmethod
    def _queues_named_once_overflowing_to_queues(
            cls, value: list[QueueSettings]) -> list[QueueSettings]:
        names = [q.name for q in value]
        if not names:
            raise ValueError("at least one queue")
        if len(set(names)) != len(names):
            raise ValueError(f"queue names must differ: {', '.join(names)}")
        for q in value:
            if q.overflow_queue and q.overflow_queue not in names:
                raise ValueError(f"queue {q.name}: overflow_queue {q.overflow_queue!r} is not a"
                                 f" queue (the queues: {', '.join(names)})")
        return value


#: dialplan contexts the engine originates into or parks callers in: never an agent's phone
_ENGINE_CONTEXTS = frozenset({
    "hotline", "hotline-native", "caller-sim", "queue-hold", "acd-agent", "acd-dial",
    "acd-hold", "acd-conference", "outbound", "supervisor-spy", "agent-sim", "fax-send",
    "fax-dial", "fax-sim", "fax-in", "bench-queue", "default", "outbound-sim", "from-agent",
    "from-carrier"})
#: prefixes of generated contexts (one per trunk: ``sip/trunks.py``)
_ENGINE_CONTEXT_PREFIXES = ("from-trunk-",)
_CONTEXT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


class SecretarySettings(BaseModel):
    """The financial secretary (docs/secretary.md): subscribed notices from the back office."""

    enabled: bool = True
    #: the back office pushes nothing: new fills, transfers and prices are read this often
    interval_s: float = Field(30.0, gt=0)
    #: the daily market summary goes out after this local time on trading days
    summary_at: dt.time = dt.time(15, 30)


class StrategiesSettings(BaseModel):
    """The service strategies (docs/campaigns.md): run by the engine on their schedules."""

    #: off by default: the engine makes no tasks nor messages until an operator turns it on
    enabled: bool = False
    #: the strategy files (``callcenter strategies check`` reads them too)
    dir: Path = REPO_ROOT / "strategies"
    #: a customer gets at most one contact from the shared strategies per this many days
    contact_every_days: int = Field(3, ge=1, le=365)
    #: how often the engine looks for strategies that are due
    interval_s: float = Field(60.0, gt=0)


class OpsSettings(BaseModel):
    """The operations HTTP server inside the engine (``callcenter/ops/``): ``/metrics`` for
    Prometheus, the administration API under ``/api`` (``callcenter/admin/``, bearer tokens).
    Loopback by default: put a reverse proxy with TLS in front before opening it to the
    network."""

    enabled: bool = True
    host: str = "127.0.0.1"
    #: 0: any free port (tests); the engine's ``ops.port`` tells which
    port: int = Field(8090, ge=0, le=65535)
    #: how often the event loop's lag is sampled (``callcenter_event_loop_lag_seconds``)
    lag_tick_s: float = Field(0.25, gt=0, le=10)


#: the kinds of recording a retention applies to (``recordings/retention.py``): the proof of an
#: IVR order, cancel or bank transfer (the confirmation the caller heard and answered), a proof
#: the caller declined, and an agent's call
RECORDING_KINDS: tuple[str, ...] = ("order", "cancel", "transfer", "declined", "agent")


class RecordingsSettings(BaseModel):
    """Recordings at rest (``callcenter/recordings/``, docs/recordings.md): sealed with the
    site key once they end, kept for their kind's retention, then deleted unless on hold."""

    #: the site key (32 random bytes, base64): made on first start if missing. BACK IT UP:
    #: without it no sealed recording can be played. Unset: ``<state_dir>/recordings.key``
    key_file: Path | None = None
    #: days each kind is kept (docs/recordings.md says which rule each default follows)
    retention_days: dict[str, int] = {"order": 7305, "cancel": 7305, "transfer": 7305,
                                      "declined": 1827, "agent": 1827}
    #: a recording is sealed this long after it ended (Asterisk has closed the file)
    seal_after_s: float = Field(5.0, ge=0)
    #: how often the engine seals ended recordings and deletes expired ones
    interval_s: float = Field(30.0, gt=0)

    @field_validator("retention_days")
    @classmethod
    def _every_kind(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(RECORDING_KINDS))
        missing = sorted(set(RECORDING_KINDS) - set(value))
        if unknown or missing:
            raise ValueError(f"retention_days: give exactly {', '.join(RECORDING_KINDS)}"
                             + (f" (unknown: {', '.join(unknown)})" if unknown else "")
                             + (f" (missing: {', '.join(missing)})" if missing else ""))
        if any(days < 1 for days in value.values()):
            raise ValueError("retention_days: at least 1 day each")
        return value


class SiteSettings(BaseModel):
    """Facts about the site itself."""

    #: the site's IANA time zone: ``callcenter report``'s days and intervals are its wall clock,
    #: whatever the machine's own zone (``CALLCENTER_SITE__TIMEZONE=Asia/Hong_Kong``)
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value

    @property
    def tz(self) -> dt.tzinfo:
        return _zone(self.timezone)


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        if name == "Asia/Shanghai":  # no tz database: UTC+8 without DST since 1991 is exact
            return dt.timezone(dt.timedelta(hours=8), name)
        raise ValueError(f"unknown time zone {name!r} (an IANA name like Asia/Shanghai)") from exc


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
    #: the engine's event loop (``callcenter/event_loop.py``): ``auto`` is uvloop when installed
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    site: SiteSettings = SiteSettings()
    ami: AmiSettings = AmiSettings()
    agi: AgiSettings = AgiSettings()
    pbx: PbxSettings = PbxSettings()
    backoffice: BackOfficeSettings = BackOfficeSettings()
    console: ConsoleSettings = ConsoleSettings()
    acd: AcdSettings = AcdSettings()
    secretary: SecretarySettings = SecretarySettings()
    strategies: StrategiesSettings = StrategiesSettings()
    channels: ChannelsSettings = ChannelsSettings()
    sip: SipSettings = SipSettings()
    trunks: list[TrunkSettings] = []
    dial_rules: DialRules = DialRules()
    ops: OpsSettings = OpsSettings()
    recordings: RecordingsSettings = RecordingsSettings()

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
    def queue_log_path(self) -> Path | None:
        """The Asterisk-format queue_log file, or None when ``acd.queue_log`` is off."""
        if not self.acd.queue_log:
            return None
        return self.acd.queue_log_file or self.state_dir / "queue_log"

    @property
    def backoffice_db(self) -> Path:
        return self.backoffice_path or self.state_dir / "backoffice.db"

    @property
    def ami_secret_file(self) -> Path:
        return self.ami.secret_file or self.state_dir / "ami.secret"

    @property
    def ami_keys_secret_file(self) -> Path:
        """Next to the AMI secret (``pbx up`` writes both)."""
        return self.ami_secret_file.parent / "ami-keys.secret"

    def ami_keys_secret(self) -> SecretStr:
        """The key tap's AMI secret: from settings, else from the file ``pbx up`` wrote."""
        return _secret(self.ami.keys_secret, self.ami_keys_secret_file,
                       "no AMI secret for the key tap: set CALLCENTER_AMI__KEYS_SECRET")

    def ami_secret(self) -> SecretStr:
        """The AMI secret: from settings, else from the secret file the sandbox wrote."""
        return _secret(self.ami.secret, self.ami_secret_file,
                       "no AMI secret: set CALLCENTER_AMI__SECRET")

    @property
    def tls_dir(self) -> Path:
        """The sandbox's local CA and server certificate (``sip/certs.py``)."""
        return self.state_dir / "tls"

    def tls_files(self) -> tuple[Path, Path]:
        """The certificate and key the console and Asterisk present (site's, else sandbox's)."""
        if self.sip.tls_cert is not None and self.sip.tls_key is not None:
            return self.sip.tls_cert, self.sip.tls_key
        return self.tls_dir / "server.pem", self.tls_dir / "server.key"

    @property
    def recordings_key_file(self) -> Path:
        return self.recordings.key_file or self.state_dir / "recordings.key"

    def pbx_path(self, path: str) -> Path:
        """A file Asterisk names (a recording's path) as this host sees it: inside the sandbox
        root in sandbox mode, as is for a system Asterisk."""
        if self.pbx.mode == "sandbox":
            return self.pbx.root / path.lstrip("/")
        return Path(path)

    @property
    def agi_key_file(self) -> Path:
        return self.agi.key_file or self.state_dir / "agi.key"

    def agi_key(self) -> SecretStr:
        """The FastAGI session key: from settings, else from the key file the sandbox wrote."""
        if self.agi.key is not None:
            value, where = self.agi.key.get_secret_value(), "CALLCENTER_AGI__KEY"
        else:
            path = self.agi_key_file
            try:
                value, where = path.read_text(encoding="ascii").strip(), str(path)
            except OSError as exc:
                raise ConfigError(
                    f"no FastAGI key: set CALLCENTER_AGI__KEY or run 'callcenter pbx up' "
                    f"(which writes {path})"
                ) from exc
        if len(value) < MIN_KEY_LENGTH:
            raise ConfigError(f"the FastAGI key in {where} is shorter than {MIN_KEY_LENGTH}"
                              " characters: anyone could guess the session tokens")
        return SecretStr(value)


def load_settings(**overrides: object) -> Settings:
    """Load settings, turning validation errors into one readable ``ConfigError``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc


def _secret(given: SecretStr | None, path: Path, missing: str) -> SecretStr:
    """``given``, else the secret in ``path`` (``callcenter pbx up`` writes it)."""
    if given is not None:
        return given
    try:
        return SecretStr(path.read_text(encoding="ascii").strip())
    except OSError as exc:
        raise ConfigError(f"{missing} or run 'callcenter pbx up' (which writes {path})") from exc
