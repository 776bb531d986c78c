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

Futures' 2026 URL split: ``/public/ws|stream`` serves only ``bookTicker`` and ``depth*``;
``/market/ws|stream`` serves everything else; a stream on the wrong route is refused.
"""

from __future__ import annotations

import re

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
            for name in conn.state["streams"]:
                symbol, _, kind = name.partition("@")
                if not (kind in TICKERS or book_kind(kind)):
                    continue
                slot = now_ms // self._period_ms(kind)
                if sent.get(name) == slot:
                    continue
                sent[name] = slot
                self._emit(conn, name, self.book_event(self.markets[symbol.upper()], kind, now_ms))

    def book_event(self, market, kind: str, now_ms: int) -> dict:
        futures = self.name == "futures"
        update_id = now_ms * 10 + market.visible % 10
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
        body = {"e": "depthUpdate", "E": now_ms}
        if futures:
            body["T"] = now_ms
        body |= {"s": market.symbol, "U": update_id - 5, "u": update_id}
        if futures:
            body["pu"] = update_id - 6
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
