"""Binance ticker and order-book market streams, spot and USDⓈ-M futures.

Stream names (lower-case symbol): ``<s>@ticker`` (``24hrTicker``), ``<s>@miniTicker``
(``24hrMiniTicker``), ``<s>@bookTicker``, ``<s>@depth<5|10|20>[@<ms>ms]`` (partial book) and
``<s>@depth[@<ms>ms]`` (diff depth). Update speeds: the ``@<ms>ms`` suffix (spot 100 or 1000,
futures 100, 250 or 500), otherwise spot 1000 ms and futures 250 ms for depth, 1000 ms for the
tickers; bookTicker is pushed on every simulator tick.

Payloads, spot: ticker ``{"e":"24hrTicker","E","s","p","P","w","x","c","Q","b","B","a","A","o",
"h","l","v","q","O","C","F","L","n"}``; mini ``{"e":"24hrMiniTicker","E","s","c","o","h","l","v",
"q"}``; bookTicker ``{"u","s","b","B","a","A"}``; partial depth ``{"lastUpdateId","bids",
"asks"}``; diff depth ``{"e":"depthUpdate","E","s","U","u","b","a"}``. Futures: the ticker has no
``x``/``b``/``B``/``a``/``A``; bookTicker adds ``"e":"bookTicker","E","T"``; both depth kinds are
``{"e":"depthUpdate","E","T","s","U","u","pu","b","a"}``.

Diff depth is a chained sequence per connection, as the venue's "manage a local order book"
procedure expects: each event's ``U`` is the previous event's ``u`` + 1 (futures: ``pu`` is the
previous ``u``), ids grow with the clock and the REST ``depth`` snapshot's ``lastUpdateId`` is on
the same scale, so a client that buffers events, takes a snapshot, drops ``u`` < ``lastUpdateId``
and applies the rest keeps a valid book. An event carries the top 20 levels with their absolute
quantities and ``[price, "0"]`` for every price (up to 1000 ticks) that left the book's side
since the previous event: bids above the new best bid up to the highest best bid quoted since,
asks below the new best ask down to the lowest best ask quoted since. Quantities deeper than 20
levels are not restated.

Futures' 2026 URL split: ``/public/ws|stream`` serves only ``bookTicker``, ``depth*`` and ``trade``;
``/market/ws|stream`` serves everything else; a stream on the wrong route is refused.
"""

from __future__ import annotations

import re
from decimal import Decimal

from simulator.market import tick_of

DEPTH = re.compile(r"depth(5|10|20)?(?:@(100|250|500|1000)ms)?$")
TICKERS = ("ticker", "miniTicker")


def book_kind(kind: str) -> bool:
    return kind == "bookTicker" or DEPTH.match(kind) is not None


