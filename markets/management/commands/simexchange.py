"""``manage.py simexchange``: a thin shell over :mod:`simulator.cli`."""

import asyncio

from django.core.management.base import BaseCommand, CommandError

from simulator.cli import add_arguments, config_from, run


class Command(BaseCommand):
    help = "Run the local exchange simulator (Upbit and Binance protocols) on 127.0.0.1."

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **options):
        try:
            config = config_from(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        asyncio.run(run(config, out=self.stdout))
