from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from orders.services import stop_trading


class Command(BaseCommand):
    help = (
        "Kill switch: deactivate all or selected strategy configs, halt their accounts, cancel "
        "their open orders (live ones at the venue) and, with --close-positions, close their "
        "positions. Accounts stay halted until resumed in the admin."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", help="username; only this user's configs and accounts")
        parser.add_argument(
            "--config",
            type=int,
            nargs="+",
            dest="configs",
            metavar="ID",
            help="strategy config ids to stop (default: all)",
        )
        parser.add_argument("--reason", default="stop_trading command")
        parser.add_argument(
            "--close-positions",
            action="store_true",
            help="also close the open positions at the last price (market, reduce-only)",
        )

    def handle(self, *args, **options):
        user = None
        if options["user"]:
            try:
                user = get_user_model().objects.get(username=options["user"])
            except get_user_model().DoesNotExist:
                raise CommandError(f"no user named {options['user']!r}") from None
        result = stop_trading(
            user=user,
            config_ids=options["configs"],
            reason=options["reason"],
            close_positions=options["close_positions"],
        )
        self.stdout.write(self.style.WARNING(result.summary()))
