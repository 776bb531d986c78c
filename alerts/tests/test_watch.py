"""The market rules inside the stream process (``alerts.watch``): loaded once and reloaded when
a rule is saved (the Redis stamp), evaluated without a query per tick, stored from their own
thread with dedupe and cooldown, and sent to the delivery task at once."""

from __future__ import annotations

import asyncio

import pytest

from alerts import rule_changes, watch
from alerts.models import AlertRule, Notification
from markets import heartbeat
from markets import stream_hooks as hooks

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def market_rule(owner, in_app, symbol):
    def make(name="btc 100", kind="price_cross", **params):
        r = AlertRule(owner=owner, name=name, kind=kind, symbol=symbol,
                      params=params or {"level": "100", "direction": "up"})
        r.full_clean()
        r.save()
        return r
    return make


def drain(w: watch.MarketWatch) -> None:
    w.pool.submit(lambda: None).result(10)


def test_the_alerts_app_registers_its_watcher_with_the_stream():
    assert any(isinstance(x, watch.MarketWatch) for x in hooks.make_all())


def test_a_crossing_stores_one_notification_and_sends_it_at_once(
        market_rule, scheduled, clean_redis, django_assert_num_queries):
    rule = market_rule()
    w = watch.MarketWatch()
    asyncio.run(w.refresh())
    with django_assert_num_queries(0):  # on the event loop: no query, ever
        for i, price in enumerate([90, 95, 101, 102, 103]):
            w.on_price("sim", "KRW-BTC", price, price, price, 1_000 * i)
        w.on_price("sim", "KRW-ETH", 1, 1, 1, 0)  # a symbol without rules
    drain(w)
    rows = list(Notification.objects.filter(rule=rule))
    assert len(rows) == 1 and rows[0].status == "new" and "crossed above 100" in rows[0].title
    assert scheduled == [rows[0].pk]
    w.close()


def test_saving_a_rule_bumps_the_stamp_and_the_watch_reloads(market_rule, scheduled,
                                                             clean_redis):
    w = watch.MarketWatch()
    asyncio.run(w.refresh())
    assert w.evaluator.index.rules == {}
    before = heartbeat.client().get(rule_changes.changed_key())
    rule = market_rule()
    assert heartbeat.client().get(rule_changes.changed_key()) != before
    asyncio.run(w.refresh())
    assert set(w.evaluator.index.rules) == {rule.pk}
    rule.delete()
    asyncio.run(w.refresh())
    assert w.evaluator.index.rules == {}
    w.close()


def test_an_unchanged_stamp_does_not_reload(market_rule, clean_redis):
    market_rule()
    loads = []

    def load():
        loads.append(1)
        return watch.load_rules()

    w = watch.MarketWatch(load=load)
    for _ in range(3):
        asyncio.run(w.refresh())
    assert len(loads) == 1
    w.close()


def test_no_rule_ever_saved_does_not_reload_on_every_refresh(clean_redis, caplog):
    """The stamp is absent until the first rule is saved: the demo's stream logged "0 market
    rule(s)" and queried the database every 2 s."""
    assert heartbeat.client().get(rule_changes.changed_key()) is None
    loads = []

    def load():
        loads.append(1)
        return []

    w = watch.MarketWatch(load=load)
    with caplog.at_level("INFO", logger="alerts.watch"):
        for _ in range(3):
            asyncio.run(w.refresh())
    assert len(loads) == 1
    assert sum("market rule(s)" in r.getMessage() for r in caplog.records) == 1
    w.close()


def test_without_redis_the_rules_reload_every_fallback_period(monkeypatch):
    loads, now = [], [5.0]  # a machine booted 5 s ago

    def load():
        loads.append(now[0])
        return []

    def stamp():
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(watch.time, "monotonic", lambda: now[0])
    w = watch.MarketWatch(load=load, stamp=stamp)
    for step in range(40):  # a refresh every 2 s for 80 s
        now[0] = 5.0 + 2 * step
        asyncio.run(w.refresh())
    # The first refresh loads (nothing loaded yet), then one every RELOAD_FALLBACK_S.
    assert loads == [5.0, 35.0, 65.0]
    w.close()


def test_a_rule_paused_after_the_load_stores_nothing(market_rule, scheduled, clean_redis):
    rule = market_rule()
    w = watch.MarketWatch()
    asyncio.run(w.refresh())
    AlertRule.objects.filter(pk=rule.pk).update(is_active=False)  # no signal: stale index
    for i, price in enumerate([90, 101]):
        w.on_price("sim", "KRW-BTC", price, price, price, 1_000 * i)
    drain(w)
    assert not Notification.objects.exists() and scheduled == []
    w.close()


def test_the_database_cooldown_holds_across_two_stream_processes(market_rule, scheduled,
                                                                 clean_redis):
    rule = market_rule()
    AlertRule.objects.filter(pk=rule.pk).update(cooldown_s=3600)
    a, b = watch.MarketWatch(), watch.MarketWatch()
    for n, w in enumerate((a, b), start=1):
        asyncio.run(w.refresh())
        for i, price in enumerate([90, 101]):
            # each process sees its own crossing (its own time: another event, not a dedupe)
            w.on_price("sim", "KRW-BTC", price, price, price, 1_000 * i + n)
        drain(w)
        w.close()
    statuses = sorted(Notification.objects.filter(rule=rule).values_list("status", flat=True))
    assert statuses == ["new", "suppressed"] and len(scheduled) == 1


def test_a_volume_spike_on_closed_bars(market_rule, scheduled, clean_redis):
    rule = market_rule(name="vol", kind="volume_spike", timeframe="1m", factor="3", bars=3)
    w = watch.MarketWatch()
    asyncio.run(w.refresh())
    for i, v in enumerate([10, 10, 10, 50]):
        w.on_bar("sim", "KRW-BTC", "1m", {"t": i * 60_000, "o": 1, "h": 1, "l": 1, "c": 1,
                                          "v": v})
    w.on_bar("sim", "KRW-BTC", "5m", {"t": 0, "c": 1, "v": 1e9})  # no rule on 5m
    drain(w)
    rows = list(Notification.objects.filter(rule=rule))
    assert len(rows) == 1 and "volume spike on 1m" in rows[0].title
    w.close()


def test_an_indicator_rule_reads_its_history_from_the_candle_store_once(
        market_rule, scheduled, clean_redis, symbol):
    from markets.candles import upsert_candles

    closes = [200.0 - 3 * i for i in range(40)]  # falling: RSI(14) near 0
    upsert_candles(symbol.pk, "1m", [(i * 60_000, c, c + 1, c - 1, c, 1.0)
                                     for i, c in enumerate(closes)])
    rule = market_rule(name="rsi", kind="indicator", indicator="rsi", period=14,
                       timeframe="1m", op="below", value="25")
    w = watch.MarketWatch()
    asyncio.run(w.refresh())
    for t in (40, 41):
        c = closes[-1] - 3 * (t - 39)
        w.on_bar("sim", "KRW-BTC", "1m", {"t": t * 60_000, "o": c, "h": c, "l": c, "c": c,
                                          "v": 1.0})
    drain(w)
    rows = list(Notification.objects.filter(rule=rule))
    assert len(rows) == 1 and "RSI(14) on 1m below 25" in rows[0].title  # once, not per bar
    history = w.bars[("sim", "KRW-BTC", "1m")]  # the 40 stored bars, then the two pushed
    assert len(history) == 42 and history.maxlen == w.evaluator.index.history_needed(
        "sim", "KRW-BTC", "1m")
    w.close()
