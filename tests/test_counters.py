"""The pipeline's counters: a tally that several threads add to without losing a count."""

from __future__ import annotations

import threading

from wn_persist_plugin.ingest.counters import PipelineStats, Tally


def test_tally_is_exact_with_threads_adding_and_reading():
    tally = Tally()
    reads: list[int] = []

    def add(times: int) -> None:
        for _ in range(times):
            next(tally.counter)

    def read() -> None:
        for _ in range(500):
            reads.append(tally.total())

    threads = [threading.Thread(target=add, args=(50_000,)) for _ in range(4)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tally.total() == 4 * 50_000
    assert tally.total() == 4 * 50_000  # reading changes nothing
    assert all(0 <= value <= 4 * 50_000 for value in reads)
    next(tally.counter)
    assert tally.total() == 4 * 50_000 + 1


def test_stats_default_to_zero_and_add_up_what_was_given_up():
    stats = PipelineStats(dropped=2, lost=3, rows_written=7)
    assert stats.given_up == 5 and stats.seen == 0
    assert stats.as_dict()["rows_written"] == 7


def test_estimated_size_counts_attackers_and_items_from_any_envelope(real_envelopes):
    from wn_persist_plugin.ingest.match import (
        ATTACKER_BYTES,
        ITEM_BYTES,
        MAIL_BASE_BYTES,
        estimated_size,
    )

    env = real_envelopes[0]
    body = env["esi"]
    want = (
        MAIL_BASE_BYTES
        + ATTACKER_BYTES * len(body["attackers"])
        + ITEM_BYTES * len(body["victim"].get("items") or [])
    )
    assert estimated_size(env) == want
    assert estimated_size({"package": {"killmail": body, "zkb": {}}}) == want  # RedisQ
    assert estimated_size(body) == want  # a bare ESI body
    assert estimated_size("not a mail") == MAIL_BASE_BYTES
    assert estimated_size({"esi": {"victim": None, "attackers": "x"}}) == MAIL_BASE_BYTES
