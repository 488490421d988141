"""Loading a flow set: read it (``flowset.read_flowset``: syntax and shape), check its meaning
(``flow_check.check_flowset``), and refuse it whole on any problem (``FlowSetError``, every
problem with its file:line:col). Its own module so that neither of the two imports the other.
"""

from __future__ import annotations

from pathlib import Path

from callcenter.broker.exchange_calendar import Calendar
from callcenter.ivr.flow_check import check_flowset
from callcenter.ivr.flowset import FlowSet, FlowSetError, read_flowset


def load_flowset(directory: Path, extra_prompts: dict[str, dict[str, str]] | None = None,
                 actions: frozenset[str] | None = None,
                 queues: frozenset[str] | None = None,
                 calendar: Calendar | None = None) -> FlowSet:
    """Load and check every flow in ``directory``; raise ``FlowSetError`` on any problem.
    ``actions`` and ``queues`` (the ACD's queue names) are checked when given; the schedules
    take ``calendar``'s days (None: the packaged exchange calendar); what deserves a look is in
    the flow set's ``warnings``."""
    flowset, problems = read_flowset(directory, extra_prompts, calendar)
    if flowset is not None:
        problems.extend(check_flowset(flowset, actions, queues))
    if flowset is None or problems:
        raise FlowSetError(problems)
    return flowset
