"""The live stream (``manage.py stream``): one asyncio process, one WebSocket connection per venue
(split only where the venue limits streams per connection or names them in the URL) for all
active symbols, or for this shard's share of them when several stream processes run
(:mod:`markets.stream.shards`: rendezvous assignment over the live shards in Redis).

Per venue (:class:`VenueStream`):

* trades -> :class:`markets.aggregator.BarAggregator` (1m..1d bars; duplicates, late and invalid
  trades counted and skipped; malformed frames counted by the adapter);
* forming bars -> ``wire.bars_group`` with ``closed=False`` at most 4 times a second per group
  (no DB write); tickers -> ``wire.MARKETS_GROUP`` at most once a second per symbol;
* closed bars -> upserted in batches, pushed with ``closed=True``, then the evaluation task is
  sent by name (``settings.TRADESITE_TASKS["evaluate"]``) with ``{venue, symbol, timeframe,
  bar_time_ms}``;
* interruptions (start-up, a drop the adapter healed, a silent connection the watchdog
  restarted, a failing stream): the interval is widened by a margin and every bar overlapping
  it comes from REST, never from the (incomplete) aggregator. While it lasts, REST candles are
  fetched as each bar closes (the polling fallback); afterwards the interval is filled, so no
  closed bar is ever missing. Unfinished fills at shutdown go to the collector's gap set;
* a heartbeat per venue (``markets.heartbeat.beat("stream", slug, ...)``): state
  (streaming / polling / down), last message time, reconnects and skip counters.

:class:`StreamRunner` runs every venue, reloads when ``tradesite:symbols:changed`` moves, and
on SIGTERM flushes closed bars and exits (a forming bar is never stored).
"""

from markets.stream.config import LogThrottle, StreamConfig, SymbolSpec, VenueSpec
from markets.stream.runner import StreamRunner, load_venues
from markets.stream.venue import VenueStream

__all__ = [
    "LogThrottle",
    "StreamConfig",
    "StreamRunner",
    "SymbolSpec",
    "VenueSpec",
    "VenueStream",
    "load_venues",
]
