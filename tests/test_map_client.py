"""The Wanderer map API client against a local fake map."""

from __future__ import annotations

import pytest
from fakes.wanderer_map import FakeMap, map_entry

from wn_persist_plugin.errors import MapUnavailable, SourceUnavailable
from wn_persist_plugin.sources.http import make_session, user_agent
from wn_persist_plugin.sources.wanderer_map import MapClient, tracked_from_payload

KEY = "s3cret-map-key-123"


def entries():
    return [
        map_entry(2123019188, name="Nimby Karen"),
        map_entry(95465499),
        map_entry(1000001, tracked=False),
        map_entry(2123019188),  # a duplicate entry counts once
    ]


def test_tracked_entries_as_integer_ids():
    with FakeMap("my-map", KEY, entries()) as fake:
        result = MapClient(fake.url, "my-map", KEY, timeout=1).fetch()
        assert result.ids == frozenset({2123019188, 95465499})
        assert [e["character"]["eve_id"] for e in result.entries] == ["95465499", "2123019188"]
        request = fake.requests[-1]
        assert request.path == "/api/maps/my-map/tracked-characters"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.headers["user-agent"] == user_agent(None)
        assert request.headers["accept"] == "application/json"


def test_user_agent_with_contact_and_handed_in_session():
    with FakeMap("my-map", KEY, entries()) as fake:
        MapClient(fake.url, "my-map", KEY, contact="ops@example.org").fetch()
        shared = make_session("tests@example.org")
        MapClient(fake.url, "my-map", KEY, session=shared).fetch()
        agents = [r.headers["user-agent"] for r in fake.requests]
        assert agents == [user_agent("ops@example.org"), user_agent("tests@example.org")]
        assert "authorization" not in {k.lower() for k in shared.headers}  # key per request


def test_payload_shapes():
    assert tracked_from_payload({"data": []}).ids == frozenset()
    odd = {"data": [{"tracked": "yes", "character": {"eve_id": "5"}}, {"tracked": True}, 7]}
    assert tracked_from_payload(odd).ids == frozenset()
    ints = {"data": [{"tracked": True, "character": {"eve_id": 42}}]}
    assert tracked_from_payload(ints).ids == frozenset({42})
    for bad in ({"error": "x"}, [], {"data": None}):
        with pytest.raises(MapUnavailable):
            tracked_from_payload(bad)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("500", "HTTP 500"),
        ("404", "HTTP 404"),
        ("429:5", "HTTP 429"),
        ("garbage", "not JSON"),
        ("timeout:1.0", "read timed out after 0.3 s"),
        ("close", "connection closed without an answer"),
    ],
)
def test_failures_raise_map_unavailable_without_the_key(fault, reason):
    with FakeMap("my-map", KEY, entries()) as fake:
        fake.fail("*", fault)
        client = MapClient(fake.url, "my-map", KEY, timeout=0.3)
        with pytest.raises(MapUnavailable) as info:
            client.fetch()
        assert isinstance(info.value, SourceUnavailable)
        message = str(info.value)
        assert message.startswith("Wanderer map API: ") and reason in message
        assert KEY not in message and "\n" not in message
        assert client.fetch().ids == frozenset({2123019188, 95465499})


UNAUTHORIZED = (
    "^Wanderer map API: HTTP 401: the API token \\(MAP_API_KEY\\) is wrong, or the map's "
    "subscription is inactive$"
)


def test_wrong_key_and_wrong_map():
    with FakeMap("my-map", KEY, entries()) as fake:
        with pytest.raises(MapUnavailable, match=UNAUTHORIZED) as info:
            MapClient(fake.url, "my-map", "wrong-key").fetch()
        assert "wrong-key" not in str(info.value)
        with pytest.raises(MapUnavailable, match="check MAP_NAME"):
            MapClient(fake.url, "other-map", KEY).fetch()


def test_inactive_subscription_and_disabled_public_api():
    with FakeMap("my-map", KEY, entries()) as fake:
        client = MapClient(fake.url, "my-map", KEY, contact="ops@example.org")
        fake.subscription_active = False
        with pytest.raises(MapUnavailable, match=UNAUTHORIZED) as info:
            client.fetch()
        assert info.value.status == 401
        fake.subscription_active, fake.public_api = True, False
        with pytest.raises(MapUnavailable) as info:
            client.fetch()
        assert str(info.value) == (
            "Wanderer map API: HTTP 403: the map's public API is disabled "
            "(turn it on in the map's settings)"
        )
        assert {r.headers["user-agent"] for r in fake.requests} == {user_agent("ops@example.org")}


def test_server_down():
    with FakeMap("my-map", KEY, entries()) as fake:
        url = fake.url
    with pytest.raises(MapUnavailable, match="^Wanderer map API: connection refused$"):
        MapClient(url, "my-map", KEY, timeout=0.5).fetch()
