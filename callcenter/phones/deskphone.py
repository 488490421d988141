"""A desk phone played by SIPp: it registers with digest auth and answers calls with RTP.

One SIPp process is the phone, bound to ``address:port``: its main scenario REGISTERs that
address for the extension (401 challenge, then the digest) and then stays up; its out-of-call
scenario answers what the PBX sends there (INVITE: ring, 200 OK with PCMU, RTP echoed back;
OPTIONS: 200 OK). One process, because Asterisk rewrites a contact to the address and port a
REGISTER came from (``rewrite_contact``, for phones behind NAT). ``unregister`` stops it and
sends ``Expires: 0`` from the same address and port. UDP, TCP or TLS. Over TCP and TLS SIPp
talks to a local bridge that holds the connection to the PBX (TLS checked against the CA given:
Debian's SIPp is built without TLS) and hands SIPp one SIP message at a time: SIPp's TCP reader
keeps only the first of two messages that arrive in one read (SIPp issue 675), and the PBX sends
e.g. a REGISTER's 200 OK and its first qualify OPTIONS back to back; a lost OPTIONS made the
phone "unreachable" mid-call. Used by the integration tests and by
people trying the sandbox without a hardware phone. The secret goes into a 0600 scenario file in a
private temporary folder, never onto a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import ssl
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

from callcenter.errors import TelephonyError
from callcenter.phones.identity import check_extension
from callcenter.telephony.sipp_xml import reply, sdp

_REGISTER = """
      REGISTER sip:{realm} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{ext}@{realm}>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{ext}@{realm}>
      Call-ID: [call_id]
      CSeq: {cseq} REGISTER
      Contact: <sip:{ext}@{contact}>
      Expires: {expires}
      Max-Forwards: 70
      User-Agent: callcenter-deskphone{auth}
      Content-Length: 0
"""

_ANSWER = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callcenter desk phone">
  <recv request="OPTIONS" optional="true" next="options"/>
  <recv request="INVITE" crlf="true"/>
  <send>{reply("180 Ringing", tag="01")}</send>
  <pause milliseconds="{{ring_ms}}"/>
  <send retrans="500">{reply("200 OK", tag="01", body=sdp("deskphone"))}</send>
  <recv request="ACK" crlf="true"/>
  <nop><action><log message="answered [call_id]"/></action></nop>
  <recv request="BYE"/>
  <send>{reply("200 OK", contact=False)}</send>
  <nop next="end"><action><log message="hung up [call_id]"/></action></nop>
  <label id="options"/>
  <send>{reply("200 OK", tag="02", contact=False)}</send>
  <label id="end"/>
</scenario>
"""


Transport = Literal["udp", "tcp", "tls"]
#: SIPp's ``-t``: one socket for everything. Over TCP and TLS, SIPp's socket goes to ``_bridge``
_SIPP_TRANSPORT: Final = {"udp": "u1", "tcp": "t1", "tls": "t1"}
#: how long the bridge waits between two messages for SIPp, so each comes in a read of its own
_GAP_S: Final = 0.05


