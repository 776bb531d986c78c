"""Account-state gates: daily target and max loss (trading day of settings.TIME_ZONE), leverage
above the venue's maximum, halted accounts, and one user's evaluation never touching another's
account."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from markets.models import Balance
from orders import services, tasks
from orders.models import EquitySnapshot, Order, Position
from orders.tests.conftest import MINUTE, T0, fund, store
from strategies.models import Signal

pytestmark = pytest.mark.django_db(transaction=True)
PRICE = 50_000_000.0
NEXT_DAY_MINUTE = 15 * 60 + 3  # T0 is 09:00 in Asia/Seoul; the next trading day is 15 h later


def execution(config, minute):
    bar = datetime.fromtimestamp((T0 + minute * MINUTE) / 1000, tz=UTC)
    return Signal.objects.get(config=config, bar_time=bar).reason["execution"]


def day_started_with(account, equity, minute=-60):
    EquitySnapshot.objects.create(
        account=account,
        ts=datetime.fromtimestamp((T0 + minute * MINUTE) / 1000, tz=UTC),
        equity=Decimal(equity),
        cash=Decimal(equity),
    )


def test_daily_target_reached_blocks_entries_until_the_next_trading_day(
    symbol, paper, make_config, settings
):
    settings.TIME_ZONE = "Asia/Seoul"
    fund(paper, "KRW", "1100000")  # +10% on the day
    day_started_with(paper, "1000000")
    config = make_config(paper, daily_target_pct=Decimal("5"))
    store(symbol, [PRICE] * (NEXT_DAY_MINUTE + 1))

    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    outcome = execution(config, 3)
    assert outcome["status"] == "rejected"
    assert outcome["reason"].startswith("daily target reached: equity is up 10.00% today")
    config.params = {"enter": 600}  # 19:00 in Seoul: the same trading day
    config.save()
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 600 * MINUTE)
    assert execution(config, 600)["status"] == "rejected"
    assert not Order.objects.exists()

    config.params = {"enter": NEXT_DAY_MINUTE}  # 00:03 in Seoul the next day
    config.save()
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + NEXT_DAY_MINUTE * MINUTE)
    assert execution(config, NEXT_DAY_MINUTE)["status"] == "ordered"
    assert Position.objects.filter(account=paper, closed_at__isnull=True).count() == 1


def test_daily_max_loss_blocks_entries_but_not_exits(symbol, paper, make_config, settings):
    settings.TIME_ZONE = "Asia/Seoul"
    config = make_config(paper, daily_max_loss_pct=Decimal("3"), params={"enter": 3, "exit": 5})
    store(symbol, [PRICE] * 4 + [PRICE * 0.9, PRICE * 0.9])
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    assert execution(config, 3)["status"] == "ordered"
    # The day's reference was written at the first entry: equity then, about 1,000,000 KRW.
    assert EquitySnapshot.objects.filter(account=paper).count() == 1
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 5 * MINUTE)
    assert execution(config, 5)["status"] == "ordered"  # the exit goes through
    assert Position.objects.get().close_reason == "signal"
    config.params = {"enter": 7}
    config.save()
    store(symbol, [PRICE * 0.9] * 3, start=T0 + 6 * MINUTE)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 7 * MINUTE)
    outcome = execution(config, 7)
    assert outcome["status"] == "rejected"
    assert outcome["reason"].startswith("daily max loss hit: equity is down")


def test_leverage_above_the_symbols_maximum_is_rejected_with_a_reason(
    symbol, paper, make_config
):
    config = make_config(paper, leverage=20)  # the symbol allows 10x
    store(symbol, [PRICE] * 4)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    outcome = execution(config, 3)
    assert outcome["status"] == "rejected"
    assert outcome["reason"] == (
        "leverage 20x is above the maximum 10x for sim:KRW-BTC; lower the config's leverage"
    )
    assert not Order.objects.exists()


def test_order_below_the_venue_minimum_and_insufficient_balance_are_rejected(
    symbol, paper, make_config
):
    fund(paper, "KRW", "3000")
    config = make_config(paper)
    store(symbol, [PRICE] * 4)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    reason = execution(config, 3)["reason"]
    assert reason.startswith("order value") and "below the venue minimum 5000 KRW" in reason

    fund(paper, "KRW", "1000000")
    config.sizing_method = "fixed_quote"
    config.sizing_params = {"amount": 10_000}
    config.params = {"enter": 4}
    config.save()
    # Equity stays 1,000,000 KRW but only 4,000 is free (the rest held by an open order).
    Balance.objects.filter(account=paper, asset="KRW").update(
        free=Decimal("4000"), locked=Decimal("996000")
    )
    store(symbol, [PRICE] * 2, start=T0 + 4 * MINUTE)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 4 * MINUTE)
    reason = execution(config, 4)["reason"]
    assert reason.startswith("insufficient balance: the smallest order the venue takes needs")
    assert "4000 KRW is free" in reason


def test_halted_account_places_nothing(symbol, paper, make_config):
    config = make_config(paper)
    services.halt_account(paper, "testing")
    store(symbol, [PRICE] * 4)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    assert execution(config, 3) == {
        "status": "rejected",
        "reason": "account is halted (testing); no new orders until a person resumes it in "
        "the admin",
        "orders": [],
    }


def test_one_users_evaluation_never_touches_another_users_account(
    symbol, paper, make_config, make_trader, make_account
):
    bob = make_trader("bob")
    bob_account = make_account(bob, label="bob-paper")
    fund(bob_account, "KRW", "500000")
    alice_config = make_config(paper)
    bob_config = make_config(bob_account, name="bob-script", params={"enter": 4})
    # A config of Alice's pointing at Bob's account (a forged form): refused, nothing moves.
    forged = make_config(bob_account, name="forged", owner=paper.owner)
    store(symbol, [PRICE] * 5)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)

    assert Order.objects.get().account_id == paper.pk
    assert Order.objects.get().config_id == alice_config.pk
    assert Balance.objects.get(account=bob_account, asset="KRW").free == Decimal("500000")
    assert not Position.objects.filter(account=bob_account).exists()
    assert execution(forged, 3)["reason"] == (
        "the config's account belongs to another user; pick one of yours"
    )
    assert not Signal.objects.filter(config=bob_config).exists()