class BookStreams:
    """A mixin of :class:`simulator.binance.common.BinanceBase` (needs ``book_levels`` and
    ``ticker_row`` of :class:`simulator.binance.market_rest.BinanceMarketRest`)."""

    def ticker_or_book(self, kind: str) -> bool:
        if kind in TICKERS or kind == "bookTicker":
            return True
        match = DEPTH.match(kind)
        if match is None:
            return False
        allowed = ("100", "250", "500") if self.name == "futures" else ("100", "1000")
        return match.group(2) is None or match.group(2) in allowed

    def _period_ms(self, kind: str) -> int:
        if kind == "bookTicker":
            return 1
        match = DEPTH.match(kind)
        if match is None:
            return 1000
        if match.group(2):
            return int(match.group(2))
        return 250 if self.name == "futures" else 1000

    def push_books(self, now_ms: int) -> None:
        """Send each subscribed ticker / book stream whose period turned."""
        for conn in list(self.stream_conns):
            sent = conn.state.setdefault("books", {})
            diffs = conn.state.setdefault("diffs", {})
            for name in conn.state["streams"]:
                symbol, _, kind = name.partition("@")
                if not (kind in TICKERS or book_kind(kind)):
                    continue
                market = self.markets[symbol.upper()]
                chained = kind.startswith("depth") and (
                    self.name == "futures" or not DEPTH.match(kind).group(1)
                )
                if chained:
                    self._track_quotes(diffs, name, market, now_ms)
                slot = now_ms // self._period_ms(kind)
                if sent.get(name) == slot:
                    continue
                sent[name] = slot
                event = self.book_event(market, kind, now_ms, diffs.get(name))
                self._emit(conn, name, event)

    def _track_quotes(self, diffs: dict, name: str, market, now_ms: int) -> None:
        """The highest bid and lowest ask quoted since this stream's previous event."""
        bid, ask = self.engine.quote_prices(market.symbol)
        state = diffs.get(name)
        if state is None:
            diffs[name] = {"u": self.update_id(market, now_ms) - 1, "bid": bid, "ask": ask}
        else:
            state["bid"], state["ask"] = max(state["bid"], bid), min(state["ask"], ask)

    def update_id(self, market, now_ms: int) -> int:
        """The book's update id at ``now_ms`` (REST ``lastUpdateId`` and the streams' ``u``)."""
        return now_ms * 10 + market.visible % 10

    def _removed(self, market, bids, asks, chain: dict) -> tuple[list, list]:
        """``[price, "0"]`` for the prices that left each side since the previous event."""
        tick = Decimal(repr(tick_of(market.spec, market.last_price)))
        bid, ask = self.engine.quote_prices(market.symbol)
        gone_bids = [[self.px(market, bid + tick * i), "0"]
                     for i in range(1, 1001) if bid + tick * i <= chain["bid"]]
        gone_asks = [[self.px(market, ask - tick * i), "0"]
                     for i in range(1, 1001) if ask - tick * i >= chain["ask"]]
        chain["bid"], chain["ask"] = bid, ask
        return gone_bids[::-1] + bids, gone_asks[::-1] + asks

    def book_event(self, market, kind: str, now_ms: int, chain: dict | None = None) -> dict:
        futures = self.name == "futures"
        update_id = self.update_id(market, now_ms)
        if kind in TICKERS:
            return self._ticker_event(market, kind, now_ms)
        bids, asks = self.book_levels(market, 1 if kind == "bookTicker" else 20)
        if kind == "bookTicker":
            body = {"u": update_id, "s": market.symbol, "b": bids[0][0], "B": bids[0][1],
                    "a": asks[0][0], "A": asks[0][1]}
            return {"e": "bookTicker", "E": now_ms, "T": now_ms} | body if futures else body
        levels = DEPTH.match(kind).group(1)
        if levels:
            bids, asks = bids[: int(levels)], asks[: int(levels)]
        if levels and not futures:
            return {"lastUpdateId": update_id, "bids": bids, "asks": asks}
        previous = update_id - 6 if chain is None else chain["u"]
        update_id = max(update_id, previous + 1)
        if chain is not None:
            chain["u"] = update_id
            if not levels:  # partial books (futures' depth5/10/20 carry ids) restate the top
                bids, asks = self._removed(market, bids, asks, chain)
        body = {"e": "depthUpdate", "E": now_ms}
        if futures:
            body["T"] = now_ms
        body |= {"s": market.symbol, "U": previous + 1, "u": update_id}
        if futures:
            body["pu"] = previous
        return body | {"b": bids, "a": asks}

    def _ticker_event(self, market, kind: str, now_ms: int) -> dict:
        row = self.ticker_row(market)
        if kind == "miniTicker":
            return {"e": "24hrMiniTicker", "E": now_ms, "s": market.symbol,
                    "c": row["lastPrice"], "o": row["openPrice"], "h": row["highPrice"],
                    "l": row["lowPrice"], "v": row["volume"], "q": row["quoteVolume"]}
        event = {"e": "24hrTicker", "E": now_ms, "s": market.symbol, "p": row["priceChange"],
                 "P": row["priceChangePercent"], "w": row["weightedAvgPrice"]}
        if self.name != "futures":
            event["x"] = row["prevClosePrice"]
        event |= {"c": row["lastPrice"], "Q": row["lastQty"]}
        if self.name != "futures":
            event |= {"b": row["bidPrice"], "B": row["bidQty"], "a": row["askPrice"],
                      "A": row["askQty"]}
        return event | {"o": row["openPrice"], "h": row["highPrice"], "l": row["lowPrice"],
                        "v": row["volume"], "q": row["quoteVolume"], "O": row["openTime"],
                        "C": row["closeTime"], "F": row["firstId"], "L": row["lastId"],
                        "n": row["count"]}
