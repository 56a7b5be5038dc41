"""zKillboard history and the static data download against the local fakes: our
User-Agent on every request, retries from the shared session, the source error family."""

from __future__ import annotations

import datetime as dt

import pytest
from fakes_esi import *  # noqa: F403 - the fake servers' fixtures

from wn_persist_plugin.enrichment import static_data
from wn_persist_plugin.errors import (
    SourceError,
    SourceNotFound,
    SourceUnavailable,
    StaticDataUnavailable,
    UniverseImportError,
)
from wn_persist_plugin.sources.http import DEFAULT_RETRIES, Backoff, make_session, user_agent
from wn_persist_plugin.sources.zkill_history import ZkillHistoryClient


def _a_day(fake_data) -> tuple[dt.date, dict[str, str]]:
    stamp, index = max(fake_data.history.items(), key=lambda item: len(item[1]))
    return dt.datetime.strptime(stamp, "%Y%m%d").date(), index


def test_history_day_with_our_user_agent_and_a_retried_503(fake_server, fake_data):
    day, index = _a_day(fake_data)
    fake_server.script(r"^/history/", [(503, {})])
    client = ZkillHistoryClient(fake_server.url + "/history", contact="ops@example.org")
    assert client.day(day) == index
    assert fake_server.user_agents() == [user_agent("ops@example.org")] * 2
    assert [p for _, p, _ in fake_server.received] == [f"/history/{day:%Y%m%d}.json"] * 2
    assert fake_server.received[0][2]["accept"] == "application/json"


def test_history_errors_are_source_errors(fake_server, fake_data):
    day, _ = _a_day(fake_data)
    quick = make_session(backoff=Backoff(first=0.01, cap=0.05))
    client = ZkillHistoryClient(fake_server.url + "/history", session=quick)
    fake_server.script(r"^/history/", [(404, {})])
    with pytest.raises(SourceNotFound, match=rf"^zKillboard history: {day:%Y%m%d}.json: HTTP 404"):
        client.day(day)
    fake_server.script(r"^/history/", [(503, {})] * (DEFAULT_RETRIES + 1))
    with pytest.raises(SourceUnavailable) as info:
        client.day(day)
    assert info.value.status == 503 and str(info.value).endswith("HTTP 503 (scripted 503)")
    fake_server.script(r"^/history/", [(403, {})])
    with pytest.raises(SourceError) as refused:
        client.day(day)
    assert refused.value.status == 403 and not isinstance(refused.value, SourceUnavailable)


def test_history_unreachable_is_unavailable(fake_server, fake_data):
    day, _ = _a_day(fake_data)
    url = fake_server.url
    fake_server.stop()
    client = ZkillHistoryClient(url + "/history", session=make_session(retries=0))
    with pytest.raises(
        SourceUnavailable, match=r"^zKillboard history: \d{8}\.json: connection refused$"
    ):
        client.day(day)


def test_static_data_download_sends_our_user_agent(fake_server, tmp_path):
    written = static_data.download(
        tmp_path, fake_server.url + "/dump/latest", files=["mapRegions.csv"], contact="me@x.org"
    )
    assert [p.name for p in written] == ["mapRegions.csv"]
    assert fake_server.user_agents() == [user_agent("me@x.org")]
    assert fake_server.received[0][2]["accept"] == "*/*"  # a data file, not JSON


def test_static_data_failures_are_one_line_source_errors(fake_server, tmp_path):
    url = fake_server.url
    fake_server.stop()
    with pytest.raises(StaticDataUnavailable) as info:
        static_data.download(
            tmp_path / "sde", url, files=["mapRegions.csv"], session=make_session(retries=0)
        )
    assert isinstance(info.value, UniverseImportError) and isinstance(info.value, SourceError)
    # Both layouts are tried, and both named, in one line.
    assert str(info.value) == (
        f"static data (SDE): mapRegions.csv: tried {url}/csv/mapRegions.csv: connection "
        f"refused; {url}/mapRegions.csv.bz2: connection refused"
    )
    assert not list((tmp_path / "sde").iterdir())
