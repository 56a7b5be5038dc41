"""The R2Z2 feed client against a local fake feed serving the real killmails."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from fakes.r2z2 import FakeR2Z2

from wn_persist_plugin import __version__
from wn_persist_plugin.sources.http import (
    DEFAULT_MAX_REDIRECTS,
    make_session,
    retry_after_seconds,
    user_agent,
)
from wn_persist_plugin.sources.r2z2 import R2Z2Client, make_limiter

FIRST = 90_000_000


@pytest.fixture
def envelopes(real_envelopes):
    return real_envelopes[:40]


def client(url: str, **kwargs) -> R2Z2Client:
    options = {"timeout": 0.5, "not_found_wait": 0.05, "max_backoff": 0.05}
    options.update(kwargs)
    return R2Z2Client(url, **options)


def test_latest_then_mail_with_user_agent(envelopes):
    with FakeR2Z2(envelopes, first=FIRST) as feed:
        c = client(feed.url)
        stop = threading.Event()
        assert c.latest_sequence(stop) == FIRST + 39
        delivery = c.next_mail(FIRST + 3, stop)
        assert delivery is not None and delivery.sequence == FIRST + 3 and delivery.skipped == 0
        assert delivery.envelope["killmail_id"] == envelopes[3]["killmail_id"]
        agents = [r.headers["user-agent"] for r in feed.requests]
        assert agents == [user_agent(None)] * 2
        assert agents[0].startswith(f"wn-persist/{__version__} (")
        assert all(r.headers["accept"] == "application/json" for r in feed.requests)


def test_user_agent_names_the_contact_on_every_request(envelopes):
    """Retries too: each request zKillboard sees says who we are and how to reach us."""
    with FakeR2Z2(envelopes, first=FIRST) as feed:
        feed.fail(FakeR2Z2.path(FIRST), "503")
        c = client(feed.url, contact="ops@example.org")
        assert c.next_mail(FIRST, threading.Event()) is not None
        agents = [r.headers["user-agent"] for r in feed.requests]
        assert agents == [user_agent("ops@example.org")] * 2
        assert "ops@example.org" in agents[0] and "python-requests" not in agents[0]


def test_a_handed_in_session_is_paced_too(envelopes):
    """A session handed in keeps its headers and still gets the limiter in front."""
    with FakeR2Z2(envelopes, first=FIRST) as feed:
        session = make_session("tests@example.org")
        c = client(feed.url, session=session, requests_per_second=5)
        stop = threading.Event()
        for n in range(FIRST, FIRST + 4):
            assert c.next_mail(n, stop) is not None
        times = [r.at for r in feed.requests]
        assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.15
        assert {r.headers["user-agent"] for r in feed.requests} == {user_agent("tests@example.org")}
        assert c.counters.requests == 4


def test_not_found_waits_and_retries_the_same_sequence(envelopes):
    with FakeR2Z2(envelopes, first=FIRST, published=FIRST + 4) as feed:
        c = client(feed.url, not_found_wait=0.2, gap_confirmations=100)
        stop = threading.Event()
        threading.Timer(0.5, feed.publish, args=(FIRST + 5,)).start()
        started = time.monotonic()
        delivery = c.next_mail(FIRST + 5, stop)
        assert delivery is not None and delivery.sequence == FIRST + 5
        assert time.monotonic() - started >= 0.4
        asked = feed.paths()
        assert set(asked) == {FakeR2Z2.path(FIRST + 5)} and len(asked) >= 2
        assert feed.paths(404) == asked[:-1]
        # The waits between the 404s were the configured not-found wait, not a hammering.
        times = [r.at for r in feed.requests]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= 0.12 and sorted(gaps)[len(gaps) // 2] >= 0.19


@pytest.mark.parametrize("where", ["object", "sequence"])
def test_429_honours_retry_after(envelopes, where, caplog):
    with FakeR2Z2(envelopes, first=FIRST) as feed:
        path = FakeR2Z2.path(FIRST) if where == "object" else "/ephemeral/sequence.json"
        feed.fail(path, "429:1")
        c = client(feed.url)
        stop = threading.Event()
        with caplog.at_level(logging.WARNING):
            got = c.next_mail(FIRST, stop) if where == "object" else c.latest_sequence(stop)
        assert got is not None
        first, second = feed.requests[0], feed.requests[1]
        assert first.status == 429 and second.status == 200 and second.path == path
        assert second.at - first.at >= 0.95
        assert c.counters.rate_limited == 1
        assert "rate limited (429); waiting 1.0 s" in caplog.text


def test_retry_after_forms():
    assert retry_after_seconds("3", 10, 600) == 3
    assert retry_after_seconds(None, 10, 600) == 10
    assert retry_after_seconds("soon", 10, 600) == 10
    assert retry_after_seconds("99999", 10, 600) == 600
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 10, 600) == 0


@pytest.mark.parametrize("fault", ["500", "503", "timeout:1.0", "garbage", "close"])
@pytest.mark.parametrize("where", ["object", "sequence"])
def test_failures_are_logged_and_retried(envelopes, fault, where, caplog):
    with FakeR2Z2(envelopes, first=FIRST) as feed:
        path = FakeR2Z2.path(FIRST + 1) if where == "object" else "/ephemeral/sequence.json"
        feed.fail(path, fault, fault)
        c = client(feed.url, timeout=0.3, repeat_log_seconds=0)
        stop = threading.Event()
        with caplog.at_level(logging.WARNING, logger="wn_persist_plugin.sources.r2z2"):
            if where == "object":
                delivery = c.next_mail(FIRST + 1, stop)
                assert delivery is not None and delivery.sequence == FIRST + 1
                assert delivery.envelope["killmail_id"] == envelopes[1]["killmail_id"]
            else:
                assert c.latest_sequence(stop) == FIRST + 39
        assert c.counters.errors == 2
        deadline = time.monotonic() + 3  # timed-out requests are logged when answered
        while len(feed.paths()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(feed.paths()) == 3 and set(feed.paths()) == {path}
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 2 and all("retrying in" in w for w in warnings)
        assert all(feed.url in w for w in warnings)


def test_json_that_is_not_an_object_is_retried(envelopes):
    with FakeR2Z2(envelopes, first=FIRST) as feed:
        c = client(feed.url)
        feed.respond_orig = feed.respond
        calls = []

        def respond(path, headers):
            calls.append(path)
            if len(calls) == 1:
                return 200, [1, 2, 3], {}
            return feed.respond_orig(path, headers)

        feed.respond = respond
        delivery = c.next_mail(FIRST, threading.Event())
        assert delivery is not None and len(calls) == 2


@pytest.mark.parametrize("fault", ["garbage", "html"])
def test_a_body_that_is_not_json_is_retried_never_skipped(envelopes, fault, caplog):
    """A proxy's HTML page or a cut-off body is a transient fault, however often it comes:
    retried with backoff until the mail itself is served; nothing is skipped."""
    with FakeR2Z2(envelopes, first=FIRST) as feed:
        feed.fail(FakeR2Z2.path(FIRST + 2), *[fault] * 12)
        c = client(feed.url, unusable_attempts=2, unusable_seconds=0)
        with caplog.at_level(logging.WARNING):
            delivery = c.next_mail(FIRST + 2, threading.Event())
        assert delivery is not None and delivery.sequence == FIRST + 2 and delivery.skipped == 0
        assert delivery.envelope["killmail_id"] == envelopes[2]["killmail_id"]
        assert c.counters.errors == 12 and c.counters.skipped_sequences == 0
        assert "not JSON" in caplog.text
        # An unchanged failure is logged once (then at most once a minute).
        assert len([r for r in caplog.records if "not JSON" in r.getMessage()]) == 1


def unusable_mail(envelope: dict) -> dict:
    """A well-formed JSON object that is not a usable killmail (no attackers list)."""
    esi = {k: v for k, v in envelope["esi"].items() if k != "attackers"}
    return {**envelope, "esi": esi}


def test_an_unusable_mail_is_skipped_only_after_attempts_and_time(envelopes, caplog):
    broken = unusable_mail(envelopes[2])
    now = [0.0]
    waits: list[float] = []

    def sleep(_stop, seconds):
        waits.append(seconds)
        now[0] += seconds
        return False

    with FakeR2Z2([*envelopes[:2], broken, *envelopes[3:]], first=FIRST) as feed:
        c = client(
            feed.url,
            unusable_attempts=5,
            unusable_seconds=60.0,
            max_backoff=20.0,
            clock=lambda: now[0],
            sleep=sleep,
        )
        with caplog.at_level(logging.WARNING):
            delivery = c.next_mail(FIRST + 2, threading.Event())
        assert delivery is not None and delivery.sequence == FIRST + 3 and delivery.skipped == 1
        assert [u.sequence for u in delivery.unusable] == [FIRST + 2]
        assert delivery.unusable[0].killmail_id == envelopes[2]["killmail_id"]
        tries = feed.paths().count(FakeR2Z2.path(FIRST + 2))
        assert tries >= 5 and sum(waits) >= 60.0
        assert f"R2Z2 sequence {FIRST + 2}: unusable killmail" in caplog.text
        assert c.counters.skipped_sequences == 1


def test_expired_sequences_resume_at_the_first_available(envelopes, caplog):
    """After a long stop the stored position may have expired: skip to the oldest object
    the feed still holds (found by bisection), and say how many were lost."""
    with FakeR2Z2(envelopes, first=FIRST) as feed:
        feed.expired_before = FIRST + 23
        c = client(feed.url, gap_confirmations=2)
        with caplog.at_level(logging.WARNING):
            delivery = c.next_mail(FIRST + 2, threading.Event())
        assert delivery is not None and delivery.sequence == FIRST + 23
        assert delivery.skipped == 21 and c.counters.skipped_sequences == 21
        assert "21 skipped, resuming at" in caplog.text
        probes = [p for p in feed.paths() if p != "/ephemeral/sequence.json"]
        assert len(probes) < 12  # bisection, not a walk over 21 sequences


def test_not_yet_published_is_not_a_gap(envelopes):
    """At the head of the feed a 404 means 'wait', however often it repeats."""
    with FakeR2Z2(envelopes, first=FIRST, published=FIRST + 9) as feed:
        c = client(feed.url, gap_confirmations=2)
        stop = threading.Event()
        threading.Timer(0.6, stop.set).start()
        assert c.next_mail(FIRST + 10, stop) is None
        assert FakeR2Z2.path(FIRST + 11) not in feed.paths()


def test_stop_interrupts_a_long_wait(envelopes):
    with FakeR2Z2(envelopes, first=FIRST, published=FIRST) as feed:
        c = client(feed.url, not_found_wait=30)
        stop = threading.Event()
        threading.Timer(0.3, stop.set).start()
        started = time.monotonic()
        assert c.next_mail(FIRST + 1, stop) is None
        assert time.monotonic() - started < 5


def _max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times[i:] if t - start < window) for i, start in enumerate(times))


def test_request_rate_stays_under_the_limit(envelopes):
    """Measured at the server, at the default rate (19/s): never more than 20 requests in
    any one-second window, and spread out (a burst of 20 at once would put far more than
    half of them in half a second). At 19/s a 21st request in one second would need one
    request delayed by over 50 ms relative to another, so this holds on a busy machine;
    the limiter's exact spacing at 20/s is checked on the client side below."""
    rate = 19
    with FakeR2Z2(envelopes, first=FIRST) as feed:
        c = client(feed.url)
        stop = threading.Event()
        c.latest_sequence(stop)
        for n in range(FIRST, FIRST + 40):
            assert c.next_mail(n, stop) is not None
        times = sorted(r.at for r in feed.requests)
        assert len(times) == 41
        assert _max_in_window(times, 1.0) <= 20
        assert _max_in_window(times, 0.5) <= 12
        assert times[-1] - times[0] >= 40 / rate - 0.1


