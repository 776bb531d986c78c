from decimal import Decimal as D

import pytest
from django.contrib.auth import get_user_model
from django_celery_beat.models import PeriodicTask

from markets.models import Account, Exchange, Symbol
from orders.models import EquitySnapshot
from strategies.models import StrategyConfig
from tradesite.demo import (
    LIVELY_CONFIG,
    MISSING_TASK_NOTE,
    PERIODIC_TASKS,
    bootstrap,
    registered_task_names,
)

pytestmark = pytest.mark.django_db


def test_bootstrap_creates_demo_data_once(tmp_path, monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "admin-pw-from-env")
    creds = tmp_path / "creds.txt"
    first = bootstrap(write_credentials_to=creds)
    assert set(first.credentials) == {"demo"}  # admin's password came from the environment
    assert creds.read_text().startswith("demo ")
    User = get_user_model()
    assert User.objects.get(username="admin").check_password("admin-pw-from-env")
    assert User.objects.get(username="demo").check_password(first.credentials["demo"])
    assert set(Exchange.objects.values_list("slug", flat=True)) == {
        "sim",
        "sim-binance",
        "sim-futures",
        "sim-bithumb",
        "upbit",
        "bithumb",
        "binance_spot",
        "binance_futures",
    }
    assert Exchange.objects.get(slug="sim").rest_url.startswith("http://127.0.0.1:")
    assert (
        Symbol.objects.filter(exchange__slug="binance_futures", market_type="perpetual").count()
        == 2
    )
    account = Account.objects.get(owner__username="demo", label="Demo paper (sim)")
    assert account.mode == "paper" and account.balances.get(asset="KRW").free == 10_000_000

    counts = [m.objects.count() for m in (User, Exchange, Symbol, Account, PeriodicTask)]
    second = bootstrap(write_credentials_to=creds)
    assert second.created == [] and second.credentials == {}
    assert [m.objects.count() for m in (User, Exchange, Symbol, Account, PeriodicTask)] == counts


def test_default_periodic_tasks_on_their_queues(tmp_path):
    bootstrap()
    known = registered_task_names()
    for spec in PERIODIC_TASKS:
        task = PeriodicTask.objects.get(name=spec["name"])
        assert task.task == spec["task"] and task.queue == spec["queue"]
        # Beat never sends a task no worker knows: such tasks wait disabled, with a note.
        assert task.enabled == (spec["task"] in known)
        assert task.enabled or task.description.startswith(MISSING_TASK_NOTE)
    optimize = PeriodicTask.objects.get(name="Optimize strategies")
    assert (optimize.crontab.minute, optimize.crontab.hour) == ("5", "0")
    assert str(optimize.crontab.timezone) == "Asia/Seoul"
    # A point a minute on the equity curve: a visitor sees it move within minutes.
    assert PeriodicTask.objects.get(name="Snapshot equity").interval.every == 60
    prepare = PeriodicTask.objects.get(name="Prepare the demo's market data")
    assert prepare.one_off and prepare.enabled and prepare.queue == "collector"


def test_demo_user_is_a_staff_trader_not_superuser():
    bootstrap()
    demo = get_user_model().objects.get(username="demo")
    assert demo.is_staff and not demo.is_superuser
    assert demo.has_perm("strategies.change_strategyconfig")
    assert not demo.has_perm("orders.change_order")


def test_bootstrap_makes_funded_usdt_paper_accounts_on_the_simulated_binance_venues():
    bootstrap()
    for slug, market_type in (("sim-binance", "spot"), ("sim-futures", "perpetual")):
        venue = Exchange.objects.get(slug=slug)
        assert venue.is_active and venue.rest_url.startswith("http://127.0.0.1:")
        assert set(venue.symbols.values_list("market_type", "quote")) == {(market_type, "USDT")}
        account = Account.objects.get(owner__username="demo", exchange=venue,
                                      label__startswith="Demo paper USDT")
        assert (account.mode, account.quote_asset) == ("paper", "USDT")
        assert account.balances.get(asset="USDT").free == 10_000
        account.full_clean()  # the venue trades USDT: the account validates as it is

    # Only what is missing: a deleted account comes back funded, a spent one is left alone.
    spot = Account.objects.get(owner__username="demo", label="Demo paper USDT (sim Binance spot)")
    spot.balances.filter(asset="USDT").update(free=1)
    StrategyConfig.objects.filter(name=LIVELY_CONFIG).delete()  # it trades on that account
    Account.objects.filter(owner__username="demo", label="Demo paper USDT (sim futures)").delete()
    report = bootstrap()
    assert report.created == ["paper account Demo paper USDT (sim futures) with 10,000 USDT",
                              f"config {LIVELY_CONFIG}",
                              "equity snapshot of Demo paper USDT (sim futures)"]
    assert spot.balances.get(asset="USDT").free == 1


