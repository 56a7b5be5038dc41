"""Drawing a `Chart` as a PNG with matplotlib's object API: one `Figure` and one Agg
canvas per call, no pyplot and no global style, so server threads may render at once.

Discord's dark theme (background `#313338`, light text); fonts scale with the image so
the text stays readable at Discord's preview size.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .isk import format_isk
from .request import WEEKDAYS, Bars, Chart, Heatmap, Trend

BACKGROUND = "#313338"
PANEL = "#2b2d31"
TEXT = "#f2f3f5"
MUTED = "#b5bac1"
GRID = "#4e5058"
GREEN = "#57f287"
RED = "#ed4245"
HEAT = LinearSegmentedColormap.from_list("discord-heat", [PANEL, "#5865f2", "#fee75c"])
DPI = 100


def _plain(text: str) -> str:
    """Text matplotlib must not read as mathtext (`$` in a pilot's name)."""
    return text.replace("$", r"\$")


def _style(ax: Axes, font: float) -> None:
    ax.set_facecolor(PANEL)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(GRID)
    ax.tick_params(colors=MUTED, labelsize=font * 0.8, length=0)
    ax.grid(True, color=GRID, linewidth=0.6, alpha=0.6)
    ax.set_axisbelow(True)


def _isk_axis(ax: Axes, axis: str = "y") -> None:
    formatter = FuncFormatter(lambda value, _pos: format_isk(value))
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(formatter)


def _bars(fig: Figure, body: Bars, font: float) -> None:
    ax = fig.add_axes((0.24, 0.08, 0.7, 0.74))
    _style(ax, font)
    ax.grid(False, axis="y")
    positions = list(range(len(body.values)))
    ax.barh(positions, body.values, color=body.color, height=0.7)
    ax.set_yticks(positions, [_plain(label[:28]) for label in body.labels])
    ax.tick_params(axis="y", labelsize=font * 0.85, colors=TEXT)
    ax.invert_yaxis()
    top = max(body.values)
    ax.set_xlim(0, top * 1.15)
    if body.isk:
        _isk_axis(ax, "x")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for position, value in zip(positions, body.values, strict=True):
        shown = format_isk(value) if body.isk else f"{value:,.0f}"
        ax.text(value + top * 0.01, position, shown, va="center", color=TEXT,
                fontsize=font * 0.8)  # fmt: skip


def _labels(trend: Trend) -> list[str]:
    if trend.period == "monthly":
        return [day.strftime("%b %Y") for day in trend.periods]
    return [day.isoformat() for day in trend.periods]


def _sparse_ticks(ax: Axes, labels: Sequence[str], font: float, most: int = 12) -> None:
    step = max(1, -(-len(labels) // most))
    positions = list(range(0, len(labels), step))
    ax.set_xticks(positions, [labels[i] for i in positions])
    ax.tick_params(axis="x", labelsize=font * 0.7)


def _trend(fig: Figure, body: Trend, font: float) -> None:
    counts = fig.add_axes((0.09, 0.50, 0.88, 0.32))
    isk = fig.add_axes((0.09, 0.09, 0.88, 0.32), sharex=counts)
    for ax in (counts, isk):
        _style(ax, font)
    x = list(range(len(body.periods)))
    width = 0.4
    counts.bar([i - width / 2 for i in x], body.kills, width, color=GREEN, label="kills")
    counts.bar([i + width / 2 for i in x], body.deaths, width, color=RED, label=body.death_label)
    counts.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    counts.tick_params(axis="x", labelbottom=False)
    isk.plot(x, body.isk_destroyed, color=GREEN, marker="o", linewidth=2, label="ISK destroyed")
    isk.plot(x, body.isk_lost, color=RED, marker="o", linewidth=2, label="ISK lost")
    isk.yaxis.set_major_locator(MaxNLocator(nbins=4))
    isk.set_ylim(bottom=0)
    _isk_axis(isk)
    _sparse_ticks(isk, _labels(body), font)
    for ax in (counts, isk):
        legend = ax.legend(loc="upper left", fontsize=font * 0.7, frameon=False, ncols=2)
        for text in legend.get_texts():
            text.set_color(TEXT)


def _heatmap(fig: Figure, body: Heatmap, font: float) -> None:
    ax = fig.add_axes((0.08, 0.1, 0.82, 0.72))
    bar = fig.add_axes((0.92, 0.1, 0.015, 0.72))
    _style(ax, font)
    ax.grid(False)
    image = ax.imshow(body.grid, cmap=HEAT, aspect="auto", interpolation="nearest", vmin=0)
    ax.set_yticks(range(7), WEEKDAYS)
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    ax.set_xlabel("hour (UTC)", color=MUTED, fontsize=font * 0.75)
    colorbar = fig.colorbar(image, cax=bar)
    colorbar.outline.set_visible(False)
    colorbar.ax.tick_params(colors=MUTED, labelsize=font * 0.65, length=0)
    colorbar.ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))


def _no_data(fig: Figure, chart: Chart, font: float) -> None:
    fig.text(0.5, 0.47, "No data", ha="center", va="center", color=MUTED,
             fontsize=font * 2.6, fontweight="bold")  # fmt: skip
    fig.text(0.5, 0.32, "nothing stored for this chart in the range asked for",
             ha="center", va="center", color=MUTED, fontsize=font * 0.9)  # fmt: skip


def render(chart: Chart) -> bytes:
    """The chart as a `width` x `height` PNG."""
    fig = Figure(figsize=(chart.width / DPI, chart.height / DPI), dpi=DPI, facecolor=BACKGROUND)
    FigureCanvasAgg(fig)
    font = max(7.0, min(chart.width / 1200, chart.height / 600) * 17.0)
    fig.text(0.02, 0.955, _plain(chart.title), color=TEXT, fontsize=font * 1.25,
             fontweight="bold", va="top")  # fmt: skip
    fig.text(0.02, 0.885, _plain(chart.subtitle), color=MUTED, fontsize=font * 0.85, va="top")
    if chart.empty:
        _no_data(fig, chart, font)
    elif isinstance(chart.body, Bars):
        _bars(fig, chart.body, font)
    elif isinstance(chart.body, Trend):
        _trend(fig, chart.body, font)
    else:
        _heatmap(fig, chart.body, font)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI, facecolor=BACKGROUND, metadata={"Software": None})
    return out.getvalue()
