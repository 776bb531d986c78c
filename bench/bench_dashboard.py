"""The dashboard's server time with profit and loss to show (issue 15): one user with 5 paper
accounts, 20 configs (4 per account), 10,000 closed trades (500 per config, each with its entry
and exit order and fill) and 90 days of five-minute equity snapshots per account (129,600).

Measured in process with Django's test client (the view, its queries and the template: what
the server spends; no network, no browser), on a scratch SQLite database. Rows: the median
and the slowest of 15 renders against the 300 ms goal (wall time, and the median CPU time of
this process, which includes SQLite), and the queries of one render (fixed: they grow with
accounts, never with trades, configs or snapshots).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import row

GOAL_MS = 300.0
ACCOUNTS, CONFIGS_PER_ACCOUNT, TRADES_PER_CONFIG = 5, 4, 500
SNAPSHOT_DAYS = 90
RENDERS = 15


def _setup_django(folder: str) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.ALLOWED_HOSTS = ["*"]
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _world():
    from django.contrib.auth import get_user_model

    from bench.common import scratch_symbol
    from markets.models import Account, Balance, Symbol
    from orders.tests.performance_data import closed_trades, snapshots
    from strategies.models import StrategyConfig

    user = get_user_model().objects.create_user("bench", password="unused", is_staff=True)
    symbol = Symbol.objects.select_related("exchange").get(pk=scratch_symbol())
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    start = now - dt.timedelta(days=SNAPSHOT_DAYS)
    step = dt.timedelta(minutes=5)
    for a in range(ACCOUNTS):
        account = Account.objects.create(owner=user, exchange=symbol.exchange, label=f"acct-{a}",
                                         quote_asset="KRW")
        Balance.objects.create(account=account, asset="KRW", free=Decimal("10000000"))
        snapshots(account, [(start + i * step, 10_000_000 + (i % 977) * 13)
                            for i in range(SNAPSHOT_DAYS * 288)])
        for c in range(CONFIGS_PER_ACCOUNT):
            config = StrategyConfig.objects.create(
                owner=user, name=f"cfg-{a}-{c}", strategy="rsi", params={}, symbol=symbol,
                timeframe="1m", account=account, is_active=c % 2 == 0,
            )
            specs = [("long" if i % 4 else "short", Decimal("0.01"), Decimal("100000"),
                      Decimal("101000") if i % 3 else Decimal("99000"), Decimal("5"))
                     for i in range(TRADES_PER_CONFIG)]
            closed_trades(account, config, symbol, specs, start + dt.timedelta(minutes=c),
                          every=dt.timedelta(hours=4))
    return user


def _measure(user) -> tuple[list[float], list[float], int, int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    assert client.get("/").status_code == 200  # warm: templates compiled, imports done
    times, cpu = [], []
    for _ in range(RENDERS):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get("/")
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")
    return times, cpu, len(queries), len(response.content)


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as folder:
        _setup_django(folder)
        started = time.perf_counter()
        user = _world()
        print(f"dashboard bench: data written in {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)
        from orders.models import Position

        trades = Position.objects.filter(closed_at__isnull=False).count()
        times, cpu, queries, size = _measure(user)
    label = f"dashboard, {ACCOUNTS} accounts, 20 configs, {trades:,} closed trades"
    plain = {"baseline": None, "baseline_value": None}
    return [
        row(f"{label}: render p50", statistics.median(times), "ms", "goal", GOAL_MS,
            digits=1, ratio_digits=2),
        row(f"{label}: render max of {RENDERS}", max(times), "ms", "goal", GOAL_MS,
            digits=1, ratio_digits=2),
        # CPU time: the view, the template and SQLite (in process); it shows the server's own
        # cost when other processes share the cores, as on the 2-core machine measured.
        row(f"{label}: render p50, CPU time", statistics.median(cpu), "ms", "goal", GOAL_MS,
            digits=1, ratio_digits=2),
        row(f"{label}: queries per render", queries, "queries", **plain),
        row(f"{label}: page size", size / 1024, "KiB", **plain, digits=1),
    ]


if __name__ == "__main__":
    for r in run():
        print(f"{r['name']:80} {r['value']:>10} {r['unit']}")
