"""``manage.py telegram_bot``: the Telegram bot's long-polling process (Procfile ``telegram``).

Needs TELEGRAM_BOT_TOKEN; stops cleanly on SIGINT / SIGTERM (honcho's Ctrl-C)."""

from __future__ import annotations

import asyncio
import signal

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the Telegram bot (long polling) for the chats linked to tradesite users."

    def add_arguments(self, parser):
        parser.add_argument("--poll-timeout", type=float, default=30.0,
                            help="seconds one getUpdates long poll waits (default 30)")

    def handle(self, *args, **options):
        from alerts.telegram import bot

        try:
            application = bot.build_application()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None

        async def main():
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await bot.serve(application, stop, poll_timeout=options["poll_timeout"])

        try:
            asyncio.run(main())
        except Exception as exc:
            raise CommandError(f"the Telegram bot stopped: {bot.redact(str(exc))}") from None
