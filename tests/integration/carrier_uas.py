"""The sandbox carrier's far end for outbound calls: a SIPp UAS that answers, plays audio (RTP,
G.711 A-law from SIPp's own capture) and waits for the BYE. It records every SIP message it
saw, so a test can read the INVITE's number and caller ID, or that no INVITE came at all."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from callcenter.telephony.sipp_xml import reply, sdp

#: where the carrier's far end listens (loopback: Linux answers all of 127/8 on lo); not the
#: sandbox carrier's 127.0.0.2, which pjsip_sandbox.conf identifies as the inbound carrier
ADDRESS = "127.0.0.3"
PORT = 5070
AUDIO = Path("/usr/share/sip-tester/g711a.pcap")

def scenario(audio: Path = AUDIO) -> str:
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="sandbox carrier answering">
  <recv request="INVITE" crlf="true"/>
  <send>{reply("100 Trying")}</send>
  <send>{reply("180 Ringing", tag="01")}</send>
  <send retrans="500">{reply("200 OK", tag="01", body=sdp("carrier", "PCMA"))}</send>
  <recv request="ACK" crlf="true"/>
  <nop><action><exec play_pcap_audio="{audio}"/></action></nop>
  <recv request="BYE"/>
  <send>{reply("200 OK")}</send>
</scenario>
"""


@dataclass
class Uas:
    """A running far end; ``messages()`` is what it saw so far (complete once it ended)."""

    proc: asyncio.subprocess.Process
    log: Path
    stderr: list[bytes] = field(default_factory=list)

    def messages(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def invites(self) -> list[dict[str, str]]:
        """Each INVITE received: the number dialled (request URI), To and From."""
        found = []
        for block in re.split(r"\n(?=INVITE sip:)", self.messages()):
            request = re.match(r"INVITE sip:([^@\s]+)@", block)
            if request is None:
                continue
            to = re.search(r"^To:\s*(.*)$", block, re.M)
            frm = re.search(r"^From:\s*(.*)$", block, re.M)
            found.append({"number": request.group(1), "to": to.group(1) if to else "",
                          "from": frm.group(1) if frm else ""})
        return found

    async def wait_end(self, within_s: float) -> int:
        async with asyncio.timeout(within_s):
            _, err = await self.proc.communicate()
        self.stderr.append(err)
        return self.proc.returncode if self.proc.returncode is not None else -1


def _bound(address: str, port: int) -> bool:
    """Whether a UDP socket is bound to ``address:port`` (/proc/net/udp, little-endian hex)."""
    want = "".join(f"{int(part):02X}" for part in reversed(address.split("."))) + f":{port:04X}"
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == want for line in lines if len(line.split()) > 1)


@contextlib.asynccontextmanager
async def answering_carrier(calls: int = 1, within_s: float = 90) -> AsyncIterator[Uas]:
    """Run the far end for ``calls`` calls; it is stopped (by its pid) when the block ends."""
    sipp = shutil.which("sipp")
    assert sipp is not None, "sipp is not installed (Debian sip-tester; ./dev installs it)"
    assert not _bound(ADDRESS, PORT), f"something already listens on {ADDRESS}:{PORT}"
    with tempfile.TemporaryDirectory(prefix="cc-uas-") as tmp:
        path = Path(tmp) / "uas.xml"
        path.write_text(scenario(), encoding="iso-8859-1")
        log = Path(tmp) / "messages.log"
        proc = await asyncio.create_subprocess_exec(
            sipp, "-sf", str(path), "-i", ADDRESS, "-mi", ADDRESS, "-p", str(PORT),
            "-m", str(calls), "-nostdin", "-trace_msg", "-message_file", str(log),
            "-timeout", f"{int(within_s)}s", "-timeout_error", cwd=tmp,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        uas = Uas(proc, log)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not _bound(ADDRESS, PORT):  # SIPp binds its port at start-up
                assert proc.returncode is None and loop.time() < deadline, "sipp did not start"
                await asyncio.sleep(0.02)
            yield uas
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
