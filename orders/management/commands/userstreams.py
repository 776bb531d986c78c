"""``python manage.py userstreams``: follow every live account's user-data stream and apply
fills and venue-stop triggers as they happen (``orders.userstream``). Needs TRADING_LIVE=1.
The list of live accounts is read again every minute (accounts made live are followed, a
stream that stopped is restarted); the minute reconciliation covers every account anyway.
Runs until stopped, so it can sit in the Procfile next to the worker."""

from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand

from markets.fields import UNREADABLE
from orders import userstream


class Command(BaseCommand):
    help = "Follow live accounts' user-data streams: fills and venue stops applied as they happen."

    def handle(self, *args, **options):
        from django.conf import settings

        ids, unreadable = userstream.live_accounts()
        if not getattr(settings, "TRADING_LIVE", False):
            self.stdout.write("live trading is off on this server (TRADING_LIVE=0): no user "
                              "stream is followed; the setting is read at start")
        self.stdout.write(f"following the user streams of {len(ids)} live account(s); the "
                          "list is read again every minute")
        if unreadable:
            self.stdout.write(f"skipped {len(unreadable)} live account(s), API {UNREADABLE}: "
                              f"id(s) {', '.join(map(str, unreadable))}")
        try:
            asyncio.run(userstream.follow_all())
        except KeyboardInterrupt:
            self.stdout.write("stopped")
