"""/health: database, Redis, beat, workers and stream; 200 only when all are fine. Anonymous
callers learn only ok / not ok; staff sessions and API tokens get the checks."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from markets import heartbeat
from tradesite.celery import QUEUES

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


@pytest.fixture
def client(db):
    """A staff session: the checks' details are part of the answer."""
    staff = get_user_model().objects.create_user("ops", password="pw-ops", is_staff=True)
    logged_in = Client()
    logged_in.force_login(staff)
    return logged_in


def all_alive():
    heartbeat.beat("beat", "scheduler")
    heartbeat.beat("worker", "w1@host", queues=",".join(QUEUES))


def test_healthy_stack_answers_200(client, clean_redis):
    all_alive()
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["ok"] is True
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert body["checks"]["beat"]["last_tick_seconds_ago"] < 5
    assert body["checks"]["workers"]["workers"]["w1@host"]["queues"] == list(QUEUES)


def test_missing_beat_answers_503_and_says_why(client, clean_redis):
    heartbeat.beat("worker", "w1@host", queues=",".join(QUEUES))
    response = client.get("/health")
    assert response.status_code == 503
    assert "beat" in response.json()["checks"]["beat"]["error"]


def test_stale_beat_is_unhealthy(client, clean_redis):
    all_alive()
    old = int((time.time() - 600) * 1000)
    clean_redis.hset(heartbeat.key("beat", "scheduler"), "ts_ms", old)
    assert client.get("/health").status_code == 503


def test_a_queue_without_worker_is_unhealthy(client, clean_redis):
    heartbeat.beat("beat", "scheduler")
    heartbeat.beat("worker", "w1@host", queues="collector,trader")
    response = client.get("/health")
    assert response.status_code == 503
    assert "optimizer" in response.json()["checks"]["workers"]["error"]


def test_stream_heartbeats_are_reported_per_venue(client, clean_redis):
    all_alive()
    heartbeat.beat("stream", "sim", reconnects=2, skipped=1)
    stream = client.get("/health").json()["checks"]["stream"]
    assert stream["ok"] and stream["venues"]["sim"]["reconnects"] == "2"
    clean_redis.hset(heartbeat.key("stream", "sim"), "ts_ms", int((time.time() - 600) * 1000))
    assert client.get("/health").status_code == 503


def test_stream_shards_are_listed_and_their_venue_heartbeats_merged(client, clean_redis):
    from markets.stream.shards import ShardRegistry

    all_alive()
    ShardRegistry("a", None).beat(["sim:KRW-BTC", "sim:KRW-ETH"])
    ShardRegistry("b", frozenset({"sim"})).beat(["sim:KRW-XRP"])
    heartbeat.beat("stream", "sim@a", state="streaming", symbols=2, reconnects=1)
    heartbeat.beat("stream", "sim@b", state="streaming", symbols=1, reconnects=0)
    stream = client.get("/health").json()["checks"]["stream"]
    assert stream["ok"]
    assert {k: (v["symbols"], v["venues"]) for k, v in stream["shards"].items()} == {
        "a": (2, "*"), "b": (1, "sim")}
    sim = stream["venues"]["sim"]
    assert sim["shards"] == ["a", "b"] and sim["symbols"] == "3" and sim["reconnects"] == "1"

    heartbeat.beat("stream", "sim@b", state="down")  # one shard down: the venue is not ok
    assert client.get("/health").status_code == 503


def test_unreachable_redis_answers_503(client, redis_url):
    heartbeat.client.cache_clear()
    try:
        with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
            response = client.get("/health")
    finally:
        heartbeat.client.cache_clear()
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"]["ok"] and not body["checks"]["redis"]["ok"]
    assert body["checks"]["beat"]["error"].startswith("unknown")


def test_every_active_venue_with_active_symbols_needs_a_fresh_stream_heartbeat(
        client, clean_redis, symbol):
    from markets.models import Exchange, Symbol

    all_alive()
    response = client.get("/health")
    assert response.status_code == 503
    assert "no stream heartbeat for active venue(s): sim" in (
        response.json()["checks"]["stream"]["error"])

    heartbeat.beat("stream", "sim", state="streaming", last_message_ms=int(time.time() * 1000))
    assert client.get("/health").status_code == 200

    heartbeat.beat("stream", "sim", state="down")
    body = client.get("/health").json()
    assert body["checks"]["stream"]["ok"] is False and "down" in body["checks"]["stream"]["error"]

    heartbeat.beat("stream", "sim", state="polling")  # REST fallback while reconnecting
    assert client.get("/health").status_code == 200

    # An inactive venue, or an active one without active symbols, needs no stream.
    off = Exchange.objects.create(slug="upbit", name="Upbit", adapter="upbit",
                                  rest_url="https://api.upbit.com", ws_url="wss://api.upbit.com",
                                  is_active=False)
    Symbol.objects.create(exchange=off, code="KRW-BTC", base="BTC", quote="KRW")
    Exchange.objects.create(slug="bithumb", name="Bithumb", adapter="bithumb",
                            rest_url="https://api.bithumb.com", ws_url="wss://ws-api.bithumb.com")
    assert client.get("/health").status_code == 200


def test_anonymous_callers_learn_only_ok_or_not(clean_redis, db):
    anonymous = Client()
    all_alive()
    response = anonymous.get("/health")
    assert response.status_code == 200 and response.json() == {"ok": True}
    heartbeat.client().delete(heartbeat.key("beat", "scheduler"))
    response = anonymous.get("/health")
    assert response.status_code == 503 and response.json() == {"ok": False}
    for secret in ("sqlite", "postgresql", "w1@host", "queues", "beat"):
        assert secret not in response.content.decode()


def test_a_logged_in_non_staff_user_gets_no_details(clean_redis, db):
    user = get_user_model().objects.create_user("nobody", password="pw")
    session = Client()
    session.force_login(user)
    all_alive()
    assert session.get("/health").json() == {"ok": True}


def test_a_valid_api_token_gets_the_details(clean_redis, db):
    from orders.models import ApiToken

    owner = get_user_model().objects.create_user("script", password="pw")
    _, key = ApiToken.issue(owner, "monitor")
    all_alive()
    body = Client().get("/health", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert body["checks"]["workers"]["workers"]["w1@host"]["queues"] == list(QUEUES)
    for bad in (f"Bearer {key}x", "Bearer ", f"Basic {key}", key):
        assert Client().get("/health", HTTP_AUTHORIZATION=bad).json() == {"ok": True}, bad
    owner.is_active = False
    owner.save()
    assert Client().get("/health", HTTP_AUTHORIZATION=f"Bearer {key}").json() == {"ok": True}
