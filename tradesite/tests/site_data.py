"""Demo-like rows for the shell's page tests and ``make screenshots``: a simulator venue with
three symbols and their candles, a paper account with a config, a signal, a filled order and an
open position, equity snapshots, a finished backtest, a finished optimizer run and the
screener's ranking. Everything is computed by the app's own services (the backtester, the
optimizer, the screener), on stored candles; no exchange is called."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher

MINUTE = 60_000
HOUR = 3_600_000


def _walk(symbol, tf: str, end_ms: int, n: int, step: int, *, seed: int, price: float) -> list:
    """n candles of a random walk from ``price`` up to ``end_ms``; returns [(time, close)]."""
    from markets.candles import upsert_candles
    from strategies.tests.conftest import random_walk

    c = random_walk(n, seed=seed, step_ms=step, vol=0.0008 if step == MINUTE else 0.006)
    scale = price / float(c.close[0])
    start = end_ms - n * step
    shift = start - int(c.open_time_ms[0])
    upsert_candles(symbol.pk, tf, list(zip(
        (c.open_time_ms + shift).tolist(), (c.open * scale).tolist(), (c.high * scale).tolist(),
        (c.low * scale).tolist(), (c.close * scale).tolist(), c.volume.tolist(),
    )))
    return list(zip((c.open_time_ms + shift).tolist(), (c.close * scale).tolist()))


def trader(username: str, password: str):
    """A staff user in the Traders group whose password the web server's own hashers check."""
    from tradesite.demo import traders_group

    user = get_user_model().objects.create_user(username, is_staff=True)
    user.password = PBKDF2PasswordHasher().encode(password, "saltsaltsalt", iterations=1000)
    user.save(update_fields=["password"])
    user.groups.add(traders_group())
    return user


def populate(user, *, now_ms: int) -> dict:
    """The rows; returns the primary keys the pages are found by."""
    from markets.models import Account, Balance, Exchange, Symbol
    from markets.timeframes import floor_ms
    from orders.models import EquitySnapshot, Order, Position
    from strategies import optimization, screening, tasks
    from strategies.models import BacktestRun, Signal, StrategyConfig

    exchange = Exchange.objects.create(
        slug="sim", name="Simulator", adapter="upbit", rest_url="http://127.0.0.1:1",
        ws_url="ws://127.0.0.1:1")
    symbols, minutes = {}, {}
    for code, price, seed in (("KRW-BTC", 95_000_000.0, 1), ("KRW-ETH", 4_200_000.0, 2),
                              ("KRW-XRP", 850.0, 3)):
        base = code.split("-")[1]
        symbols[code] = Symbol.objects.create(
            exchange=exchange, code=code, base=base, quote="KRW", min_notional=Decimal("5000"),
            max_leverage=10, is_active=code != "KRW-XRP")
        hourly = _walk(symbols[code], "1h", floor_ms(now_ms, "1h"), 24 * 60, HOUR, seed=seed,
                       price=price)
        # The minutes go on from the hour two days back, so both timeframes tell one story.
        minutes[code] = _walk(symbols[code], "1m", floor_ms(now_ms, "1m"), 2 * 1440, MINUTE,
                              seed=seed + 10, price=hourly[-48][1])
    btc = symbols["KRW-BTC"]
    entry = Decimal(round(minutes["KRW-BTC"][-12][1]))

    account = Account.objects.create(owner=user, exchange=exchange, label="paper")
    Balance.objects.create(account=account, asset="KRW", free=Decimal("9810000"))
    Balance.objects.create(account=account, asset="BTC", free=Decimal("0.002"))
    config = StrategyConfig.objects.create(
        owner=user, name="BTC RSI", strategy="rsi", symbol=btc, account=account, timeframe="1m",
        is_active=True)
    now = dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC)
    signal = Signal.objects.create(
        config=config, symbol=btc, timeframe="1m", action="enter_long",
        price=entry, bar_time=now - dt.timedelta(minutes=12), reason={"rsi": 27.4})
    Order.objects.create(
        account=account, config=config, signal=signal, symbol=btc, side="buy", type="market",
        quantity=Decimal("0.002"), client_order_id=str(uuid.uuid4()), status="filled",
        filled_quantity=Decimal("0.002"), average_price=entry,
        fee=(entry * Decimal("0.002") * Decimal("0.0005")).quantize(Decimal("0.01")),
        fee_asset="KRW", reason="entry")
    Position.objects.create(
        account=account, config=config, symbol=btc, side="long", quantity=Decimal("0.002"),
        entry_price=entry, stop_price=(entry * Decimal("0.98")).quantize(Decimal(1)),
        opened_at=now - dt.timedelta(minutes=11))
    for i in range(48):
        equity = Decimal("10000000") + Decimal(i * 2500 - (i % 7) * 4000)
        EquitySnapshot.objects.create(
            account=account, ts=now - dt.timedelta(minutes=5 * (48 - i)), equity=equity,
            cash=equity)

    end = dt.datetime.fromtimestamp(floor_ms(now_ms, "1h") / 1000, tz=dt.UTC)
    backtest = BacktestRun.objects.create(
        owner=user, config=config, strategy="ma_cross",
        params={"short": 5, "mid": 12, "long": 30}, symbol=btc, timeframe="1h",
        start=end - dt.timedelta(days=45), end=end)
    tasks.run_backtest_run(backtest.pk)

    opt_config = StrategyConfig.objects.create(
        owner=user, name="BTC MA cross", strategy="ma_cross", symbol=btc, account=account,
        timeframe="1m")
    run = optimization.create_run(opt_config, end=now, days=2, trials=12, workers=1,
                                  requested_by=user)
    run = optimization.execute_run(run.pk, workers=1)
    screening.screen_exchange(exchange, now=now)
    return {"backtest": backtest.pk, "run": run.pk, "symbol": btc.code, "venue": exchange.slug,
            "user": user.pk}
