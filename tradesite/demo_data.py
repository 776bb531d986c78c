"""The demo's market data, prepared once the simulator runs (beat's one-off "Prepare the demo's
market data" job, ``tradesite.tasks.prepare_demo``; ``bootstrap_demo`` creates the job):

1. the last ``DEMO_HISTORY_DAYS`` days of 1m candles of every symbol of the simulated venues,
   backfilled from the simulator's REST klines (gap-aware: a second run fetches only what is
   missing);
2. the screener over those venues (``strategies.screening``);
3. an example backtest of the demo's lively config over the stored history, owned by the demo
   user (one; a second run keeps it).

``make run`` runs ``bootstrap_demo`` before the simulator is up, so this cannot run there; the
job runs as soon as beat and a worker do. Every step is bounded: the simulator is waited for at
most ``wait_s`` seconds, and the backfill covers a few days of one timeframe.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from markets import backfill
from markets.models import Symbol
from strategies.models import BacktestRun, StrategyConfig
from tradesite import demo

log = logging.getLogger(__name__)

#: Days of 1m history backfilled (the simulator generates ``--history-days`` of it at start).
DEMO_HISTORY_DAYS = 3.0
#: The simulated venues' slugs (``tradesite.demo.SIM_VENUES``).
SIM_VENUES = tuple(slug for slug, *_ in demo.SIM_VENUES)


@dataclasses.dataclass
class Prepared:
    candles: int = 0
    unreachable: list[str] = dataclasses.field(default_factory=list)
    screened: int = 0
    backtest: int | None = None

    def summary(self) -> str:
        text = (f"demo data: {self.candles} candle(s) backfilled, {self.screened} symbol(s) "
                f"screened, example backtest {self.backtest or 'not run'}")
        if self.unreachable:
            text += f"; simulator venue(s) not reachable: {', '.join(self.unreachable)}"
        return text


def _backfill(days: float, wait_s: float, out: Prepared) -> None:
    by_venue: dict[str, list[Symbol]] = {}
    for symbol in Symbol.objects.active().select_related("exchange").filter(
            exchange__slug__in=SIM_VENUES, exchange__is_active=True):
        by_venue.setdefault(symbol.exchange.slug, []).append(symbol)
    deadline = time.monotonic() + wait_s
    for slug, symbols in sorted(by_venue.items()):
        while True:
            try:
                report = backfill.backfill(symbols, ["1m"], days=days, progress=False)
            except Exception as exc:  # not up yet (started with it): try again until the deadline
                if time.monotonic() > deadline:
                    log.warning("demo data: %s not reachable, history not backfilled: %s",
                                slug, exc)
                    out.unreachable.append(slug)
                    break
                time.sleep(2.0)
                continue
            out.candles += report.inserted + report.updated
            break


def _example_backtest(days: float) -> BacktestRun | None:
    """The lively config's backtest over the stored history (one per demo user)."""
    from strategies.services import NoCandles, run_backtest

    owner = get_user_model().objects.filter(username="demo").first()
    config = StrategyConfig.objects.filter(owner=owner, name=demo.LIVELY_CONFIG).select_related(
        "symbol").first() if owner else None
    if config is None:
        return None
    done = BacktestRun.objects.filter(owner=owner, config=config,
                                      status=BacktestRun.Status.DONE).first()
    if done is not None:
        return done
    end = timezone.now().replace(second=0, microsecond=0)
    try:
        return run_backtest(
            strategy=config.strategy, params=config.params, symbol=config.symbol,
            timeframe=config.timeframe, start=end - dt.timedelta(days=days), end=end,
            fee_bps=4, cash=10_000, risk={"leverage": config.leverage},
            sizing_method=config.sizing_method, sizing_params=config.sizing_params,
            owner=owner, config=config,
        )
    except NoCandles as exc:
        log.warning("demo data: no example backtest: %s", exc)
        return None


def prepare(*, days: float | None = None, wait_s: float = 90.0) -> Prepared:
    """Backfill, screen, backtest (see the module docstring); what was done."""
    from strategies import screening

    days = float(days if days is not None else getattr(settings, "DEMO_HISTORY_DAYS",
                                                       DEMO_HISTORY_DAYS))
    out = Prepared()
    _backfill(days, wait_s, out)
    out.screened = screening.screen_all()
    run = _example_backtest(min(days, 2.0))
    out.backtest = run.pk if run is not None else None
    log.info("%s", out.summary())
    return out
