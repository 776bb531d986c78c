"""/health: database, Redis, beat, workers and stream; 200 only when all are fine."""

import time

import pytest
from django.test import override_settings

from markets import heartbeat
from tradesite.celery import QUEUES

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


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
