"""Every database constraint rejects a bad row at the database, not only in forms."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from markets.models import Account, Balance, Candle, Symbol
from orders.models import Fill, Order, Position
from strategies.models import BacktestRun, Signal, StrategyConfig

T0 = datetime(2026, 1, 1, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def rejected(create) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


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


@pytest.fixture
def config_factory(symbol, make_trader, make_account):
    owner = make_trader("owner")
    account = make_account(owner)

    def make(**overrides):
        fields = dict(
            owner=owner,
            name=f"c{StrategyConfig.objects.count()}",
            strategy="rsi",
            symbol=symbol,
            account=account,
        )
        fields.update(overrides)
        return StrategyConfig.objects.create(**fields)

    return make


@pytest.mark.parametrize("leverage", [0, 126])
def test_config_leverage_between_1_and_125(config_factory, leverage):
    rejected(lambda: config_factory(leverage=leverage))


@pytest.mark.parametrize(
    "field",
    [
        "stop_loss_pct",
        "take_profit_pct",
        "trailing_stop_pct",
        "daily_target_pct",
        "daily_max_loss_pct",
    ],
)
@pytest.mark.parametrize("value", [Decimal("0"), Decimal("-1")])
def test_config_percentages_positive_when_set(config_factory, field, value):
    config_factory(**{field: None})
    config_factory(**{field: Decimal("0.5")})
    rejected(lambda: config_factory(**{field: value}))


def test_config_name_unique_per_owner(config_factory):
    config_factory(name="x")
    rejected(lambda: config_factory(name="x"))


def test_signal_unique_per_config_bar_and_action(config_factory, symbol):
    config = config_factory()
    fields = dict(config=config, symbol=symbol, timeframe="1m", bar_time=T0, price=Decimal("1"))
    Signal.objects.create(action="enter_long", **fields)
    Signal.objects.create(action="exit_long", **fields)
    rejected(lambda: Signal.objects.create(action="enter_long", **fields))
    rejected(
        lambda: Signal.objects.create(action="enter_short", **{**fields, "price": Decimal("0")})
    )


@pytest.fixture
def order_factory(symbol, make_trader, make_account):
    account = make_account(make_trader("o"))

    def make(**overrides):
        fields = dict(
            account=account,
            symbol=symbol,
            side="buy",
            type="market",
            quantity=Decimal("1"),
            client_order_id=f"id-{Order.objects.count()}",
        )
        fields.update(overrides)
        return Order.objects.create(**fields)

    return make


@pytest.mark.parametrize(
    "overrides",
    [
        {"quantity": Decimal("0")},
        {"filled_quantity": Decimal("2")},
        {"filled_quantity": Decimal("-1")},
        {"price": Decimal("0")},
        {"type": "limit", "price": None},
        {"fee": Decimal("-0.1")},
        {"side": "hold"},
    ],
    ids=["qty=0", "overfilled", "filled<0", "price=0", "limit-no-price", "fee<0", "bad-side"],
)
def test_order_sanity_checks(order_factory, overrides):
    rejected(lambda: order_factory(**overrides))


def test_client_order_id_is_unique(order_factory):
    order_factory(client_order_id="abc")
    rejected(lambda: order_factory(client_order_id="abc"))


def test_fill_unique_per_order_trade_and_positive(order_factory):
    order = order_factory()
    fields = dict(order=order, price=Decimal("1"), quantity=Decimal("1"), ts=T0)
    Fill.objects.create(trade_id="t1", **fields)
    rejected(lambda: Fill.objects.create(trade_id="t1", **fields))
    rejected(lambda: Fill.objects.create(trade_id="t2", **{**fields, "price": Decimal("0")}))
    rejected(lambda: Fill.objects.create(trade_id="t3", **{**fields, "quantity": Decimal("0")}))


def test_one_open_position_per_account_and_symbol(symbol, make_trader, make_account):
    account = make_account(make_trader("p"))
    fields = dict(
        account=account,
        symbol=symbol,
        side="long",
        quantity=Decimal("1"),
        entry_price=Decimal("100"),
        opened_at=T0,
    )
    first = Position.objects.create(**fields)
    rejected(lambda: Position.objects.create(**fields))
    first.closed_at = T0 + timedelta(hours=1)
    first.save()
    Position.objects.create(**fields)  # a closed one does not block a new one
    rejected(lambda: Position.objects.create(**{**fields, "closed_at": T0, "leverage": 200}))
    rejected(
        lambda: Position.objects.create(**{**fields, "closed_at": T0, "entry_price": Decimal("0")})
    )
    rejected(
        lambda: Position.objects.create(**{**fields, "closed_at": T0, "stop_price": Decimal("-1")})
    )


def test_backtest_run_range_and_costs(symbol):
    fields = dict(
        strategy="rsi", symbol=symbol, timeframe="1m", start=T0, end=T0 + timedelta(days=1)
    )
    BacktestRun.objects.create(**fields)
    rejected(lambda: BacktestRun.objects.create(**{**fields, "end": T0}))
    rejected(lambda: BacktestRun.objects.create(**{**fields, "fee_bps": Decimal("-1")}))
    rejected(lambda: BacktestRun.objects.create(**{**fields, "cash": Decimal("0")}))


def test_account_mode_is_paper_by_default(make_trader, make_account):
    assert make_account(make_trader("m")).mode == Account.Mode.PAPER
