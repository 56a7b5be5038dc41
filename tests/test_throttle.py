from __future__ import annotations

from wn_persist_plugin.throttle import Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_unchanged_message_passes_once_a_minute():
    clock = Clock()
    throttle = Throttle(60.0, clock)
    assert throttle.ready("connection refused")
    clock.now = 30
    assert not throttle.ready("connection refused")
    assert not throttle.ready("connection refused")
    assert throttle.take_suppressed() == 2
    clock.now = 60
    assert throttle.ready("connection refused")


def test_a_changed_message_passes_at_once():
    clock = Clock()
    throttle = Throttle(60.0, clock)
    assert throttle.ready("HTTP 500")
    assert throttle.ready("read timed out")
    assert not throttle.ready("read timed out")
    throttle.reset()
    assert throttle.ready("read timed out")
