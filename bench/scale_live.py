"""The LIVE phase of ``bench scale`` (issue 20): configs on a live account whose orders go to
the simulator's Binance spot venue on 127.0.0.1, and the time from the trade that closed the
bar to the order acknowledged by the simulator. Not a benchmark module of its own (``make
bench`` runs only ``bench_*``): :mod:`bench.bench_scale` calls it.

What is timed, per order: from the venue time stamp of the trade that closed the bar to the
commit of the ledger's update of the order row with the simulator's answer to the REST order
(``orders.services.ledger.apply_order_info`` returned: the venue's order id, status and fills
stored). In between: the evaluation task, the live account's balances fetched from the venue
(``broker_state``: a signed REST call per account and bar), the signals and the order rows
saved (status ``new``), the row claimed (``submitted``), the signed ``POST /api/v3/order`` and
its answer applied. The REST round trip alone (``LiveBroker.place``) is timed too.

Money safety: live orders go only to a venue whose REST URL is on 127.0.0.1 (the simulator this
bench started); the worker turns ``TRADING_LIVE`` on only when every venue of the scratch
database is, and refuses to send an order anywhere else.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from bench.common import percentile, row

MINUTE = 60_000
LOCAL = "127.0.0.1"
#: Quote spent per entry (USDT): the simulator's demo account holds 100,000.
AMOUNT = 20.0


def _local(url: str) -> bool:
    return urlsplit(url).hostname == LOCAL


def worker_hooks(done) -> None:
    """In the worker process: allow live orders to the simulator only, and report each live
    order's venue answer committed (``("acked", key, wall ms, None)``) and the REST round
    trips of each order and balance fetch (``("place" | "balances", key, ms, None)``). ``key``
    (symbol, bar) is set by the worker per job in ``current``; warm-ups report nothing."""
    from django.conf import settings
    from django.db import transaction

    from markets.models import Exchange
    from orders.brokers.live import LiveBroker
    from orders.services import ledger

    remote = [e.slug for e in Exchange.objects.all() if not _local(e.rest_url)]
    if remote:
        raise RuntimeError(f"bench scale: venues {remote} are not on {LOCAL}; no live orders")
    settings.TRADING_LIVE = True
    place, balances, apply = LiveBroker.place, LiveBroker.balances, ledger.apply_order_info

    def timed(kind, call):
        def wrapper(self, *args, **kwargs):
            if not _local(self.adapter.rest_url):
                raise RuntimeError(f"bench scale: refusing a live call to {self.adapter.rest_url}")
            started = time.perf_counter()
            result = call(self, *args, **kwargs)
            if current["key"] is not None:
                done.put((kind, current["key"], (time.perf_counter() - started) * 1000, None))
            return result
        return wrapper

    def timed_apply(order, info, **kwargs):
        result = apply(order, info, **kwargs)
        if result.account.mode == "live" and result.exchange_order_id:
            key = current["key"]
            transaction.on_commit(lambda: done.put(("acked", key, time.time() * 1000, None)))
        return result

    LiveBroker.place = timed("place", place)
    LiveBroker.balances = timed("balances", balances)
    ledger.apply_order_info = timed_apply


current: dict = {"key": None}


def warm(account_pk: int) -> None:
    """In the worker: one balance fetch through the account's live broker (imports, signing,
    the limiter's Redis connection), so the measured bar is not the process's first."""
    from markets.models import Account
    from orders.brokers import broker_for

    current["key"] = None
    broker = broker_for(Account.objects.select_related("exchange").get(pk=account_pk))
    broker.balances()
    broker.close()


def _accounts(user, exchange, symbols, groups: list[tuple[str, int]], venue: dict) -> list[int]:
    """One live account per symbol (the simulator's demo key: ``venue["key"]``), ``n`` active
    configs on it, every other config inactive; the symbols get the simulator's tick and step
    (``venue["rules"][code]``). Returns the account ids."""
    from decimal import Decimal

    from markets.models import Account
    from strategies.models import StrategyConfig

    if not _local(exchange.rest_url):
        raise RuntimeError(f"bench scale: {exchange.rest_url} is not the simulator on {LOCAL}")
    key, secret = venue["key"]
    StrategyConfig.objects.filter(is_active=True).update(is_active=False)
    accounts = []
    for code, n in groups:
        tick, step = venue["rules"][code]
        symbol = symbols[code]
        symbol.tick_size, symbol.step_size = Decimal(repr(tick)), Decimal(repr(step))
        symbol.save(update_fields=["tick_size", "step_size"])
        account = Account.objects.create(owner=user, exchange=exchange, label=f"live {code}",
                                         mode="live", api_key=key, api_secret=secret,
                                         quote_asset="USDT")
        accounts.append(account.pk)
        for k in range(n):
            StrategyConfig.objects.create(
                owner=user, name=f"live{code}{k}", strategy="bench_alternate", symbol=symbol,
                timeframe="1m", account=account, is_active=True, sizing_method="fixed_quote",
                sizing_params={"amount": AMOUNT})
    return accounts


async def phase(probe, gate, world, warm_jobs, paper: dict, set_offset) -> list[dict]:
    """Two minute boundaries: 1 live config on the busiest symbol and 10 on the second busiest
    (one live account each, each symbol's evaluation in its own worker); then 100 on the third
    busiest (one account). ``world`` is ``(user, exchange, symbols, ranked, venue)``
    (``venue``: the simulator's demo key and each symbol's tick and step); ``warm_jobs`` puts a
    warm-up job to each worker; ``paper`` the paper 1-config latencies of this run (the
    baseline)."""
    ranked = world[3]
    rows = []
    for groups in ([(ranked[0], 1), (ranked[1], 10)], [(ranked[2], 100)]):
        rows += await _boundary(probe, gate, world, warm_jobs, paper, set_offset, groups)
    return rows


async def _boundary(probe, gate, world, warm_jobs, paper, set_offset, groups) -> list[dict]:
    user, exchange, symbols, ranked, venue = world
    accounts = await asyncio.to_thread(_accounts, user, exchange, symbols, groups, venue)
    warm_jobs((accounts + accounts)[:2])  # one warm-up per worker
    await gate.refresh()
    boundary = (int(time.time() * 1000 + 3000) // MINUTE + 1) * MINUTE
    bar = boundary - MINUTE
    await asyncio.to_thread(set_offset, (bar // MINUTE) % 2)  # this bar is an entry
    await asyncio.sleep(max(0.0, boundary / 1000 - time.time()))
    deadline = time.monotonic() + 40
    live = probe.live
    expected = sum(n for _, n in groups)
    while (time.monotonic() < deadline
           and sum(1 for k, _ in live["acked"] if k[1] == bar) < expected):
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    rows = []
    for code, n in groups:
        label = "1 config" if n == 1 else f"{n} configs, one account"
        key = (code, bar)
        closed = probe.closed_by.get(key, bar + MINUTE)
        acked = [t - closed for k, t in live["acked"] if k == key]
        saved = [t - closed for k, t in probe.orders if k == key]
        place = [ms for k, ms in live["place"] if k == key]
        fetch = [ms for k, ms in live["balances"] if k == key]
        rank = ("busiest", "2nd busiest", "3rd busiest")[ranked.index(code)]
        where = f"{label} ({rank} symbol)"
        for pct in (50, 99):
            if n == 1:
                base, value = "paper order saved, 1 config, this run", percentile(paper["1"], pct)
            else:
                base, value = "goal p99 (paper)", 100.0
            rows.append(row(f"tick to LIVE order acked by the simulator, {where}: p{pct} "
                            f"({len(acked)} of {n} orders)", percentile(acked, pct), "ms",
                            base, value, digits=1, ratio_digits=2))
        rows += [
            row(f"LIVE {label}: tick to order row saved (status new, before sending) p50",
                percentile(saved, 50), "ms", None, None, digits=1),
            row(f"LIVE {label}: balances fetched before deciding (signed REST, {len(fetch)})",
                percentile(fetch, 50), "ms", None, None, digits=1),
            row(f"LIVE {label}: REST order round trip, first of the bar (new adapter: "
                "exchangeInfo loaded)", place[0] if place else None, "ms", None, None, digits=1),
        ]
        if len(place) > 1:
            rows.append(row(f"LIVE {label}: REST order round trip, the others p50 "
                            f"({len(place) - 1})", percentile(place[1:], 50), "ms", None, None,
                            digits=1))
    return rows
