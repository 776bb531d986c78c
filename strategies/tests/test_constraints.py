"""Every database constraint of the strategies models rejects a bad row at the database, not
only in forms."""

from datetime import timedelta
from decimal import Decimal

import pytest

from markets.tests.constraints import T0, rejected
from strategies.models import BacktestRun, Signal, StrategyConfig

pytestmark = pytest.mark.django_db


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


def test_backtest_run_range_and_costs(symbol):
    fields = dict(
        strategy="rsi", symbol=symbol, timeframe="1m", start=T0, end=T0 + timedelta(days=1)
    )
    BacktestRun.objects.create(**fields)
    rejected(lambda: BacktestRun.objects.create(**{**fields, "end": T0}))
    rejected(lambda: BacktestRun.objects.create(**{**fields, "fee_bps": Decimal("-1")}))
    rejected(lambda: BacktestRun.objects.create(**{**fields, "cash": Decimal("0")}))
