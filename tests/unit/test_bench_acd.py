"""The pure pieces of the ACD benchmark: the section it writes and how it replaces it."""

from datetime import UTC, datetime

from callcenter.bench_acd import SECTION, TITLE, AcdBenchResult, render_section
from callcenter.benchdoc import replace_section


def test_the_section_reports_both_sides_and_their_ratio() -> None:
    text = render_section(AcdBenchResult([2.0, 4.0, 3.0], [1000.0, 1001.0, 999.0]),
                          datetime(2026, 11, 23, tzinfo=UTC))
    assert text.startswith(SECTION)
    assert "| ours (ACD over AMI) | 3 | 3.0 |" in text
    assert "| app_queue (baseline) | 3 | 1000.0 |" in text
    assert "0.0030x" in text


def test_no_rounds_says_why() -> None:
    text = render_section(AcdBenchResult(failures=["ours round 0: timeout"]),
                          datetime(2026, 11, 23, tzinfo=UTC))
    assert "No complete rounds: ours round 0: timeout" in text


def test_replace_section_keeps_the_rest() -> None:
    doc = ("# Benchmarks\n\n## IVR\n\nivr text\n\n## ACD: seat ready to agent ringing\n\n"
           "old\n\n## Other\n\nx\n")
    out = replace_section(doc, TITLE, f"{SECTION}\n\nnew\n")
    assert "old" not in out and "new" in out and "ivr text" in out and "## Other\n\nx" in out
    appended = replace_section("# Benchmarks\n", TITLE, f"{SECTION}\n\nnew\n")
    assert appended == f"# Benchmarks\n\n{SECTION}\n\nnew\n"
