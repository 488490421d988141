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

from pydantic import BaseModel, Field, field_validator

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
