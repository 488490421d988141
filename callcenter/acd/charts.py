"""Per-interval queue figures drawn as a PNG: ``callcenter report --chart``.

Three panels over the same intervals: offered, answered and abandoned calls as bars, the service
level (%, with the goal as a dashed line), and the ASA (s). An interval without answers or
abandons has no service level and no ASA: a gap in the line, never 0.

matplotlib's Agg renderer through its object API (``Figure`` + ``FigureCanvasAgg``): no display,
no pyplot and none of its global state, so it may run in a worker thread. This module draws and
returns the bytes; :mod:`callcenter.acd.report` checks the path and writes the file. matplotlib
is imported on first use: a report without a chart does not pay for it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from callcenter.acd.intervals import DAY, Interval

__all__ = ["CHART_DPI", "CHART_SIZE_PX", "chart_png"]

#: the PNG's width and height in pixels, at :data:`CHART_DPI`
CHART_SIZE_PX = (1200, 900)
CHART_DPI = 100
_MAX_LABELS = 16


def _nan(value: float | None, scale: float = 1.0) -> float:
    return math.nan if value is None else scale * value


def _labels(rows: Sequence[Interval]) -> list[str]:
    """``HH:MM`` (with the date where it changes) for intervals shorter than a day, else the
    date; only every few intervals so that the labels do not overlap."""
    every = max(1, math.ceil(len(rows) / _MAX_LABELS))
    daily = max(row.end - row.start for row in rows) >= DAY
    labels = []
    last_date = None
    for n, row in enumerate(rows):
        if n % every:
            labels.append("")
        elif daily:
            labels.append(f"{row.start:%m-%d}")
        else:
            day = row.start.date()
            labels.append(f"{row.start:%H:%M}" if day == last_date
                          else f"{row.start:%m-%d}\n{row.start:%H:%M}")
            last_date = day
    return labels


def chart_png(
    rows: Sequence[Interval],
    *,
    title: str,
    queue: str | None = None,
    target_share: float | None = None,
    size_px: tuple[int, int] = CHART_SIZE_PX,
    dpi: int = CHART_DPI,
) -> bytes:
    """The PNG of ``rows`` (from :func:`callcenter.acd.intervals.intervals`) for one queue
    (``queue`` None: all of them); ``target_share`` (0-1) draws the service-level goal."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figs = [row.figures(queue) for row in rows]
    x = list(range(len(rows)))
    fig = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title)
    calls, sl, asa = fig.subplots(3, 1, sharex=True, height_ratios=[2, 1, 1])

    width = 0.28
    calls.bar([i - width for i in x], [f.offered for f in figs], width, label="offered",
              color="tab:blue")
    calls.bar(x, [f.answered for f in figs], width, label="answered", color="tab:green")
    calls.bar([i + width for i in x], [f.abandoned for f in figs], width, label="abandoned",
              color="tab:red")
    calls.set_ylabel("calls")
    calls.yaxis.set_major_locator(MaxNLocator(integer=True))
    calls.legend(loc="upper left", ncols=3, fontsize="small")

    sl.plot(x, [_nan(f.service_level, 100) for f in figs], marker="o", color="tab:purple",
            label="service level")
    if target_share is not None:
        sl.axhline(100 * target_share, linestyle="--", color="grey",
                   label=f"goal {100 * target_share:g}%")
    sl.set_ylim(0, 105)
    sl.set_ylabel("service level %")
    sl.legend(loc="lower left", fontsize="small")

    asa.plot(x, [_nan(f.asa_s) for f in figs], marker="o", color="tab:orange")
    asa.set_ylim(bottom=0)
    asa.set_ylabel("ASA s")

    for ax in (calls, sl, asa):
        ax.grid(axis="y", alpha=0.3)
    if rows:
        asa.set_xticks(x, _labels(rows))
        asa.set_xlim(-0.6, len(rows) - 0.4)
        asa.set_xlabel("interval start")
    else:
        calls.text(0.5, 0.5, "no figures in this period", transform=calls.transAxes,
                   ha="center", va="center")
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi)
    return out.getvalue()
