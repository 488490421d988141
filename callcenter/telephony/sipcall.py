"""A caller with real SIP and RTP: SIPp (Debian's ``sip-tester``) calls the PBX as the carrier.

The call comes in on the sandbox carrier trunk (``asterisk_conf/pjsip_sandbox.conf``: endpoint
``carrier``, identified by its address 127.0.0.2), so it takes the way a customer's call takes
from the public network: a DID (``[from-carrier]``) into the hotline. Keys go as RFC 4733
telephone-events in the RTP stream, from a capture file made for the call (``dtmf_pcap``): one
stream, sequence numbers and timestamps rising through all keys. SIPp's own
``dtmf_2833_<key>.pcap`` files cannot be chained: each restarts its numbering and one key's file
repeats its timestamp, so Asterisk takes a repeated key (the second 0 of 600519) for a
retransmission of the first and drops it.

``render_scenario`` and ``dtmf_pcap`` are pure; ``place_sip_call`` runs SIPp once as a
subprocess (asyncio, never blocking the loop) and reports how it ended. We drive SIPp rather
than write a SIP stack: it is the reference load and conformance tool, packaged in Debian.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from callcenter.errors import TelephonyError
from callcenter.telephony.sipp_xml import reply, sdp
from callcenter.telephony.values import PHONE_NUMBER

__all__ = ["CARRIER_ADDRESS", "SipCallResult", "dtmf_pcap", "place_sip_call", "render_scenario"]

#: the sandbox carrier's address (loopback: Linux answers all of 127/8 on lo)
CARRIER_ADDRESS = "127.0.0.2"
_DTMF = re.compile(r"[0-9*#w]{0,200}")
_NUMBER = re.compile(r"[0-9]{2,20}")

_INVITE = """
      INVITE sip:{number}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{number}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]
""" + sdp("caller").replace("{", "{{").replace("}", "}}")

_IN_DIALOG = """
      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
"""

_EVENTS = {**{d: int(d) for d in "0123456789"}, "*": 10, "#": 11}
_PACKET_MS = 20
_SAMPLES_PER_MS = 8


def _ulaw(sample: int) -> int:
    """G.711 mu-law of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _tone_payload(packet: int, hz: int) -> bytes:
    """20 ms of a sine at ``hz`` (half scale), mu-law, continuing packet after packet."""
    start = packet * _PACKET_MS * _SAMPLES_PER_MS
    return bytes(_ulaw(int(16000 * math.sin(2 * math.pi * hz * (start + i) / 8000)))
                 for i in range(_PACKET_MS * _SAMPLES_PER_MS))


