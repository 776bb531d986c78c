"""Demo data for a fresh install: users, venues, symbols, a paper account, an example config,
the five original bot designs (``tradesite.demo_bots``) and the default periodic tasks. Every
step creates only what does not exist yet (idempotent)."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from markets.exchanges import ADAPTERS
from markets.models import Account, Balance, Exchange, Symbol
from orders.models import EquitySnapshot
from strategies import registry
from strategies.models import StrategyConfig
from tradesite import demo_bots, envconfig

D = Decimal
TRADERS_GROUP = "Traders"
MISSING_TASK_NOTE = "[waiting for task code]"


def _sim_urls(port: int) -> tuple[str, str]:
    """REST and WebSocket roots of the simulator's venue on ``port`` (one port per protocol)."""
    host = settings.SIMULATOR_HOST
    return f"http://{host}:{port}", f"ws://{host}:{port}"


#: The simulated venues: (slug, protocol, the setting naming the simulator's port for it).
SIM_VENUES = [
    ("sim", "upbit", "Upbit protocol", "SIMULATOR_UPBIT_PORT"),
    ("sim-binance", "binance_spot", "Binance spot protocol", "SIMULATOR_BINANCE_PORT"),
    ("sim-futures", "binance_futures", "Binance USDⓈ-M futures protocol",
     "SIMULATOR_FUTURES_PORT"),
    ("sim-bithumb", "bithumb", "Bithumb protocol", "SIMULATOR_BITHUMB_PORT"),
]


def venues() -> list[dict]:
    """The simulated venues (active) and the real ones (inactive, named and addressed as their
    adapters' production defaults)."""
    specs = []
    for slug, adapter, protocol, port_setting in SIM_VENUES:
        rest, ws = _sim_urls(getattr(settings, port_setting))
        specs.append(dict(slug=slug, name=f"Simulator ({protocol})", adapter=adapter,
                          rest_url=rest, ws_url=ws, is_active=True))
    for adapter in ("upbit", "bithumb", "binance_spot", "binance_futures"):
        cls = ADAPTERS[adapter]
        specs.append(dict(slug=adapter, name=Exchange.Adapter(adapter).label, adapter=adapter,
                          rest_url=cls.DEFAULT_REST_URL, ws_url=cls.DEFAULT_WS_URL,
                          is_active=False))
    return specs


def _krw(code: str) -> dict:
    base = code.split("-")[1]
    return dict(
        code=code,
        base=base,
        quote="KRW",
        market_type="spot",
        tick_size=None,
        step_size=D("0.00000001"),
        min_notional=D("5000"),
        max_leverage=1,
    )


#: What Bithumb's REST serves natively (its 4h and 1d open on KST boundaries, not UTC ones).
BITHUMB_TIMEFRAMES = ["1m", "3m", "5m", "15m", "30m", "1h"]


def _usdt(code: str, base: str, *, tick: str, step: str, notional: str, perpetual=False) -> dict:
    return dict(
        code=code,
        base=base,
        quote="USDT",
        market_type="perpetual" if perpetual else "spot",
        tick_size=D(tick),
        step_size=D(step),
        min_notional=D(notional),
        max_leverage=125 if perpetual else 1,
    )


def _binance_spot() -> list[dict]:
    return [_usdt("BTCUSDT", "BTC", tick="0.01", step="0.00001", notional="5"),
            _usdt("ETHUSDT", "ETH", tick="0.01", step="0.0001", notional="5")]


def _binance_futures(*, btc_notional: str, eth_notional: str) -> list[dict]:
    return [_usdt("BTCUSDT", "BTC", tick="0.10", step="0.001", notional=btc_notional,
                  perpetual=True),
            _usdt("ETHUSDT", "ETH", tick="0.01", step="0.001", notional=eth_notional,
                  perpetual=True)]


