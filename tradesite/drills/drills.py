"""The drills: each starts the processes it needs, injects ONE fault, checks the invariants
within a bound, and returns its one-line result. A failed invariant raises AssertionError."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass

from tradesite.drills import checks
from tradesite.drills.checks import MINUTE_MS, floor_minute, now_ms
from tradesite.drills.stack import PY, ROOT, Stack, wait_for

#: Bound of every wait for a 1m bar to close and be stored (the simulator runs at real speed).
BAR_WAIT_S = 100.0


@dataclass
class Options:
    outage_s: float = 20.0  # how long a killed stream stays down
    redis_outage_s: float = 5.0  # how long a killed Redis stays down
    budget: int = 3  # the simulator's request budget per window in the rate-limit drill
    ws_drop_every_s: float = 10.0  # the simulator closes each WebSocket this often
    ws_drop_bars: int = 2  # live 1m bars the ws-drops drill waits for
    error_ratio: float = 0.3  # share of REST requests the simulator answers 5xx (rest-errors)
    order_delay_s: float = 12.0  # how long order answers are held (order-delays; client 10 s)
    orders: int = 20  # live manual orders each order drill places


def _latest_stored_ms(symbols) -> int:
    from markets.models import Candle
    from markets.pending import to_ms

    last = (Candle.objects.filter(symbol__in=symbols, timeframe="1m")
            .order_by("-open_time").values_list("open_time", flat=True).first())
    return to_ms(last) if last else 0


def _stored_minutes(symbols, start_ms: int, end_ms: int) -> int:
    from markets.models import Candle
    from markets.pending import to_dt

    return Candle.objects.filter(symbol__in=symbols, timeframe="1m", open_time__gte=to_dt(start_ms),
                                 open_time__lt=to_dt(end_ms)).count()


def closed_end(stack: Stack, symbols) -> int:
    """The end of the last closed minute, once every symbol has it stored (a bar that closed
    a moment ago may still be on its way from the stream): the end of a comparison."""
    from markets.models import Candle
    from markets.pending import to_dt

    end = floor_minute(now_ms())
    wait_for(lambda: all(Candle.objects.filter(symbol=s, timeframe="1m",
                                               open_time=to_dt(end - MINUTE_MS)).exists()
                         for s in symbols), 30,
             "every symbol's last closed bar is stored\n" + stack.tail("stream"))
    return end


def stream_kill(stack: Stack, options: Options) -> str:
    """SIGKILL the stream for ``outage_s`` across a minute boundary, restart it: the bar that
    closed meanwhile is stored, and the stored 1m candles equal the simulator's REST candles
    from the minute it first started to the last closed minute."""
    checks.reset_market_data(stack)
    stack.start_sim()
    symbols = checks.sim_symbols()
    started = now_ms()
    stack.start_stream()
    first_live = floor_minute(started) + MINUTE_MS  # the first bar that closes under the stream
    wait_for(lambda: _latest_stored_ms(symbols) >= first_live, BAR_WAIT_S,
             "the stream stores a live closed bar\n" + stack.tail("stream"))
    # The outage spans a minute boundary (half before, half after): a bar closes while the
    # stream is down, which only the catch-up can store.
    half = min(options.outage_s, 50.0) / 2 * 1000
    boundary = floor_minute(now_ms()) + MINUTE_MS
    if boundary - now_ms() < half:
        boundary += MINUTE_MS
    time.sleep(max(boundary - half - now_ms(), 0) / 1000)
    stack.kill("stream")
    killed = now_ms()
    time.sleep(max(options.outage_s, (boundary - killed) / 1000 + 5))
    stack.start_stream()
    restarted, restarted_at = now_ms(), time.monotonic()
    # Every minute that closed before the restart is stored again (catch-up over REST).
    hole_end = floor_minute(restarted)
    expected = len(symbols) * (hole_end - floor_minute(started)) // MINUTE_MS
    wait_for(lambda: _stored_minutes(symbols, floor_minute(started), hole_end) >= expected,
             BAR_WAIT_S, "the stream fills the minutes it missed\n" + stack.tail("stream"))
    recovered_s = time.monotonic() - restarted_at
    # And a bar that closes after the restart is stored live.
    wait_for(lambda: _latest_stored_ms(symbols) >= hole_end, BAR_WAIT_S,
             "a bar closed after the restart is stored\n" + stack.tail("stream"))
    end = closed_end(stack, symbols)
    diff = checks.compare(symbols, ["1m"], floor_minute(started), end)
    closed_while_down = (floor_minute(restarted) - floor_minute(killed)) // MINUTE_MS
    figures = (f"killed {(restarted - killed) / 1000:.0f} s ({closed_while_down} bar(s) per "
               f"symbol closed meanwhile), {diff}; "
               f"recovered in {recovered_s:.1f} s")
    assert diff.ok, figures
    return figures


def redis_kill(stack: Stack, options: Options) -> str:
    """SIGKILL Redis, restart it on its port after ``redis_outage_s``: ``/health`` is 200 again
    within a bound, and a chart socket opened before and one opened after both receive a bar
    that closed after the recovery."""
    checks.reset_market_data(stack)
    stack.start_sim()
    stack.start_stream()
    stack.start_worker()
    stack.start_beat()
    stack.start_web()
    checks.wait_for_health(stack, 120)
    http = checks.demo_login(stack)
    path = "/ws/chart/sim/KRW-BTC/1m/"
    before = checks.ChartSocket(stack, http, path)
    stack.kill_redis()
    time.sleep(options.redis_outage_s)
    stack.start_redis()
    health_s = checks.wait_for_health(stack, 120)
    recovered = now_ms()
    after = checks.ChartSocket(stack, http, path)
    sockets = {"before": before, "after": after}
    # A bar that opened after the recovery closes within a minute or two.
    target = floor_minute(recovered) + MINUTE_MS
    deadline = time.monotonic() + BAR_WAIT_S + 30
    while time.monotonic() < deadline and not all(
            any(t >= target for t in s.closed_bars) for s in sockets.values()):
        for s in sockets.values():
            s.pump(0.2)
    got = {name: sum(1 for t in s.closed_bars if t >= target) for name, s in sockets.items()}
    for s in sockets.values():
        s.close()
    figures = (f"Redis down {options.redis_outage_s:.0f} s; /health 200 {health_s:.1f} s after "
               f"restart; closed bars after recovery: socket opened before {got['before']}"
               f"{' (' + before.gone + ')' if before.gone else ''}, after {got['after']}; "
               f"resync frames {before.resyncs}")
    assert all(got.values()), figures + "\n" + stack.tail("web")
    return figures


def _budget_hog(stack: Stack, budget: int, stop: threading.Event, refused: list) -> None:
    """Another client on the same address (another bot, a script; the shared limiter cannot
    see it) takes the whole budget of the first 4 one-second windows, then all but one
    request of each: the backfills meet 429s in a row."""
    import requests

    windows = 0
    with requests.Session() as http:
        while not stop.is_set():
            time.sleep(1.0 - time.monotonic() % 1.0 + 0.002)  # the simulator's windows
            for _ in range(budget if windows < 4 else max(budget - 1, 0)):
                answer = http.get(stack.sim_url + "/v1/candles/minutes/1",
                                  params={"market": "KRW-BTC", "count": 1}, timeout=5)
                if answer.status_code == 429:
                    refused.append(1)
            windows += 1


def rate_limit(stack: Stack, options: Options) -> str:
    """The simulator answers ``budget`` requests per window, another client takes most of it;
    two ``manage.py backfill`` runs at once store every candle (1m and 5m), exit 0 without a
    traceback, leave nothing pending. The 429 count is the simulator's (all clients')."""
    from markets.models import PendingRange

    checks.reset_market_data(stack)
    stack.start_sim("--rate-limit-budget", str(options.budget), "--history-days", "1")
    symbols = checks.sim_symbols()
    end = floor_minute(now_ms(), 5) - 5 * MINUTE_MS
    start = end - 400 * MINUTE_MS  # 2 requests of 1m and 1 of 5m per symbol
    jobs = [subprocess.Popen(
        [PY, "manage.py", "backfill", "--venue", "sim", "--symbol", s.code, "--timeframe",
         "1m,5m", "--start", str(start), "--end", str(end), "--no-progress"],
        cwd=ROOT, env=stack.environ(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True) for s in symbols]
    stop = threading.Event()
    hog_refused: list[int] = []
    hog = threading.Thread(target=_budget_hog, args=(stack, options.budget, stop, hog_refused),
                           daemon=True)
    hog.start()
    outputs = []
    started = time.monotonic()
    try:
        for job in jobs:
            outputs.append(job.communicate(timeout=240)[0])
    finally:
        stop.set()
        hog.join(10)
        for job in jobs:
            if job.poll() is None:
                job.kill()
                job.wait(10)
    took = time.monotonic() - started
    refused = checks.sim_stats(stack)["by_status"].get("429", 0)
    failed = [f"exit {j.returncode}: {out[-1500:]}" for j, out in zip(jobs, outputs)
              if j.returncode != 0 or "Traceback" in out]
    diff = checks.compare(symbols, ["1m", "5m"], start, end)
    pending = PendingRange.objects.count()
    figures = (f"budget {options.budget}/window, {len(jobs)} backfills in {took:.1f} s, "
               f"429 answers {refused} ({refused - len(hog_refused)} to the backfills), {diff}, "
               f"failed runs {len(failed)}, "
               f"pending ranges {pending}")
    assert diff.ok and not failed and not pending, figures + "\n" + "\n".join(failed)
    return figures


def ws_drops(stack: Stack, options: Options) -> str:
    """The simulator closes each WebSocket every ``ws_drop_every_s``; over ``ws_drop_bars``
    live bars the stored 1m candles equal the simulator's REST candles."""
    checks.reset_market_data(stack)
    stack.start_sim("--ws-drop-every", str(options.ws_drop_every_s))
    symbols = checks.sim_symbols()
    started = now_ms()
    mark = checks.log_size(stack, "stream")  # the log holds earlier drills' streams too
    stack.start_stream()
    last = floor_minute(started) + options.ws_drop_bars * MINUTE_MS
    wait_for(lambda: _latest_stored_ms(symbols) >= last,
             BAR_WAIT_S + options.ws_drop_bars * 60,
             f"the stream stores {options.ws_drop_bars} live bars\n" + stack.tail("stream"))
    end = closed_end(stack, symbols)
    with stack.log("stream").open("rb") as log:
        log.seek(mark)
        drops = log.read().decode(errors="replace").count("stream interrupted")
    diff = checks.compare(symbols, ["1m"], floor_minute(started), end)
    figures = (f"socket closed every {options.ws_drop_every_s:.0f} s "
               f"({drops} drops seen by the stream), {diff}")
    assert diff.ok, figures
    return figures


