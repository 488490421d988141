"""The console benchmark's pure pieces (``callcenter/bench_console.py`` and its clients'
``bench_console_clients.py``): matching boards to moves, the clients' frame and marker reading,
the plan and the report. The numbers themselves are only reported, never asserted."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from websockets.frames import Frame, Opcode

from callcenter.bench_console import (
    HEADING,
    ConsoleResult,
    Phase,
    Wallboard,
    busy_share,
    coalescing_waits,
    comparisons,
    frame_cost_us,
    marker_key,
    match_moves,
    phase_medians,
    phase_plan,
    push_latencies,
    ratio,
    render_section,
    spreads,
)
from callcenter.bench_console_clients import (
    ClientLog,
    board_marker,
    client_frame,
    split_frames,
)
from callcenter.bench_ivr import Machine, percentile
from callcenter.errors import ConfigError
from callcenter.seats.protocol import Event

MOVES = [(1000.1, 10.0), (1000.2, 10.1), (1000.3, 10.2)]   # (since, monotonic)


def test_phases_are_abba_or_ab() -> None:
    assert phase_plan(True) == [False, True, True, False]
    assert phase_plan(False) == [False, True]
    assert phase_plan(True, 4) == phase_plan(True)
    assert phase_plan(True, 8) == [False, True, True, False] * 2
    assert phase_plan(False, 6) == [False, True] * 3
    for abba, phases in ((True, 6), (True, -4), (False, 3)):
        with pytest.raises(ConfigError, match="--phases"):
            phase_plan(abba, phases)


def test_a_board_covers_its_move_and_every_earlier_one_not_seen_yet() -> None:
    # the first board shows move 0, the next one move 2 (move 1 was coalesced into it)
    got = match_moves(MOVES, [(10.02, 1000.1), (10.25, 1000.3)])
    assert got.latencies_ms == pytest.approx([20.0, 150.0, 50.0])
    assert got.missed == 0


def test_boards_of_no_move_or_already_covered_are_skipped_and_missing_moves_counted() -> None:
    got = match_moves(MOVES, [(9.0, 999.0), (10.15, 1000.2), (10.16, 1000.1)])
    assert got.latencies_ms == pytest.approx([150.0, 50.0])
    assert got.missed == 1


def test_a_board_is_found_by_its_marker_through_json_rounding() -> None:
    since = 1718000000.1234567
    back = json.loads(json.dumps(since))
    assert marker_key(back) == marker_key(since)
    assert match_moves([(since, 1.0)], [(1.5, back)]).latencies_ms == [500.0]


def test_push_to_client_and_coalescing() -> None:
    pushes = {marker_key(1000.1): 10.01, marker_key(1000.3): 10.21}
    assert push_latencies(pushes, [(10.02, 1000.1), (10.25, 1000.3), (10.3, 5.0)]) \
        == pytest.approx([10.0, 40.0])
    assert coalescing_waits(MOVES, [(1000.1, 10.01), (1000.3, 10.21)]) \
        == pytest.approx([10.0, 110.0, 10.0])


def board_text(*seats: dict[str, object]) -> str:
    return Event(event="wallboard", data={"queues": [], "seats": list(seats)}).model_dump_json()


def seat(agent_id: str, since: float) -> dict[str, object]:
    return {"agent_id": agent_id, "name": "n", "state": "not_ready", "reason": "break",
            "since": since, "call_id": ""}


def test_the_marker_is_the_mark_seats_since() -> None:
    text = board_text(seat("bench-0001", 5.0), seat("bench-mark", 1718000000.25),
                      seat("bench-0002", 7.0))
    assert board_marker(text, "bench-mark") == 1718000000.25
    assert board_marker(board_text(seat("other", 1.0)), "bench-mark") is None
    queues = Event(event="queues", data={"queues": []}).model_dump_json()
    assert board_marker(queues, "bench-mark") is None
    # another key order: found through the JSON
    odd = json.dumps({"v": 1, "type": "event", "event": "wallboard",
                      "data": {"seats": [{"since": 3.5, "agent_id": "bench-mark"}]}},
                     separators=(",", ":"))
    assert board_marker(odd, "bench-mark") == 3.5


def test_a_client_notes_the_first_arrival_of_each_board() -> None:
    log = ClientLog()
    one, two = board_text(seat("m", 1.0)), board_text(seat("m", 2.0))
    for at, text in ((1.0, one), (1.1, one), (1.2, '{"type":"event","event":"seat"}'),
                     (1.3, two)):
        log.saw(text, "m", at)
    assert log.receipts == [(1.0, 1.0), (1.3, 2.0)]
    assert (log.messages, log.wallboards) == (4, 3)


def server_frame(payload: bytes, opcode: Opcode = Opcode.TEXT) -> bytes:
    return Frame(opcode, payload).serialize(mask=False, extensions=[])


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_frames_are_split_whole_and_a_partial_one_is_kept(size: int) -> None:
    payload = b"x" * size
    data = server_frame(payload) + server_frame(b"ping", Opcode.PING)
    frames, rest = split_frames(data + data[:1])
    assert frames == [(Opcode.TEXT.value, True, payload), (Opcode.PING.value, True, b"ping")]
    assert rest == data[:1]
    assert split_frames(data[:-1])[1] == data[len(server_frame(payload)):-1]


def test_a_masked_server_frame_is_refused_and_client_frames_are_masked() -> None:
    masked = Frame(Opcode.TEXT, b"hi").serialize(mask=True, extensions=[])
    with pytest.raises(ValueError, match="masked"):
        split_frames(masked)
    frame = client_frame(Opcode.TEXT.value, b'{"type":"login"}')
    assert frame[0] == 0x81 and frame[1] & 0x80 and len(frame) == 2 + 4 + 16


def test_busy_share_leaves_out_idle_and_iowait() -> None:
    before = [100, 0, 50, 800, 50, 0, 0, 0]
    after = [200, 0, 100, 1050, 100, 0, 0, 0]    # 150 busy, 300 idle + iowait
    assert busy_share(before, after) == pytest.approx(150 / 450)
    assert busy_share(before, before) == 0.0


def phase(clients: bool, setups: list[float], rtts: list[float], cpu: float) -> Phase:
    return Phase(clients, placed=100, ok=100, engine_cpu_s=cpu, setups_ms=setups,
                 lag_ms=[1.0, 2.0], round_trips_ms=rtts, moves=10, pushes=10)


def result(fanout: str = "inline") -> ConsoleResult:
    board = Wallboard(clients=1000, logged_in=1000, procs=2, board_bytes=3000, moves=20,
                      pushes=20, messages=40_000, boards=40_000, rounds=1,
                      client_s=4000.0,
                      latencies_ms=[10.0, 20.0, 130.0], push_ms=[5.0, 9.0],
                      coalescing_ms=[0.0, 90.0], not_held_ms=[10.0], clients_cpu_s=3.0,
                      clients_lag_ms=[1.0])
    return ConsoleResult(datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
                         Machine(2, "Test CPU", "3.11.7", "Asterisk 22"), "0.10 0.20 0.30",
                         20.0, 20.0, 0.1, 20, 19,
                         [phase(False, [4.0, 4.0], [0.5, 1.0], 1.0),
                          phase(True, [4.0, 8.0], [0.5, 2.0], 2.0),
                          phase(True, [4.0, 4.0], [0.5, 1.0], 1.0),
                          phase(False, [4.0, 4.0], [0.5, 1.0], 1.0)], board, fanout)


def test_comparisons_pool_the_phases_of_each_kind() -> None:
    rows = {what: (without, with_) for what, without, with_ in comparisons(result().phases)}
    assert rows["setup p50 ms"] == (4.0, 4.0)
    assert rows["engine CPU ms per call"] == (10.0, 15.0)
    assert ratio(15.0, 10.0) == 1.5
    assert ratio(1.0, 0.0) is None and ratio(None, 1.0) is None


def test_the_spread_of_phases_of_one_kind_is_what_the_run_cannot_tell() -> None:
    apart = spreads(result().phases)
    assert apart["engine loop lag p99 ms"] == 1.0    # the same lags in every phase
    # the phases with clients: p99 of (4, 8) against (4, 4); and CPU 2 s against 1 s a phase
    assert apart["setup p99 ms"] == pytest.approx(percentile([4.0, 8.0], 99) / 4.0)
    assert apart["engine CPU ms per call"] == 2.0
    assert spreads(result().phases[:2]) == dict.fromkeys(apart)   # one phase of each kind
    zero = result().phases
    for ph in zero:
        ph.lag_ms = [0.0]
    assert spreads(zero)["engine loop lag p99 ms"] == 1.0   # 0 ms in every phase: no spread
    zero[0].lag_ms = [2.0]
    assert spreads(zero)["engine loop lag p99 ms"] is None  # 2 against 0: no ratio to tell
    assert "| engine CPU ms per call | 10.00 | 15.00 | 1.50x ✗ | 2.00x |" in render_section(
        result())


def test_the_report_section() -> None:
    text = render_section(result())
    assert text.startswith(HEADING + "\n\n")
    assert "1000 websocket clients in 2 processes of their own (nice 19" in text
    assert "| engine CPU ms per call | 10.00 | 15.00 | 1.50x ✗ |" in text
    assert "| setup p50 ms | 4.00 | 4.00 | 1.00x ✓ |" in text
    assert "| move → client (the goal) | 3 |" in text
    assert "Goal not met" in text          # p99 over 100 ms
    assert "| 2 | 1000 | 100 | 100 |" in text and "| 1 | 0 | 100 | 100 |" in text
    assert "10.0 boards per client per second" in text
    assert "Clients: 1000 of 1000 logged in," in text
    assert "median of the phases" not in text   # two phases of each kind: no medians


def test_many_phases_are_also_compared_by_the_median_of_their_own_figures() -> None:
    res = result()
    # a second ABBA with plain phases: of the four phases with clients, one had a tail
    plain = [phase(kind, [4.0, 4.0], [0.5, 1.0], 1.0) for kind in (False, True, True, False)]
    res.phases += plain
    res.board.rounds, res.board.logged_in, res.board.client_s = 2, 2000, 4000.0
    medians = phase_medians(res.phases)
    # setup p99 per phase with clients: ~8 (the one with a tail), then 4, 4, 4: the median 4
    assert medians["setup p99 ms"] == pytest.approx((4.0, 4.0))
    assert medians["engine CPU ms per call"] == pytest.approx((10.0, 10.0))
    assert phase_medians(result().phases) == dict.fromkeys(medians)   # two of each: none
    text = render_section(res)
    assert "phases pooled, and the median of the phases" in text
    assert "| setup p99 ms | 4.00 | " in text and "| 4.00 / 4.00 | 1.00x ✓ |" in text
    assert "Clients: 2000 logins of 2000 (1000 clients, 2 times)" in text
    assert "20 messages per login" in text and "10.0 boards per client per second" in text


def test_the_engines_cost_per_board_and_client() -> None:
    # with clients 2 + 1 s of engine CPU, without 1 + 1 s: 1 s more over 40 000 boards
    assert frame_cost_us(result().phases, 40_000) == pytest.approx(25.0)
    assert frame_cost_us(result().phases, 0) is None
    assert frame_cost_us(result().phases[:1], 10) is None
    assert "25.0 µs of its CPU per board and client" in render_section(result())


def test_with_the_relay_the_report_splits_the_cost_between_relay_and_engine() -> None:
    report = result("process")
    for ph in report.phases:
        ph.relay_cpu_s = 3.0 if ph.clients else 0.5    # 5 s more with clients
    assert frame_cost_us(report.phases, 40_000, relay=True) == pytest.approx(125.0)
    text = render_section(report)
    assert "Fan-out: `process`" in text
    assert "125.0 µs of the relay's CPU per board and client here, and 25.0 µs of the " \
        "engine's" in text
    assert "| 2 | 1000 | 100 | 100 | 6.0 / 8.0 | 1.25 / 1.98 | 2.0 | 2.00 | 3.00 |" in text
