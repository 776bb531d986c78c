"""The Bithumb protocol: the Upbit design with its differences (naive-KST candles, v2 orders)."""
