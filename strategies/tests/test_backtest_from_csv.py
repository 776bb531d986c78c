"""The trader's path with their own data: a CSV file -> import_candles -> backtest --json."""

import datetime as dt
import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from markets.models import Candle, Exchange, Symbol
from strategies.models import BacktestRun

pytestmark = pytest.mark.django_db


def write_csv(path, n=500, seed=5):
    rng = np.random.default_rng(seed)
    close = 50_000_000 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    lines = ["open_time,open,high,low,close,volume"]
    previous = close[0]
    for i, c in enumerate(close):
        o = previous
        hi, lo = max(o, c) * 1.002, min(o, c) * 0.998
        stamp = (start + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{stamp},{o:.2f},{hi:.2f},{lo:.2f},{c:.2f},{rng.uniform(1, 5):.4f}")
        previous = c
    path.write_text("\n".join(lines) + "\n")
    return n


def test_backtest_runs_on_candles_imported_from_a_csv(tmp_path):
    exchange = Exchange.objects.create(slug="sim", name="Sim", adapter="upbit",
                                       rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1")
    Symbol.objects.create(exchange=exchange, code="KRW-BTC", base="BTC", quote="KRW")
    n = write_csv(tmp_path / "btc-1h.csv")
    call_command("import_candles", str(tmp_path / "btc-1h.csv"), "--venue", "sim",
                 "--symbol", "KRW-BTC", "--timeframe", "1h", stdout=StringIO())
    assert Candle.objects.filter(timeframe="1h").count() == n

    out = StringIO()
    call_command(
        "backtest", "--strategy", "rsi", "--params",
        '{"period": 14, "oversold": 35, "overbought": 65}', "--venue", "sim",
        "--symbol", "KRW-BTC", "--timeframe", "1h", "--start", "2025-01-02",
        "--end", "2025-01-21", "--fee", "5", "--slippage", "2", "--cash", "10000000",
        "--risk", '{"stop_loss_pct": 2}', "--json", stdout=out,
    )
    data = json.loads(out.getvalue())
    assert BacktestRun.objects.get(pk=data["id"]).status == BacktestRun.Status.DONE
    assert data["stats"]["trade_count"] == len(data["trades"]) > 0
    first = data["trades"][0]
    # Times are ISO-8601 UTC, inside the requested range.
    assert first["entry_time"].endswith("Z") or first["entry_time"].endswith("+00:00")
    assert "2025-01-02" <= first["entry_time"][:10] < "2025-01-21"
    assert {"entry_price", "exit_price", "size", "pnl"} <= set(first)
