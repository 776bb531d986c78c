"""Evaluation on a closed bar: the same ``signals()`` the backtester calls, on the strategy's
lookback window of stored candles, turned into stored Signal rows and pushed to their owner.

Runs in the trader worker: the stream sends ``orders.tasks.evaluate`` by name on every closed bar
and beat's "Run trading" job catches up every minute. Idempotent: a Signal is unique per config,
bar and action, so a task that runs twice for one bar stores and pushes one signal.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Max

from markets import wire
from markets.candles import load_candles
from markets.models import Candle, Symbol
from markets.timeframes import timeframe_ms
from orders import services
from orders.push import batched, push_later
from strategies.base import ACTION_NAMES, HOLD, Candles
from strategies.models import Signal, StrategyConfig
from strategies.services import peer_closes

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EvaluationReport:
    configs: int = 0
    signals_created: int = 0
    signals_existing: int = 0
    skipped_missing_bar: int = 0
    errors: int = 0
    created: list[Signal] = dataclasses.field(default_factory=list)
    #: Outcomes of acting on the signals: {"ordered": n, "rejected": n, "ignored": n}.
    executions: dict[str, int] = dataclasses.field(default_factory=dict)


def signal_payload(signal: Signal) -> dict:
    """The public fields pushed with ``signal.created`` (see ``markets.wire``)."""
    return {
        "id": signal.pk,
        "config": signal.config_id,
        "config_name": signal.config.name,
        "symbol": f"{signal.symbol.exchange.slug}:{signal.symbol.code}",
        "timeframe": signal.timeframe,
        "bar_time": int(signal.bar_time.timestamp() * 1000),
        "action": signal.action,
        "price": str(signal.price),
        "score": signal.score,
        "reason": signal.reason,
        "execution": (signal.reason or {}).get("execution"),
    }


def _signals(config: StrategyConfig, strategy, candles: Candles):
    window = candles.tail(strategy.lookback())
    peers = getattr(strategy.params, "symbols", ())
    if config.strategy == "dual_momentum" and peers:
        return window, strategy.signals(
            window,
            peer_closes=peer_closes(config.symbol, config.timeframe, peers, window.open_time_ms),
        )
    return window, strategy.signals(window)


@batched
def evaluate_bar(
    venue: str, symbol_code: str, timeframe: str, bar_time_ms: int, *, execute: bool = True
) -> EvaluationReport:
    """Evaluate every active config on ``venue:symbol_code`` and ``timeframe`` on the closed bar
    that opened at ``bar_time_ms``, and hand each new signal to execution
    (``orders.services.execute_signal``) at the bar's close: price = the close, time = the
    close time. Every config's entry is decided and saved first, then all are sent, so the
    last config's order is not waiting for the others' fills. One config's error is logged and
    counted, never fatal."""
    report = EvaluationReport()
    symbol = (
        Symbol.objects.select_related("exchange")
        .filter(exchange__slug=venue, code=symbol_code)
        .first()
    )
    if symbol is None:
        log.warning("evaluate: unknown symbol %s:%s", venue, symbol_code)
        return report
    configs = list(
        StrategyConfig.objects.active()
        .filter(symbol=symbol, timeframe=timeframe)
        .select_related("symbol__exchange", "account")
    )
    report.configs = len(configs)
    if not configs:
        return report
    strategies = {}  # built once per bar: params validated, lookback known
    for config in configs:
        try:
            strategies[config.pk] = config.build_strategy()
        except Exception:
            report.errors += 1
            log.exception("evaluate: config %s (%s) has unusable parameters", config.pk, config)
    if not strategies:
        return report
    end_ms = bar_time_ms + timeframe_ms(timeframe)
    # One query for the longest window; each config takes its own tail.
    longest = max(strategy.lookback() for strategy in strategies.values())
    candles = load_candles(symbol.pk, timeframe, end_ms=end_ms, limit=longest)
    if not len(candles) or int(candles.open_time_ms[-1]) != bar_time_ms:
        report.skipped_missing_bar = len(configs)
        log.info("evaluate: bar %s %s %s not stored yet", symbol, timeframe, bar_time_ms)
        return report
    pending = []
    for config in configs:
        if config.pk not in strategies:
            continue
        try:
            window, signals = _signals(config, strategies[config.pk], candles)
            action = int(signals.actions[-1])
            if action == HOLD:
                continue
            score = None if signals.score is None else float(signals.score[-1])
            size = None if signals.size is None else float(signals.size[-1])
            signal, created = _store_signal(config, symbol, timeframe, window, action, score, size)
        except Exception:
            report.errors += 1
            log.exception("evaluate: config %s (%s) failed on %s", config.pk, config, bar_time_ms)
            continue
        if created:
            report.signals_created += 1
            report.created.append(signal)
        else:
            report.signals_existing += 1
        if execute and "execution" not in (signal.reason or {}):
            # A new signal, or one stored by a run that stopped before acting on it.
            try:
                outcome = services.execute_signal(
                    signal, config=config, at_ms=end_ms, defer_send=True
                )
            except Exception:
                report.errors += 1
                log.exception("execute: signal %s of config %s failed", signal.pk, config.pk)
            else:
                report.executions[outcome.status] = report.executions.get(outcome.status, 0) + 1
                signal.reason = {**(signal.reason or {}), "execution": outcome.as_dict()}
                if outcome.pending:
                    pending.append(outcome.pending)
        if created:
            push_later(signal.config.owner_id, wire.SIGNAL_CREATED, signal_payload(signal))
    # Every config's order for this bar is saved; now send them (paper fills, live venues).
    for item in pending:
        try:
            services.finish_execution(*item)
        except Exception:
            report.errors += 1
            log.exception("execute: sending order %s failed", item[1].client_order_id)
    return report


def _store_signal(config, symbol, timeframe, window, action, score, size):
    close = float(window.close[-1])
    bar_time = datetime.fromtimestamp(int(window.open_time_ms[-1]) / 1000, tz=UTC)
    reason = {
        "strategy": config.strategy,
        "params": config.params,
        "close": close,
    }
    if score is not None and np.isfinite(score):
        reason["score"] = score
    if size is not None and np.isfinite(size):
        reason["size"] = size
    defaults = {
        "symbol": symbol,
        "timeframe": timeframe,
        "price": Decimal(repr(close)),
        "score": score if score is not None and np.isfinite(score) else None,
        "reason": reason,
    }
    try:
        with transaction.atomic():
            return Signal.objects.get_or_create(
                config=config, bar_time=bar_time, action=ACTION_NAMES[action], defaults=defaults
            )
    except IntegrityError:  # a concurrent run stored it between our read and write
        existing = Signal.objects.get(config=config, bar_time=bar_time, action=ACTION_NAMES[action])
        return existing, False


def latest_closed_bars() -> list[tuple[str, str, str, int]]:
    """(venue, symbol, timeframe, newest stored open time ms) for every (symbol, timeframe)
    with an active config: what beat's catch-up evaluates."""
    pairs = StrategyConfig.objects.active().values_list("symbol_id", "timeframe").distinct()
    out = []
    for symbol_id, timeframe in pairs:
        newest = Candle.objects.filter(symbol_id=symbol_id, timeframe=timeframe).aggregate(
            t=Max("open_time")
        )["t"]
        if newest is None:
            continue
        symbol = Symbol.objects.select_related("exchange").get(pk=symbol_id)
        out.append((symbol.exchange.slug, symbol.code, timeframe, int(newest.timestamp() * 1000)))
    return out
