"""``manage.py check_strategy NAME``: is this strategy safe to backtest and trade?

Runs :func:`strategies.checks.check` (look-ahead, lookback, determinism, purity, parameters) on
stored candles and prints one line per check and a verdict. Exits with an error when a check
fails, so a script or CI job can stop on it.

Example::

    python manage.py check_strategy my_breakout --venue upbit --symbol KRW-BTC --timeframe 1h \\
        --start 2024-01-01 --end 2024-07-01
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from markets.models import Symbol
from strategies import checks, registry, services
from strategies.management.commands.backtest import _json_object, _moment
from strategies.params import ParamError

#: Newest stored candles checked when no --start is given.
DEFAULT_BARS = 3000


class Command(BaseCommand):
    help = "Check a strategy for look-ahead, a too-short lookback, randomness and input changes."

    def add_arguments(self, parser):
        parser.add_argument("name", help="registered strategy name")
        parser.add_argument("--params", help="strategy parameters as a JSON object")
        parser.add_argument("--venue", required=True, help="exchange slug, e.g. upbit")
        parser.add_argument("--symbol", required=True, help="symbol code, e.g. KRW-BTC")
        parser.add_argument("--timeframe", required=True, help="1m, 3m, 5m, 15m, 30m, 1h, 4h, 1d")
        parser.add_argument("--start", help="UTC date or datetime (inclusive); default: the "
                            f"newest {DEFAULT_BARS} stored candles")
        parser.add_argument("--end", help="UTC date or datetime (exclusive)")
        parser.add_argument("--random-bars", type=int, default=25,
                            help="random bars checked besides the ones where it acts (25)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the random bars")

    def handle(self, *args, **options):
        try:
            strategy = registry.build(options["name"], _json_object(options["params"],
                                                                    "--params"))
        except ParamError as exc:
            raise CommandError(str(exc)) from None
        if not 0 <= options["random_bars"] <= 10_000:
            raise CommandError("--random-bars must be between 0 and 10000")
        try:
            symbol = Symbol.objects.select_related("exchange").get(
                exchange__slug=options["venue"], code=options["symbol"])
        except Symbol.DoesNotExist:
            raise CommandError(
                f"no symbol {options['symbol']} on venue {options['venue']}; "
                "check the exchange slug and the symbol code (e.g. KRW-BTC, BTCUSDT)"
            ) from None
        start = _moment(options["start"]) if options["start"] else None
        end = _moment(options["end"]) if options["end"] else None
        candles = services.load_candles(symbol, options["timeframe"], start, end)
        if start is None:
            candles = candles.tail(DEFAULT_BARS)
        if len(candles) < 2:
            raise CommandError(
                f"only {len(candles)} stored {options['timeframe']} candles of {symbol.code} on "
                f"{symbol.exchange.slug} in that range; import or backfill some first"
            )
        report = checks.check(strategy, candles, random=options["random_bars"],
                              seed=options["seed"])
        source = "user strategy" if registry.is_user(options["name"]) else "built-in strategy"
        self.stdout.write(f"{source} {options['name']} {strategy.params.to_dict()} on "
                          f"{symbol.exchange.slug} {symbol.code} {options['timeframe']}, "
                          f"{len(candles)} candles")
        for finding in report.findings:
            self.stdout.write(f"  {'ok  ' if finding.ok else 'FAIL'} {finding.check:<12} "
                              f"{finding.message}")
        self.stdout.write(report.verdict())
        if not report.ok:
            raise CommandError(f"{options['name']} failed: "
                               + ", ".join(f.check for f in report.problems()))
