"""Settings of the SIP edge: transports, certificates, agents' phones (docs/phones.md).

Kept apart from ``config.py`` like the channel servers' settings: ``Settings.sip`` is a
``SipSettings``. Everything here reaches Asterisk only through files ``callcenter pbx`` writes
(``pjsip_transports.conf``, ``http.conf``) or through the phones' AMI link, so every value is
checked here against what those files and actions can hold.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

#: a host name or an IP address, as it may appear in a certificate or a SIP URI
_HOST = r"^[A-Za-z0-9.:-]{1,253}$"
_ICE_URL = re.compile(r"(stuns?|turns?):[A-Za-z0-9.:\[\]-]{1,253}(\?transport=(udp|tcp))?")


class SipSettings(BaseModel):
    """Where Asterisk listens for SIP, and what the agents' phones are told."""

    #: the address SIP (UDP, TCP, TLS) and Asterisk's HTTP server (WebSocket) listen on.
    #: Loopback by default: a site sets its LAN address (desk phones) or 0.0.0.0.
    bind: str = Field("127.0.0.1", pattern=_HOST)
    udp_port: int = Field(5060, ge=1, le=65535)
    tcp_port: int = Field(5060, ge=1, le=65535)
    tls_port: int = Field(5061, ge=1, le=65535)
    #: Asterisk's HTTP server: plain WebSocket on loopback for the console's ``/sip`` relay
    http_port: int = Field(8088, ge=1, le=65535)
    #: Asterisk's HTTPS server: WSS for browser phones that connect to Asterisk directly
    https_port: int = Field(8089, ge=1, le=65535)
    #: NAT: the public address Asterisk puts in Contact and SDP (docs/phones.md)
    external_address: str | None = Field(None, pattern=_HOST)
    #: networks that are *not* behind the NAT (``local_net`` of the transports)
    local_net: list[str] = []
    #: the site's own certificate and key (PEM); unset: ``pbx up`` makes a local CA and signs a
    #: server certificate for ``cert_names`` (kept in ``<state_dir>/tls``)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: extra names (DNS or IP) the generated server certificate holds, besides ``bind``,
    #: ``external_address``, 127.0.0.1 and localhost
    cert_names: list[str] = []
    #: the digest realm of every agent phone's credentials
    realm: str = Field("callcenter", pattern=r"^[A-Za-z0-9.-]{1,64}$")
    #: STUN/TURN servers handed to browser phones (``stun:host:3478``, ``turn:...``); empty on a
    #: LAN (an unreachable STUN server delays every call by its timeout)
    ice_servers: list[str] = []
    #: seconds a registered phone is probed (OPTIONS); an unanswered probe marks it unreachable
    qualify_s: int = Field(30, ge=0, le=3600)
    #: Asterisk's RTP ports (``rtp.conf``): two per call leg, so 10000-19999 carries about
    #: 5000 legs at once; a firewall opens this range for phones and trunks
    rtp_start: int = Field(10000, ge=1024, le=65534)
    rtp_end: int = Field(19999, ge=1025, le=65535)

    @model_validator(mode="after")
    def _rtp_range(self) -> SipSettings:
        if self.rtp_end - self.rtp_start < 3:
            raise ValueError(f"rtp_start {self.rtp_start} .. rtp_end {self.rtp_end}: the RTP range"
                             " needs at least two calls' ports (start below end)")
        return self

    @field_validator("local_net")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            ipaddress.ip_network(net, strict=False)
        return value

    @field_validator("cert_names")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(_HOST, name):
                raise ValueError(f"{name!r} is not a host name or address")
        return value

    @field_validator("ice_servers")
    @classmethod
    def _ice(cls, value: list[str]) -> list[str]:
        for url in value:
            if not _ICE_URL.fullmatch(url):
                raise ValueError(f"{url!r} is not a stun:/turn: URL")
        return value


# -- trunks and dial rules (docs/phones-trunks.md) -----------------------------------------------

#: a trunk's host as a SIP URI holds it: a name or IPv4 address, or [IPv6], and an optional port
_TRUNK_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])"
                         r"(?::([0-9]{1,5}))?")
