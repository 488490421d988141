"""The pieces of SIPp scenarios our SIP parties share: responses and the G.711 offer/answer.

SIPp fills the bracketed keywords (``[last_Via:]``, ``[media_port]``...) from the message it
answers and its own sockets. Used by the SIP caller (``sipcall.py``), the desk phone
(``phones/deskphone.py``) and the tests' carrier far end; pure text.
"""

from __future__ import annotations

from typing import Final, Literal

Codec = Literal["PCMU", "PCMA"]
_PAYLOAD: Final = {"PCMU": 0, "PCMA": 8}


def sdp(owner: str, codec: Codec = "PCMU") -> str:
    """An audio offer or answer: one G.711 codec and RFC 4733 telephone-events."""
    pt = _PAYLOAD[codec]
    return f"""
      v=0
      o={owner} 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {pt} 101
      a=rtpmap:{pt} {codec}/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=sendrecv
"""


def reply(status: str, *, tag: str = "", contact: bool = True, body: str = "") -> str:
    """A response to the request just received, as CDATA for a ``<send>``. ``tag``: our To tag
    (a reply that opens a dialog: ``"01"`` gives ``;tag=[pid]SIPpTag01[call_number]``);
    ``body``: an SDP from ``sdp()``."""
    to_tag = f";tag=[pid]SIPpTag{tag}[call_number]" if tag else ""
    lines = ["", f"      SIP/2.0 {status}", "      [last_Via:]", "      [last_From:]",
             f"      [last_To:]{to_tag}", "      [last_Call-ID:]", "      [last_CSeq:]"]
    if contact:
        lines.append("      Contact: <sip:[local_ip]:[local_port];transport=[transport]>")
    if body:
        lines += ["      Content-Type: application/sdp", "      Content-Length: [len]", "",
                  body.strip("\n")]
    else:
        lines.append("      Content-Length: 0")
    return "<![CDATA[" + "\n".join(lines) + "\n]]>"
