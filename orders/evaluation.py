"""Evaluation on a closed bar: the same ``signals()`` the backtester calls, on the strategy's
lookback window of stored candles, turned into stored Signal rows and pushed to their owner.

Runs in the trader worker: the stream sends ``orders.tasks.evaluate`` by name on every closed bar
and beat's "Run trading" job catches up every minute. Idempotent: a Signal is unique per config,
bar and action, so a task that runs twice for one bar stores and pushes one signal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from django.db import DatabaseError, IntegrityError, transaction
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
    if peers:  # a strategy declaring a symbols list gets their closes (as in a backtest)
        return window, strategy.signals(
            window,
            peer_closes=peer_closes(config.symbol, config.timeframe, peers, window.open_time_ms),
        )
    return window, strategy.signals(window)


@contextlib.contextmanager
def _collection_paused():
    """Pause Python's cyclic garbage collector (``gc``) for the block, unless it was paused
    already; reference counting still frees almost everything at once. For short,
    latency-bound blocks only."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@batched
def evaluate_bar(
    venue: str, symbol_code: str, timeframe: str, bar_time_ms: int, *, execute: bool = True
) -> EvaluationReport:
    """Evaluate every active config on ``venue:symbol_code`` and ``timeframe`` on the closed bar
    that opened at ``bar_time_ms``, and act on the new signals at the bar's close: price = the
    close, time = the close time. The bar's work is batched: its signals are stored with one
    bulk insert, and all their orders are decided and saved in one transaction
    (``orders.services.execute_signals``); once that committed, the orders are sent (paper
    fills, live venues), so no config's order waits for another's fill. One config's error
    is logged, counted and recorded on its signal, never fatal to the others."""
    report = EvaluationReport()
    # The bar's orders are decided and saved with the cyclic garbage collector paused: a full
    # collection walks every object of the worker (Django, numpy, numba: 200,000+) and took
    # 230 ms in the middle of a bar in the benchmark. Collection resumes before the orders
    # are sent.
    with _collection_paused():
        stored, pending = _save_bar(venue, symbol_code, timeframe, bar_time_ms, execute, report)
    for signal, _config, created in stored:
        if created:
            push_later(signal.config.owner_id, wire.SIGNAL_CREATED, signal_payload(signal))
    # Every config's order for this bar is saved (committed); now send them (paper fills, live
    # venues) and carry out reversals.
    for signal, send in pending:
        try:
            outcome = send()
        except Exception:
            report.errors += 1
            log.exception("execute: sending the order of signal %s failed", signal.pk)
        else:
            report.executions[outcome.status] = report.executions.get(outcome.status, 0) + 1
    return report


def _save_bar(venue, symbol_code, timeframe, bar_time_ms, execute, report):
    """:func:`evaluate_bar` up to its orders saved: ``(stored signals, pending sends)``."""
    symbol = (
        Symbol.objects.select_related("exchange")
        .filter(exchange__slug=venue, code=symbol_code)
        .first()
    )
    if symbol is None:
        log.warning("evaluate: unknown symbol %s:%s", venue, symbol_code)
        return [], []
    configs = list(
        StrategyConfig.objects.active()
        .filter(symbol=symbol, timeframe=timeframe)
        .select_related("account")
    )
    for config in configs:
        config.symbol = symbol  # one Symbol (with its exchange) shared by the bar's configs
    report.configs = len(configs)
    if not configs:
        return [], []
    strategies = {}  # built once per bar: params validated, lookback known
    for config in configs:
        try:
            strategies[config.pk] = config.build_strategy()
        except Exception:
            report.errors += 1
            log.exception("evaluate: config %s (%s) has unusable parameters", config.pk, config)
    if not strategies:
        return [], []
    end_ms = bar_time_ms + timeframe_ms(timeframe)
    # One query for the longest window; each config takes its own tail.
    longest = max(strategy.lookback() for strategy in strategies.values())
    candles = load_candles(symbol.pk, timeframe, end_ms=end_ms, limit=longest)
    if not len(candles) or int(candles.open_time_ms[-1]) != bar_time_ms:
        report.skipped_missing_bar = len(configs)
        log.debug("evaluate: bar %s %s %s not stored yet", symbol, timeframe, bar_time_ms)
        return [], []
    decided = []  # (config, window, action, score, size) of every config that acts
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
        except Exception:
            report.errors += 1
            log.exception("evaluate: config %s (%s) failed on %s", config.pk, config, bar_time_ms)
            continue
        decided.append((config, window, action, score, size))
    if not decided:
        return [], []
    stored = _store_signals(symbol, timeframe, decided, report)
    todo = [
        (signal, config)
        for signal, config, _ in stored
        if execute and "execution" not in (signal.reason or {})
    ]  # new signals, or ones stored by a run that stopped before acting on them
    pending = []
    if todo:
        try:
            outcomes = services.execute_signals(todo, at_ms=end_ms)
        except Exception:
            report.errors += len(todo)
            log.exception("execute: the signals of bar %s %s %s failed", symbol, timeframe,
                          bar_time_ms)
            outcomes = []
        for (signal, _config), outcome in zip(todo, outcomes, strict=False):
            _log_signal(signal, outcome)
            if outcome.status != "queued":  # what is stored on the signal (pushed with it)
                signal.reason = {**(signal.reason or {}), "execution": outcome.as_dict()}
            if outcome.status == "error":
                report.errors += 1  # logged by the service, recorded on the signal
            elif outcome.pending:
                pending.append((signal, outcome.pending))  # counted with its final outcome
            else:
                report.executions[outcome.status] = report.executions.get(outcome.status, 0) + 1
    return stored, pending


