"""Time of `on_kill_processed` per call, against a bare participant walk (not a test).

1,000 tracked characters drawn from the real corpus; the corpus replayed many times with
shifted killmail ids (each replay is a distinct set of mails for the writer). Each call is
timed with `perf_counter_ns`, and so is the baseline on the same mail right after: a loop
over the victim and every attacker through a set lookup, nothing else. The writer thread
runs (on SQLite) while the hook is timed, as it would in a host.

    .venv/bin/python bench/bench_hook.py [--replays 20] [--tracked 1000]

Goal: median and p99 of the hook within 3x of the baseline's, for tracked and untracked
mails.
"""

from __future__ import annotations

import argparse
import copy
import gc
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import database_urls, median, percentile, real_envelopes  # noqa: E402

from wn_persist_plugin.plugin import PersistencePlugin  # noqa: E402

SHIFT = 10_000_000_000


def characters(envelopes: list[dict]) -> list[int]:
    found: set[int] = set()
    for env in envelopes:
        esi = env["esi"]
        victim = esi["victim"].get("character_id")
        if victim:
            found.add(victim)
        found.update(a["character_id"] for a in esi["attackers"] if a.get("character_id"))
    return sorted(found)


def replayed(envelopes: list[dict], replays: int) -> list[dict]:
    out = []
    for r in range(replays):
        for env in envelopes:
            new = dict(env)
            new["killmail_id"] = env["killmail_id"] + r * SHIFT
            new["esi"] = copy.copy(env["esi"])
            new["esi"]["killmail_id"] = new["killmail_id"]
            out.append(new)
    return out


def baseline(envelope: dict, ids: frozenset[int]) -> bool:
    """Walk the participants through a set lookup, stopping at the first hit: the least
    any filter must do (it knows the envelope shape and trusts every id)."""
    esi = envelope["esi"]
    if esi["victim"].get("character_id") in ids:
        return True
    for attacker in esi["attackers"]:
        if attacker.get("character_id") in ids:
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replays", type=int, default=20)
    parser.add_argument("--tracked", type=int, default=1000)
    args = parser.parse_args()

    corpus = real_envelopes()
    rng = random.Random(20261128)
    tracked = rng.sample(characters(corpus), args.tracked)
    ids = frozenset(tracked)
    mails = replayed(corpus, args.replays)
    rng.shuffle(mails)
    is_tracked = [baseline(m, ids) for m in mails]

    with database_urls(postgres=False) as urls:
        plugin = PersistencePlugin(environ={})
        plugin.on_startup(
            config={
                "ENABLE_PERSISTENCE": "true",
                "DATABASE_URL": urls["sqlite"],
                "PERSISTENCE_QUEUE_SIZE": str(len(mails) + 1),
                "PERSISTENCE_QUEUE_BYTES": "64GiB",
            }
        )
        plugin.on_tracked_characters_updated(characters=[{"character_id": str(c)} for c in tracked])
        plugin.flush_pending(60)
        hook = plugin.on_kill_processed
        clock = time.perf_counter_ns
        hook_ns = [0] * len(mails)
        base_ns = [0] * len(mails)
        gc.disable()
        for i, mail in enumerate(mails):
            # Alternate which runs first: the first to touch a mail pays its cache misses.
            if i % 2:
                t0 = clock()
                hook(killmail=mail)
                t1 = clock()
                baseline(mail, ids)
                t2 = clock()
                hook_ns[i], base_ns[i] = t1 - t0, t2 - t1
            else:
                t0 = clock()
                baseline(mail, ids)
                t1 = clock()
                hook(killmail=mail)
                t2 = clock()
                base_ns[i], hook_ns[i] = t1 - t0, t2 - t1
        # For information: the same calls through pluggy's dispatch, as a host makes them
        # (pluggy's own overhead is outside the plugin's control).
        import pluggy

        from wn_persist_plugin import hookspecs

        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        pm.register(plugin)
        dispatch = pm.hook.on_kill_processed
        pluggy_ns = []
        for mail in mails[:2000]:
            t0 = clock()
            dispatch(killmail=mail)
            pluggy_ns.append(clock() - t0)
        gc.enable()
        flush_start = time.perf_counter()
        plugin.flush_pending(600)
        drain = time.perf_counter() - flush_start
        plugin.on_shutdown()
        stats = plugin.pipeline_stats()

    print(
        f"{len(mails)} calls ({args.replays} replays of {len(corpus)} mails), "
        f"{len(ids)} tracked characters; {sum(is_tracked)} tracked mails"
    )
    print(
        f"writer: {stats.rows_written} rows from {stats.mails_written} mails (with the "
        f"pluggy pass), "
        f"dropped {stats.dropped}, drained {drain:.2f} s after the last call"
    )
    worst = 1.0
    for label, want in (("untracked", False), ("tracked", True)):
        h = [t / 1000 for t, k in zip(hook_ns, is_tracked, strict=True) if k is want]
        b = [t / 1000 for t, k in zip(base_ns, is_tracked, strict=True) if k is want]
        for stat, fn in (("median", median), ("p99", lambda s: percentile(s, 99))):
            hv, bv = fn(h), fn(b)
            worst = max(worst, hv / bv)
            print(
                f"{label:9s} {stat:6s} hook {hv:8.2f} us  baseline {bv:8.2f} us  "
                f"ratio {hv / bv:5.2f}x"
            )
    print(f"worst ratio {worst:.2f}x (goal <= 3x): {'met' if worst <= 3 else 'MISSED'}")
    print(
        f"through pluggy (first 2,000 calls, for information): median "
        f"{median(pluggy_ns) / 1000:.2f} us, p99 {percentile(pluggy_ns, 99) / 1000:.2f} us"
    )


if __name__ == "__main__":
    main()
