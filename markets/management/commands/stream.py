"""``manage.py stream``: the live market-data stream (see :mod:`markets.stream`)."""

from __future__ import annotations

import asyncio
import logging

from django.core.management.base import BaseCommand

from markets.stream.runner import StreamRunner, WsLogFilter


class Command(BaseCommand):
    help = (
        "Stream trades of every active symbol, build 1m..1d bars, push them to the pages, "
        "store closed bars and trigger strategy evaluation. Stops cleanly on SIGTERM/Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--venue", action="append", default=[],
                            help="only this venue slug (repeatable; default: all active)")

    def handle(self, *args, **options):
        logging.getLogger("markets.exchanges.ws").addFilter(WsLogFilter())
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        runner = StreamRunner(only=set(options["venue"]) or None)
        asyncio.run(runner.run())
        self.stdout.write("stream stopped")
