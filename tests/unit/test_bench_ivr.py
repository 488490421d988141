"""The IVR benchmark's pure pieces: statistics, /proc parsing, phase plan and the report.

No Asterisk and no clock: the numbers are made up, only their arithmetic and rendering are checked.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callcenter.bench_ivr import (
    BenchResult,
    FlowStats,
    Machine,
    cpu_model,
    cpu_ticks,
    expected_digits,
    fmt_ratio,
    percentile,
    phase_plan,
    render_markdown,
    render_summary,
)

# A real-shaped line: pid, (comm), state, then fields 4..52; utime=1234 and stime=567.
STAT_TAIL = (
    "S 1 16537 16537 0 -1 4194560 24906 0 12 0 1234 567 0 0 20 0 47 0 5323 "
    "1024000000 20000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 3 0 0 0 0 0"
)


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(list(map(float, range(1, 101))), 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


@pytest.mark.parametrize("comm", ["asterisk", "my prog", "a) b (c", ")"])
def test_cpu_ticks_counts_fields_after_the_last_paren(comm: str) -> None:
    assert cpu_ticks(f"16537 ({comm}) {STAT_TAIL}\n") == 1234 + 567


def test_cpu_ticks_refuses_a_line_that_is_not_stat() -> None:
    with pytest.raises(ValueError, match="stat"):
        cpu_ticks("16537 asterisk S 1 2")
    with pytest.raises(ValueError, match="stat"):
        cpu_ticks("16537 (asterisk) S 1 2")


def test_cpu_model_from_cpuinfo() -> None:
    x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R)  Xeon(R) @ 2.2GHz\n"
    arm = "processor\t: 0\nBogoMIPS\t: 50.00\n\nModel\t: Raspberry Pi 4 Model B\n"
    assert cpu_model(x86) == "Intel(R) Xeon(R) @ 2.2GHz"
    assert cpu_model(arm) == "Raspberry Pi 4 Model B"
    assert cpu_model("") == "unknown"


def test_expected_digits_and_phase_plan() -> None:
    assert expected_digits("1w2w3w#") == "123"
    assert expected_digits("*W9") == "*9"
    assert phase_plan(24) == [("agi", 12), ("native", 12), ("native", 12), ("agi", 12)]
    assert phase_plan(5) == [("agi", 3), ("native", 3), ("native", 2), ("agi", 2)]
    assert phase_plan(1) == [("agi", 1), ("native", 1)]


def test_fmt_ratio() -> None:
    assert fmt_ratio(3.0, 2.0) == "1.50x"
    assert fmt_ratio(0.0, 2.0) == "0.00x"
    assert fmt_ratio(1.0, 0.0) == "n/a"


def _result(failures: list[str] | None = None) -> BenchResult:
    result = BenchResult(
        started=datetime(2025, 1, 2, 3, 4, tzinfo=UTC),
        machine=Machine(8, "Test CPU", "3.11.2", "Asterisk 22.1.0"),
        calls=4, concurrency=2, dtmf="1w2w3w#", phases=phase_plan(4),
        agi=FlowStats(calls=4, failures=len(failures or []), wall_s=20.0, engine_cpu_s=0.2,
                      asterisk_cpu_s=0.4, call_s=36.0),
        native=FlowStats(calls=4, wall_s=16.0, engine_cpu_s=0.04, asterisk_cpu_s=0.2,
                         call_s=32.0),
        asterisk_idle_cpu_per_s=0.005,
        round_trips={"ANSWER": [0.001, 0.003], "CHANNEL STATUS": [0.002],
                     "STREAM FILE": [2.0, 3.0]},
        failures=failures or [],
        leftover_channels=0,
    )
    return result


def test_report_table_holds_per_call_figures_and_ratios() -> None:
    text = render_markdown(_result())
    assert "2025-01-02 03:04 UTC" in text
    assert "8 CPUs, Test CPU; Python 3.11.2; Asterisk 22.1.0" in text
    assert "AGI (2), native (2), native (2), AGI (2)" in text
    assert "| calls completed / placed | 4 / 4 | 4 / 4 |  |" in text
    assert "| calls per second | 0.20 | 0.25 | 0.80x |" in text
    assert "| Asterisk CPU per call (ms) | 100.0 | 50.0 | 2.00x |" in text
    # idle: 5 ms/s over 20 s (AGI) and 16 s (native) taken off before dividing by 4 calls
    assert "| Asterisk CPU per call, idle subtracted (ms) | 75.0 | 30.0 | 2.50x |" in text
    assert "| engine process CPU per call (ms) | 50.0 | 10.0 | 5.00x |" in text
    assert "| engine CPU / Asterisk CPU | 0.50x | 0.20x |  |" in text
    # 0.4 s over 36 s of calls vs 0.2 s over 32 s
    assert "| Asterisk CPU per second of call (ms) | 11.11 | 6.25 | 1.78x |" in text
    assert "| CHANNEL STATUS | 1 | 2.00 | 2.00 | **the FastAGI round trip itself** |" in text
    assert "| ANSWER | 2 | 2.00 | 2.98 | includes Asterisk's wait" in text
    assert "| STREAM FILE | 2 | 2500.00 | 2990.00 | plays a prompt: audio-bound |" in text
    assert "None: every AGI call recorded" in text
    assert "Channels left in Asterisk after the run: 0." in text


def test_report_lists_failures_instead_of_hiding_them() -> None:
    result = _result(["agi sim-1: recorded digits ['12'], expected '123'"])
    text = render_markdown(result)
    assert "1 of 8 calls failed:" in text
    assert "- agi sim-1: recorded digits ['12'], expected '123'" in text
    assert "| calls completed / placed | 3 / 4 | 4 / 4 |  |" in text
    summary = render_summary(result)
    assert "failures: 1" in summary
    assert "round trip (CHANNEL STATUS): p50 2.00 ms, p99 2.00 ms (n=1)" in summary


def test_report_without_round_trips_or_channel_count() -> None:
    result = _result()
    result.round_trips = {}
    result.leftover_channels = None
    text = render_markdown(result)
    assert "No AGI command was answered." in text
    assert "Channels left in Asterisk after the run: unknown." in text
    summary = render_summary(result)
    assert "round trip (CHANNEL STATUS): none answered" in summary
    assert "channels left in Asterisk: unknown" in summary