SYMBOLS = {
    "sim": [_krw("KRW-BTC"), _krw("KRW-ETH")],
    "upbit": [_krw("KRW-BTC"), _krw("KRW-ETH"), _krw("KRW-XRP")],
    "bithumb": [_krw("KRW-BTC"), _krw("KRW-ETH")],
    "sim-bithumb": [_krw("KRW-BTC") | {"timeframes": BITHUMB_TIMEFRAMES},
                    _krw("KRW-ETH") | {"timeframes": BITHUMB_TIMEFRAMES}],
    # As the simulator serves them (simulator/server.py default_symbols).
    "sim-binance": _binance_spot(),
    "sim-futures": _binance_futures(btc_notional="5", eth_notional="5"),
    "binance_spot": _binance_spot(),
    "binance_futures": _binance_futures(btc_notional="100", eth_notional="20"),
}

#: The config that keeps the demo visibly alive: Bollinger bands of 5 bars at 0.5 standard
#: deviations on the simulator's BTCUSDT perpetual, 1m, with no exit signal, so it is always in a
#: position and reverses long/short every few minutes (about 12 times an hour on the simulator's
#: prices; its first entry comes within 1 to 5 closed bars) at 5x: leverage, shorts and the
#: liquidation price show on the dashboard.
LIVELY_CONFIG = "Demo: trades every few minutes"

#: Example configs on the demo's shared paper accounts (``account``: the label); the five
#: original bot designs, each on a paper account of its own, are in ``tradesite.demo_bots``.
EXAMPLE_CONFIGS = [
    dict(
        name=LIVELY_CONFIG,
        account="Demo paper USDT (sim futures)",
        strategy="bollinger",
        params={"period": 5, "k": 0.5, "exit": "none"},
        symbol="BTCUSDT",
        timeframe="1m",
        leverage=5,
        sizing_method="fraction",
        sizing_params={"fraction": 0.2},
        is_active=True,
    ),
    dict(
        name="RSI 14 on BTC (1m)",
        account="Demo paper (sim)",
        strategy="rsi",
        params={"period": 14, "oversold": 30, "overbought": 70},
        symbol="KRW-BTC",
        timeframe="1m",
        stop_loss_pct=D("2"),
        take_profit_pct=D("4"),
        sizing_method="fraction",
        sizing_params={"fraction": 0.2},
        is_active=True,
    ),
]

PERIODIC_TASKS = [
    dict(
        name="Collect candles",
        task="markets.tasks.collect_candles",
        queue="collector",
        every_seconds=60,
    ),
    dict(
        name="Sync venue symbols",  # listings of venues that follow all their symbols
        task="markets.tasks.sync_symbols",
        queue="collector",
        every_seconds=600,
    ),
    dict(name="Run trading", task="orders.tasks.run_trading", queue="trader", every_seconds=60),
    dict(
        name="Optimize strategies",
        task="strategies.tasks.optimize_scheduled",
        queue="optimizer",
        crontab={"minute": "5", "hour": "0"},
    ),
    dict(
        name="Screen symbols",
        task="strategies.tasks.screen_symbols",
        queue="optimizer",
        every_seconds=3600,
    ),
    dict(
        name="Deliver due alerts",
        task="alerts.tasks.deliver_due",
        queue="collector",
        every_seconds=30,
    ),
    dict(
        name="Check system-health alerts",
        task="alerts.tasks.check_health",
        queue="collector",
        every_seconds=60,
    ),
    dict(
        name="Snapshot equity",
        task="orders.tasks.snapshot_equity",
        queue="trader",
        every_seconds=60,
    ),
    # Once, as soon as beat and a worker run: the demo symbols' recent history from the
    # simulator, the screener and an example backtest (tradesite.demo_data).
    dict(
        name="Prepare the demo's market data",
        task="tradesite.tasks.prepare_demo",
        queue="collector",
        every_seconds=5,
        one_off=True,
    ),
]