def split_sip(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete SIP messages at the start of a TCP stream's ``buffer`` (framed by their
    ``Content-Length``; a keep-alive CRLF is a message of its own) and the rest."""
    out: list[bytes] = []
    while buffer:
        if buffer.startswith(b"\r\n"):
            out.append(b"\r\n")
            buffer = buffer[2:]
            continue
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            break
        length = 0
        for line in buffer[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-length", b"l"):
                length = int(value.strip() or b"0")
        size = end + 4 + length
        if len(buffer) < size:
            break
        out.append(buffer[:size])
        buffer = buffer[size:]
    return out, buffer


def render_register(extension: str, secret: str, *, realm: str, contact: str,
                    expires: int = 300, stay_ms: int = 0) -> str:
    """SIPp XML: REGISTER ``contact`` for ``extension``, answer the challenge, expect 200, log
    "registered", then stay ``stay_ms`` (answering calls through the out-of-call scenario)."""
    check_extension(extension)
    if not 0 <= expires <= 3600:
        raise ValueError("expires: 0-3600 s")

    def register(cseq: int, auth: str) -> str:
        return _REGISTER.format(realm=realm, ext=extension, cseq=cseq, contact=contact,
                                expires=expires, auth=auth)

    # on its own line only when there (an empty line would end the headers: over TCP, before
    # Content-Length)
    authentication = f"\n      [authentication username={extension} password={secret}]"
    stay = f'  <pause milliseconds="{stay_ms}"/>\n' if stay_ms else ""
    return ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
            '<scenario name="callcenter desk phone registration">\n'
            f'  <send retrans="500"><![CDATA[{register(1, "")}]]></send>\n'
            '  <recv response="401" auth="true"/>\n'
            f'  <send retrans="500"><![CDATA[{register(2, authentication)}]]></send>\n'
            '  <recv response="200"/>\n'
            '  <nop><action><log message="registered"/></action></nop>\n'
            f'{stay}</scenario>\n')


def _sipp() -> str:
    sipp = shutil.which("sipp")
    if sipp is None:
        raise TelephonyError("sipp is not installed (Debian package sip-tester; ./dev installs"
                             " it)")
    return sipp


class DeskPhone:
    """``async with DeskPhone(...) as phone``: ``await phone.register()``, then
    ``await phone.answered()`` for each call the PBX puts through; ``unregister()``;
    ``freeze()`` and ``thaw()`` a phone that stops answering for a while."""

    def __init__(self, extension: str, secret: str, *, realm: str = "callcenter",
                 address: str = "127.0.0.3", port: int = 5072, pbx: str = "127.0.0.1:5060",
                 ring_ms: int = 500, stay_s: float = 600.0,
                 transport: Transport = "udp", ca_file: Path | None = None) -> None:
        """``transport``: how the phone talks SIP (``pbx`` must name that transport's port).
        TLS: the PBX's certificate is checked against ``ca_file``."""
        if transport == "tls" and ca_file is None:
            raise ValueError("a TLS desk phone needs the CA that signed the PBX's certificate")
        self.extension = check_extension(extension)
        self.transport, self.ca_file = transport, ca_file
        self._bridge: asyncio.Server | None = None
        #: the bridge's open streams (both sides), closed with the phone
        self._streams: set[asyncio.StreamWriter] = set()
        self._secret = secret
        self.realm, self.address, self.port, self.pbx = realm, address, port, pbx
        self.ring_ms, self.stay_s = ring_ms, stay_s
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def _folder(self) -> Path:
        assert self._tmp is not None, "use DeskPhone as an async context manager"
        return Path(self._tmp.name)

    async def __aenter__(self) -> Self:
        self._tmp = tempfile.TemporaryDirectory(prefix="cc-deskphone-")
        (self._folder / "answer.xml").write_text(_ANSWER.format(ring_ms=self.ring_ms),
                                                 encoding="iso-8859-1")
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stop()
        if self._bridge is not None:
            self._bridge.close()
            for stream in list(self._streams):
                stream.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await stream.wait_closed()
            await self._bridge.wait_closed()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _scenario(self, expires: int, stay_ms: int) -> Path:
        path = self._folder / f"register-{expires}.xml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="iso-8859-1") as fh:
            fh.write(render_register(self.extension, self._secret, realm=self.realm,
                                     contact=self._contact(), expires=expires,
                                     stay_ms=stay_ms))
        return path

    def _contact(self) -> str:
        where = f"{self.address}:{self.port}"
        return where if self.transport == "udp" else f"{where};transport={self.transport}"

    async def _sipp_run(self, scenario: Path, *extra: str) -> asyncio.subprocess.Process:
        remote = self.pbx if self.transport == "udp" else await self._bridge_address()
        return await asyncio.create_subprocess_exec(
            _sipp(), remote, "-sf", str(scenario), *extra, "-t", _SIPP_TRANSPORT[self.transport],
            "-m", "1", "-i", self.address,
            "-mi", self.address, "-p", str(self.port), "-nostdin", "-trace_logs",
            "-log_file", str(self._folder / "events.log"), cwd=self._folder,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)

    async def _bridge_address(self) -> str:
        """Where SIPp connects over TCP: a local listener that opens a TCP (or TLS, verified
        against ``ca_file``) connection to the PBX per connection, copies SIPp's bytes up as
        they come and hands the PBX's down one SIP message at a time (``split_sip``)."""
        if self._bridge is None:
            host, _, port = self.pbx.rpartition(":")
            context = (ssl.create_default_context(cafile=self.ca_file)
                       if self.transport == "tls" else None)

            async def up(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                with contextlib.suppress(OSError, ssl.SSLError):
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                dst.close()

            async def down(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                loop, rest, last = asyncio.get_running_loop(), b"", -_GAP_S
                with contextlib.suppress(OSError, ssl.SSLError):
                    while data := await src.read(65536):
                        messages, rest = split_sip(rest + data)
                        for message in messages:
                            # a gap after the one before, whichever read brought it
                            await asyncio.sleep(max(0.0, last + _GAP_S - loop.time()))
                            dst.write(message)
                            await dst.drain()
                            last = loop.time()
                dst.close()

            async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                self._streams.add(writer)
                try:
                    up_reader, up_writer = await asyncio.open_connection(
                        host, int(port), ssl=context,
                        server_hostname=host if context is not None else None,
                        local_addr=(self.address, 0))
                except (OSError, ssl.SSLError):
                    writer.close()
                    return
                self._streams.add(up_writer)
                await asyncio.gather(up(reader, up_writer), down(up_reader, writer))
                for stream in (writer, up_writer):
                    self._streams.discard(stream)
                    with contextlib.suppress(OSError, ssl.SSLError):
                        await stream.wait_closed()

            self._bridge = await asyncio.start_server(accept, self.address, 0)
        return f"{self.address}:{self._bridge.sockets[0].getsockname()[1]}"

    def _log(self) -> str:
        path = self._folder / "events.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def _until(self, text: str, count: int, timeout_s: float) -> bool:
        """Wait until SIPp logged ``text`` ``count`` times (or its process ended)."""
        async with asyncio.timeout(timeout_s):
            while self._log().count(text) < count:
                if self._proc is None or self._proc.returncode is not None:
                    return self._log().count(text) >= count
                await asyncio.sleep(0.05)
        return True

    async def register(self) -> None:
        """Register and stay up answering; raise ``TelephonyError`` if the PBX refuses."""
        await self._stop()
        self._proc = await self._sipp_run(self._scenario(300, int(self.stay_s * 1000)),
                                          "-oocsf", str(self._folder / "answer.xml"),
                                          "-rtp_echo")
        try:
            ok = await self._until("registered", 1, 15)
        except TimeoutError:
            ok = False
        if not ok:
            await self._stop()
            raise TelephonyError(f"desk phone {self.extension}: registration refused or"
                                 " unanswered")

    async def answered(self, calls: int = 1, timeout_s: float = 60.0) -> bool:
        """Whether ``calls`` calls have been answered (and hung up by the PBX) by now."""
        try:
            return await self._until("hung up", calls, timeout_s)
        except TimeoutError:
            return False

    def freeze(self) -> None:
        """The phone hangs (a frozen phone, a network gone, without a word to the PBX): it
        answers nothing, neither SIP nor RTP, until ``thaw``; what the PBX sends meanwhile waits
        in its sockets and is answered late."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """The phone answers again (``freeze``)."""
        self._signal(signal.SIGCONT)

    def _signal(self, which: signal.Signals) -> None:
        if self._proc is None or self._proc.returncode is not None:
            raise TelephonyError(f"desk phone {self.extension} is not running")
        os.kill(self._proc.pid, which)

    async def unregister(self) -> None:
        """Stop answering and remove the registration (``Expires: 0`` from the same port)."""
        await self._stop()
        proc = await self._sipp_run(self._scenario(0, 0))
        await proc.communicate()
        if proc.returncode != 0:
            raise TelephonyError(f"desk phone {self.extension}: unregistration refused")

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