EVALUATE_RECEIVED = re.compile(r"Task orders\.tasks\.evaluate\[([0-9a-f-]+)\] received")


def _evaluations(stack: Stack, name: str, what: str) -> list[str]:
    """Ids of the evaluate tasks the worker log ``name`` shows as ``received``/``succeeded``."""
    text = stack.log(name).read_text(errors="replace") if stack.log(name).exists() else ""
    if what == "received":
        return EVALUATE_RECEIVED.findall(text)
    return re.findall(r"Task orders\.tasks\.evaluate\[([0-9a-f-]+)\] succeeded", text)


def worker_kill(stack: Stack, options: Options) -> str:
    """SIGKILL the worker (its whole group) as it receives a bar's evaluation, start another:
    the task is redelivered and runs; every signal has one outcome, and the order rows of each
    signal are exactly the orders its outcome names (none doubled). A paper config on the sim
    venue (RSI 2, 49/51: a signal on most bars) on an hour of backfilled candles."""
    from django.db.models import Count

    from orders.models import Order
    from strategies.models import Signal

    config = checks.only_busy_config(stack, strategy="rsi")
    stack.start_sim()
    end = floor_minute(now_ms())
    stack.run("backfill", "--venue", "sim", "--symbol", config.symbol.code, "--timeframe", "1m",
              "--start", str(end - 60 * MINUTE_MS), "--end", str(end), "--no-progress")
    started = now_ms()
    stack.start_stream()
    stack.start("worker-1", stack.worker_argv("drill-1"))
    ids = wait_for(lambda: _evaluations(stack, "worker-1", "received"), BAR_WAIT_S,
                   "the worker receives a bar's evaluation\n" + stack.tail("worker-1"),
                   poll_s=0.01)
    stack.kill("worker-1")
    killed_id = ids[0]
    mid_task = killed_id not in _evaluations(stack, "worker-1", "succeeded")
    killed_at = time.monotonic()
    stack.start("worker-2", stack.worker_argv("drill-2"))
    wait_for(lambda: killed_id in _evaluations(stack, "worker-2", "succeeded"), 120,
             "the killed evaluation is redelivered and runs\n" + stack.tail("worker-2"))
    redelivered_s = time.monotonic() - killed_at
    # The new worker goes on evaluating bars until a signal placed an order (paper), so the
    # orders are checked too (a few bars: the strategy signals on most of them).
    done = len(_evaluations(stack, "worker-2", "succeeded"))
    wait_for(lambda: len(_evaluations(stack, "worker-2", "succeeded")) > done
             and Order.objects.filter(signal__config=config).exists(), 4 * BAR_WAIT_S,
             "a later bar's signal places an order\n" + stack.tail("worker-2"))
    signals = list(Signal.objects.filter(config=config))
    no_outcome = [s.pk for s in signals if not (s.reason or {}).get("execution")]
    doubled = 0
    for s in signals:
        named = sorted((s.reason or {}).get("execution", {}).get("orders", []))
        rows = sorted(Order.objects.filter(signal=s).values_list("pk", flat=True))
        doubled += len(rows) - len(set(rows) & set(named))
    per_bar = (Signal.objects.filter(config=config).values("bar_time", "action")
               .annotate(n=Count("pk")).filter(n__gt=1).count())
    orders = Order.objects.filter(signal__config=config).count()
    when = "before" if mid_task else "after"
    figures = (f"worker killed {when} the evaluation it received finished "
               f"(task {killed_id[:8]}), redelivered and run in {redelivered_s:.1f} s; "
               f"{len(signals)} signals since {(now_ms() - started) / 60_000:.0f} min, "
               f"without outcome {len(no_outcome)}, doubled per bar {per_bar}; {orders} orders, "
               f"orders not named by their signal's outcome {doubled}")
    assert signals and not no_outcome and not doubled and not per_bar, figures
    return figures
