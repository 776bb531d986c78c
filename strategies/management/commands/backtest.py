"""``manage.py backtest``: run a strategy over stored candles and store the result.

A thin shell over :func:`strategies.services.run_backtest`.

Example::

    python manage.py backtest --strategy ma_cross --params '{"short": 5}' --venue upbit \\
        --symbol KRW-BTC --timeframe 1h --start 2024-01-01 --end 2024-07-01 --fee 5 --json
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from markets import jsonlimits
from markets.models import Symbol
from strategies import limits, services
from strategies.params import ParamError


def _moment(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError):
        raise CommandError(
            f"{text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"
        ) from None


def _iso(ms: int | None) -> str | None:
    """ms UTC -> ISO-8601 with a Z, as the trades of ``--json`` show their times."""
    if ms is None:
        return None
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _json_object(text: str | None, option: str) -> dict | None:
    if text is None:
        return None
    try:
        return jsonlimits.loads_object(text, what=option)
    except jsonlimits.JsonLimitError as exc:
        raise CommandError(
            f"{option} must be a JSON object like '{{\"period\": 14}}': {exc}"
        ) from None


def _decimal(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CommandError(f"{option} must be a number, not {text!r}") from None
    if not value.is_finite() or value < 0:
        raise CommandError(f"{option} must be a number of at least 0, not {text!r}")
    return value


class Command(BaseCommand):
    help = "Backtest a registered strategy on stored candles and save the run."

    def add_arguments(self, parser):
        parser.add_argument("--strategy", required=True, help="registered strategy name")
        parser.add_argument("--params", help="strategy parameters as a JSON object")
        parser.add_argument("--venue", required=True, help="exchange slug, e.g. upbit")
        parser.add_argument("--symbol", required=True, help="symbol code, e.g. KRW-BTC")
        parser.add_argument("--timeframe", required=True, help="1m, 3m, 5m, 15m, 30m, 1h, 4h, 1d")
        parser.add_argument("--start", required=True, help="UTC date or datetime (inclusive)")
        parser.add_argument("--end", required=True, help="UTC date or datetime (exclusive)")
        parser.add_argument("--fee", default="5", help="taker fee in basis points (default 5)")
        parser.add_argument("--slippage", default="0", help="slippage in basis points")
        parser.add_argument("--cash", default="10000000", help="initial equity, quote currency")
        parser.add_argument("--risk", help="risk settings as JSON, e.g. '{\"stop_loss_pct\": 2}'")
        parser.add_argument(
            "--sizing", help="sizing method: fixed_quote, fraction, atr_unit, kelly"
        )
        parser.add_argument("--sizing-params", help="sizing parameters as JSON")
        parser.add_argument("--intrabar", default="stop_first",
                            choices=["stop_first", "target_first"],
                            help="who wins when a bar touches stop and target")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        try:
            symbol = Symbol.objects.select_related("exchange").get(
                exchange__slug=options["venue"], code=options["symbol"]
            )
        except Symbol.DoesNotExist:
            raise CommandError(
                f"no symbol {options['symbol']} on venue {options['venue']}; "
                "check the exchange slug and the symbol code (e.g. KRW-BTC, BTCUSDT)"
            ) from None
        cash = _decimal(options["cash"], "--cash")
        if cash <= 0:
            raise CommandError("--cash must be more than 0")
        try:
            run = services.run_backtest(
                strategy=options["strategy"],
                params=_json_object(options["params"], "--params"),
                symbol=symbol,
                timeframe=options["timeframe"],
                start=_moment(options["start"]),
                end=_moment(options["end"]),
                fee_bps=_decimal(options["fee"], "--fee"),
                slippage_bps=_decimal(options["slippage"], "--slippage"),
                cash=cash,
                risk=_json_object(options["risk"], "--risk"),
                sizing_method=options["sizing"],
                sizing_params=_json_object(options["sizing_params"], "--sizing-params"),
                intrabar=options["intrabar"],
            )
        except (ParamError, services.NoCandles, limits.LimitExceeded) as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            trades = [
                {
                    "entry_time": _iso(t.get("entry_time_ms")),
                    "exit_time": _iso(t.get("exit_time_ms")),
                    **t,
                }
                for t in run.trades
            ]
            self.stdout.write(json.dumps(
                {"id": run.pk, "stats": run.stats, "trades": trades}, default=str
            ))
            return
        stats = run.stats
        self.stdout.write(f"backtest #{run.pk}: {run}")
        for key in ("bars", "trade_count", "total_return", "cagr", "max_drawdown", "sharpe",
                    "sortino", "win_rate", "profit_factor", "exposure", "average_trade",
                    "total_fees", "ambiguous_bars", "final_equity"):
            value = stats.get(key)
            shown = f"{value:.6g}" if isinstance(value, float) else value
            self.stdout.write(f"  {key:<15} {shown}")
