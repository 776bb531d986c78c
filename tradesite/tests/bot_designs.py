"""Set-up shared by the bot-design tests (``test_bot_designs.py``): a seeded simulator, its
venues as ``bootstrap_demo`` makes them, a trader who configures everything through the
admin's forms, candles backfilled from the simulator, and the production trading path
(``orders.tasks.exit_guard`` on each bar's prices, then ``orders.tasks.evaluate`` on its close)
replayed bar by bar.

Venues and symbols are shared market data that the platform's superuser keeps (``bootstrap_demo``
creates them): they are made here from the demo's own lists, pointed at the test simulator.
Everything a trader sets (the paper account and its funds, the config, its parameters, risk and
sizing) goes through the admin's add forms as an ordinary staff user."""

from __future__ import annotations

import contextlib
import re
from decimal import Decimal

from django.test import Client

from markets.models import Account, Exchange, Symbol
from markets.simulator.server import SimConfig, SimulatorThread
from markets.timeframes import timeframe_ms
from strategies.models import StrategyConfig
from tradesite import demo

#: 2026-03-11 14:40:30 UTC: a fixed anchor, so the simulator's history is the same every run.
ANCHOR_MS = 1_773_240_030_000
MINUTE_MS = 60_000
#: The simulator's protocol serving each demo venue, and the URL attributes of its handle.
SIM_PROTOCOL = {"sim": "upbit", "sim-binance": "binance", "sim-futures": "futures",
                "sim-bithumb": "bithumb"}
SIM_URLS = {
    "upbit": ("upbit_url", "upbit_ws_url"),
    "binance": ("binance_url", "binance_ws_url"),
    "futures": ("futures_url", "futures_ws_url"),
    "bithumb": ("bithumb_url", "bithumb_ws_url"),
}


@contextlib.contextmanager
def simulator(protocols: tuple[str, ...], *, seed: int, history_days: float):
    """A simulator serving ``protocols`` on free ports with a fixed clock anchor and seed."""
    handle = SimulatorThread(SimConfig(
        seed=seed, now_ms=ANCHOR_MS, history_days=history_days, trade_rate=1.0, tick_s=0.2,
        venues=protocols,
    ))
    try:
        yield handle
    finally:
        handle.stop()


def demo_venue(sim, slug: str) -> Exchange:
    """The demo venue ``slug`` with its symbols (``tradesite.demo``), on the test simulator."""
    spec = next(dict(v) for v in demo.venues() if v["slug"] == slug)
    rest, ws = SIM_URLS[SIM_PROTOCOL[slug]]
    spec.update(rest_url=getattr(sim, rest), ws_url=getattr(sim, ws))
    exchange = Exchange.objects.create(**spec)
    for symbol in demo.SYMBOLS[slug]:
        Symbol.objects.create(exchange=exchange, **symbol)
    return exchange


def form_errors(response) -> str:
    html = response.content.decode()
    found = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', html, re.S)
    found += re.findall(r'<p class="errornote">(.*?)</p>', html, re.S)
    return " ".join(found)


class AdminTrader:
    """A trader (staff, Traders group, not a superuser) working through the admin's forms."""

    def __init__(self, user, password: str):
        self.user = user
        self.client = Client()
        response = self.client.post(
            "/admin/login/?next=/admin/",
            {"username": user.username, "password": password, "next": "/admin/"},
        )
        assert response.status_code == 302, form_errors(response)

    def post(self, url: str, data: dict):
        response = self.client.post(url, data)
        assert response.status_code == 302, f"{url} refused: {form_errors(response)}"
        return response

    def add_paper_account(self, label: str, venue: Exchange, quote: str, funds: str) -> Account:
        """Accounts → Add: a paper account measuring equity in ``quote``, funded with
        ``funds`` of it (the Balances inline)."""
        self.post("/admin/markets/account/add/", {
            "label": label, "exchange": venue.pk, "quote_asset": quote, "mode": "paper",
            "new_api_key": "", "new_api_secret": "", "halted_reason": "",
            "balances-TOTAL_FORMS": "1", "balances-INITIAL_FORMS": "0",
            "balances-MIN_NUM_FORMS": "0", "balances-MAX_NUM_FORMS": "1000",
            "balances-0-asset": quote, "balances-0-free": funds, "balances-0-locked": "0",
        })
        return Account.objects.get(owner=self.user, label=label)

    def add_config(self, *, name: str, strategy: str, params: str, symbol: Symbol,
                   timeframe: str, account: Account, sizing_method: str, sizing_params: str,
                   leverage: int = 1, stop_loss: str = "", take_profit: str = "",
                   trailing: str = "", auto_apply_optimized: bool = False) -> StrategyConfig:
        """Strategy configs → Add, active, with its parameters, risk and sizing as typed."""
        data = {
            "name": name, "strategy": strategy, "params": params, "symbol": symbol.pk,
            "timeframe": timeframe, "account": account.pk, "is_active": "on",
            "leverage": str(leverage), "stop_loss_pct": stop_loss, "take_profit_pct": take_profit,
            "trailing_stop_pct": trailing, "daily_target_pct": "", "daily_max_loss_pct": "",
            "sizing_method": sizing_method, "sizing_params": sizing_params,
        }
        if auto_apply_optimized:
            data["auto_apply_optimized"] = "on"
        self.post("/admin/strategies/strategyconfig/add/", data)
        return StrategyConfig.objects.select_related("symbol__exchange", "account").get(
            owner=self.user, name=name)


def backfill_from_sim(sim, symbol: Symbol, timeframe: str, start_ms: int, end_ms: int) -> int:
    """Candles of ``symbol`` in ``[start, end)`` fetched from the simulator by the venue's
    adapter (``markets.backfill``, as ``manage.py backfill``); returns how many are stored."""
    from markets.backfill import adapter_for, backfill
    from markets.models import Candle

    clock = sim.sim.clock_ms
    backfill([symbol], [timeframe], start_ms=start_ms, end_ms=end_ms, clock_ms=clock,
             adapter_factory=lambda ex: adapter_for(ex, clock=lambda: clock() / 1000.0),
             progress=False)
    return Candle.objects.filter(symbol=symbol, timeframe=timeframe).count()


def trade_bars(config: StrategyConfig, start_ms: int, end_ms: int, *, until=None) -> int:
    """The production trading path over the stored bars of the config's symbol and timeframe
    opening in ``[start, end)``: per bar, the exit guard task on the bar's trades (its open,
    high and low, as the stream sends them), then the evaluation task on its close (signals,
    orders, paper fills). Stops after the first bar where ``until()`` holds; returns the
    number of bars traded."""
    from markets.candles import load_candles
    from orders import tasks

    venue, code = config.symbol.exchange.slug, config.symbol.code
    candles = load_candles(config.symbol_id, config.timeframe, start_ms=start_ms, end_ms=end_ms)
    assert len(candles), f"no {config.timeframe} candles of {config.symbol} stored to trade on"
    for i in range(len(candles)):
        t = int(candles.open_time_ms[i])
        tasks.exit_guard(venue, code, float(candles.open[i]), t,
                         high=float(candles.high[i]), low=float(candles.low[i]))
        tasks.evaluate(venue, code, config.timeframe, t)
        if until is not None and until():
            return i + 1
    return len(candles)


def bar_ms(timeframe: str, bars: int) -> int:
    return bars * timeframe_ms(timeframe)


def pct(value) -> Decimal:
    return Decimal(str(value))
