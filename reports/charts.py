"""Charts of the period statistics as PNG bytes (matplotlib).

Figures are built with the object API (``Figure`` + the Agg canvas), never ``pyplot``: pyplot keeps global
state, which a server answering requests on several threads must not share.
"""

from __future__ import annotations

import io

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.statistics import Statistics

SEVERITY_COLOURS = {"critical": "#7f1d1d", "high": "#dc2626", "medium": "#f59e0b", "low": "#3b82f6",
                    "informational": "#9ca3af"}
DEADLINE_COLOURS = {"met": "#16a34a", "missed": "#dc2626", "open": "#f59e0b"}
WIDTH, HEIGHT, DPI = 7.0, 3.2, 100
MAX_BARS = 12
"""Long tails (tactics) are cut to the most frequent; the tables carry the rest."""


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _figure(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(WIDTH, HEIGHT))
    # Fixed margins rather than a layout engine: "tight"/"constrained" re-draw the figure and triple the time.
    figure.subplots_adjust(left=0.25, right=0.96, top=0.88, bottom=0.24)
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=11, loc="left")
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _empty(axes: Axes, text: str = "no incidents in this period") -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="#6b7280")
    axes.set_xticks([])
    axes.set_yticks([])


def severity_over_time(stats: Statistics) -> bytes:
    """Stacked bars: incidents per week or month by severity."""
    figure, axes = _figure(f"Incidents per {stats.interval} by severity")
    buckets = stats.over_time["severity"]
    if not buckets:
        _empty(axes)
        return _png(figure)
    labels = [bucket.period for bucket in buckets]
    bottom = [0] * len(buckets)
    for severity, colour in SEVERITY_COLOURS.items():
        values = [bucket.counts.get(severity, 0) for bucket in buckets]
        if any(values):
            axes.bar(labels, values, bottom=bottom, color=colour, label=severity, width=0.6)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_ylabel("incidents")
    if len(labels) < 4:  # keep a lone week from filling the whole width
        axes.set_xlim(-2, len(labels) + 1)
    axes.legend(fontsize=8, frameon=False)
    axes.tick_params(axis="x", labelrotation=45, labelsize=8)
    return _png(figure)


def _horizontal(title: str, counts: dict[str, int], colour: str = "#1f2937") -> bytes:
    figure, axes = _figure(title)
    shown = {key: value for key, value in counts.items() if value}
    if not shown:
        _empty(axes)
        return _png(figure)
    items = sorted(shown.items(), key=lambda item: -item[1])[:MAX_BARS][::-1]
    axes.barh([key for key, _ in items], [value for _, value in items], color=colour)
    for index, (_, value) in enumerate(items):
        axes.text(value, index, f" {value}", va="center", fontsize=8)
    axes.set_xlabel("incidents")
    return _png(figure)


def status_counts(stats: Statistics) -> bytes:
    return _horizontal("Incidents by status", stats.by_status)


def tactic_counts(stats: Statistics) -> bytes:
    return _horizontal("Incidents by ATT&CK tactic", stats.by_tactic, colour="#4338ca")


def response_times(stats: Statistics) -> bytes:
    """Mean hours of MTTD, MTTA, MTTR side by side, each labelled with its value and incident count."""
    figure, axes = _figure("Mean response times (hours)")
    present = [r for r in stats.response_times if r.mean_hours is not None]
    if not present:
        _empty(axes, "no incident has the times yet")
        return _png(figure)
    labels = [r.measure for r in present]
    values = [r.mean_hours or 0.0 for r in present]
    axes.bar(labels, values, color=["#6b7280", "#f59e0b", "#16a34a"][:len(present)])
    if max(values) > 100 * max(min(values), 1e-9):
        axes.set_yscale("log")  # a replayed log's MTTD (years) would flatten MTTA and MTTR to nothing
    for index, result in enumerate(present):
        axes.text(index, values[index], f"{values[index]:.1f} h\n(n={result.incidents})", ha="center",
                  va="bottom", fontsize=8)
    axes.set_ylabel("hours")
    return _png(figure)


def deadlines(stats: Statistics) -> bytes:
    """Stacked horizontal bars: regulatory reports met, missed and open."""
    figure, axes = _figure("Regulatory deadlines")
    tallies = [t for t in stats.deadlines if t.met + t.missed + t.open]
    if not tallies:
        _empty(axes, "no regulatory deadline in this period")
        return _png(figure)
    names = [t.name.replace("GDPR notification to the supervisory authority", "GDPR notification")
             for t in tallies]
    left = [0] * len(tallies)
    for state, colour in DEADLINE_COLOURS.items():
        values = [getattr(t, state) for t in tallies]
        axes.barh(names, values, left=left, color=colour, label=state)
        left = [a + b for a, b in zip(left, values, strict=True)]
    axes.legend(fontsize=8, frameon=False)
    axes.set_xlabel("reports")
    return _png(figure)


def all_charts(stats: Statistics) -> dict[str, bytes]:
    """Every chart of the period report, by file stem."""
    return {"severity-over-time": severity_over_time(stats), "status": status_counts(stats),
            "tactics": tactic_counts(stats), "response-times": response_times(stats),
            "deadlines": deadlines(stats)}
