from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from orders.parity import replay
from strategies import limits
from strategies.models import StrategyConfig


def _ms(text: str) -> int:
    try:
        if text.isascii() and text.isdigit():
            if len(text) > 17:  # past year 9999 whatever it says
                raise ValueError(text)
            ms = int(text)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            ms = int(moment.timestamp() * 1000)
        datetime.fromtimestamp(ms / 1000, UTC)  # a time a datetime can hold
        return ms
    except (ValueError, OverflowError, OSError):
        raise CommandError(
            f"{text[:40]!r} is not a date (2026-01-31, 2026-01-31T09:00) or ms"
        ) from None


class Command(BaseCommand):
    help = (
        "Replay a config's stored candles bar by bar through evaluation and paper execution "
        "(a scratch paper account, rolled back) and compare the trades with the backtester."
    )

    def add_arguments(self, parser):
        parser.add_argument("--config", type=int, required=True, metavar="ID")
        parser.add_argument("--start", required=True, help="UTC date/time or ms (inclusive)")
        parser.add_argument("--end", required=True, help="UTC date/time or ms (exclusive)")
        parser.add_argument("--cash", default=None, help="starting quote balance (10,000,000)")

    def handle(self, *args, **options):
        try:
            config = StrategyConfig.objects.get(pk=options["config"])
        except StrategyConfig.DoesNotExist:
            raise CommandError(f"no strategy config with id {options['config']}") from None
        start, end = _ms(options["start"]), _ms(options["end"])
        if end <= start:
            raise CommandError("--end must be after --start")
        try:  # a bar-by-bar replay costs more than a backtest: the same span limit
            limits.check_backtest_span(datetime.fromtimestamp(start / 1000, UTC),
                                       datetime.fromtimestamp(end / 1000, UTC))
        except limits.LimitExceeded as exc:
            raise CommandError(str(exc)) from None
        try:
            cash = Decimal(options["cash"]) if options["cash"] else None
        except InvalidOperation:
            cash = None
        if options["cash"] and (
            cash is None or not cash.is_finite() or not 0 < cash < Decimal("1e15")
        ):
            raise CommandError(
                f"--cash must be a positive number below 1e15, not {options['cash'][:40]!r}"
            )
        report = replay(config, start, end, initial_cash=cash)
        self.stdout.write(
            f"{report.bars} bars: backtest {len(report.backtest_trades)} trade(s), "
            f"paper {len(report.paper_trades)} trade(s)"
        )
        for b, p in zip(report.backtest_trades, report.paper_trades):
            self.stdout.write(
                f"  {b['side']:5} entry {b['entry_time_ms']} {b['entry_price']:.8g} / "
                f"{p['entry_price']:.8g}  exit {b['exit_time_ms']} {b['reason']} / {p['reason']}"
            )
        if report.ok and not report.backtest_trades:
            self.stdout.write(self.style.WARNING(
                f"parity: neither side traded in these {report.bars} bars, so nothing was "
                "compared; widen the range or check the config's parameters"
            ))
        elif report.ok:
            self.stdout.write(self.style.SUCCESS("parity: same trades"))
        else:
            for problem in report.mismatches:
                self.stdout.write(self.style.ERROR(problem))
            raise CommandError(f"parity failed: {len(report.mismatches)} mismatch(es)")