TRADER_PERMISSIONS = {
    "strategies": {
        "strategyconfig": "add change delete view",
        "signal": "view",
        "backtestrun": "add view delete",
        "optimizationrun": "view",
        "paramversion": "view",
        "symbolscreen": "view",
    },
    "markets": {
        "account": "add change view",
        "balance": "add change view delete",
        "candle": "view",
        "symbol": "view",
        "exchange": "view",
    },
    "orders": {"order": "view", "fill": "view", "position": "view", "equitysnapshot": "view"},
    "alerts": {
        "alertrule": "add change delete view",
        "channel": "add change delete view",
        "notification": "view",
    },
}


@dataclasses.dataclass
class Report:
    created: list[str] = dataclasses.field(default_factory=list)
    credentials: dict[str, str] = dataclasses.field(default_factory=dict)
    skipped: list[str] = dataclasses.field(default_factory=list)


def registered_task_names() -> set[str]:
    from tradesite.celery import app

    app.loader.import_default_modules()
    return set(app.tasks)


def _ensure_user(username: str, env_var: str, *, superuser: bool, report: Report):
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user
    password = os.environ.get(env_var) or secrets.token_urlsafe(12)
    if superuser:
        user = User.objects.create_superuser(username, f"{username}@localhost", password)
    else:
        user = User.objects.create_user(username, f"{username}@localhost", password, is_staff=True)
    report.created.append(f"user {username}")
    if not os.environ.get(env_var):
        report.credentials[username] = password
    return user


def traders_group(report: Report | None = None) -> Group:
    """The group whose permissions a trading user (staff, not superuser) needs in the admin."""
    report = report if report is not None else Report()
    group, created = Group.objects.get_or_create(name=TRADERS_GROUP)
    wanted = []
    for app_label, models in TRADER_PERMISSIONS.items():
        for model, actions in models.items():
            wanted += [f"{action}_{model}" for action in actions.split()]
            codenames = [f"{action}_{model}" for action in actions.split()]
            wanted_perms = Permission.objects.filter(
                content_type__app_label=app_label, codename__in=codenames
            )
            group.permissions.add(*wanted_perms)
    if created:
        report.created.append(f"group {TRADERS_GROUP}")
    return group


def _periodic_tasks(report: Report) -> None:
    known = registered_task_names()
    for spec in PERIODIC_TASKS:
        present = spec["task"] in known
        task = PeriodicTask.objects.filter(name=spec["name"]).first()
        if task is not None:
            # Enable a task bootstrap created before its code existed, now that it does.
            if present and not task.enabled and task.description.startswith(MISSING_TASK_NOTE):
                task.enabled = True
                task.description = ""
                task.save()
                report.created.append(f"enabled periodic task {spec['name']}")
            continue
        kwargs = dict(
            name=spec["name"],
            task=spec["task"],
            queue=spec["queue"],
            enabled=present,
            kwargs=json.dumps({}),
            one_off=spec.get("one_off", False),
            description=""
            if present
            else f"{MISSING_TASK_NOTE} no worker knows {spec['task']} yet",
        )
        if "every_seconds" in spec:
            kwargs["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=spec["every_seconds"], period=IntervalSchedule.SECONDS
            )
        else:
            kwargs["crontab"], _ = CrontabSchedule.objects.get_or_create(
                day_of_week="*",
                day_of_month="*",
                month_of_year="*",
                timezone=settings.TIME_ZONE,
                **spec["crontab"],
            )
        PeriodicTask.objects.create(**kwargs)
        report.created.append(f"periodic task {spec['name']}" + ("" if present else " (disabled)"))


#: The demo's paper accounts beside the Upbit one: (label, venue slug, quote asset, funding).
PAPER_ACCOUNTS = [
    ("Demo paper USDT (sim Binance spot)", "sim-binance", "USDT", D("10000")),
    ("Demo paper USDT (sim futures)", "sim-futures", "USDT", D("10000")),
    ("Demo paper (sim Bithumb)", "sim-bithumb", "KRW", D("10000000")),
]


