"""The host's feed position: saving it while another database object reads it."""

from __future__ import annotations

import threading

from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.host import feed_state


def test_saving_while_another_database_reads(db, db_url):
    """The host saves on its own database object while another one (a status command, a
    test) reads the state in another thread: every save goes through the host's own
    connection, none waits on itself until the busy timeout."""
    host_db = open_database(db_url, bind=False)
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                feed_state.load_sequence(db)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for sequence in range(300):
            feed_state.save_sequence(host_db, sequence)
    finally:
        done.set()
        thread.join()
        host_db.close()
    assert errors == []
    assert feed_state.load_sequence(db) == 299
    assert feed_state.feed_state_model(db) is feed_state.feed_state_model(db)
