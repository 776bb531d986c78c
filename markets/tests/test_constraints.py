"""Every database constraint of the markets models rejects a bad row at the database, not only
in forms. (The orders and strategies models' constraint tests live in their apps.)"""

from datetime import timedelta
from decimal import Decimal

import pytest

from markets.models import Account, Balance, Candle, Symbol
from markets.tests.constraints import T0, rejected

pytestmark = pytest.mark.django_db


def candle(symbol, **overrides):
    fields = dict(
        symbol=symbol,
        timeframe="1m",
        open_time=T0,
        open=100.0,
        high=110.0,
        low=90.0,
        close=105.0,
        volume=1.0,
    )
    fields.update(overrides)
    return Candle.objects.create(**fields)


@pytest.mark.parametrize(
    "overrides",
    [
        {"high": 104.0},  # below close
        {"high": 99.0, "close": 95.0},  # below open
        {"low": 101.0},  # above open
        {"low": 106.0, "open": 107.0},  # above close
        {"volume": -1.0},
        {"quote_volume": -5.0},
        {"low": 0.0, "open": 1.0, "close": 1.0},  # prices must be positive
        {"timeframe": "2m"},
    ],
    ids=[
        "high<close",
        "high<open",
        "low>open",
        "low>close",
        "volume<0",
        "quote_volume<0",
        "low=0",
        "unknown-timeframe",
    ],
)
def test_candle_sanity_checks_reject_bad_rows(symbol, overrides):
    rejected(lambda: candle(symbol, **overrides))


def test_candle_is_unique_per_symbol_timeframe_and_open_time(symbol):
    candle(symbol)
    candle(symbol, timeframe="5m")
    candle(symbol, open_time=T0 + timedelta(minutes=1))
    rejected(lambda: candle(symbol))


def test_symbol_rules(exchange):
    base = dict(exchange=exchange, base="BTC", quote="KRW")
    rejected(lambda: Symbol.objects.create(code="KRW/BTC", **base))
    rejected(lambda: Symbol.objects.create(code="A", max_leverage=0, **base))
    rejected(lambda: Symbol.objects.create(code="B", max_leverage=126, **base))
    rejected(lambda: Symbol.objects.create(code="C", step_size=Decimal("0"), **base))
    rejected(lambda: Symbol.objects.create(code="D", tick_size=Decimal("-1"), **base))
    rejected(lambda: Symbol.objects.create(code="E", min_notional=Decimal("-1"), **base))
    Symbol.objects.create(code="KRW-BTC", **base)
    rejected(lambda: Symbol.objects.create(code="KRW-BTC", **base))


def test_balance_never_negative_and_unique_per_asset(make_trader, make_account):
    account = make_account(make_trader("a"))
    rejected(lambda: Balance.objects.create(account=account, asset="KRW", free=Decimal("-1")))
    rejected(lambda: Balance.objects.create(account=account, asset="KRW", locked=Decimal("-1")))
    Balance.objects.create(account=account, asset="KRW", free=Decimal("1"))
    rejected(lambda: Balance.objects.create(account=account, asset="KRW"))


def test_account_label_unique_per_owner(make_trader, make_account):
    user = make_trader("a")
    make_account(user, label="main")
    make_account(make_trader("b"), label="main")
    rejected(lambda: make_account(user, label="main"))


def test_account_mode_is_paper_by_default(make_trader, make_account):
    assert make_account(make_trader("m")).mode == Account.Mode.PAPER