def test_default_rate_is_19_with_no_burst():
    rate = R2Z2Client("http://127.0.0.1:9").limiter.bucket_factory.bucket.rates[0]
    assert (rate.limit, rate.interval, rate.burst) == (19, 1000, 1)
    with pytest.raises(ValueError):
        R2Z2Client("http://127.0.0.1:9", requests_per_second=21)


def test_limiter_alone_spaces_requests():
    """At 20/s: 25 acquisitions span at least 24 x 50 ms and are evenly spaced (median gap
    50 ms; a scheduling delay can only lengthen the total, not shorten it)."""
    import statistics

    limiter = make_limiter(20)
    stamps = []
    for _ in range(25):
        limiter.try_acquire("r2z2")
        stamps.append(time.monotonic())
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert stamps[-1] - stamps[0] >= 24 * 0.05 - 0.01
    assert statistics.median(gaps) >= 0.049


def test_a_redirect_loop_is_paced_and_is_an_error_with_backoff(envelopes, caplog):
    """A feed answering 302 to itself: every hop waits for the limiter (no burst of
    redirects), the loop ends as an error after DEFAULT_MAX_REDIRECTS hops, and the client
    backs off before asking again."""
    rate = 10
    hops = DEFAULT_MAX_REDIRECTS + 1  # the request and the redirects it follows
    waits: list[float] = []

    def sleep(stop: threading.Event, seconds: float) -> bool:
        waits.append(seconds)
        return stop.wait(seconds)

    with FakeR2Z2(envelopes, first=FIRST) as feed:
        feed.fail("/ephemeral/sequence.json", *["redirect"] * (2 * hops))
        c = client(
            feed.url,
            requests_per_second=rate,
            max_backoff=0.3,
            sleep=sleep,
            repeat_log_seconds=0,
        )
        with caplog.at_level(logging.WARNING, logger="wn_persist_plugin.sources.r2z2"):
            assert c.latest_sequence(threading.Event()) == FIRST + 39
        statuses = [r.status for r in feed.requests]
        assert statuses == [302] * (2 * hops) + [200]
        assert c.counters.errors == 2 and c.counters.requests == 2 * hops + 1
        assert waits == [0.3, 0.3]  # backoff: 0.5 s doubling, capped at max_backoff
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 2 and all("too many redirects" in w for w in warnings)
        times = [r.at for r in feed.requests]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        # Paced: no two requests closer than the limiter allows (with room for jitter),
        # never more than the rate in one second, and the backoff between the two loops.
        assert min(gaps) >= 0.5 / rate
        assert _max_in_window(times, 1.0) <= rate
        assert gaps[hops - 1] >= 0.3 and gaps[2 * hops - 1] >= 0.3