#: a number as a carrier sends or expects it: digits, an optional leading +
_DIGITS = r"^\+?[0-9]{2,20}$"
#: an Asterisk-style number pattern (national form): digits, X (0-9), Z (1-9), N (2-9),
#: [a-b] ranges, and a final '.' (one or more further digits); '_' first as in the dialplan
_DIAL_PATTERN = re.compile(r"_?(?:[0-9XZN]|\[[0-9](?:-[0-9])?(?:[0-9](?:-[0-9])?)*\]){1,20}\.?")

TrunkTransport = Literal["udp", "tcp", "tls"]
#: what kind of number a dial rule found (``phones/dialrules.py``)
DialKind = Literal["mobile", "landline", "freephone", "listed", "international"]
DialRole = Literal["agent", "supervisor", "admin"]

#: national-form prefixes refused for everyone, whatever else the rules say: premium-rate and
#: costly services that a mobile or landline pattern would otherwise let through
DEFAULT_BLOCKED_PREFIXES: tuple[str, ...] = (
    "160",   # paging and voice-information services (1600, 1601, ...)
    "168",   # premium voice-information services (1680-1689)
    "1259",  # value-added voice and SMS information services (12590-12599)
    "106",   # SMS service codes (no voice; a premium-rate subscription trap)
    "1349",  # satellite telephones (China Satcom)
    "174",   # satellite and emergency-communication block (Tiantong 1740x, 1749x)
)
#: international country codes refused even where international calls are allowed: ITU
#: global services with no single country behind them, the classic toll-fraud sinks
DEFAULT_BLOCKED_COUNTRIES: tuple[str, ...] = (
    "870",  # Inmarsat
    "878",  # Universal Personal Telecommunications
    "881",  # global mobile satellite systems (Iridium, Globalstar, ...)
    "882",  # international networks
    "883",  # international networks
    "888",  # OCHA
    "979",  # International Premium Rate Service
    "991",  # ITPCS trial
)


class TrunkSettings(BaseModel):
    """One SIP trunk: the carrier's address, how each side knows the other, the hotline's DIDs
    on it and the caller ID of calls that leave through it (``sip/trunks.py``)."""

    #: the PJSIP endpoint's id and the inbound context's suffix (``[from-trunk-<name>]``); a
    #: letter first, so it is never an agent phone's extension (digits)
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    #: the carrier's signalling address, ``host[:port]`` (``[v6]:port`` for IPv6)
    host: str
    transport: TrunkTransport = "udp"
    #: digest credentials our side presents (outbound calls; registration). The password's
    #: characters, and that auth or ``match`` is given, are checked by ``sip/trunks.py``
    #: (no validator here: pydantic's errors carry the input, and a password must never print)
    username: str | None = Field(None, pattern=r"^[A-Za-z0-9_.+-]{1,64}$")
    password: SecretStr | None = None
    #: the realm the credentials are for (empty: any the carrier names)
    realm: str | None = Field(None, pattern=r"^[A-Za-z0-9.-]{1,64}$")
    #: register at the carrier (digest auth needed); calls to the registration come in as this
    #: trunk's
    registration: bool = False
    #: IP identify: the addresses or networks the carrier's requests come from
    match: list[str] = []
    #: the numbers that reach the hotline (as the carrier sends them in the request URI)
    dids: list[str] = []
    #: the caller ID of calls leaving through this trunk (the brokerage's own number)
    caller_id: str = Field(pattern=_DIGITS)
    #: the From user some carriers want (their account); the caller ID then goes in
    #: P-Asserted-Identity. Empty: the From user is the caller ID shown
    from_user: str | None = Field(None, pattern=r"^[A-Za-z0-9_.+-]{1,64}$")
    #: the From domain some carriers want (default: the host)
    from_domain: str | None = Field(None, pattern=r"^[A-Za-z0-9.-]{1,253}$")
    #: how the carrier wants the number dialled: ``national`` as the engine has it (138...,
    #: 010..., 00852...), or ``e164`` (+86138..., +8610..., +852...)
    number_format: Literal["national", "e164"] = "national"
    #: then: drop this many leading digits, and put ``add_prefix`` in front (a carrier's
    #: routing prefix)
    strip_digits: int = Field(0, ge=0, le=8)
    add_prefix: str = Field("", pattern=r"^\+?[0-9]{0,8}$")
    #: calls go out through this trunk (in the order of the list; the next one when a trunk
    #: is unavailable or congested)
    outbound: bool = True
    codecs: list[Literal["alaw", "ulaw", "g722", "opus"]] = ["alaw", "ulaw"]
    #: seconds between OPTIONS probes of the carrier (0: none)
    qualify_s: int = Field(60, ge=0, le=3600)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        found = _TRUNK_HOST.fullmatch(value)
        if found is None or (found.group(1) is not None and not 0 < int(found.group(1)) < 65536):
            raise ValueError("host[:port]: a host name or IP address ([v6] for IPv6), port 1-65535")
        return value

    @field_validator("match")
    @classmethod
    def _match(cls, value: list[str]) -> list[str]:
        for net in value:
            ipaddress.ip_network(net, strict=False)
        return value

    @field_validator("dids")
    @classmethod
    def _dids(cls, value: list[str]) -> list[str]:
        for did in value:
            if not re.fullmatch(_DIGITS, did):
                raise ValueError(f"DID {did!r}: digits with an optional leading +")
        if len(set(value)) != len(value):
            raise ValueError("a DID is listed twice")
        return value


