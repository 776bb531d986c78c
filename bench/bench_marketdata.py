"""Market-data benchmarks: bar aggregation and CSV candles.

``run()`` returns rows ``{name, value, unit, baseline, baseline_value, ratio}`` (ratio = value /
baseline_value; higher is better for every row here). ``python bench/bench_marketdata.py``
prints them as a table. The stored-candle rows (upsert, load) are measured in
:mod:`bench.marketdata_db`. Each figure is the best of a few repeats (wall clock), so it is less
noisy on a shared machine, not free of noise.

Goal (issue 4): the aggregator takes >= 200,000 trades/s across all 8 timeframes on one core.
"""

from __future__ import annotations

import dataclasses
import io
import random
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import best_of, print_table, rate_row
from bench.marketdata_db import T0, VENDORS, database_rows, make_candles
from markets.aggregator import BarAggregator
from markets.csvio import parse_candles_csv, write_candles_csv
from markets.timeframes import TIMEFRAME_MS, TIMEFRAMES

GOAL_TRADES_PER_S = 200_000


@dataclasses.dataclass(frozen=True, slots=True)
class Trade:
    """Same attributes as markets.exchanges.base.Trade (not imported: another engineer's)."""

    symbol: str
    trade_id: str
    ts_ms: int
    price: float
    quantity: float
    side: str


def make_trades(n: int, n_symbols: int = 4, seed: int = 7) -> list[Trade]:
    """A random walk per symbol, about 3 trades a second each, a few out of order in time."""
    rnd = random.Random(seed)
    symbols = [f"SYM{i}USDT" for i in range(n_symbols)]
    price = dict.fromkeys(symbols, 100.0)
    ts = dict.fromkeys(symbols, T0)
    trades = []
    for i in range(n):
        s = symbols[i % n_symbols]
        ts[s] += rnd.randint(0, 600)
        jitter = rnd.randint(-200, 0) if rnd.random() < 0.05 else 0  # a little lateness
        price[s] = max(0.01, price[s] * (1 + rnd.gauss(0, 0.0005)))
        trades.append(Trade(s, str(i), max(T0, ts[s] + jitter), price[s], rnd.random(), "buy"))
    return trades


def aggregate_with_aggregator(trades, timeframes=TIMEFRAMES) -> int:
    agg = BarAggregator(timeframes=timeframes)
    add = agg.add
    closed = 0
    for t in trades:
        out = add(t)
        if out:
            closed += len(out)
    return closed + len(agg.flush().forming)


def aggregate_with_dicts(trades, timeframes=TIMEFRAMES) -> int:
    """Baseline: the obvious loop, one dict entry per (symbol, timeframe, bucket), updated for
    every timeframe on every trade (open/close by arrival, no late/duplicate handling)."""
    steps = [(tf, TIMEFRAME_MS[tf]) for tf in timeframes]
    bars: dict[tuple, list] = {}
    for t in trades:
        for tf, step in steps:
            key = (t.symbol, tf, t.ts_ms - t.ts_ms % step)
            bar = bars.get(key)
            if bar is None:
                bars[key] = [t.price, t.price, t.price, t.price, t.quantity,
                             t.price * t.quantity, 1]
            else:
                if t.price > bar[1]:
                    bar[1] = t.price
                if t.price < bar[2]:
                    bar[2] = t.price
                bar[3] = t.price
                bar[4] += t.quantity
                bar[5] += t.price * t.quantity
                bar[6] += 1
    return len(bars)


def plain_csv_parse(text: str) -> int:
    """Baseline: csv.reader + float() with no checks at all."""
    import csv

    reader = csv.reader(io.StringIO(text))
    next(reader)
    n = 0
    for f in reader:
        (int(f[0]), float(f[1]), float(f[2]), float(f[3]), float(f[4]), float(f[5]),
         float(f[6]))
        n += 1
    return n


def run(
    n_trades: int = 300_000, n_candles: int = 100_000, repeats: int = 3,
    n_stored: int | None = 525_600,
) -> list[dict]:
    """All rows; ``n_stored=None`` skips the database rows (they need Django settings)."""
    trades = make_trades(n_trades)
    rows = []

    t_all = best_of(repeats, lambda: aggregate_with_aggregator(trades))
    t_dict = best_of(repeats, lambda: aggregate_with_dicts(trades))
    t_one = best_of(repeats, lambda: aggregate_with_dicts(trades, ["1m"]))
    rows.append(rate_row("aggregator: trades through 8 timeframes", n_trades / t_all, "trades/s",
                    "plain dict loop, 8 timeframes", n_trades / t_dict))
    rows.append(rate_row("aggregator: trades through 8 timeframes", n_trades / t_all, "trades/s",
                    "plain dict loop, 1m only", n_trades / t_one))

    candles = make_candles(n_candles)
    buf = io.StringIO()
    write_candles_csv(candles, buf, time_format="ms")
    text = buf.getvalue()
    t_parse = best_of(repeats, lambda: parse_candles_csv(text, "1m"))
    t_plain = best_of(repeats, lambda: plain_csv_parse(text))
    rows.append(rate_row("csv: parse and check candles (epoch ms)", n_candles / t_parse, "rows/s",
                    "csv.reader + float(), no checks", n_candles / t_plain))

    def write_plain():
        import csv

        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["open_time", "open", "high", "low", "close", "volume", "quote_volume"])
        w.writerows(candles)

    t_write = best_of(repeats, lambda: write_candles_csv(candles, io.StringIO()))
    t_wplain = best_of(repeats, write_plain)
    rows.append(rate_row("csv: write candles (ISO-8601 Z)", n_candles / t_write, "rows/s",
                    "csv.writer, epoch ms", n_candles / t_wplain))
    if n_stored:
        rows += database_rows(n_stored)
    return rows


def main(argv: list[str]) -> int:
    """``python bench/bench_marketdata.py``: every row; ``--db sqlite`` or ``--db postgresql``:
    only the database rows of that vendor (one at a time, under the bench lock)."""
    if argv[:1] == ["--db"] and len(argv) == 2 and argv[1] in VENDORS:
        print_table(database_rows(vendors=(argv[1],)))
        return 0
    if argv:
        print(f"usage: bench_marketdata.py [--db {'|'.join(VENDORS)}]", file=sys.stderr)
        return 2
    results = run()
    print_table(results)
    rate = results[0]["value"]
    verdict = "meets" if rate >= GOAL_TRADES_PER_S else "MISSES"
    print(f"\naggregator {verdict} the goal of {GOAL_TRADES_PER_S:,} trades/s: {rate:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