def _log_signal(signal: Signal, outcome) -> None:
    """One INFO line per new signal, with what was done about it (a trader's log)."""
    what = {"queued": "order sent"}.get(outcome.status, outcome.status)
    log.info("signal: %s %s %s %s, bar %s UTC, close %s -> %s%s", signal.config.name,
             signal.action, signal.symbol, signal.timeframe,
             signal.bar_time.strftime("%Y-%m-%d %H:%M"), signal.price, what,
             f" ({outcome.reason})" if outcome.reason else "")


def _signal_row(config, symbol, timeframe, window, action, score, size) -> Signal:
    """The unsaved Signal of ``config`` on the window's last bar."""
    close = float(window.close[-1])
    reason = {
        "strategy": config.strategy,
        "params": config.params,
        "close": close,
    }
    if score is not None and np.isfinite(score):
        reason["score"] = score
    if size is not None and np.isfinite(size):
        reason["size"] = size
    return Signal(
        config=config,
        symbol=symbol,
        timeframe=timeframe,
        bar_time=datetime.fromtimestamp(int(window.open_time_ms[-1]) / 1000, tz=UTC),
        action=ACTION_NAMES[action],
        price=Decimal(repr(close)),
        score=score if score is not None and np.isfinite(score) else None,
        reason=reason,
    )


def _store_signals(symbol, timeframe, decided, report) -> list[tuple[Signal, StrategyConfig, bool]]:
    """Store a bar's signals: one read of those already stored, one bulk insert of the
    others (conflicts ignored: a concurrent run of the same bar may have stored them), one
    read back. Returns ``(signal, config, created)`` per stored signal; counts them in
    ``report``. Two runs of one bar at the same moment may both count (and push) a signal
    as created; it is stored once and acted on once (``execute_signals`` re-reads it under
    its row lock). Should the bulk insert fail, each signal is stored on its own (one
    failure is logged and counted, the others are kept)."""
    rows = [(config, _signal_row(config, symbol, timeframe, *rest)) for config, *rest in decided]
    bar_time = rows[0][1].bar_time
    ids = [config.pk for config, _ in rows]
    try:
        found = {
            (s.config_id, s.action): s
            for s in Signal.objects.filter(config_id__in=ids, bar_time=bar_time)
        }
        missing = [row for _, row in rows if (row.config_id, row.action) not in found]
        created = set()
        if missing:
            Signal.objects.bulk_create(missing, ignore_conflicts=True)
            # Conflicts leave no id on the rows: read the ids back (ours, or a concurrent
            # run's, which stored the same decision).
            created = {(row.config_id, row.action): row for row in missing}
            for pk, config_id, action in Signal.objects.filter(
                config_id__in=[row.config_id for row in missing], bar_time=bar_time
            ).values_list("pk", "config_id", "action"):
                row = created.get((config_id, action))
                if row is not None:
                    row.pk = pk
                    row._state.adding = False
                    found[(config_id, action)] = row
    except DatabaseError:
        log.exception("evaluate: storing the signals of %s %s in bulk failed", symbol, bar_time)
        found, created = {}, set()
        for config, row in rows:
            try:
                signal, made = _store_signal(config, symbol, timeframe, None, None, None, None,
                                             row=row)
            except Exception:
                report.errors += 1
                log.exception("evaluate: storing the signal of config %s failed", config.pk)
                continue
            found[(config.pk, row.action)] = signal
            if made:
                created.add((config.pk, row.action))
    out = []
    for config, row in rows:
        key = (config.pk, row.action)
        signal = found.get(key)
        if signal is None:
            continue
        signal.config, signal.symbol = config, symbol  # no query per payload
        made = key in created
        if made:
            report.signals_created += 1
            report.created.append(signal)
        else:
            report.signals_existing += 1
        out.append((signal, config, made))
    return out


def _store_signal(config, symbol, timeframe, window, action, score, size, *, row=None):
    """Store one signal (get or create): ``(signal, created)``. ``row`` is the unsaved
    Signal when the caller built it already."""
    if row is None:
        row = _signal_row(config, symbol, timeframe, window, action, score, size)
    defaults = {
        "symbol": symbol,
        "timeframe": timeframe,
        "price": row.price,
        "score": row.score,
        "reason": row.reason,
    }
    try:
        with transaction.atomic():
            return Signal.objects.get_or_create(
                config=config, bar_time=row.bar_time, action=row.action, defaults=defaults
            )
    except IntegrityError:  # a concurrent run stored it between our read and write
        existing = Signal.objects.get(config=config, bar_time=row.bar_time, action=row.action)
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
