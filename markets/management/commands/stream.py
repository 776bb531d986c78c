"""``manage.py stream``: the live market-data stream (see :mod:`markets.stream`)."""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from markets.stream.config import accelerated_clock, scaled_config
from markets.stream.runner import StreamRunner, WsLogFilter
from markets.stream.shards import ShardRegistry, default_shard_id, parse_venues


class Command(BaseCommand):
    help = (
        "Stream trades of every active symbol, build 1m..1d bars, push them to the pages, "
        "store closed bars and trigger strategy evaluation. Stops cleanly on SIGTERM/Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--venue", action="append", default=[],
                            help="only this venue slug (repeatable; default: all active)")
        parser.add_argument("--shard-id", default="",
                            help="this process's shard id (default: STREAM_SHARD_ID, else "
                                 "host name and pid)")

    def handle(self, *args, **options):
        logging.getLogger("markets.exchanges.ws").addFilter(WsLogFilter())
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        only = set(options["venue"]) or None
        # The venues this shard takes: --venue and STREAM_SHARD_VENUES both restrict.
        venues = parse_venues(settings.STREAM_SHARD_VENUES)
        if only is not None:
            venues = frozenset(only) if venues is None else venues & frozenset(only)
            if not venues:
                raise CommandError(f"--venue {', '.join(sorted(only))} and STREAM_SHARD_VENUES "
                                   f"{settings.STREAM_SHARD_VENUES!r} have no venue in common")
        try:
            shard = ShardRegistry(
                options["shard_id"] or settings.STREAM_SHARD_ID or default_shard_id(), venues,
                prefix=settings.REDIS_KEY_PREFIX, ttl_s=settings.STREAM_SHARD_TTL_S,
                stale_s=settings.STREAM_SHARD_STALE_S)
            clock_ms = accelerated_clock(settings.STREAM_CLOCK)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"stream shard {shard.id} (venues: "
                          f"{', '.join(sorted(venues)) if venues else 'all'})")
        config = scaled_config(clock_ms.speed) if clock_ms is not None else None
        runner = StreamRunner(only=venues and set(venues), shard=shard, clock_ms=clock_ms,
                              config=config)
        asyncio.run(runner.run())
        self.stdout.write("stream stopped")
