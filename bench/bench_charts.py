"""Chart benchmark: ~1M involvements over 365 days for 1,000 characters (bench_api's
generator: five very active pilots hold ~30% of the rows), aggregated; then every chart
rendered warm (after one untimed render), median of N, split into its query (the figures)
and its drawing, next to a baseline measured in the same run: an empty "no data" figure
of the same size.

    python bench/bench_charts.py [--rows 1000000] [--renders 15] [--only sqlite|postgresql]
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import median, run_per_backend  # noqa: E402
from bench_api import BASE, generate  # noqa: E402

from wn_persist_plugin.charts import ChartRequest, load_chart, render_png  # noqa: E402
from wn_persist_plugin.db import migrator  # noqa: E402
from wn_persist_plugin.db.connect import open_database  # noqa: E402
from wn_persist_plugin.statistics.aggregation import aggregate  # noqa: E402

GOAL_MS = 250.0
MONTH = dt.date(2025, 6, 1)
CASES = [
    ("leaderboard-kills", ChartRequest("leaderboard-kills", start=MONTH)),
    ("leaderboard-isk", ChartRequest("leaderboard-isk", start=MONTH)),
    ("character-trend (busiest, monthly)", ChartRequest("character-trend", character=BASE)),
    ("character-trend (weekly)", ChartRequest("character-trend", character=BASE, period="weekly")),
    ("group-trend (one month, weekly)", ChartRequest(
        "group-trend", period="weekly", first=MONTH, last=dt.date(2025, 6, 30))),
    ("group-trend (whole year, monthly)", ChartRequest("group-trend")),
    ("activity-heatmap (busiest)", ChartRequest("activity-heatmap", character=BASE)),
    ("activity-heatmap (group, one month)", ChartRequest(
        "activity-heatmap", first=MONTH, last=dt.date(2025, 6, 30))),
    ("top-ships (busiest)", ChartRequest("top-ships", character=BASE)),
    ("top-ships (group)", ChartRequest("top-ships")),
    ("top-regions (group)", ChartRequest("top-regions")),
]  # fmt: skip


def timed(fn, n: int) -> float:
    fn()  # warm
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return median(samples) * 1000


def run(name: str, url: str, rows: int, renders: int) -> None:
    db = open_database(url)
    migrator.migrate(db)
    db.connect(reuse_if_open=True)
    clock = time.perf_counter()
    generate(db, rows)
    print(f"[{name}] generated {rows} rows in {time.perf_counter() - clock:.1f}s", flush=True)
    aggregate(db)
    empty = load_chart(db, ChartRequest("top-ships", first=dt.date(2001, 1, 1),
                                        last=dt.date(2001, 1, 2)))  # fmt: skip
    assert empty.empty
    baseline = timed(lambda: render_png(empty), renders)
    print(f"\n[{name}] baseline: empty 1200x600 figure {baseline:.1f} ms")
    print(f"[{name}] chart | total ms | query ms | draw ms | total / baseline | goal")
    for label, request in CASES:
        total = timed(lambda r=request: render_png(load_chart(db, r)), renders)
        query = timed(lambda r=request: load_chart(db, r), renders)
        chart = load_chart(db, request)
        draw = timed(lambda c=chart: render_png(c), renders)
        verdict = "ok" if total < GOAL_MS else "MISSED"
        print(f"{label} | {total:.1f} | {query:.1f} | {draw:.1f} | {total / baseline:.2f}x "
              f"| {verdict}", flush=True)  # fmt: skip
    db.close()


def main() -> None:
    run_per_backend(run, "renders", 15)


if __name__ == "__main__":
    main()
