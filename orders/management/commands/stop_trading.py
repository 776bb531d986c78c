from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from orders.killswitch import ALL, NothingSelected, stop_trading


class Command(BaseCommand):
    help = (
        "Kill switch. --all: deactivate every config (of --user, or of every user), halt the "
        "accounts and cancel their open orders (live ones at the venue). --config ID ...: stop "
        "only those configs (deactivate, cancel their orders); their accounts keep running. "
        "--close-positions also closes the positions in scope. Halted accounts stay halted "
        "until resumed in the admin."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", help="username; only this user's configs and accounts")
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument(
            "--all",
            action="store_true",
            help="stop everything in reach: every config and account (of --user if given)",
        )
        scope.add_argument(
            "--config",
            type=int,
            nargs="+",
            dest="configs",
            metavar="ID",
            help="strategy config ids to stop",
        )
        parser.add_argument("--reason", default="stop_trading command")
        parser.add_argument(
            "--close-positions",
            action="store_true",
            help="also close the open positions in scope at the last price (market, reduce-only)",
        )

    def handle(self, *args, **options):
        user = None
        if options["user"]:
            try:
                user = get_user_model().objects.get(username=options["user"])
            except get_user_model().DoesNotExist:
                raise CommandError(f"no user named {options['user']!r}") from None
        try:
            result = stop_trading(
                user=user,
                configs=ALL if options["all"] else options["configs"],
                reason=options["reason"],
                close_positions=options["close_positions"],
            )
        except NothingSelected as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.WARNING(result.summary()))
