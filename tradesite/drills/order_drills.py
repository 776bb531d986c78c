"""Drills with live orders on the simulator (issue 21 item 6): REST answered with 5xx during
backfill, collection and live orders; order answers held past the client's timeout. A live
account of the demo user holds the simulator's demo keys (``ledger.live_account``); the
venue's own order list is compared with the order rows."""

from __future__ import annotations

import contextlib
import time

from tradesite.drills import checks, ledger
from tradesite.drills.checks import MINUTE_MS, floor_minute, now_ms
from tradesite.drills.drills import BAR_WAIT_S, Options, closed_end
from tradesite.drills.stack import PY, ROOT, Stack, wait_for


@contextlib.contextmanager
def _live_config(account):
    """The demo 1m config on KRW-BTC moved to ``account``, signalling on most bars (RSI 2,
    49/51); every other config off. On the way out it is back on its paper account, off,
    without signals."""
    from strategies.models import Signal, StrategyConfig

    Signal.objects.all().delete()
    StrategyConfig.objects.update(is_active=False)
    config = StrategyConfig.objects.filter(symbol__exchange__slug="sim", timeframe="1m",
                                           symbol__code="KRW-BTC").first()
    assert config is not None, "bootstrap_demo made no 1m config on sim KRW-BTC"
    paper = config.account_id
    StrategyConfig.objects.filter(pk=config.pk).update(
        is_active=True, account=account,
        params={"period": 2, "oversold": 49.0, "overbought": 51.0})
    config.refresh_from_db()
    try:
        yield config
    finally:
        Signal.objects.filter(config=config).delete()
        StrategyConfig.objects.filter(pk=config.pk).update(is_active=False, account_id=paper)


def _collect_until_complete(rounds: int = 10) -> tuple[int, int]:
    """``markets.collect.collect`` (what beat's collect_candles runs) until a run skips no
    venue and leaves no pending range. Returns (runs, runs that skipped the venue)."""
    from markets.collect import collect
    from markets.models import PendingRange

    skipped = 0
    for run in range(1, rounds + 1):
        report = collect()
        skipped += bool(report.venues_skipped)
        if not report.venues_skipped and not PendingRange.objects.exists():
            return run, skipped
    return rounds, skipped


def rest_errors(stack: Stack, options: Options) -> str:
    """The simulator answers ``error_ratio`` of REST requests with a 5xx from start to end:
    two ``manage.py backfill`` runs (an hour of 1m), the collector, the stream's catch-up,
    a live config evaluated by the worker on live bars, and ``orders`` manual live market
    orders. Stored candles equal the simulator's; the venue's orders equal the order rows
    (count and client ids), none doubled, none left unsettled after reconciliation; every
    signal has one outcome."""
    checks.reset_market_data(stack)
    with ledger.live_account(stack) as account, _live_config(account) as config:
        return _rest_errors(stack, options, account, config)


def _rest_errors(stack: Stack, options: Options, account, config) -> str:
    import subprocess

    from markets.models import Symbol
    from strategies.models import Signal

    stack.start_sim("--error-ratio", str(options.error_ratio))
    symbols = checks.sim_symbols()
    end = floor_minute(now_ms())
    start = end - 60 * MINUTE_MS
    jobs = [subprocess.run(
        [PY, "manage.py", "backfill", "--venue", "sim", "--symbol", s.code, "--timeframe", "1m",
         "--start", str(start), "--end", str(end), "--no-progress"],
        cwd=ROOT, env=stack.environ(), capture_output=True, text=True, timeout=240)
        for s in symbols]
    failed = [j for j in jobs if j.returncode != 0 or "Traceback" in j.stdout + j.stderr]
    why = "" if not failed else " ({}: {})".format(
        "traceback" if any("Traceback" in j.stdout + j.stderr for j in failed) else
        f"exit {failed[0].returncode}",
        (failed[0].stderr.strip() or failed[0].stdout.strip()).splitlines()[-1][:90])
    runs, skipped = _collect_until_complete()
    stack.start_stream()
    mark = checks.log_size(stack, "worker")  # the log holds earlier drills' workers too
    stack.start_worker()
    symbol = Symbol.objects.get(exchange__slug="sim", code="KRW-BTC")
    orders = ledger.place_orders(account, symbol, options.orders)
    unknown = sum(1 for o in orders if o.status == "submitted")
    # Live bars of the config are evaluated (their signals' orders go live, under 5xx): two at
    # least, and until one gave a signal.
    wait_for(lambda: checks.config_evaluations(stack, "worker", mark) >= 2
             and Signal.objects.filter(config=config).exists(), 4 * BAR_WAIT_S,
             "two live bars are evaluated and one gives a signal\n" + stack.tail("worker"))
    stack.stop("worker")  # nothing is placed while the orders are compared
    rounds = ledger.reconcile_until_settled(account)
    diff = checks.compare(symbols, ["1m"], start, closed_end(stack, symbols))
    book = ledger.compare_orders(stack, account)
    outcomes = ledger.signal_outcomes(config)
    answers = checks.sim_stats(stack)["by_status"]
    errors = sum(n for status, n in answers.items() if status.startswith("5"))
    figures = (f"5xx ratio {options.error_ratio:g}: {errors} of {sum(answers.values())} REST "
               f"answers were 5xx; backfills failed {len(failed)} of {len(jobs)}{why}, "
               f"collector runs {runs} (venue skipped in {skipped}); {diff}; "
               f"{len(orders)} manual live orders ({unknown} unknown at first), settled in "
               f"{rounds} reconcile round(s): {book}; {outcomes}")
    assert diff.ok and book.ok and outcomes.ok and outcomes.signals and errors, figures
    return figures


def order_delays(stack: Stack, options: Options) -> str:
    """The simulator executes each order, then holds its answer ``order_delay_s`` (past the
    adapter's 10 s read timeout); ``orders`` live market orders through
    ``place_manual_order``, 5 at a time. The venue's orders equal the order rows (count and
    client ids), none doubled, every order in a final state after reconciliation."""
    checks.reset_market_data(stack)
    with ledger.live_account(stack) as account:
        return _order_delays(stack, options, account)


def _order_delays(stack: Stack, options: Options, account) -> str:
    from markets.models import Symbol
    from orders.models import Order

    stack.start_sim("--order-delay", str(options.order_delay_s))
    symbol = Symbol.objects.get(exchange__slug="sim", code="KRW-BTC")
    placed_at = time.monotonic()
    orders = ledger.place_orders(account, symbol, options.orders, threads=5)
    placed_s = time.monotonic() - placed_at
    first = {}
    for o in orders:
        first[o.status] = first.get(o.status, 0) + 1
    rounds = ledger.reconcile_until_settled(account)
    book = ledger.compare_orders(stack, account)
    final = Order.objects.filter(account=account).exclude(
        status__in=Order.OPEN_STATUSES).count()
    figures = (f"order answers held {options.order_delay_s:g} s; {len(orders)} live orders "
               f"placed in {placed_s:.0f} s (first answers: "
               f"{', '.join(f'{k} {v}' for k, v in sorted(first.items()))}); after "
               f"{rounds} reconcile round(s) {final} final: {book}")
    assert book.ok and final == len(orders) == options.orders, figures
    return figures
