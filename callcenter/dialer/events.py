"""The dialplan's reports of a dialer call (UserEvent ``CallCenterDialer``), as values.

``[dialer-answer]`` sends ``Stage: answered`` (a person picked up) or ``Stage: amd`` (with
``Status``: AMD's MACHINE, HUMAN, NOTSURE or HANGUP); the hangup handler ``[dialer-ended]``
sends ``Stage: ended`` with Dial's ``DialStatus``, ``Talk`` (ANSWEREDTIME, seconds) and
``Cause`` (HANGUPCAUSE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from callcenter.telephony.ami_events import AmiEvent, OtherEvent

__all__ = ["DialerReport", "report_of"]

_CALL_ID: Final = re.compile(r"task-[0-9a-f]{16}")
_STAGES: Final = frozenset({"answered", "amd", "ended"})


@dataclass(frozen=True, slots=True)
class DialerReport:
    call_id: str
    stage: str          # answered | amd | ended
    status: str = ""    # amd: AMDSTATUS; ended: DIALSTATUS
    talk_s: float | None = None
    cause: str = ""     # ended: the hang-up cause (Q.850 code), if Asterisk gave one


def report_of(event: AmiEvent) -> DialerReport | None:
    """The report in ``event``, or None if it is none (or malformed)."""
    if not isinstance(event, OtherEvent) or event.name != "UserEvent" \
            or event.headers.get("UserEvent") != "CallCenterDialer":
        return None
    headers = event.headers
    call_id, stage = headers.get("Attempt", ""), headers.get("Stage", "")
    if not _CALL_ID.fullmatch(call_id) or stage not in _STAGES:
        return None
    if stage == "amd":
        return DialerReport(call_id, stage, headers.get("Status", "").strip().upper())
    if stage == "ended":
        talk = headers.get("Talk", "").strip()
        cause = headers.get("Cause", "").strip()
        return DialerReport(call_id, stage, headers.get("DialStatus", "").strip().upper(),
                            float(talk) if talk.isdigit() else None,
                            cause if cause.isdigit() else "")
    return DialerReport(call_id, stage)