def test_bootstrap_seeds_the_bot_designs_each_on_a_paper_account_of_its_own():
    from strategies.models import StrategyConfig
    from tradesite.demo_bots import DESIGNS

    report = bootstrap()
    seeded = StrategyConfig.objects.filter(owner__username="demo",
                                           name__in=[d.name for d in DESIGNS])
    by_name = {c.name: c for c in seeded.select_related("account", "symbol__exchange")}
    venues = set(Exchange.objects.values_list("slug", flat=True))
    for design in DESIGNS:
        if design.venue not in venues:
            assert any(design.name in line for line in report.skipped)
            continue
        config = by_name[design.name]
        assert config.is_active and config.strategy == design.strategy
        assert (config.symbol.exchange.slug, config.symbol.code) == (design.venue, design.symbol)
        assert config.account.label == design.account_label and config.account.mode == "paper"
        assert config.account.balances.get(asset=design.quote).free == design.funds
        assert StrategyConfig.objects.filter(account=config.account).count() == 1
        config.full_clean()
    futures = by_name["Binance futures Bollinger 10x (BTCUSDT 1m)"]
    assert futures.leverage == 10 and futures.params["exit"] == "none"
    assert (futures.take_profit_pct, futures.stop_loss_pct) == (D("0.16"), D("0.11"))
    assert by_name["Upbit ensemble (KRW-BTC 1m)"].auto_apply_optimized
    assert by_name["Binance MACD turtle (BTCUSDT 1m)"].sizing_method == "atr_unit"
    assert by_name["Upbit volatility breakout Kelly (KRW-BTC 1h)"].sizing_method == "kelly"
    assert by_name["Bithumb Bollinger (KRW-BTC 5m)"].symbol.exchange.adapter == "bithumb"
    assert len(by_name) == len(DESIGNS) and not report.skipped
    assert bootstrap().created == []


def test_bootstrap_makes_a_bithumb_venue_on_the_simulator_with_a_krw_paper_account(settings):
    bootstrap()
    venue = Exchange.objects.get(slug="sim-bithumb")
    assert venue.is_active and venue.adapter == "bithumb"
    assert venue.rest_url.endswith(f":{settings.SIMULATOR_BITHUMB_PORT}")
    for symbol in venue.symbols.all():
        # Only what Bithumb's REST serves: its 4h and 1d candles open on KST boundaries.
        assert "4h" not in symbol.timeframes and "1d" not in symbol.timeframes
    account = Account.objects.get(owner__username="demo", label="Demo paper (sim Bithumb)")
    assert account.exchange == venue and (account.mode, account.quote_asset) == ("paper", "KRW")
    assert account.balances.get(asset="KRW").free == 10_000_000
    account.full_clean()


def test_the_lively_demo_config_trades_the_simulated_perpetual_at_5x_from_a_funded_curve():
    bootstrap()
    config = StrategyConfig.objects.get(owner__username="demo", name=LIVELY_CONFIG)
    assert config.is_active and config.leverage == 5 and config.timeframe == "1m"
    assert config.symbol.exchange.slug == "sim-futures"
    assert config.symbol.market_type == "perpetual"
    assert config.account.label == "Demo paper USDT (sim futures)"
    config.full_clean()
    # Every demo account's equity curve starts at its funding; a second bootstrap adds none.
    accounts = Account.objects.filter(owner__username="demo")
    for account in accounts:
        snapshot = EquitySnapshot.objects.get(account=account)
        assert snapshot.equity == snapshot.cash == account.balances.get(
            asset=account.quote_asset).free
    assert bootstrap().created == []
    assert EquitySnapshot.objects.count() == accounts.count()
