"""The SIP edge under abuse (issue 10, "Bad input, faults"), through the real Asterisk.

Scanners (Debian's ``sipvicious``: svmap, svwar, svcrack), anonymous INVITEs, wrong digests,
unknown users and a REGISTER flood, all from loopback addresses no endpoint is identified by,
against our own listener 127.0.0.1:5060. Each gets nothing: no product or version named, no
difference between an existing extension and a missing one (every unidentified request is
challenged exactly like a known user with a wrong password), no channel, no FastAGI session, no
call row, no contact; and the engine's phones link logs the source address, once per source and
kind per minute, counting the rest, within a budget of lines a minute for all sources together
(a spray of forged addresses).

Every tool runs as a subprocess with a deadline; the tests wait for conditions (AMI events,
counts), never for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callcenter.engine import Engine
from callcenter.errors import AmiActionError, AmiError, TelephonyError
from callcenter.phones.deskphone import DeskPhone
from callcenter.phones.link import LOG_BUDGET
from callcenter.telephony.agi import Channel
from callcenter.telephony.ami_events import NewChannel
from tests.integration.acd_helpers import desk_agent, until

pytestmark = pytest.mark.integration

PBX = ("127.0.0.1", 5060)
#: loopback sources no endpoint is identified by (the carrier is 127.0.0.2, desk phones 127.0.0.3)
ANONYMOUS = "127.0.0.9"
SCANNER = "127.0.0.11"
FLOODER = "127.0.0.13"
PROBER = "127.0.0.14"
#: sipvicious 0.3.3's svwar and svcrack do not pass their -b (binding address) on: they send
#: from the kernel's choice for 127.0.0.1, which is 127.0.0.1 (no identify matches it)
SIPVICIOUS = "127.0.0.1"
#: the agent extension the scans look for, and ones nobody has
EXTENSION = "7301"
MISSING = "7309"
LINK_LOGGER = "callcenter.phones.link"


# -- helpers ----------------------------------------------------------------------------------



async def run_tool(*argv: str, timeout_s: float, cwd: Path,
                   env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a command to its end (killed at the deadline); its exit code and its output."""
    exe = shutil.which(argv[0])
    if exe is None:
        pytest.fail(f"{argv[0]} is not installed (./dev installs the Debian packages)")
    proc = await asyncio.create_subprocess_exec(
        exe, *argv[1:], cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        out, _ = await proc.communicate()
        pytest.fail(f"{argv[0]} still running after {timeout_s} s:\n{out.decode(errors='replace')}")
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def _sipvicious_env(home: Path) -> dict[str, str]:
    """sipvicious keeps sessions under ~/.sipvicious: a private HOME per test."""
    return {**os.environ, "HOME": str(home)}


async def contacts(engine: Engine) -> list[str]:
    """The URIs of every contact Asterisk holds (PJSIPShowContacts)."""
    assert engine.phones is not None
    try:
        rows = await engine.phones.ami.action_list("PJSIPShowContacts")
    except AmiActionError as exc:  # Asterisk answers "no contacts" with an error
        if "found" in exc.message.lower():
            return []
        raise
    return [r.get("Uri", "") for r in rows if r.get("Event") == "ContactList"]


async def call_rows(engine: Engine) -> int:
    assert engine.db is not None
    async with engine.db.execute("SELECT COUNT(*) FROM calls") as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def seen(engine: Engine, source: str, kind: str) -> int:
    """How many security events of ``kind`` from ``source`` the engine has counted."""
    assert engine.phones is not None
    return engine.phones.security_counts.get((source, kind), 0)


def logged(caplog: pytest.LogCaptureFixture, source: str, kind: str | None = None) -> list[str]:
    """The phones link's security warnings naming ``source`` (and ``kind``)."""
    return [r.getMessage() for r in caplog.records
            if r.name == LINK_LOGGER and r.levelno >= logging.WARNING
            and f"from {source} " in r.getMessage()
            and (kind is None or f": {kind} from" in r.getMessage())]


@dataclass
class Watch:
    """Everything the call side of Asterisk and the engine did while a test ran."""

    channels: list[str]
    agi_sessions: int = 0


@pytest.fixture
async def watch(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Watch]:
    """Record every new channel (AMI ``Newchannel``) and every FastAGI session that reaches the
    engine's handler. A test that fails because a call got in hangs it up, for the next one."""
    ami, agi = engine.ami, engine.agi
    assert ami is not None and agi is not None
    found = Watch([])

    def on_event(event: object) -> None:
        if isinstance(event, NewChannel):
            found.channels.append(event.info.channel)

    handler = agi._handler

    async def counting(channel: Channel) -> None:
        found.agi_sessions += 1
        await handler(channel)

    monkeypatch.setattr(agi, "_handler", counting)
    ami.add_handler(on_event)
    try:
        yield found
    finally:
        ami.remove_handler(on_event)
        for channel in found.channels:
            with contextlib.suppress(AmiError):
                await ami.action("Hangup", Channel=channel)


# -- a raw SIP client on the wire ----------------------------------------------------------------


@dataclass(frozen=True)
class SipResponse:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    raw: str

    def header(self, name: str) -> str:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return ""

    def challenge(self) -> dict[str, str]:
        return dict(re.findall(r'(\w+)="?([^",]*)"?', self.header("WWW-Authenticate")))

    def shape(self) -> tuple[object, ...]:
        """What a scanner can compare between two answers: all but the per-request values
        (tags, branch, Call-ID, nonce, opaque)."""
        challenge = {k: v for k, v in self.challenge().items() if k not in ("nonce", "opaque")}
        return (self.status, self.reason, tuple(sorted(k.lower() for k, _ in self.headers)),
                self.header("Server"), self.header("User-Agent"), sorted(challenge.items()))


def parse_response(data: bytes) -> SipResponse:
    text = data.decode(errors="replace")
    head = text.split("\r\n\r\n", 1)[0].split("\r\n")
    _, status, reason = head[0].split(" ", 2)
    headers = tuple((k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in head[1:]))
    return SipResponse(int(status), reason, headers, text)


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.queue.put_nowait(data)


class SipProbe:
    """One UDP socket on ``address``: send a request, return Asterisk's final answer (an INVITE's
    non-2xx answer is ACKed, as a UA must)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._transport: asyncio.DatagramTransport | None = None
        self._inbox = _Inbox()
        self.port = 0

    async def __aenter__(self) -> SipProbe:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: self._inbox, local_addr=(self.address, 0))
        self.port = self._transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()

    def _request(self, method: str, user: str, *, target: str, call_id: str, cseq: int,
                 branch: str, tag: str, authorization: str = "") -> tuple[str, bytes]:
        host = f"{PBX[0]}:{PBX[1]}"
        uri = f"sip:{host}" if method == "REGISTER" else f"sip:{target}@{host}"
        body = ""
        if method == "INVITE":
            body = (f"v=0\r\no=probe 1 1 IN IP4 {self.address}\r\ns=-\r\n"
                    f"c=IN IP4 {self.address}\r\nt=0 0\r\n"
                    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.address}:{self.port};rport;branch={branch}",
                 "Max-Forwards: 70",
                 f"From: <sip:{user}@{PBX[0]}>;tag={tag}",
                 f"To: <sip:{target}@{PBX[0]}>",
                 f"Call-ID: {call_id}",
                 f"CSeq: {cseq} {method}",
                 f"Contact: <sip:{user}@{self.address}:{self.port}>",
                 "User-Agent: probe"]
        if method == "REGISTER":
            lines.append("Expires: 300")
        if authorization:
            lines.append(f"Authorization: {authorization}")
        if body:
            lines.append("Content-Type: application/sdp")
        lines += [f"Content-Length: {len(body)}", "", body]
        return uri, "\r\n".join(lines).encode()

    async def _final(self, call_id: str, timeout_s: float = 5.0) -> SipResponse:
        async with asyncio.timeout(timeout_s):
            while True:
                response = parse_response(await self._inbox.queue.get())
                if response.header("Call-ID") == call_id and response.status >= 200:
                    return response

    async def ask(self, method: str, user: str, *, to: str | None = None,
                  password: str | None = None) -> list[SipResponse]:
        """Send ``method`` from ``user`` to ``to`` (default: ``user`` again, as a phone that
        registers or a scanner does); with ``password``, answer the challenge with it. The
        final responses, one per round."""
        assert self._transport is not None
        call_id, tag = secrets.token_hex(10), secrets.token_hex(4)
        answers: list[SipResponse] = []
        authorization = ""
        for cseq in (1, 2):
            branch = "z9hG4bK" + secrets.token_hex(8)
            uri, data = self._request(method, user, target=to or user, call_id=call_id,
                                      cseq=cseq, branch=branch, tag=tag,
                                      authorization=authorization)
            self._transport.sendto(data, PBX)
            response = await self._final(call_id)
            answers.append(response)
            if method == "INVITE" and response.status >= 300:
                self._transport.sendto(self._ack(data, response, cseq), PBX)
            if password is None or response.status != 401 or cseq == 2:
                break
            authorization = _digest(method, uri, user, password, response.challenge())
        return answers

    @staticmethod
    def _ack(invite: bytes, response: SipResponse, cseq: int) -> bytes:
        lines = invite.decode().split("\r\n\r\n", 1)[0].split("\r\n")
        first = lines[0].replace("INVITE", "ACK", 1)
        keep = [h for h in lines[1:] if h.split(":", 1)[0] in ("Via", "From", "Call-ID",
                                                               "Max-Forwards")]
        return "\r\n".join([first, *keep, f"To: {response.header('To')}", f"CSeq: {cseq} ACK",
                            "Content-Length: 0", "", ""]).encode()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # SIP digest auth is MD5


def _digest(method: str, uri: str, user: str, password: str, challenge: dict[str, str]) -> str:
    realm, nonce = challenge["realm"], challenge["nonce"]
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    cnonce, nc = secrets.token_hex(8), "00000001"
    fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
              'algorithm=MD5']
    if "qop" in challenge:
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += [f'response="{response}"', "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        fields.append(f'response="{_md5(f"{ha1}:{nonce}:{ha2}")}"')
    if "opaque" in challenge:
        fields.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(fields)


# -- 1. what a scanner learns ------------------------------------------------------------------


@pytest.fixture
async def agent_7301(engine: Engine) -> AsyncIterator[str]:
    secret = await desk_agent(engine, "S1", EXTENSION)
    yield secret


async def test_on_the_wire_an_existing_extension_is_answered_like_a_missing_one(
        engine: Engine, agent_7301: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LINK_LOGGER)
    async with SipProbe(PROBER) as probe:
        for method in ("REGISTER", "INVITE", "OPTIONS"):
            known = await probe.ask(method, EXTENSION, password="wrong-secret")
            missing = await probe.ask(method, MISSING, password="wrong-secret")
            assert [r.shape() for r in known] == [r.shape() for r in missing], method
            assert [r.status for r in known] == [401, 401], method
            for response in known + missing:
                assert "asterisk" not in response.raw.lower()
                assert response.header("Server") == "callcenter"
    # the unknown user and the wrong digest were both seen, with the source
    await until(engine, lambda: seen(engine, PROBER, "InvalidAccountID") >= 3
                and seen(engine, PROBER, "ChallengeResponseFailed") >= 3, 10,
                "security events from the prober")
    assert logged(caplog, PROBER, "InvalidAccountID")
    assert logged(caplog, PROBER, "ChallengeResponseFailed")
    assert await _attackers_contacts(engine) == []


async def test_svmap_finds_a_sip_device_that_names_neither_asterisk_nor_a_version(
        engine: Engine, tmp_path: Path) -> None:
    for method in ("OPTIONS", "INVITE", "REGISTER"):
        rc, out = await run_tool("svmap", "-b", SCANNER, "-p", str(PBX[1]), "-m", method,
                                 PBX[0], timeout_s=60, cwd=tmp_path,
                                 env=_sipvicious_env(tmp_path))
        print(method, out)
        assert rc == 0, out
        rows = re.findall(r"\|\s*([\d.]+:\d+)\s*\|\s*([^|]*?)\s*\|", out)
        # OPTIONS and INVITE find the listener (a SIP service cannot hide that it exists); its
        # only name is ours. (svmap lists nothing for REGISTER: it cannot match the answer.)
        expected = [(f"{PBX[0]}:{PBX[1]}", "callcenter")]
        assert rows == expected or (method == "REGISTER" and rows == []), out
        assert "asterisk" not in out.lower()
        assert not re.search(r"\b\d+\.\d+(\.\d+)?\b(?![\d.]*:)", out.replace(PBX[0], "")), out


def _svwar_found(out: str) -> set[str]:
    """The extensions svwar's result table lists."""
    return set(re.findall(r"^\|\s*(\d+)\s*\|", out, flags=re.MULTILINE))


async def test_svwar_cannot_tell_an_agent_extension_from_a_missing_one(
        engine: Engine, agent_7301: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LINK_LOGGER)
    for method in ("REGISTER", "INVITE", "OPTIONS"):
        for extension in (EXTENSION, MISSING):
            # svwar first asks for a random extension to learn what "missing" looks like; it
            # already gives up there ("authentication request for an unknown extension"), so
            # --force. It then reports an extension whose answer differs, and stops at the first
            # answer that does not: one extension a run, and --debug shows it was answered.
            rc, out = await run_tool("svwar", "-P", "5097", "-p", str(PBX[1]), "-m", method,
                                     "--force", "--debug", f"-e{extension}", PBX[0],
                                     timeout_s=60, cwd=tmp_path, env=_sipvicious_env(tmp_path))
            assert rc == 0, out
            assert f"<sip:{extension}@" in out, f"svwar got no answer for {extension}:\n{out}"
            assert _svwar_found(out) == set(), out
            assert "found nothing" in out, out
    # svwar's probes for random extensions and for 7309 came from an unknown account
    await until(engine, lambda: seen(engine, SIPVICIOUS, "InvalidAccountID") >= 9, 10,
                "the scan's unknown extensions counted")
    assert len(logged(caplog, SIPVICIOUS, "InvalidAccountID")) == 1
    assert await _attackers_contacts(engine) == []


async def test_svcrack_with_a_wordlist_fails_and_the_source_is_logged(
        engine: Engine, agent_7301: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LINK_LOGGER)
    words = ["1234", "7301", "password", "secret", "callcenter", "asterisk", "0000", "qwerty",
             "admin", "letmein", "73017301", "changeme"]
    assert agent_7301 not in words
    (tmp_path / "words.txt").write_text("\n".join(words) + "\n", encoding="ascii")
    rc, out = await run_tool("svcrack", "-P", "5098", "-p", str(PBX[1]), "-u", EXTENSION,
                             "-d", "words.txt", PBX[0], timeout_s=120, cwd=tmp_path,
                             env=_sipvicious_env(tmp_path))
    assert rc == 0, out
    assert "found nothing" in out, out
    assert "The password for" not in out, out
    # every guess was a wrong digest for 7301, seen with its source; one line in the log
    await until(engine, lambda: seen(engine, SIPVICIOUS, "ChallengeResponseFailed")
                >= len(words), 10, "every guess counted")
    lines = logged(caplog, SIPVICIOUS, "ChallengeResponseFailed")
    assert len(lines) == 1 and "'7301'" in lines[0], lines
    assert await _attackers_contacts(engine) == []


ATTACKERS = (ANONYMOUS, SCANNER, FLOODER, PROBER)


async def _attackers_contacts(engine: Engine) -> list[str]:
    """Contacts an attacker could have made: on the scanned extension or at their addresses.
    (Other tests' phones may be registered on the shared Asterisk: they are not ours to judge.)"""
    return [uri for uri in await contacts(engine)
            if f"sip:{EXTENSION}@" in uri or any(a in uri for a in ATTACKERS)]


# -- 2. anonymous INVITEs ----------------------------------------------------------------------

_ANONYMOUS_UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="anonymous caller">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{user}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=anon 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="401" auth="true"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: <sip:{user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 2 INVITE
      Contact: <sip:{user}@[local_ip]:[local_port]>
      [authentication username={user} password=guessed]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=anon 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="401"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: <sip:{user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>
</scenario>
"""


async def _sipp_uac(tmp_path: Path, scenario: str, *args: str,
                    timeout_s: float = 60) -> tuple[int, str]:
    path = tmp_path / f"uac-{secrets.token_hex(4)}.xml"
    path.write_text(scenario, encoding="iso-8859-1")
    errors = path.with_suffix(".errors.log")
    rc, out = await run_tool("sipp", f"{PBX[0]}:{PBX[1]}", "-sf", str(path), *args,
                             "-nostdin", "-trace_err", "-error_file", str(errors),
                             timeout_s=timeout_s, cwd=tmp_path)
    if errors.exists():
        out += "\n--- sipp errors\n" + errors.read_text(errors="replace")[-4000:]
    return rc, out


@pytest.mark.parametrize("number", ["9500", "95500"])
@pytest.mark.parametrize("from_user", ["anonymous", "carrier"])
async def test_an_anonymous_invite_is_challenged_and_reaches_nothing(
        engine: Engine, watch: Watch, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        number: str, from_user: str) -> None:
    """From an address no endpoint is identified by, with a made-up name or the carrier
    trunk's endpoint name in From: a challenge, a made-up digest refused, and nothing else.

    The second case is the one that matters: res_pjsip identifies an endpoint by the From user
    as well as by address (``identify_by`` defaults to ``username,ip``), and a trunk has no
    inbound digest. A trunk endpoint without ``identify_by = ip`` lets anyone who writes its
    name in From in as the carrier, with the caller number they like."""
    caplog.set_level(logging.INFO, logger=LINK_LOGGER)
    rc, out = await _sipp_uac(tmp_path, _ANONYMOUS_UAC.format(user=from_user),
                              "-s", number, "-i", ANONYMOUS, "-p", "5091", "-m", "1",
                              "-recv_timeout", "10000")
    assert rc == 0, f"the PBX did not just challenge the anonymous INVITE:\n{out}"
    await until(engine, lambda: seen(engine, ANONYMOUS, "InvalidAccountID") >= 2, 10,
                "the anonymous INVITEs counted")
    assert logged(caplog, ANONYMOUS, "InvalidAccountID")
    # nothing reached Asterisk's dialplan or the IVR
    assert watch.channels == []
    assert engine.ami is not None
    assert [c for c in await _channels(engine) if ANONYMOUS in c or "carrier" in c] == []
    assert watch.agi_sessions == 0
    assert await call_rows(engine) == 0


async def _channels(engine: Engine) -> list[str]:
    assert engine.ami is not None
    rows = await engine.ami.action_list("CoreShowChannels")
    return [r.get("Channel", "") for r in rows]


# -- 3. wrong digests, unknown users, a REGISTER flood -----------------------------------------


async def test_a_wrong_digest_or_an_unknown_user_registers_nothing(
        engine: Engine, agent_7301: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LINK_LOGGER)
    assert engine.phones is not None
    for extension, secret in ((EXTENSION, "not-the-secret"), (MISSING, agent_7301)):
        async with DeskPhone(extension, secret, address=FLOODER, port=5092) as phone:
            with pytest.raises(TelephonyError):
                await phone.register()
    await until(engine, lambda: seen(engine, FLOODER, "ChallengeResponseFailed") >= 1
                and seen(engine, FLOODER, "InvalidAccountID") >= 1, 10,
                "the failed registrations counted")
    assert logged(caplog, FLOODER, "ChallengeResponseFailed")
    assert logged(caplog, FLOODER, "InvalidAccountID")
    assert await _attackers_contacts(engine) == []
    assert not engine.phones.can_ring(EXTENSION)


_FLOOD_UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register flood">
  <send><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port]>
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>
  <recv response="401" auth="true"/>
  <send><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port]>
      [authentication]
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>
  <recv response="401"/>
</scenario>
"""


async def _flood(tmp_path: Path, user: str, port: int, rate: int, total: int) -> int:
    """``total`` REGISTER attempts for ``user`` with a wrong secret, ``rate`` a second; how many
    were answered as they should be: a challenge, then the wrong digest refused (401)."""
    rc, out = await _sipp_uac(tmp_path, _FLOOD_UAC, "-s", user, "-au", user,
                              "-ap", f"guess-{secrets.token_hex(4)}", "-i", FLOODER,
                              "-p", str(port), "-r", str(rate), "-m", str(total),
                              "-recv_timeout", "5000", "-default_behaviors", "all,-bye",
                              timeout_s=60)
    # 1: some attempts went unanswered (Asterisk may shed load): none may have registered
    assert rc in (0, 1), out
    refused = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", out)
    assert refused is not None, out
    return int(refused.group(1))


async def test_a_register_flood_registers_nothing_and_does_not_flood_the_log(
        engine: Engine, agent_7301: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LINK_LOGGER)
    assert engine.phones is not None
    # 150 wrong digests for 7301 and 150 unknown users a second, for 3 s: 600 REGISTERs/s
    rate, total = 150, 450
    wrong, unknown = await asyncio.gather(_flood(tmp_path, EXTENSION, 5093, rate, total),
                                          _flood(tmp_path, "7400", 5095, rate, total))
    assert wrong >= total // 2 and unknown >= total // 2, (wrong, unknown)
    # the engine heard every refusal: a wrong digest for 7301 each, two unknown-user requests
    await until(engine, lambda: seen(engine, FLOODER, "ChallengeResponseFailed") >= wrong
                and seen(engine, FLOODER, "InvalidAccountID") >= 2 * unknown, 20,
                "the flood counted")
    assert await _attackers_contacts(engine) == []
    # right after, the legitimate desk phone registers (and leaves no contact behind)
    async with DeskPhone(EXTENSION, agent_7301, port=5094) as phone:
        await phone.register()
        await until(engine, lambda: engine.phones is not None
                    and engine.phones.can_ring(EXTENSION), 10, "the desk phone registered")
        await phone.unregister()
    await until(engine, lambda: engine.phones is not None
                and not engine.phones.can_ring(EXTENSION), 10, "the desk phone unregistered")
    # and the log holds one line per kind, however big the flood
    lines = logged(caplog, FLOODER)
    assert len(lines) == 2, lines
    assert len(logged(caplog, FLOODER, "ChallengeResponseFailed")) == 1
    assert len(logged(caplog, FLOODER, "InvalidAccountID")) == 1


async def test_requests_from_many_addresses_do_not_flood_the_log_either(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """Over UDP a source address costs an attacker nothing (it can be forged): the per-source
    limit alone would let a spray of addresses write a line each. The log takes a bounded
    number of lines a minute in all; every event is still counted."""
    caplog.set_level(logging.INFO, logger=LINK_LOGGER)
    sources = [f"127.0.1.{n}" for n in range(1, 81)]
    for source in sources:
        async with SipProbe(source) as probe:
            await probe.ask("REGISTER", f"{7500 + int(source.rsplit('.', 1)[1])}")
    await until(engine, lambda: all(seen(engine, s, "InvalidAccountID") == 1 for s in sources),
                10, "every source counted")
    lines = [line for s in sources for line in logged(caplog, s)]
    assert 1 <= len(lines) <= LOG_BUDGET, len(lines)
