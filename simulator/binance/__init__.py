"""The Binance protocols: spot and USDⓈ-M futures, sharing signed endpoints, klines, market
streams and order look-ups (``common``, ``market_ws``, ``orders``)."""
