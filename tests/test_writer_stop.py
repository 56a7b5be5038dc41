"""Writer shutdown: a mail handed over while the writer stops is written or counted,
never silently left in the queue; `queued` counts mails without walking the queue."""

from __future__ import annotations

import collections
import threading

from test_id_range import TRACKED, envelope

from wn_persist_plugin.db.models import Involvement
from wn_persist_plugin.ingest.tracked import TrackedEntry, TrackedSet
from wn_persist_plugin.ingest.writer import Writer

SNAPSHOT = TrackedSet.of([TrackedEntry(TRACKED)])


class StallingQueue(collections.deque):
    """Stalls the first mail's append until the writer has stopped (at most 1 s): the
    offer has passed its checks, the thread is about to finish."""

    def __init__(self, stopped: threading.Event) -> None:
        super().__init__()
        self.stopped = stopped
        self.stalled = threading.Event()

    def append(self, item) -> None:
        if type(item) is tuple and not self.stalled.is_set():
            self.stalled.set()
            self.stopped.wait(1.0)
        super().append(item)


def test_mail_offered_while_stopping_is_written_or_counted(db):
    db.close()
    stopped = threading.Event()
    writer = Writer(db)
    writer._queue = StallingQueue(stopped)  # white box: the race window made wide
    writer.start()
    results = []
    offering = threading.Thread(target=lambda: results.append(writer.offer(envelope(1), SNAPSHOT)))
    offering.start()
    writer._queue.stalled.wait(5)
    writer.stop(10)
    stopped.set()
    offering.join(5)
    db.connect(reuse_if_open=True)
    written = Involvement.select().count()
    accepted = results == [True]
    # Every mail is accounted for: written, refused (dropped) or lost (logged).
    assert written + writer.dropped + writer.counters.lost == 1
    assert accepted == (writer.dropped == 0)
    assert len(writer._queue) == 0 and writer.queued == 0


def test_queued_counts_mails_not_control_items_without_copying_the_queue(db):
    class NoWalk(collections.deque):
        def __iter__(self):
            raise AssertionError("queued walked the queue")

    writer = Writer(db)  # not started: everything stays queued
    writer._queue = NoWalk()
    for killmail_id in (1, 2, 3):
        writer.offer(envelope(killmail_id), SNAPSHOT)
    writer.submit(lambda _db: None, "a job")
    writer.offer(envelope(4), SNAPSHOT)
    assert writer.queued == 4
    assert not writer.stop(0)  # never started: the four mails are given up and counted
    assert writer.counters.lost == 4 and writer.queued == 0


def test_queued_drops_to_zero_once_written(db):
    db.close()
    writer = Writer(db).start()
    for killmail_id in range(1, 6):
        writer.offer(envelope(killmail_id), SNAPSHOT)
    assert writer.flush(20)
    assert writer.queued == 0 and writer.counters.rows_written == 5
    assert writer.stop(10)
