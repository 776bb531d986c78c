"""Fixtures for trading tests: a scripted strategy, funded paper accounts, stored candles and
a listener on a user's private channel group."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import numpy as np
import pytest
from asgiref.sync import async_to_sync

from markets.candles import upsert_candles
from markets.models import Balance, Symbol
from strategies import registry
from strategies.base import ENTER_LONG, ENTER_SHORT, EXIT_LONG, HOLD, Signals, Strategy
from strategies.models import StrategyConfig
from strategies.params import Params, param

MINUTE = 60_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC (09:00 in Asia/Seoul)


@dataclasses.dataclass(frozen=True)
class ScriptParams(Params):
    enter: int = param(3, min=0, max=100_000, help="minute index (since T0) to enter long")
    exit: int = param(0, min=0, max=100_000, help="minute index to exit; 0 = never")
    short: int = param(0, min=0, max=100_000, help="minute index to enter short; 0 = never")


class Script(Strategy):
    """Acts on fixed minutes since T0: what a test needs to drive execution bar by bar."""

    name = "test_script"
    Params = ScriptParams

    def lookback(self):
        return 1

    def signals(self, candles):
        minute = (candles.open_time_ms - T0) // MINUTE
        actions = np.full(len(candles), HOLD, dtype=np.int8)
        actions[minute == self.params.enter] = ENTER_LONG
        if self.params.exit:
            actions[minute == self.params.exit] = EXIT_LONG
        if self.params.short:
            actions[minute == self.params.short] = ENTER_SHORT
        return Signals(actions=actions)


@pytest.fixture(autouse=True)
def script_strategy():
    registry.register(Script)
    yield
    registry.unregister(Script.name)


def store(symbol, closes, start=T0, timeframe="1m", spread=0.001):
    """Candles whose open is the previous close (so a fill at a close equals the backtester's
    fill at the next open), high/low ``spread`` around the body."""
    rows = []
    prev = closes[0]
    for i, close in enumerate(closes):
        high = max(prev, close) * (1 + spread)
        low = min(prev, close) * (1 - spread)
        rows.append((start + i * MINUTE, prev, high, low, close, 1.0))
        prev = close
    upsert_candles(symbol.pk, timeframe, rows)


def fund(account, asset, amount):
    Balance.objects.update_or_create(
        account=account, asset=asset, defaults={"free": Decimal(amount), "locked": Decimal(0)}
    )


@pytest.fixture
def trader(make_trader):
    return make_trader("alice")


def funded_paper_account(make_account, owner, label, asset, amount):
    """A paper account of ``owner`` quoted in ``asset`` and holding ``amount`` of it."""
    account = make_account(owner, label=label, quote_asset=asset)
    fund(account, asset, amount)
    return account


@pytest.fixture
def paper(trader, make_account):
    return funded_paper_account(make_account, trader, "alice-paper", "KRW", "1000000")


@pytest.fixture
def perpetual(exchange):
    """A USDT perpetual on the test exchange (tick 0.1, step 0.001, up to 20x)."""
    return Symbol.objects.create(
        exchange=exchange, code="BTCUSDT", base="BTC", quote="USDT",
        market_type=Symbol.MarketType.PERPETUAL, tick_size=Decimal("0.1"),
        step_size=Decimal("0.001"), min_notional=Decimal("5"), max_leverage=20,
    )


@pytest.fixture
def futures_account(trader, make_account):
    """A paper futures account holding 10,000 USDT."""
    return funded_paper_account(make_account, trader, "futures", "USDT", "10000")


@pytest.fixture
def make_config(symbol):
    def make(account, name="script", **fields):
        params = fields.pop("params", {"enter": 3})
        defaults = dict(
            owner=account.owner, name=name, strategy="test_script", params=params,
            symbol=symbol, timeframe="1m", account=account, is_active=True,
        )
        return StrategyConfig.objects.create(**(defaults | fields))

    return make


class Listener:
    """Collects the messages pushed to ``user.<id>``."""

    def __init__(self, user_id):
        from channels.layers import get_channel_layer

        from markets import wire

        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(wire.user_group(user_id), self.channel)

    def drain(self, wait=0.3) -> list[dict]:
        async def collect():
            out = []
            while True:
                try:
                    out.append(await asyncio.wait_for(self.layer.receive(self.channel), wait))
                except TimeoutError:
                    return out

        return async_to_sync(collect)()


@pytest.fixture
def listen(redis_url):
    return Listener
