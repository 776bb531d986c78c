"""Trading benchmarks: latency from a closed bar to each order saved, through the real path
(``orders.evaluation.evaluate_bar`` -> ``services.execute_signals`` -> paper broker -> rows).

Runs on a scratch SQLite database in a temporary folder (migrated here) with the in-memory
channel layer (the pushes are not what is measured; Redis fan-out is the stream's benchmark).

"Order saved" = the commit of the transaction that inserted the Order row has returned: the
order is durable and may be sent. The bench sees it without relying on the code under test: a
database execute wrapper notices every ``INSERT INTO orders_order`` (its row count from the
statement) and registers a ``transaction.on_commit`` callback at that point, which takes the
time stamp when the commit is done (at once under autocommit; never if rolled back). This works
for ``save()``, ``create()`` and ``bulk_create()`` alike (``post_save`` does not fire for bulk
inserts). Latency of an order = that time minus the time ``evaluate_bar`` started for its bar,
so it includes loading candles, the signals, every other config decided in the same bar, the
gates, sizing and the commit; the paper fills come after the commit and are not in it (they
are in the wall time). The same interval is also given in CPU time of the evaluating thread
(``time.thread_time``): the work itself, without the waits for a CPU that other processes on a
shared machine cause. Queries per order: every query of the bars / orders, and the queries
run until the bar's last order was saved / orders.

``python bench/bench_trading.py`` prints the rows.

Goal (issue 7): p99 < 250 ms with 100 active configs on one symbol.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

MINUTE = 60_000
T0 = 1_767_225_600_000
GOAL_P99_MS = 250.0


def _setup_django(folder: str) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _strategy():
    from strategies import registry
    from strategies.base import ENTER_LONG, EXIT_LONG, Signals, Strategy
    from strategies.params import Params, param

    @dataclasses.dataclass(frozen=True)
    class AlternateParams(Params):
        offset: int = param(0, min=0, max=1)

    class Alternate(Strategy):
        """Enters on even minutes, exits on odd ones: an order on every bar."""

        name = "bench_alternate"
        Params = AlternateParams

        def lookback(self):
            return 50

        def signals(self, candles):
            minute = (candles.open_time_ms // MINUTE + self.params.offset) % 2
            return Signals(actions=np.where(minute == 0, ENTER_LONG, EXIT_LONG).astype(np.int8))

    if "bench_alternate" not in registry.names():
        registry.register(Alternate)


def _world(n_symbols: int, configs_per_symbol: int, bars: int, tag: str):
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from markets.candles import upsert_candles
    from markets.models import Account, Balance, Exchange, Symbol
    from strategies.models import StrategyConfig

    exchange, _ = Exchange.objects.get_or_create(
        slug="bench", defaults=dict(name="Bench", adapter="upbit", rest_url="http://127.0.0.1:1",
                                    ws_url="ws://127.0.0.1:1"),
    )
    user = get_user_model().objects.create_user(f"bench-{tag}")
    symbols = []
    rng = np.random.default_rng(1)
    for s in range(n_symbols):
        symbol = Symbol.objects.create(
            exchange=exchange, code=f"KRW-B{tag}{s}", base=f"B{tag}{s}", quote="KRW",
            min_notional=Decimal("5000"), max_leverage=1,
        )
        closes = 50_000_000 * np.exp(np.cumsum(rng.normal(0, 0.001, bars)))
        rows = [(T0 + i * MINUTE, c, c * 1.001, c * 0.999, c, 1.0) for i, c in enumerate(closes)]
        upsert_candles(symbol.pk, "1m", rows)
        for k in range(configs_per_symbol):
            account = Account.objects.create(owner=user, exchange=exchange, label=f"a{s}-{k}")
            Balance.objects.create(account=account, asset="KRW", free=Decimal("10000000"))
            StrategyConfig.objects.create(
                owner=user, name=f"c{s}-{k}", strategy="bench_alternate", symbol=symbol,
                timeframe="1m", account=account, is_active=True,
            )
        symbols.append(symbol)
    return symbols


def _inserted_rows(sql: str, params, many: bool) -> int:
    """Rows an ``INSERT INTO t (c1, c2, ...) VALUES ...`` statement writes."""
    if many:
        return len(params)
    columns = sql[sql.index("(") + 1 : sql.index(")")].count(",") + 1
    return max(len(params or ()) // columns, 1)


def _measure(symbols, bar_indexes) -> dict:
    """Per-order latencies (ms), the total wall time (s) over the bars and symbols, and the
    query counts (all, and until each bar's last order was saved)."""
    from django.db import connection, transaction

    from orders import evaluation

    saved: list[tuple[float, float]] = []
    queries = 0
    queries_at_save = 0

    def on_saved(rows: int) -> None:
        nonlocal queries_at_save
        saved.extend([(time.perf_counter(), time.thread_time())] * rows)
        queries_at_save = queries

    def watch(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        result = execute(sql, params, many, context)
        if sql.startswith('INSERT INTO "orders_order"'):
            rows = _inserted_rows(sql, params, many)
            transaction.on_commit(lambda: on_saved(rows))
        return result

    latencies: list[float] = []
    cpu: list[float] = []
    until_saved = all_queries = 0
    started_all = time.perf_counter()
    with connection.execute_wrapper(watch):
        for i in bar_indexes:
            for symbol in symbols:
                saved.clear()
                queries = queries_at_save = 0
                started, started_cpu = time.perf_counter(), time.thread_time()
                evaluation.evaluate_bar("bench", symbol.code, "1m", T0 + i * MINUTE)
                latencies += [(t - started) * 1000 for t, _ in saved]
                cpu += [(c - started_cpu) * 1000 for _, c in saved]
                until_saved += queries_at_save
                all_queries += queries
    return {
        "latencies": latencies,
        "cpu": cpu,
        "wall_s": time.perf_counter() - started_all,
        "queries": all_queries,
        "queries_until_saved": until_saved,
    }


def _rows(label: str, measured: dict) -> list[dict]:
    latencies = measured["latencies"]
    p50, p99 = (float(np.percentile(latencies, q)) for q in (50, 99)) if latencies else (0, 0)
    orders = len(latencies)
    plain = {"baseline": None, "baseline_value": None, "ratio": None}
    return [
        {"name": f"{label}: bar to order saved p50", "value": p50, "unit": "ms",
         "baseline": "goal p99", "baseline_value": GOAL_P99_MS, "ratio": p50 / GOAL_P99_MS},
        {"name": f"{label}: bar to order saved p99", "value": p99, "unit": "ms",
         "baseline": "goal p99", "baseline_value": GOAL_P99_MS, "ratio": p99 / GOAL_P99_MS},
        {"name": f"{label}: bar to order saved p99, CPU time", "unit": "ms", **plain,
         "value": float(np.percentile(measured["cpu"], 99)) if orders else 0.0},
        {"name": f"{label}: orders", "value": orders, "unit": "orders", **plain},
        {"name": f"{label}: queries per order until saved",
         "value": measured["queries_until_saved"] / max(orders, 1), "unit": "queries", **plain},
        {"name": f"{label}: queries per order, all",
         "value": measured["queries"] / max(orders, 1), "unit": "queries", **plain},
        {"name": f"{label}: wall time", "value": measured["wall_s"], "unit": "s", **plain},
    ]


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-trading-") as folder:
        _setup_django(folder)
        _strategy()
        rows = []
        # A worker is warm after its first bar: imports done, numba functions compiled.
        _measure(_world(1, 2, 60, "w"), range(50, 52))
        one = _world(1, 100, 60, "x")
        # Bars 50..53: enter, exit, enter, exit for each of the 100 configs.
        rows += _rows("100 configs, 1 symbol", _measure(one, range(50, 54)))
        many = _world(50, 20, 60, "y")
        rows += _rows("1,000 configs, 50 symbols", _measure(many, range(50, 52)))
        return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']:45} {row['value']:>12.2f} {row['unit']}")
