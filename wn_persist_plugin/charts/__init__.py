"""PNG charts of the history: what each chart shows (`request`), the figures behind it
(`request.load_chart`), and the drawing (`render`, the only module that imports
matplotlib: extra `charts`).

    chart = load_chart(db, ChartRequest("leaderboard-kills").checked())
    png = render_png(chart)
"""

from __future__ import annotations

import importlib.util

from ..errors import ExtraMissing
from .request import CHART_NAMES, Chart, ChartRequest, load_chart

CHARTS_EXTRA = "charts"
CHARTS_EXTRA_HINT = f"charts need their extra: pip install 'wn-persist-plugin[{CHARTS_EXTRA}]'"

__all__ = [
    "CHART_NAMES",
    "CHARTS_EXTRA_HINT",
    "Chart",
    "ChartRequest",
    "available",
    "load_chart",
    "render_png",
]


def available() -> bool:
    """True when matplotlib (the `charts` extra) is installed and importable."""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules has no spec
        return False


def render_png(chart: Chart) -> bytes:
    """The chart as PNG bytes; `ExtraMissing` without the `charts` extra. Safe to call
    from several threads at once (one `Figure` per call, no pyplot state)."""
    if not available():
        raise ExtraMissing(CHARTS_EXTRA, "charts")
    from .render import render

    return render(chart)
