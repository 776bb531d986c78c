"""Backtests against stored candles: load, run the pure backtester, persist a ``BacktestRun``.

The command line (``manage.py backtest``), the web pages and the Celery tasks call
:func:`run_backtest`; nothing else writes ``BacktestRun`` results.

Warm-up: the strategy's ``lookback()`` candles before ``start`` are loaded too, so the first
decision inside the range is the one live trading would take; trading (fills, equity) covers
``[start, end)`` only.
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from markets import candles as stored
from markets.models import Symbol
from strategies import backtest, limits, registry, sizing
from strategies.base import Candles, Signals
from strategies.models import BacktestRun
from strategies.params import ParamError
from strategies.trade_math import RiskParams

#: The stored equity curve keeps at most this many points (the full curve is per bar).
MAX_EQUITY_POINTS = 10_000


class NoCandles(ValueError):
    """There are no stored candles for the request: import or backfill them first."""


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def load_candles(
    symbol: Symbol, timeframe: str, start: dt.datetime | None = None,
    end: dt.datetime | None = None, *, before: int = 0,
) -> Candles:
    """Stored candles of ``symbol``/``timeframe`` with open time in ``[start, end)``, oldest
    first, plus up to ``before`` candles just before ``start`` (warm-up). Two queries at most,
    straight into numpy (``markets.candles``)."""
    start_ms = None if start is None else _ms(start)
    end_ms = None if end is None else _ms(end)
    main = stored.load_candles(symbol.pk, timeframe, start_ms, end_ms)
    if start_ms is None or before <= 0:
        return main
    warm = stored.load_candles(symbol.pk, timeframe, end_ms=start_ms, limit=before)
    if not len(warm):
        return main
    return Candles(**{
        field.name: np.concatenate([getattr(warm, field.name), getattr(main, field.name)])
        for field in dataclasses.fields(Candles)
    })


def peer_closes(symbol: Symbol, timeframe: str, codes, times: np.ndarray) -> dict[str, np.ndarray]:
    """Closes of the peer symbols aligned to ``times`` (forward-filled, NaN before the first)."""
    peers = {}
    start = dt.datetime.fromtimestamp(times[0] / 1000, tz=dt.UTC)
    end = dt.datetime.fromtimestamp(times[-1] / 1000, tz=dt.UTC) + dt.timedelta(milliseconds=1)
    for code in codes:
        try:
            peer = Symbol.objects.get(exchange=symbol.exchange, code=code)
        except Symbol.DoesNotExist:
            raise ParamError(
                f"peer symbol {code!r} is not listed on {symbol.exchange.slug}"
            ) from None
        candles = load_candles(peer, timeframe, start, end)
        aligned = np.full(times.shape[0], np.nan)
        if len(candles):
            index = np.searchsorted(candles.open_time_ms, times, side="right") - 1
            known = index >= 0
            aligned[known] = candles.close[index[known]]
        peers[code] = aligned
    return peers


def _sample_equity(times: np.ndarray, equity: np.ndarray) -> list[list[float]]:
    n = equity.shape[0]
    if n <= MAX_EQUITY_POINTS:
        keep = np.arange(n)
    else:
        keep = np.linspace(0, n - 1, MAX_EQUITY_POINTS).astype(np.int64)
        keep = np.unique(np.append(keep, n - 1))
    return [[t, e] for t, e in zip(times[keep].tolist(), equity[keep].tolist())]


def _report(run: BacktestRun | None, fraction: float, stage: str) -> None:
    """Tell the page polling ``run`` how far it is: the share of the work done and the stage
    now under way (written at once, outside any transaction, so the poll sees it)."""
    if run is None or run.pk is None:
        return
    BacktestRun.objects.filter(pk=run.pk).update(progress=fraction, stage=stage)
    run.progress, run.stage = fraction, stage


def run_backtest(
    *,
    strategy: str,
    params: dict[str, Any] | None,
    symbol: Symbol,
    timeframe: str,
    start: dt.datetime,
    end: dt.datetime,
    fee_bps: Decimal | float = Decimal("5"),
    slippage_bps: Decimal | float = Decimal("0"),
    cash: Decimal | float = Decimal("10000000"),
    risk: dict[str, Any] | None = None,
    sizing_method: str | None = None,
    sizing_params: dict[str, Any] | None = None,
    intrabar: str = "stop_first",
    replay_minutes: bool = True,
    owner=None,
    config=None,
    run: BacktestRun | None = None,
) -> BacktestRun:
    """Run ``strategy`` over stored candles and store the result as a ``BacktestRun``.

    ``risk`` takes :class:`strategies.trade_math.RiskParams` fields other than the fee and
    slippage (stop_loss_pct, leverage, ...). With ``replay_minutes`` and a timeframe above 1m,
    stored 1m candles resolve bars that touch both stop and target. Raises ``ParamError`` for
    bad parameters and :class:`NoCandles` when the range holds no candles; a failure inside
    the run is stored on the run (status ``failed``) and raised.

    ``run``: an existing (pending) run to fill instead of creating one; its owner and config
    are kept. Only its status, progress, results and settings are written here.
    """
    if end <= start:
        raise ParamError(f"end ({end:%Y-%m-%d %H:%M}) must be after start ({start:%Y-%m-%d %H:%M})")
    limits.check_backtest_span(start, end)  # before loading: the span bounds the memory
    instance = registry.build(strategy, params)
    risk_values = dict(risk or {})
    for key in ("fee_rate", "slippage_bps"):
        if key in risk_values:
            raise ParamError(f"pass the {key.split('_')[0]} as fee_bps / slippage_bps, not in risk")
    risk_params = RiskParams.from_dict(
        {**risk_values, "fee_rate": float(fee_bps) / 10_000.0, "slippage_bps": float(slippage_bps)}
    )
    sizing_obj = sizing.validate(sizing_method, sizing_params) if sizing_method else None
    config_obj = backtest.BacktestConfig(
        initial_cash=float(cash), risk=risk_params, sizing=sizing_obj, intrabar=intrabar,
        allow_short=symbol.market_type == Symbol.MarketType.PERPETUAL, timeframe=timeframe,
    )
    lookback = instance.lookback()
    _report(run, 0.0, "loading candles")
    candles = load_candles(symbol, timeframe, start, end, before=lookback)
    start_ms = _ms(start)
    first = int(np.searchsorted(candles.open_time_ms, start_ms, side="left"))
    if first >= len(candles):
        oldest, newest = limits.stored_range(symbol, timeframe)
        stored_text = "none are stored" if oldest is None else (
            f"the stored ones cover {oldest:%Y-%m-%d %H:%M} to {newest:%Y-%m-%d %H:%M} UTC"
        )
        raise NoCandles(
            f"no {timeframe} candles for {symbol.code} on {symbol.exchange.slug} between "
            f"{start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC ({stored_text}); import or "
            "backfill them first"
        )
    settings_json = {
        "risk": risk_params.to_dict(),
        "sizing": {"method": sizing_method, "params": sizing_obj.to_dict()} if sizing_obj else None,
        "intrabar": intrabar,
        "allow_short": config_obj.allow_short,
        "warmup_candles": first,
    }
    fields = dict(
        strategy=strategy, params=instance.params.to_dict(), symbol=symbol, timeframe=timeframe,
        start=start, end=end, fee_bps=Decimal(str(fee_bps)),
        slippage_bps=Decimal(str(slippage_bps)), cash=Decimal(str(cash)), settings=settings_json,
        status=BacktestRun.Status.RUNNING,
    )
    if run is None:
        run = BacktestRun.objects.create(owner=owner, config=config, **fields)
    else:
        for name, value in fields.items():
            setattr(run, name, value)
        run.error = ""
        run.save()
    # Loading is the slow part of a long range (a year of 1m candles); the rest follows it.
    _report(run, 0.3, "computing signals")
    try:
        extra = {}
        codes = getattr(instance.params, "symbols", ())
        if codes:
            extra["peer_closes"] = peer_closes(symbol, timeframe, codes, candles.open_time_ms)
        signals = instance.signals(candles, **extra)
        trading = candles[first:]
        sliced = Signals(
            actions=signals.actions[first:],
            score=None if signals.score is None else signals.score[first:],
            size=None if signals.size is None else signals.size[first:],
        )
        minutes = None
        if replay_minutes and timeframe != "1m" and (
            risk_params.stop_loss_pct or risk_params.trailing_stop_pct or risk_params.leverage > 1
        ) and risk_params.take_profit_pct:
            _report(run, 0.5, "loading 1m candles for bars that touch stop and target")
            minutes = load_candles(symbol, "1m", start, end)
            settings_json["minute_candles"] = len(minutes)
        _report(run, 0.7 if minutes is not None else 0.5, "simulating")
        result = backtest.simulate(trading, sliced, config_obj, minute_candles=minutes)
        _report(run, 0.9, "saving results")
    except Exception as exc:
        run.status = BacktestRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        raise
    # Not result.to_dict(): its per-bar equity curve alone is 525,600 [time, equity] lists
    # (about 67 MB) for a year of 1m candles, and only a sample of it is stored.
    stats = {**result.stats, "daily_returns": result.daily_returns,
             "monthly_returns": result.monthly_returns}
    trades = result.trade_dicts()
    equity = _sample_equity(result.open_time_ms, result.equity)
    # Saving encodes the trades to JSON, which the database driver copies twice more (tens of
    # MB for tens of thousands of trades): the candles, signals and per-bar results go first.
    del candles, trading, signals, sliced, extra, minutes, result
    with transaction.atomic():
        run.stats = stats
        run.trades = trades
        run.equity = equity
        run.settings = settings_json
        run.status = BacktestRun.Status.DONE
        run.progress = 1.0
        run.stage = ""
        run.finished_at = timezone.now()
        run.save()
    del trades
    _return_freed_memory()
    return run


def _return_freed_memory() -> None:
    """Give the heap glibc kept from a run back to the system (``malloc_trim``).

    glibc serves numpy's large temporaries from its heap once a few have been freed and keeps
    what a run freed: a worker that runs backtest after backtest would otherwise stay near its
    largest run (measured: 100 MB more after seven year-long runs). Not glibc: nothing to do.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None