def _paper_accounts(owner, report: Report) -> None:
    """A funded paper account on each other simulated venue (only those missing)."""
    for label, slug, quote, amount in PAPER_ACCOUNTS:
        account, created = Account.objects.get_or_create(
            owner=owner, label=label,
            defaults={"exchange": Exchange.objects.get(slug=slug), "mode": Account.Mode.PAPER,
                      "quote_asset": quote},
        )
        if created:
            Balance.objects.create(account=account, asset=quote, free=amount)
            report.created.append(f"paper account {label} with {amount:,} {quote}")


def _first_snapshots(owner, report: Report) -> None:
    """An equity snapshot of each of the demo's accounts that has none (a new account holds
    its quote funding only, so its equity is that): the equity curve starts at the funding,
    and beat's "Snapshot equity" job adds a point a minute from there."""
    now = timezone.now().replace(microsecond=0)
    fresh = Account.objects.filter(owner=owner, equity_snapshots__isnull=True).prefetch_related(
        "balances")
    for account in fresh:
        cash = sum((b.total for b in account.balances.all() if b.asset == account.quote_asset),
                   D("0"))
        if any(b.total and b.asset != account.quote_asset for b in account.balances.all()):
            continue  # holdings need prices: beat's job values those
        EquitySnapshot.objects.create(account=account, ts=now, equity=cash, cash=cash)
        report.created.append(f"equity snapshot of {account.label}")


@transaction.atomic
def bootstrap(write_credentials_to: Path | None = None) -> Report:
    report = Report()
    _ensure_user("admin", "DEMO_ADMIN_PASSWORD", superuser=True, report=report)
    demo = _ensure_user("demo", "DEMO_PASSWORD", superuser=False, report=report)
    demo.groups.add(traders_group(report))

    for spec in venues():
        slug = spec.pop("slug")
        exchange, created = Exchange.objects.get_or_create(slug=slug, defaults=spec)
        if created:
            report.created.append(f"venue {slug}")
        for symbol_spec in SYMBOLS[slug]:
            _, created = Symbol.objects.get_or_create(
                exchange=exchange, code=symbol_spec["code"], defaults=symbol_spec
            )
            if created:
                report.created.append(f"symbol {slug}:{symbol_spec['code']}")

    sim = Exchange.objects.get(slug="sim")
    account, created = Account.objects.get_or_create(
        owner=demo,
        label="Demo paper (sim)",
        defaults={"exchange": sim, "mode": Account.Mode.PAPER, "quote_asset": "KRW"},
    )
    if created:
        Balance.objects.create(account=account, asset="KRW", free=D("10000000"))
        report.created.append("paper account with 10,000,000 KRW")

    _paper_accounts(demo, report)

    available = set(registry.names())
    for spec in EXAMPLE_CONFIGS:
        spec = dict(spec)
        if spec["strategy"] not in available:
            report.skipped.append(f"config {spec['name']!r}: strategy {spec['strategy']} missing")
            continue
        on = Account.objects.select_related("exchange").get(owner=demo, label=spec.pop("account"))
        symbol = Symbol.objects.get(exchange=on.exchange, code=spec.pop("symbol"))
        name = spec.pop("name")
        if StrategyConfig.objects.filter(owner=demo, name=name).exists():
            continue
        config = StrategyConfig(owner=demo, name=name, symbol=symbol, account=on, **spec)
        config.full_clean()
        config.save()
        report.created.append(f"config {name}")

    demo_bots.seed(demo, report)
    _periodic_tasks(report)
    _first_snapshots(demo, report)

    if report.credentials and write_credentials_to is not None:
        envconfig.private_dir(write_credentials_to.parent)
        existing = write_credentials_to.read_text() if write_credentials_to.exists() else ""
        lines = "".join(f"{user} {password}\n" for user, password in report.credentials.items())
        fd = os.open(write_credentials_to, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a file made earlier with a wider mode is narrowed too
        with os.fdopen(fd, "w") as handle:
            handle.write(existing + lines)
    return report
