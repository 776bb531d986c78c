"""Drills that SIGKILL the web process, or every process at once (issue 21 item 6)."""

from __future__ import annotations

import time

from tradesite.drills import checks, ledger
from tradesite.drills.checks import MINUTE_MS, floor_minute, now_ms
from tradesite.drills.drills import (
    BAR_WAIT_S,
    Options,
    _latest_stored_ms,
    _stored_minutes,
    closed_end,
)
from tradesite.drills.stack import Stack, wait_for

CHART = ("sim", "KRW-BTC", "1m")


def _stored_bar_times(symbol, start_ms: int, end_ms: int) -> set[int]:
    return set(checks.stored(symbol, "1m", start_ms, end_ms))


def _reconnect(stack: Stack, http, path: str, timeout_s: float) -> tuple[checks.ChartSocket,
                                                                         int]:
    """A page's reconnect loop: try every 0.5 s until the socket opens. Returns the socket and
    the attempts it took."""
    deadline = time.monotonic() + timeout_s
    attempts = 0
    while True:
        attempts += 1
        try:
            return checks.ChartSocket(stack, http, path), attempts
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def web_kill(stack: Stack, options: Options) -> str:
    """SIGKILL the web process (uvicorn, ``python -m tradesite.web``) while a chart socket is
    open, restart it: ``/health`` is 200 again within a bound; the socket reconnected as a page
    does and one opened after the restart both receive every 1m bar that closed after the
    recovery (two of them)."""
    from markets.models import Symbol

    checks.reset_market_data(stack)
    stack.start_sim()
    stack.start_stream()
    stack.start_worker()
    stack.start_beat()
    stack.start_web()
    checks.wait_for_health(stack, 120)
    http = checks.demo_login(stack)
    path = "/ws/chart/{}/{}/{}/".format(*CHART)
    symbol = Symbol.objects.get(exchange__slug=CHART[0], code=CHART[1])
    before = checks.ChartSocket(stack, http, path)
    before.pump(1.0)
    stack.kill("web")
    killed_at = time.monotonic()
    before.pump(2.0)  # the socket sees its server gone
    stack.start_web()
    health_s = checks.wait_for_health(stack, 120)
    recovered_s = time.monotonic() - killed_at
    recovered = now_ms()
    reconnected, attempts = _reconnect(stack, http, path, 30)
    after = checks.ChartSocket(stack, http, path)
    sockets = {"reconnected": reconnected, "after": after}
    first = floor_minute(recovered) + MINUTE_MS  # the first bar opened after the recovery
    last = first + MINUTE_MS
    deadline = time.monotonic() + BAR_WAIT_S + 90
    while time.monotonic() < deadline and not all(
            last in s.closed_bars for s in sockets.values()):
        for s in sockets.values():
            s.pump(0.2)
    wait_for(lambda: _latest_stored_ms([symbol]) >= last, 30,
             "the stream stores the bars\n" + stack.tail("stream"))
    expected = _stored_bar_times(symbol, first, last + MINUTE_MS)
    missed = {name: len(expected - set(s.closed_bars)) for name, s in sockets.items()}
    for s in (before, *sockets.values()):
        s.close()
    figures = (f"web killed with a chart socket open ({before.gone or 'not closed'}); "
               f"/health 200 {health_s:.1f} s after the restart, {recovered_s:.1f} s after "
               f"the kill; reconnected in {attempts} attempt(s); closed bars after recovery "
               f"{len(expected)}, missed by the reconnected socket {missed['reconnected']}, by "
               f"one opened after {missed['after']}")
    assert len(expected) == 2 and not any(missed.values()), figures + "\n" + stack.tail("web")
    return figures


def all_kill(stack: Stack, options: Options) -> str:
    """A paper config signalling on most bars (as in worker-kill) under the whole stack;
    every process (stream, worker, beat, web, Redis) SIGKILLed at once mid-bar, restarted
    after ``outage_s``: ``/health`` is 200 within a bound, the stored 1m candles equal the
    simulator's, every signal has one outcome, no order doubled."""
    from strategies.models import Signal

    config = checks.only_busy_config(stack, account__mode="paper")
    stack.start_sim()
    symbols = checks.sim_symbols()
    end = floor_minute(now_ms())
    start = end - 60 * MINUTE_MS
    for s in symbols:
        stack.run("backfill", "--venue", "sim", "--symbol", s.code, "--timeframe", "1m",
                  "--start", str(start), "--end", str(end), "--no-progress")
    stack.start_stream()
    stack.start_worker()
    stack.start_beat()
    stack.start_web()
    checks.wait_for_health(stack, 120)
    # A live bar is evaluated (a signal stored) before the kill, so the kill meets a stack
    # that trades; then the kill falls mid-bar (30 s into a minute).
    wait_for(lambda: Signal.objects.filter(config=config).exists(), 2 * BAR_WAIT_S,
             "a live bar's signal is stored before the kill\n" + stack.tail("worker"))
    time.sleep((MINUTE_MS - (now_ms() - 30_000) % MINUTE_MS) % MINUTE_MS / 1000)
    killed_ms = now_ms()
    killed = stack.kill_everything()
    time.sleep(options.outage_s)
    stack.start_redis()
    started_at = time.monotonic()
    log_mark = stack.log("worker").stat().st_size
    stack.start_stream()
    stack.start_worker()
    stack.start_beat()
    stack.start_web()
    health_s = checks.wait_for_health(stack, 120)
    restarted = now_ms()
    hole_end = floor_minute(restarted)
    expected = len(symbols) * (hole_end - start) // MINUTE_MS
    wait_for(lambda: _stored_minutes(symbols, start, hole_end) >= expected, BAR_WAIT_S,
             "the stream fills the minutes it missed\n" + stack.tail("stream"))
    filled_s = time.monotonic() - started_at
    # A bar closed after the restart is stored and evaluated.
    wait_for(lambda: _latest_stored_ms(symbols) >= hole_end, BAR_WAIT_S,
             "a bar closed after the restart is stored\n" + stack.tail("stream"))
    wait_for(lambda: checks.config_evaluations(stack, "worker", log_mark) > 0, BAR_WAIT_S,
             "a bar closed after the restart is evaluated\n" + stack.tail("worker"))
    diff = checks.compare(symbols, ["1m"], start, closed_end(stack, symbols))
    outcomes = ledger.signal_outcomes(config)
    figures = (f"killed {', '.join(sorted(killed))} at once {killed_ms % MINUTE_MS / 1000:.0f} "
               f"s into a bar for {options.outage_s:.0f} s; /health 200 {health_s:.1f} s "
               f"after the restart, missed minutes stored {filled_s:.1f} s after it; {diff}; "
               f"{outcomes}")
    assert diff.ok and outcomes.ok and outcomes.signals, figures
    return figures
