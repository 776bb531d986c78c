"""Backfill benchmark: 30 days of 1m candles from the simulator (Upbit protocol) into a throwaway
test database, through the real adapter, HTTP on 127.0.0.1 and the shared Redis rate limiter.

The baseline is the physical minimum against the real venue: requests needed (43,200 candles /
200 per request = 216) divided by Upbit's quotation limit for candles (10 requests/s) = 21.6 s.
ratio = bound / measured time (1.0 = as fast as the venue allows; higher is better).
A second row runs the same backfill with every rate limit lifted, which shows our own overhead
(HTTP, parsing, upsert) apart from the venue's budget.

Needs Redis (``REDIS_URL``): ``make bench`` starts one. ``python bench/bench_stream.py`` also
works under ``python -m tradesite.devservices with-redis --``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DAYS = 30
MINUTE_MS = 60_000
ANCHOR_MS = 1_773_240_030_000  # fixed, so every run backfills the same candles


def _setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    import django

    django.setup()


def _backfill_once(*, rate_limits: bool) -> dict:
    from decimal import Decimal

    from markets.adapters import adapter_for
    from markets.backfill import CheckedRanges, backfill
    from markets.exchanges import ADAPTERS
    from markets.exchanges.base import RateGroup
    from markets.exchanges.ratelimit import InProcessRateLimiter
    from markets.models import Candle, Exchange, Symbol
    from markets.simulator.market import SymbolSpec, krw_tick
    from markets.simulator.server import SimConfig, SimulatorThread
    from markets.timeframes import floor_ms

    spec = SymbolSpec("KRW-BTC", "BTC", "KRW", 1.45e8, krw_tick, 1e-8, 0.0012, 2.0)
    config = SimConfig(seed=3, now_ms=ANCHOR_MS, history_days=DAYS + 0.5, venues=("upbit",),
                       symbols={"upbit": [spec]}, trade_rate=0.5, tick_s=0.5)
    config.faults.rate_limits = rate_limits
    sim = SimulatorThread(config)
    try:
        slug = "bench-sim" if rate_limits else "bench-sim-free"
        exchange = Exchange.objects.create(slug=slug, name="Bench", adapter="upbit",
                                           rest_url=sim.upbit_url, ws_url=sim.upbit_ws_url)
        symbol = Symbol.objects.create(exchange=exchange, code="KRW-BTC", base="BTC",
                                       quote="KRW", min_notional=Decimal("5000"))
        CheckedRanges(slug, "KRW-BTC", "1m").clear()
        clock = sim.sim.clock_ms

        def factory(ex):
            options = {"clock": lambda: clock() / 1000.0}
            if not rate_limits:
                groups = {name: RateGroup(10**9, 1.0)
                          for name in ADAPTERS["upbit"].capabilities.rate_groups}
                options["limiter"] = InProcessRateLimiter(slug, groups)
            return adapter_for(ex, **options)

        end = floor_ms(clock(), "1m")
        start = end - DAYS * 1440 * MINUTE_MS
        started = time.perf_counter()
        report = backfill([symbol], ["1m"], start_ms=start, end_ms=end, clock_ms=clock,
                          adapter_factory=factory, progress=False)
        elapsed = time.perf_counter() - started
        stored = Candle.objects.filter(symbol=symbol, timeframe="1m").count()
        again = backfill([symbol], ["1m"], start_ms=start, end_ms=end, clock_ms=clock,
                         adapter_factory=factory, progress=False)
        CheckedRanges(slug, "KRW-BTC", "1m").clear()
        return {"elapsed": elapsed, "requests": report.requests, "stored": stored,
                "inserted": report.inserted, "second_requests": again.requests,
                "expected": (end - start) // MINUTE_MS}
    finally:
        sim.stop()


def run() -> list[dict]:
    _setup_django()
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    from markets.exchanges.upbit import UPBIT_CAPABILITIES

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        limited = _backfill_once(rate_limits=True)
        free = _backfill_once(rate_limits=False)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
    for result in (limited, free):
        if result["stored"] != result["expected"] or result["second_requests"] != 0:
            raise AssertionError(f"backfill incomplete or not resumable: {result}")
    per_request = UPBIT_CAPABILITIES.max_candles_per_request
    rate = UPBIT_CAPABILITIES.rate_groups["candles"].capacity / \
        UPBIT_CAPABILITIES.rate_groups["candles"].window_s
    needed = math.ceil(limited["expected"] / per_request)
    bound = needed / rate
    return [
        {"name": f"backfill {DAYS}d of 1m ({limited['expected']} candles, "
                 f"{limited['requests']} requests), venue limits on",
         "value": round(limited["elapsed"], 2), "unit": "s",
         "baseline": f"Upbit bound: {needed} requests / {rate:g} per s",
         "baseline_value": round(bound, 2), "ratio": round(bound / limited["elapsed"], 3)},
        {"name": f"backfill {DAYS}d of 1m, rate limits lifted (our overhead)",
         "value": round(free["elapsed"], 2), "unit": "s",
         "baseline": f"Upbit bound: {needed} requests / {rate:g} per s",
         "baseline_value": round(bound, 2), "ratio": round(bound / free["elapsed"], 3)},
        {"name": "backfill throughput, rate limits lifted",
         "value": round(free["expected"] / free["elapsed"]), "unit": "candles/s",
         "baseline": "venue-bound throughput (200 candles x 10 requests/s)",
         "baseline_value": per_request * rate,
         "ratio": round(free["expected"] / free["elapsed"] / (per_request * rate), 3)},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