class DialRules(BaseModel):
    """What numbers the engine may dial out (call-backs, click-to-call, transfers,
    consultations, conferences), checked by ``phones/dialrules.py`` before anything reaches
    Asterisk. Numbers are mainland China's: national form, or international after 00 / +."""

    #: the kinds of number each role may dial; "international" also needs ``international``
    agent: list[DialKind] = ["mobile", "landline", "freephone", "listed"]
    supervisor: list[DialKind] = ["mobile", "landline", "freephone", "listed", "international"]
    admin: list[DialKind] = ["mobile", "landline", "freephone", "listed", "international"]
    #: the switch for international calls (off: nobody dials abroad, whatever the roles say)
    international: bool = False
    #: the country codes international calls may go to (Hong Kong, Macao, Taiwan by default)
    countries: list[str] = ["852", "853", "886"]
    #: country codes refused even if listed in ``countries`` (satellite, premium-rate, ...)
    blocked_countries: list[str] = list(DEFAULT_BLOCKED_COUNTRIES)
    #: national-form prefixes refused for everyone (premium-rate, satellite, SMS codes)
    blocked_prefixes: list[str] = list(DEFAULT_BLOCKED_PREFIXES)
    #: further numbers (national form) the site allows as kind "listed", as dialplan-style
    #: patterns: ``95551`` (one service number), ``_9555X``, ``_0755[2-8]XXXXXXX``
    allowed_patterns: list[str] = []
    #: a local number (7-8 digits, no area code) gets this area code (e.g. "021"); unset:
    #: local numbers are refused ("give the area code")
    local_area_code: str | None = Field(None, pattern=r"^0(10|2[0-9]|[3-9][0-9]{2})$")
    #: bounds on the national number, after normalising (the kinds have their own lengths)
    min_length: int = Field(5, ge=3, le=20)
    max_length: int = Field(12, ge=3, le=20)
    #: digits of an international number after 00 (E.164 allows 15)
    max_international_digits: int = Field(15, ge=7, le=17)

    @field_validator("countries", "blocked_countries")
    @classmethod
    def _country_codes(cls, value: list[str]) -> list[str]:
        for code in value:
            if not re.fullmatch(r"[1-9][0-9]{0,3}", code):
                raise ValueError(f"{code!r} is not a country code (1-4 digits, no 0 first)")
        return value

    @field_validator("blocked_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not re.fullmatch(r"[0-9]{1,12}", prefix):
                raise ValueError(f"{prefix!r} is not a number prefix (digits)")
        return value

    @field_validator("allowed_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not _DIAL_PATTERN.fullmatch(pattern) or (
                    not pattern.startswith("_") and not pattern.isdigit()):
                raise ValueError(f"{pattern!r}: digits, or a pattern like _9555X or"
                                 " _0755[2-8]XXXXXXX (X, Z, N, [ranges], a final '.')")
        return value

    @model_validator(mode="after")
    def _lengths(self) -> DialRules:
        if self.min_length > self.max_length:
            raise ValueError("dial_rules: min_length is above max_length")
        return self

    def kinds(self, role: str) -> frozenset[str]:
        """The kinds of number ``role`` may dial (none for an unknown role)."""
        match role:
            case "agent":
                return frozenset(self.agent)
            case "supervisor":
                return frozenset(self.supervisor)
            case "admin":
                return frozenset(self.admin)
        return frozenset()
