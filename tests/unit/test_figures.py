"""Queue and agent figures: a scripted hour worked out by hand, and live == batch on any log.

The scripted hour (``SCRIPT``) is also what ``test_report.py`` writes into a real database.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.acd.figures import (
    AgentFigures,
    LiveQueueFigures,
    QueueEvent,
    QueueFigures,
    SeatEvent,
    agent_figures,
    queue_figures,
)
from callcenter.acd.seat import SeatState

S = SeatState

#: 2026-11-23 09:00 in Shanghai; the period is the hour from it.
T0 = datetime(2026, 11, 23, 9, tzinfo=timezone(timedelta(hours=8))).timestamp()
START, END = T0, T0 + 3600
TARGETS = {"stocks": 20.0, "funds": 30.0, "margin": 20.0}


def q(at: float, queue: str, call: str, event: str, agent: str = "",
      wait: float | None = None, talk: float | None = None) -> QueueEvent:
    return QueueEvent(T0 + at, queue, call, event, agent, "ordinary", wait, talk)


def s(at: float, agent: str, old: SeatState, new: SeatState) -> SeatEvent:
    return SeatEvent(T0 + at, agent, old, new)


# Times are seconds from 09:00. Two agents: a1, a2; a3 logged out before the hour and stays out.
# Ten calls: c7 entered before the hour, c8 completes after it, c5 takes a call-back, c6
# overflows from stocks to funds, c4 abandons after 3 s (a "short" abandon).
SCRIPT: list[QueueEvent | SeatEvent] = [
    s(-500, "a3", S.READY, S.LOGGED_OUT),
    s(-200, "a2", S.LOGGED_OUT, S.NOT_READY),
    s(-100, "a1", S.NOT_READY, S.READY),
    q(-50, "stocks", "c7", "enter"),
    s(-30, "a2", S.NOT_READY, S.READY),
    s(2, "a1", S.READY, S.RINGING), q(2, "stocks", "c7", "ring", "a1"),
    s(5, "a1", S.RINGING, S.ON_CALL), q(5, "stocks", "c7", "connect", "a1", wait=55),
    q(10, "stocks", "c1", "enter"),
    q(20, "stocks", "c2", "enter"),
    s(20, "a2", S.READY, S.RINGING), q(20, "stocks", "c1", "ring", "a2"),
    s(22, "a2", S.RINGING, S.ON_CALL), q(22, "stocks", "c1", "connect", "a2", wait=12),
    q(30, "stocks", "c3", "enter"),
    q(32, "stocks", "c2", "abandon", wait=12),
    s(65, "a1", S.ON_CALL, S.WRAP_UP), q(65, "stocks", "c7", "complete", "a1", talk=60),
    s(80, "a1", S.WRAP_UP, S.READY),
    s(90, "a1", S.READY, S.RINGING), q(90, "stocks", "c3", "ring", "a1"),
    s(95, "a1", S.RINGING, S.ON_CALL), q(95, "stocks", "c3", "connect", "a1", wait=65),
    q(100, "stocks", "c4", "enter"),
    q(103, "stocks", "c4", "abandon", wait=3),
    s(135, "a1", S.ON_CALL, S.ON_HOLD),
    s(142, "a2", S.ON_CALL, S.WRAP_UP), q(142, "stocks", "c1", "complete", "a2", talk=120),
    s(155, "a1", S.ON_HOLD, S.ON_CALL),
    s(162, "a2", S.WRAP_UP, S.READY),
    q(200, "stocks", "c5", "enter"),
    # the complete logged before the seat's move (same moment): the order must not matter
    q(215, "stocks", "c3", "complete", "a1", talk=120), s(215, "a1", S.ON_CALL, S.WRAP_UP),
    s(245, "a1", S.WRAP_UP, S.READY),
    q(260, "stocks", "c5", "callback", wait=60),
    q(300, "stocks", "c6", "enter"),
    q(360, "stocks", "c6", "overflow", wait=60), q(360, "funds", "c6", "enter"),
    s(370, "a2", S.READY, S.RINGING), q(370, "funds", "c6", "ring", "a2"),
    s(380, "a2", S.RINGING, S.ON_CALL), q(380, "funds", "c6", "connect", "a2", wait=20),
    s(440, "a2", S.ON_CALL, S.WRAP_UP), q(440, "funds", "c6", "complete", "a2", talk=60),
    s(450, "a2", S.WRAP_UP, S.READY),
    q(500, "funds", "c9", "enter"),
    s(505, "a1", S.READY, S.RINGING), q(505, "funds", "c9", "ring", "a1"),
    s(520, "a1", S.RINGING, S.NOT_READY), q(520, "funds", "c9", "noanswer", "a1"),
    s(535, "a2", S.READY, S.RINGING), q(535, "funds", "c9", "ring", "a2"),
    s(540, "a2", S.RINGING, S.ON_CALL), q(540, "funds", "c9", "connect", "a2", wait=40),
    q(590, "funds", "c9", "transfer", "a2"),
    s(600, "a2", S.ON_CALL, S.WRAP_UP), q(600, "funds", "c9", "complete", "a2", talk=60),
    s(625, "a2", S.WRAP_UP, S.READY),
    q(700, "funds", "c10", "enter"),
    q(725, "funds", "c10", "abandon", wait=25),
    s(800, "a1", S.NOT_READY, S.READY),
    s(990, "a2", S.READY, S.RINGING), q(990, "stocks", "c5", "ring", "a2"),
    s(1000, "a2", S.RINGING, S.ON_CALL), q(1000, "stocks", "c5", "connect", "a2", wait=800),
    s(1090, "a2", S.ON_CALL, S.WRAP_UP), q(1090, "stocks", "c5", "complete", "a2", talk=90),
    s(1120, "a2", S.WRAP_UP, S.READY),
    s(1200, "a2", S.READY, S.NOT_READY),
    s(2100, "a2", S.NOT_READY, S.READY),
    s(3300, "a2", S.READY, S.LOGGED_OUT),
    q(3500, "stocks", "c8", "enter"),
    s(3505, "a1", S.READY, S.RINGING), q(3505, "stocks", "c8", "ring", "a1"),
    s(3510, "a1", S.RINGING, S.ON_CALL), q(3510, "stocks", "c8", "connect", "a1", wait=10),
    # after the hour: must change nothing
    s(3700, "a1", S.ON_CALL, S.WRAP_UP), q(3700, "stocks", "c8", "complete", "a1", talk=190),
    s(3720, "a1", S.WRAP_UP, S.READY),
]
QUEUE_EVENTS = [e for e in SCRIPT if isinstance(e, QueueEvent)]
SEAT_EVENTS = [e for e in SCRIPT if isinstance(e, SeatEvent)]

# stocks (target 20 s), events inside [09:00, 10:00):
#   offered   enter c1 c2 c3 c4 c5 c6 c8                       = 7   (c7 entered at 08:59:10)
#   answered  connect c7(55) c1(12) c3(65) c5(800) c8(10)      = 5
#   in target wait <= 20: c1, c8                               = 2
#   abandoned c2(12) c4(3)                                     = 2   rate 2/7
#   SL        2 / (5 + 2) = 2/7;  excluding abandons < 5 s (c4): 2 / (5 + 1) = 1/3
#   ASA       (55 + 12 + 65 + 800 + 10) / 5 = 942 / 5          = 188.4
#   longest   800 (c5, the call-back, waits from its first enter)
#   handled   complete c7 c1 c3 c5 (c8 completes at 10:01:40)  = 4
#   AHT       talk + following wrap-up: c7 60+15, c1 120+20, c3 120+30, c5 90+30
#             = (75 + 140 + 150 + 120) / 4 = 485 / 4           = 121.25
#   callbacks 1 (c5), overflows 1 (c6)
# funds (target 30 s):
#   offered   c6 c9 c10 = 3; answered c6(20) c9(40) = 2; in target c6 = 1; abandoned c10 = 1
#   rate 1/3, SL 1 / (2 + 1) = 1/3, ASA (20 + 40) / 2 = 30, longest 40
#   AHT       c6 60+10, c9 60+25: (70 + 85) / 2 = 77.5; transfers 1 (c9)
# margin: configured, silent: zeros and None.
STOCKS = QueueFigures(
    queue="stocks", target_s=20.0, offered=7, answered=5, answered_in_target=2, abandoned=2,
    short_abandoned=0, abandon_rate=2 / 7, service_level=2 / 7, asa_s=188.4, aht_s=121.25,
    longest_wait_s=800.0, callbacks=1, overflows=1, transfers=0, handled=4,
)
FUNDS = QueueFigures(
    queue="funds", target_s=30.0, offered=3, answered=2, answered_in_target=1, abandoned=1,
    short_abandoned=0, abandon_rate=1 / 3, service_level=1 / 3, asa_s=30.0, aht_s=77.5,
    longest_wait_s=40.0, callbacks=0, overflows=0, transfers=1, handled=2,
)
MARGIN = QueueFigures(
    queue="margin", target_s=20.0, offered=0, answered=0, answered_in_target=0, abandoned=0,
    short_abandoned=0, abandon_rate=None, service_level=None, asa_s=None, aht_s=None,
    longest_wait_s=None, callbacks=0, overflows=0, transfers=0, handled=0,
)

# a1, clipped to [0, 3600):
#   ready     0..2 (since -100) = 2, 80..90 = 10, 245..505 = 260, 800..3505 = 2705  -> 2977
#   ringing   2..5 = 3, 90..95 = 5, 505..520 = 15, 3505..3510 = 5                   -> 28
#   on call   5..65 = 60, 95..135 = 40, 155..215 = 60, 3510..3600 (cut) = 90       -> 250
#   on hold   135..155 = 20                      talk = on call + on hold           -> 270
#   wrap-up   65..80 = 15, 215..245 = 30                                            -> 45
#   not ready 520..800 (no answer) = 280;   2977 + 28 + 270 + 45 + 280 = 3600
#   occupancy (28 + 270 + 45) / (343 + 2977) = 343 / 3320
#   handled   c7, c3: AHT (60 + 15 + 120 + 30) / 2 = 112.5;  no answers 1 (c9)
A1 = AgentFigures(
    agent_id="a1", handled=2, aht_s=112.5, talk_s=270.0, wrap_up_s=45.0, ringing_s=28.0,
    ready_s=2977.0, not_ready_s=280.0, logged_in_s=3600.0, occupancy=343 / 3320, no_answers=1,
)
# a2:
#   ready     0..20 (since -30) = 20, 162..370 = 208, 450..535 = 85, 625..990 = 365,
#             1120..1200 = 80, 2100..3300 = 1200                                  -> 1958
#   ringing   20..22 = 2, 370..380 = 10, 535..540 = 5, 990..1000 = 10             -> 27
#   on call   22..142 = 120, 380..440 = 60, 540..600 = 60, 1000..1090 = 90        -> 330
#   wrap-up   142..162 = 20, 440..450 = 10, 600..625 = 25, 1090..1120 = 30        -> 85
#   not ready 1200..2100 = 900; logged out 3300..3600 = 300; logged in 3600 - 300 = 3300
#   occupancy (27 + 330 + 85) / (442 + 1958) = 442 / 2400
#   handled   c1, c6, c9, c5: AHT (140 + 70 + 85 + 120) / 4 = 103.75
A2 = AgentFigures(
    agent_id="a2", handled=4, aht_s=103.75, talk_s=330.0, wrap_up_s=85.0, ringing_s=27.0,
    ready_s=1958.0, not_ready_s=900.0, logged_in_s=3300.0, occupancy=442 / 2400, no_answers=0,
)
# a3 was logged out all hour and handled nothing: no row.


def test_scripted_hour_queues() -> None:
    got = queue_figures(QUEUE_EVENTS, SEAT_EVENTS, START, END, TARGETS)
    assert got == [STOCKS, FUNDS, MARGIN]


def test_scripted_hour_agents() -> None:
    assert agent_figures(QUEUE_EVENTS, SEAT_EVENTS, START, END) == [A1, A2]


def test_short_abandons_leave_only_the_service_level_denominator() -> None:
    stocks = queue_figures(QUEUE_EVENTS, SEAT_EVENTS, START, END, TARGETS, short_abandon_s=5)[0]
    # c4 abandoned after 3 s: SL = 2 / (5 + 2 - 1); abandoned and the rate are unchanged
    assert stocks.short_abandoned == 1
    assert stocks.service_level == pytest.approx(1 / 3)
    assert (stocks.abandoned, stocks.abandon_rate) == (2, 2 / 7)


def test_live_seeded_at_the_start_gives_the_scripted_hour() -> None:
    """The wallboard's way: states at 09:00 given, then only the hour's events, in order."""
    live = LiveQueueFigures(START, TARGETS, seats={"a1": S.READY, "a2": S.READY,
                                                   "a3": S.LOGGED_OUT})
    for ev in SCRIPT:
        if START <= ev.at < END:
            live.feed(ev)
    assert live.queues(END) == [STOCKS, FUNDS, MARGIN]
    assert live.agents(END) == [A1, A2]


def test_live_mid_period_counts_the_open_states_up_to_now() -> None:
    live = LiveQueueFigures(START, TARGETS)
    for ev in SCRIPT:
        if ev.at < T0 + 230:
            live.feed(ev)
    now = T0 + 230  # a1 in wrap-up for c3 since 215: 15 s so far count in its AHT
    (stocks, *_), (a1, a2) = live.queues(now), live.agents(now)
    assert stocks.handled == 3  # c7, c1, c3
    assert stocks.aht_s == pytest.approx((75 + 140 + 120 + 15) / 3)
    assert a1.wrap_up_s == 15 + 15 and a1.aht_s == pytest.approx((75 + 120 + 15) / 2)
    assert a2.ready_s == 20 + (230 - 162)
    assert live.queues(now) == queue_figures(QUEUE_EVENTS, SEAT_EVENTS, START, now, TARGETS)
    assert live.agents(now) == agent_figures(QUEUE_EVENTS, SEAT_EVENTS, START, now)


def test_an_empty_period_gives_none_not_zero() -> None:
    (row,) = queue_figures([], [], START, START, {"stocks": 20.0})
    assert row.offered == 0
    assert None is row.abandon_rate is row.service_level is row.asa_s is row.aht_s
    assert row.longest_wait_s is None
    assert agent_figures([], [], START, END) == []
    # an agent ready all along but without calls: occupancy 0; never ready nor busy: None
    ready = [SeatEvent(START - 1, "a", S.NOT_READY, S.READY)]
    assert agent_figures([], ready, START, END)[0].occupancy == 0.0
    away = [SeatEvent(START - 1, "a", S.READY, S.NOT_READY)]
    (row_a,) = agent_figures([], away, START, END)
    assert row_a.occupancy is None and row_a.aht_s is None and row_a.not_ready_s == 3600


def test_unconfigured_queue_gets_a_row_without_service_level() -> None:
    events = [q(1, "other", "x", "enter"), q(2, "other", "x", "connect", "a", wait=1.0)]
    (row,) = queue_figures(events, [], START, END, {})
    assert (row.queue, row.target_s, row.answered, row.service_level) == ("other", None, 1, None)
    assert row.asa_s == 1.0


def test_unknown_events_are_ignored() -> None:
    events = [q(1, "stocks", "x", "announce"), q(2, "stocks", "x", "enter")]
    (row,) = queue_figures(events, [], START, END, {"stocks": 20.0})
    assert row.offered == 1


def test_a_stale_wrap_up_counts_in_aht_for_its_first_15_minutes_only() -> None:
    """A seat left in wrap-up for four hours (its console gone, the engine down across it):
    the AHT reads the call's talk plus 15 minutes, not 4:09:43; the wrap-up state time is what
    it was. Batch and live agree, over the whole day and cut in hours."""
    from callcenter.acd.figures import WRAP_COUNTED_MAX_S

    assert WRAP_COUNTED_MAX_S == 900
    qs = [q(0, "stocks", "c1", "enter"), q(5, "stocks", "c1", "connect", "a1", wait=5),
          q(65, "stocks", "c1", "complete", "a1", talk=60)]
    ss = [s(-10, "a1", S.NOT_READY, S.READY), s(2, "a1", S.READY, S.RINGING),
          s(5, "a1", S.RINGING, S.ON_CALL), s(65, "a1", S.ON_CALL, S.WRAP_UP),
          s(65 + 4 * 3600 + 2318, "a1", S.WRAP_UP, S.NOT_READY)]
    day_end = T0 + 6 * 3600
    [stocks] = [f for f in queue_figures(qs, ss, START, day_end, TARGETS) if f.queue == "stocks"]
    [a1] = agent_figures(qs, ss, START, day_end)
    assert stocks.aht_s == a1.aht_s == 60 + 900
    assert a1.wrap_up_s == 4 * 3600 + 2318
    live = LiveQueueFigures(START, TARGETS, seats={"a1": S.READY})
    events: list[QueueEvent | SeatEvent] = [*qs, *ss[1:]]
    for ev in sorted(events, key=lambda e: e.at):
        live.feed(ev)
        if ev is ss[3]:  # into wrap-up
            assert live.agents(T0 + 600)[0].aht_s == 60 + 535   # still going: so far
            assert live.agents(T0 + 3000)[0].aht_s == 60 + 900  # capped while open too
    assert live.agents(day_end) == [a1]
    # the wrap-up's counted part falls in the hours it falls in: the first hour gets it all
    [first] = agent_figures(qs, ss, START, END)
    [second] = agent_figures(qs, ss, END, END + 3600)
    assert first.aht_s == 960 and second.handled == 0 and second.wrap_up_s == 3600


def test_bad_periods_are_refused() -> None:
    with pytest.raises(ValueError, match="start <= end"):
        queue_figures([], [], END, START, TARGETS)
    with pytest.raises(ValueError, match="start <= end"):
        agent_figures([], [], START, float("nan"))
    with pytest.raises(ValueError, match="short_abandon_s"):
        LiveQueueFigures(START, TARGETS, short_abandon_s=-1)


# -- live == batch on generated logs -------------------------------------------------------------

LIVE_TARGETS = {"stocks": 20.0, "silent": 10.0}   # "funds" is unconfigured
# durations on a 0.5 s grid keep every sum exact, so the two paths can be compared with ==;
# rings and talks of at least 1 s keep two calls of one agent further apart than WRAP_MATCH_S
halves = st.integers(0, 80).map(lambda n: n / 2)
at_least_1s = st.integers(2, 80).map(lambda n: n / 2)
queue_names = st.sampled_from(["stocks", "funds"])
STEPS = ["ready", "not_ready", "call", "call", "noanswer", "ring_abandon", "logout"]


@st.composite
def agent_log(draw: st.DrawFn, agent: str) -> list[QueueEvent | SeatEvent]:
    """A seat driven through legal moves, with the queue rows the ACD writes alongside."""
    out: list[QueueEvent | SeatEvent] = []
    t = draw(halves)
    state = S.LOGGED_OUT

    def move(new: SeatState) -> None:
        nonlocal state
        out.append(SeatEvent(t, agent, state, new))
        state = new

    def ring(queue: str, call: str) -> None:
        nonlocal t
        if state is not S.READY:
            move(S.READY)
        move(S.RINGING)
        out.append(QueueEvent(t, queue, call, "ring", agent))
        t += draw(at_least_1s)

    move(S.NOT_READY)
    for n, step in enumerate(draw(st.lists(st.sampled_from(STEPS), max_size=14))):
        call, queue = f"{agent}-{n}", draw(queue_names)
        if step in ("ready", "not_ready"):
            new = S.READY if step == "ready" else S.NOT_READY
            if state is not new:
                move(new)
            t += draw(halves)
        elif step == "logout":
            move(S.LOGGED_OUT)
            t += draw(halves)
            move(S.NOT_READY)
        elif step == "noanswer":
            ring(queue, call)
            move(S.NOT_READY)
            out.append(QueueEvent(t, queue, call, "noanswer", agent))
        elif step == "ring_abandon":
            ring(queue, call)
            move(S.READY)  # the caller hung up while it rang: no wrap-up
            out.append(QueueEvent(t, queue, call, "abandon", wait_s=draw(halves)))
        else:
            ring(queue, call)
            move(S.ON_CALL)
            out.append(QueueEvent(t, queue, call, "connect", agent, wait_s=draw(halves)))
            talk = draw(at_least_1s)
            if draw(st.booleans()):
                t += talk / 2
                move(S.ON_HOLD)
                t += draw(halves)
                move(S.ON_CALL)
            t += talk
            # the two rows come from two clock reads: up to 0.5 s apart, either one first
            jitter = draw(st.sampled_from([-0.5, 0.0, 0.5]))
            complete = QueueEvent(t + jitter, queue, call, "complete", agent, talk_s=talk)
            if draw(st.booleans()):
                out.append(complete)
                move(S.WRAP_UP)
            else:
                move(S.WRAP_UP)
                out.append(complete)
            t += draw(halves)  # 0 too: wrap_up_s = 0
            move(S.READY)
    return out


queue_only = st.builds(
    lambda at, queue, kind, wait: QueueEvent(at, queue, "q", kind, wait_s=wait),
    at=halves.map(lambda x: 4 * x),
    queue=st.sampled_from(["stocks", "funds", "silent"]),
    kind=st.sampled_from(["enter", "abandon", "callback", "overflow", "transfer", "connect"]),
    wait=st.none() | halves,
)


@settings(max_examples=300, deadline=None)
@given(
    a=agent_log("a"), b=agent_log("b"), others=st.lists(queue_only, max_size=25),
    start=st.integers(0, 300).map(lambda n: n / 2), length=st.integers(0, 700).map(lambda n: n / 2),
    short=st.sampled_from([0.0, 5.0]),
)
def test_live_equals_batch_at_any_cut(
    a: list[QueueEvent | SeatEvent], b: list[QueueEvent | SeatEvent],
    others: list[QueueEvent], start: float, length: float, short: float,
) -> None:
    log = sorted([*a, *b, *others], key=lambda e: e.at)  # stable: each seat's order is kept
    end = start + length
    live = LiveQueueFigures(start, LIVE_TARGETS, short_abandon_s=short)
    for ev in log:
        if ev.at < end:
            live.feed(ev)
    events = [e for e in log if isinstance(e, QueueEvent)]
    seats = [e for e in log if isinstance(e, SeatEvent)]
    assert live.queues(end) == queue_figures(
        events, seats, start, end, LIVE_TARGETS, short_abandon_s=short,
    )
    assert live.agents(end) == agent_figures(events, seats, start, end)
