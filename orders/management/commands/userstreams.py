"""``python manage.py userstreams``: follow every live account's user-data stream and apply
fills and venue-stop triggers as they happen (``orders.userstream``). Needs TRADING_LIVE=1.
Accounts made live after the start are picked up at the next start; the minute
reconciliation covers every account meanwhile."""

from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand

from orders import userstream


class Command(BaseCommand):
    help = "Follow live accounts' user-data streams: fills and venue stops applied as they happen."

    def handle(self, *args, **options):
        ids = userstream.live_account_ids()
        if not ids:
            self.stdout.write("no live account with keys: nothing to follow")
            return
        self.stdout.write(f"following the user streams of {len(ids)} live account(s)")
        try:
            asyncio.run(userstream.follow_all(ids))
        except KeyboardInterrupt:
            self.stdout.write("stopped")
