"""What the drills compare and read: stored candles against the simulator's REST candles, the
simulator's answer counters, ``/health``, a logged-in chart WebSocket. Needs Django set up."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import requests

from tradesite.drills.stack import Stack, wait_for

MINUTE_MS = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


def floor_minute(ms: int, minutes: int = 1) -> int:
    return ms - ms % (minutes * MINUTE_MS)


@dataclass
class CandleDiff:
    missing: int = 0
    extra: int = 0
    differing: int = 0
    compared: int = 0

    def __iadd__(self, other: CandleDiff) -> CandleDiff:
        self.missing += other.missing
        self.extra += other.extra
        self.differing += other.differing
        self.compared += other.compared
        return self

    @property
    def ok(self) -> bool:
        return self.compared > 0 and not (self.missing or self.extra or self.differing)

    def __str__(self) -> str:
        return (f"missing {self.missing}, extra {self.extra}, differing {self.differing} "
                f"of {self.compared} candles")


def sim_symbols():
    from markets.models import Symbol

    return list(Symbol.objects.filter(exchange__slug="sim", is_active=True).order_by("code"))


def stored(symbol, timeframe: str, start_ms: int, end_ms: int) -> dict[int, tuple]:
    from markets.candles import load_candles

    c = load_candles(symbol.id, timeframe, start_ms, end_ms)
    return {int(t): (o, h, lo, cl, v) for t, o, h, lo, cl, v in zip(
        c.open_time_ms.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(),
        c.close.tolist(), c.volume.tolist())}


def retrying(call, what: str, attempts: int = 30):
    """``call()``, again after each 5xx or refusal (a drill's own reads meet the faults it
    injects too), at most ``attempts`` times."""
    from markets.exchanges.errors import TemporaryExchangeError

    for attempt in range(attempts):
        try:
            return call()
        except TemporaryExchangeError as exc:
            last = exc
            time.sleep(min(0.2 * (attempt + 1), 2.0))
    raise AssertionError(f"{what}: the simulator failed {attempts} times in a row ({last})")


def venue(symbol, timeframe: str, start_ms: int, end_ms: int) -> dict[int, tuple]:
    """The simulator's candles over REST (through the venue's shared limiter)."""
    from markets.adapters import adapter_for

    adapter = adapter_for(symbol.exchange)
    rows = retrying(lambda: adapter.fetch_candles(symbol.code, timeframe, start_ms, end_ms),
                    f"reading {symbol} {timeframe} candles")
    return {r.open_time_ms: (r.open, r.high, r.low, r.close, r.volume) for r in rows}


def compare(symbols, timeframes, start_ms: int, end_ms: int) -> CandleDiff:
    diff = CandleDiff()
    for symbol in symbols:
        for tf in timeframes:
            mine, theirs = stored(symbol, tf, start_ms, end_ms), venue(symbol, tf, start_ms,
                                                                      end_ms)
            diff.compared += len(theirs)
            diff.missing += len(theirs.keys() - mine.keys())
            diff.extra += len(mine.keys() - theirs.keys())
            diff.differing += sum(
                1 for t in theirs.keys() & mine.keys()
                if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
                           for a, b in zip(mine[t], theirs[t])))
    return diff


def reset_market_data(stack: Stack) -> None:
    """Each drill starts from no candles and an empty Redis (a new simulator makes new ones)."""
    import redis

    from markets.models import Candle, PendingRange

    Candle.objects.filter(symbol__exchange__slug="sim").delete()
    PendingRange.objects.all().delete()
    redis.Redis.from_url(stack.redis_url).flushall()


#: A 2-period RSI with the bands at 49/51: it signals on most bars, so a drill sees signals soon.
BUSY_RSI = {"period": 2, "oversold": 49.0, "overbought": 51.0}


def only_busy_config(stack: Stack, **which):
    """Fresh market data and no signals; then exactly one active config, the demo's first 1m
    config on the sim venue matching ``which`` (e.g. ``strategy="rsi"``), signalling often."""
    from strategies.models import Signal, StrategyConfig

    reset_market_data(stack)
    Signal.objects.all().delete()
    StrategyConfig.objects.update(is_active=False)
    config = StrategyConfig.objects.filter(
        symbol__exchange__slug="sim", timeframe="1m", **which).first()
    assert config is not None, f"bootstrap_demo made no 1m config on the sim venue with {which}"
    StrategyConfig.objects.filter(pk=config.pk).update(is_active=True, params=BUSY_RSI)
    return config


def sim_stats(stack: Stack) -> dict:
    return requests.get(stack.sim_url + "/_sim/stats", timeout=5).json()


def health_status(stack: Stack) -> int | None:
    try:
        return requests.get(stack.web_url + "/health", timeout=3).status_code
    except requests.RequestException:
        return None


def demo_login(stack: Stack, user: str = "demo") -> requests.Session:
    """A logged-in browser session through the admin login form (bootstrap_demo's login)."""
    logins = dict(line.split(None, 1) for line in
                  (stack.tmp / "var" / "demo-credentials.txt").read_text().splitlines() if line)
    http = requests.Session()
    page = http.get(stack.web_url + "/admin/login/", timeout=10)
    page.raise_for_status()
    answer = http.post(stack.web_url + "/admin/login/", timeout=10, data={
        "username": user, "password": logins[user].strip(), "next": "/",
        "csrfmiddlewaretoken": http.cookies.get("csrftoken", ""),
    }, headers={"Referer": stack.web_url + "/admin/login/"})
    answer.raise_for_status()
    if "sessionid" not in http.cookies:
        raise AssertionError(f"login as {user} failed: no session cookie "
                             f"(status {answer.status_code})")
    return http


class ChartSocket:
    """A chart page's WebSocket (``websockets`` sync client) with the session's cookie."""

    def __init__(self, stack: Stack, http: requests.Session, path: str) -> None:
        from websockets.sync.client import connect

        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
        self.ws = connect(f"ws://127.0.0.1:{stack.web_port}{path}", open_timeout=10,
                          additional_headers={"Cookie": cookie, "Origin": stack.web_url})
        hello = json.loads(self.ws.recv(timeout=10))
        if hello.get("type") != "hello":
            raise AssertionError(f"first frame is not hello: {hello}")
        self.closed_bars: list[int] = []
        self.resyncs = 0
        self.gone: str | None = None

    def pump(self, timeout: float) -> None:
        """Read frames for up to ``timeout`` seconds, noting closed bars and resyncs."""
        from websockets.exceptions import ConnectionClosed

        if self.gone:
            time.sleep(timeout)
            return
        try:
            frame = json.loads(self.ws.recv(timeout=timeout))
        except TimeoutError:
            return
        except ConnectionClosed as exc:
            self.gone = f"closed by the server ({exc.rcvd.code if exc.rcvd else 'no code'})"
            return
        if frame.get("type") == "bar" and frame.get("closed"):
            self.closed_bars.append(int(frame["t"]))
        elif frame.get("type") == "resync":
            self.resyncs += 1

    def close(self) -> None:
        self.ws.close()


def wait_for_health(stack: Stack, timeout_s: float) -> float:
    """Seconds until ``/health`` answers 200."""
    started = time.monotonic()
    wait_for(lambda: health_status(stack) == 200, timeout_s, "/health answers 200", poll_s=0.25)
    return time.monotonic() - started


def log_size(stack: Stack, name: str) -> int:
    return stack.log(name).stat().st_size if stack.log(name).exists() else 0


def config_evaluations(stack: Stack, name: str, offset: int = 0) -> int:
    """Evaluate tasks that ran at least one config and succeeded, in the log of worker
    ``name`` after byte ``offset``."""
    import re

    if not stack.log(name).exists():
        return 0
    with stack.log(name).open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return len(re.findall(r"Task orders\.tasks\.evaluate\[[0-9a-f-]+\] succeeded[^\n]*"
                          r"'configs': [1-9]", text))
