"""An agent phone's SIP identity: the PJSIP endpoint, AOR and auth the engine makes for it.

Pure code. The objects live in Asterisk's AstDB under ``cc_phones/<type>/<extension>`` as the
JSON objects ``res_sorcery_astdb`` reads (``asterisk_conf/sorcery.conf``); ``phones/link.py``
writes them. Two kinds of phone:

- ``desk``: a desk phone or a desktop softphone registering over UDP, TCP or TLS, with a
  long-lived secret that ``callcenter agents add --phone desk`` generates and shows once;
- ``browser``: the console's WebRTC phone (WSS, DTLS-SRTP, ICE, opus), whose secret is made anew
  at every console login and handed to that page only.

Only the MD5 digest of a secret (HA1 = MD5(user:realm:secret), what SIP digest auth checks) is
kept, in the engine's database and in AstDB; the secret itself exists only in the agent's
phone. The digest is not a password, but it lets a holder answer challenges for this realm:
AstDB and the state directory are kept like the AMI secret (docs/security.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

#: the extension (endpoint, AOR and auth name, SIP user) of an agent phone
EXTENSION: Final = re.compile(r"[0-9]{2,8}")
#: the AstDB family prefix in ``sorcery.conf``
FAMILY: Final = "cc_phones"
OBJECT_TYPES: Final = ("endpoint", "aor", "auth")
#: where calls *from* agent phones go (extensions.conf): nothing but a refusal today
FROM_AGENT_CONTEXT: Final = "from-agent"
HA1: Final = re.compile(r"[0-9a-f]{32}")


class PhoneKind(StrEnum):
    BROWSER = "browser"
    DESK = "desk"


@dataclass(frozen=True, slots=True)
class PhoneIdentity:
    """What the engine keeps of an agent's SIP phone."""

    extension: str
    kind: PhoneKind
    #: MD5(user:realm:secret); ``None`` for a browser phone between logins (nobody can register)
    ha1: str | None
    caller_name: str = ""

    @property
    def endpoint(self) -> str:
        """The dial string the ACD rings."""
        return f"PJSIP/{self.extension}"


def new_secret() -> str:
    """A SIP secret: 24 random characters a person can still type into a desk phone."""
    return secrets.token_urlsafe(18)


def ha1(username: str, realm: str, secret: str) -> str:
    return hashlib.md5(f"{username}:{realm}:{secret}".encode()).hexdigest()  # noqa: S324


def extension_of(endpoint: str) -> str | None:
    """``PJSIP/1001`` -> ``1001``, when it names an extension the engine could provision."""
    tech, _, resource = endpoint.partition("/")
    return resource if tech == "PJSIP" and EXTENSION.fullmatch(resource) else None


def check_extension(extension: str) -> str:
    if not EXTENSION.fullmatch(extension):
        raise ValueError(f"extension {extension!r}: 2-8 digits")
    return extension


def sorcery_objects(phone: PhoneIdentity, realm: str, qualify_s: int) -> dict[str, dict[str, str]]:
    """The endpoint, AOR and auth of ``phone``, field by field, as sorcery reads them."""
    ext = check_extension(phone.extension)
    # no digest (a browser phone between logins): a random one nobody knows the secret of
    digest = phone.ha1 if phone.ha1 is not None else ha1(ext, realm, new_secret())
    if not HA1.fullmatch(digest):
        raise ValueError("an HA1 digest is 32 hex digits")
    endpoint = {
        "context": FROM_AGENT_CONTEXT,
        "disallow": "all",
        "auth": ext,
        "aors": ext,
        "direct_media": "no",
        "dtmf_mode": "rfc4733",
        "rtp_symmetric": "yes",
        "force_rport": "yes",
        "rewrite_contact": "yes",
        "callerid": f"{_callerid_name(phone.caller_name)} <{ext}>",
        "send_pai": "no",
        "trust_id_inbound": "no",
        "device_state_busy_at": "1",
        # SDP without "s=Asterisk"
        "sdp_session": "callcenter",
    }
    if phone.kind is PhoneKind.BROWSER:
        # webrtc=yes: DTLS-SRTP (auto certificate), ICE, AVPF, rtcp-mux, bundle
        endpoint |= {"webrtc": "yes", "allow": "opus,ulaw,alaw",
                     "dtls_auto_generate_cert": "yes"}
    else:
        endpoint |= {"allow": "ulaw,alaw"}
    aor = {
        "max_contacts": "1",
        # a phone that registers again (after a restart, from a new console page) replaces its
        # old contact; the console's per-login secret keeps other people out
        "remove_existing": "yes",
        "qualify_frequency": str(qualify_s),
        "qualify_timeout": "3.0",
        "minimum_expiration": "60",
        "default_expiration": "300",
        "maximum_expiration": "3600",
    }
    auth = {"auth_type": "digest", "username": ext, "realm": realm, "md5_cred": digest}
    return {"endpoint": endpoint, "aor": aor, "auth": auth}


def _callerid_name(name: str) -> str:
    cleaned = re.sub(r"[^\w .-]", "", name, flags=re.UNICODE).strip()[:40]
    return f'"{cleaned}"' if cleaned else '""'


def astdb_values(phone: PhoneIdentity, realm: str, qualify_s: int) -> dict[tuple[str, str], str]:
    """``{(family, key): value}`` for the AMI ``DBPut`` actions that make ``phone``."""
    return {(f"{FAMILY}/{kind}", phone.extension): json.dumps(fields, separators=(",", ":"),
                                                               ensure_ascii=False)
            for kind, fields in sorcery_objects(phone, realm, qualify_s).items()}
