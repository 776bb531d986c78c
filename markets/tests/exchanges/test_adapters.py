"""The adapter registry, capabilities as data, and request checks that need no network."""

from __future__ import annotations

from decimal import Decimal

import pytest

from markets.exchanges import ADAPTERS, get_adapter
from markets.exchanges.base import OrderRequest
from markets.exchanges.ratelimit import InProcessRateLimiter
from markets.timeframes import TIMEFRAMES


@pytest.mark.parametrize("key", list(ADAPTERS))
def test_every_product_timeframe_is_served_or_explained(key):
    caps = ADAPTERS[key].capabilities
    for tf in TIMEFRAMES:
        assert tf in caps.timeframes or tf in caps.unsupported_timeframes, (key, tf)


@pytest.mark.parametrize("key", list(ADAPTERS))
def test_adapters_default_to_production_urls_and_build_without_network(key):
    adapter = get_adapter(key)
    assert adapter.rest_url.startswith("https://") and adapter.ws_url.startswith("wss://")
    assert isinstance(adapter.limiter, InProcessRateLimiter)
    adapter.close()


def test_unknown_adapter_key_names_the_known_ones():
    with pytest.raises(ValueError, match="upbit, bithumb, binance_spot, binance_futures"):
        get_adapter("kraken")


def test_an_adapter_without_a_limiter_limits_itself_with_the_venue_groups():
    limiter = get_adapter("upbit").limiter
    assert limiter.groups["order"].capacity == 8


def test_upbit_market_buy_by_quantity_is_a_programming_error():
    adapter = get_adapter("upbit")
    with pytest.raises(ValueError, match="sized by quote_amount"):
        adapter.check_order_request(OrderRequest("KRW-BTC", "buy", "market", Decimal(1), None,
                                                 "c-1"))


def test_client_order_id_must_match_the_venue_pattern():
    adapter = get_adapter("bithumb")
    with pytest.raises(ValueError, match="client_order_id"):
        adapter.check_order_request(OrderRequest("KRW-BTC", "sell", "limit", Decimal(1),
                                                 Decimal(100), "has space"))
    with pytest.raises(ValueError, match="client_order_id"):
        adapter.check_order_request(OrderRequest("KRW-BTC", "sell", "limit", Decimal(1),
                                                 Decimal(100), "x" * 37))


def test_reduce_only_only_where_supported():
    order = OrderRequest("BTCUSDT", "sell", "market", Decimal(1), None, "r-1", reduce_only=True)
    with pytest.raises(ValueError, match="reduce_only"):
        get_adapter("binance_spot").check_order_request(order)
    get_adapter("binance_futures").check_order_request(order)


def test_private_calls_without_keys_fail_before_any_request():
    from markets.exchanges.errors import AuthenticationError

    with pytest.raises(AuthenticationError, match="needs an API key"):
        get_adapter("binance_futures", rest_url="http://127.0.0.1:9").positions()