def dtmf_pcap(dtmf: str, *, tone_ms: int = 100, gap_ms: int = 250, audio_s: float = 0,
              audio_hz: int = 440) -> bytes:
    """A pcap of one RTP stream carrying ``dtmf`` as RFC 4733 events (payload type 101):
    each key ``tone_ms`` long (a packet every 20 ms, the end packet sent three times), then
    ``gap_ms`` of silence; ``w`` is half a second more. Then ``audio_s`` seconds of a sine at
    ``audio_hz`` as PCMU (payload type 0): the caller's voice, for tests that check audio
    reaches the agent. SIPp replays it with this timing."""
    if not _DTMF.fullmatch(dtmf):
        raise ValueError("keys are 0-9, * and #, with w for a half-second pause")
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet captures
    at_ms, seq, ssrc = 0, 1, 0x0CC0FFEE

    def packet(event: int, end: bool, duration: int, marker: bool, stamp: int) -> None:
        payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
        frame(101, marker, stamp, payload)

    def frame(kind: int, marker: bool, stamp: int, payload: bytes) -> None:
        nonlocal seq
        rtp = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | kind, seq & 0xFFFF,
                          stamp & 0xFFFFFFFF, ssrc) + payload
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([127, 0, 0, 2]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        out.append(struct.pack("<IIII", at_ms // 1000, (at_ms % 1000) * 1000, len(frame),
                               len(frame)) + frame)
        seq += 1

    for key in dtmf:
        if key == "w":
            at_ms += 500
            continue
        stamp = at_ms * _SAMPLES_PER_MS
        steps = max(1, tone_ms // _PACKET_MS)
        for step in range(steps):
            packet(_EVENTS[key], False, (step + 1) * _PACKET_MS * _SAMPLES_PER_MS, step == 0,
                   stamp)
            at_ms += _PACKET_MS
        for _ in range(3):  # the end, sent three times (RFC 4733 2.5.1.4)
            packet(_EVENTS[key], True, steps * _PACKET_MS * _SAMPLES_PER_MS, False, stamp)
        at_ms += gap_ms
    for n in range(int(audio_s * 1000) // _PACKET_MS):
        frame(0, n == 0, at_ms * _SAMPLES_PER_MS, _tone_payload(n, audio_hz))
        at_ms += _PACKET_MS
    return b"".join(out)


def _cdata(text: str) -> str:
    return f"<![CDATA[{text}]]>"


def render_scenario(number: str, *, caller_id: str, keys_pcap: Path | None = None,
                    wait_ms: int = 1000, hold_ms: int = 60_000, trace: bool = False) -> str:
    """SIPp XML for one call to ``number``: answer, wait ``wait_ms``, play ``keys_pcap`` (made
    by ``dtmf_pcap``) into the call, then stay until the far end hangs up or ``hold_ms``
    passes (then hang up). ``trace``: log ``inv``/``ans``/``end`` with the call's number and
    SIPp's clock (ms) for ``-trace_logs`` (``bench_load.parse_sipp_log`` reads them)."""
    if not _NUMBER.fullmatch(number):
        raise ValueError("the number to call is 2-20 digits")
    if not PHONE_NUMBER.fullmatch(caller_id) or caller_id.startswith("+"):
        raise ValueError("the caller ID is 2-20 digits")
    def log(what: str) -> list[str]:
        return [f'<nop><action><log message="{what} [call_number] [clock_tick]"/></action>'
                "</nop>"] if trace else []

    steps = [*log("inv"),
             f'<send retrans="500">{_cdata(_INVITE.format(number=number, caller=caller_id))}'
             "</send>",
             '<recv response="100" optional="true"/>',
             '<recv response="180" optional="true"/>',
             '<recv response="183" optional="true"/>',
             '<recv response="200" rrs="true"/>',
             *log("ans"),
             f"<send>{_cdata(_IN_DIALOG.format(method='ACK', cseq=1, caller=caller_id))}</send>",
             f'<pause milliseconds="{wait_ms}"/>']
    if keys_pcap is not None:
        pcap = escape(str(keys_pcap), {'"': "&quot;"})
        steps.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
    bye = _cdata(_IN_DIALOG.format(method="BYE", cseq=2, caller=caller_id))
    steps += [f'<recv request="BYE" timeout="{hold_ms}" ontimeout="hangup"/>',
              f"<send>{reply('200 OK', contact=False)}</send>",
              *log("end"),
              '<nop next="end"/>',
              '<label id="hangup"/>',
              f'<send retrans="500">{bye}</send>',
              '<recv response="200" crlf="true"/>',
              '<label id="end"/>']
    body = "\n  ".join(steps)
    return ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
            f'<scenario name="callcenter SIP caller">\n  {body}\n</scenario>\n')


def _write_files(scenario_path: Path, scenario: str, pcap: Path | None, keys: bytes) -> None:
    scenario_path.write_text(scenario, encoding="iso-8859-1")
    if pcap is not None:
        pcap.write_bytes(keys)


@dataclass(frozen=True)
class SipCallResult:
    """How SIPp's one call ended: ``ok`` if it completed (answered, keys sent, hung up)."""

    ok: bool
    returncode: int
    detail: str


async def place_sip_call(number: str, dtmf: str = "", *, caller_id: str = "13700000000",
                         pbx_host: str = "127.0.0.1", pbx_port: int = 5060,
                         local_ip: str = CARRIER_ADDRESS, wait_s: float = 1.0,
                         hold_s: float = 60.0, timeout_s: float | None = None,
                         audio_s: float = 0) -> SipCallResult:
    """Place one real SIP call through the carrier trunk and wait for it to end; after the
    keys, ``audio_s`` seconds of a tone (the caller speaking)."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise TelephonyError("sipp is not installed (Debian package sip-tester; ./dev installs"
                             " it)")
    keys = dtmf_pcap(dtmf, audio_s=audio_s) if dtmf or audio_s else b""
    limit = timeout_s if timeout_s is not None else wait_s + hold_s + len(dtmf) + 30
    with tempfile.TemporaryDirectory(prefix="cc-sipp-") as tmp:
        pcap = Path(tmp) / "keys.pcap" if keys else None
        scenario = render_scenario(number, caller_id=caller_id, keys_pcap=pcap,
                                   wait_ms=int(wait_s * 1000), hold_ms=int(hold_s * 1000))
        path = Path(tmp) / "caller.xml"
        await asyncio.to_thread(_write_files, path, scenario, pcap, keys)
        # No -p: SIPp binds a free SIP port itself.
        argv = [sipp, f"{pbx_host}:{pbx_port}", "-sf", str(path), "-m", "1", "-l", "1",
                "-i", local_ip, "-mi", local_ip, "-nostdin",
                "-timeout", f"{int(limit)}s", "-timeout_error", "-trace_err",
                "-error_file", str(Path(tmp) / "errors.log")]
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=tmp, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(limit + 10):
                _, stderr = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            return SipCallResult(False, -9, "sipp did not finish in time")
        except BaseException:
            # cancelled (Ctrl-C on `callcenter call --sip`): SIPp must not outlive us, holding
            # the call up until its own timeout
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        errors = Path(tmp) / "errors.log"
        detail = (errors.read_text(errors="replace") if errors.exists() else "") + \
            stderr.decode(errors="replace")
    code = proc.returncode if proc.returncode is not None else -1
    return SipCallResult(code == 0, code, detail.strip()[-2000:])
