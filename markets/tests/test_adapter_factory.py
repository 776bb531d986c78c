"""The one adapter factory (``markets.adapters``): the venue's shared limiter for every caller,
budgets overridable per venue, and venue differences read from capabilities."""

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from markets import adapters
from markets.adapters import adapter_for, rate_groups, venue_limiter
from markets.exchanges.base import RateGroup
from markets.exchanges.ratelimit import InProcessRateLimiter, RedisRateLimiter
from markets.stream.config import connection_groups


def venue(slug="v1", adapter="binance_spot"):
    return SimpleNamespace(slug=slug, adapter=adapter, rest_url="http://127.0.0.1:1",
                           ws_url="ws://127.0.0.1:1")


def test_with_redis_every_adapter_gets_a_redis_limiter_keyed_by_the_venue_slug(settings):
    assert settings.REDIS_URL
    adapter = adapter_for(venue("simbinance"))
    assert isinstance(adapter.limiter, RedisRateLimiter)
    assert adapter.limiter.venue == "simbinance"
    assert adapter.limiter.groups["weight"] == RateGroup(6000, 60.0)
    # Redis down: the venue's process-wide limiter stands in (orders are never refused for it).
    assert isinstance(adapter.limiter.fallback, InProcessRateLimiter)
    assert adapter_for(venue("simbinance")).limiter.fallback is adapter.limiter.fallback
    adapter.close()


def test_without_redis_the_adapters_of_a_venue_share_one_limiter_in_the_process(settings):
    settings.REDIS_URL = ""
    adapters._local.clear()
    one, two = adapter_for(venue()), adapter_for(venue(), api_key="k", api_secret="s")
    other = adapter_for(venue("v2"))
    assert isinstance(one.limiter, InProcessRateLimiter)
    assert one.limiter is two.limiter and other.limiter is not one.limiter
    for a in (one, two, other):
        a.close()


def test_a_budget_can_be_lowered_per_venue_and_group(settings):
    settings.EXCHANGE_RATE_LIMITS = {"v1": {"weight": (1200, 60)}}
    groups = rate_groups("v1", "binance_spot")
    assert groups["weight"] == RateGroup(1200, 60.0)
    assert groups["orders"] == RateGroup(50, 10.0)  # the rest as the venue declares
    assert rate_groups("v2", "binance_spot")["weight"] == RateGroup(6000, 60.0)
    assert venue_limiter(venue()).groups["weight"] == RateGroup(1200, 60.0)


@pytest.mark.parametrize("limits, message", [
    ({"candles": (10, 1)}, "no rate-limit group 'candles'"),
    ({"weight": (0, 60)}, r"EXCHANGE_RATE_LIMITS\['v1'\]\['weight'\]: capacity"),
])
def test_a_wrong_budget_override_is_refused_naming_it(settings, limits, message):
    settings.EXCHANGE_RATE_LIMITS = {"v1": limits}
    with pytest.raises(ValueError, match=message):
        rate_groups("v1", "binance_spot")


def test_an_unknown_adapter_is_refused_naming_the_venue():
    with pytest.raises(ValueError, match="venue 'x': unknown exchange adapter 'nope'"):
        adapter_for(venue("x", "nope"))


def test_streams_per_connection_come_from_the_capabilities():
    from markets.exchanges import ADAPTERS

    limits = {k: cls.capabilities.ws_streams_per_connection for k, cls in ADAPTERS.items()}
    assert limits == {"upbit": None, "bithumb": None, "binance_spot": 1024,
                      "binance_futures": 200}
    codes = [f"S{i}" for i in range(5)]
    assert connection_groups(codes, None) == [codes]
    assert connection_groups(codes, 2) == [codes[:2], codes[2:4], codes[4:]]
    assert connection_groups([], 2) == [] and connection_groups([], None) == []


@given(st.lists(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=20),
                unique=True, max_size=400),
       st.one_of(st.none(), st.integers(1, 300)), st.one_of(st.none(), st.integers(300, 9000)))
def test_connection_groups_keep_every_code_once_in_order_within_both_limits(codes, n, chars):
    from markets.stream.config import STREAM_NAME_OVERHEAD, URL_BASE_CHARS

    groups = connection_groups(codes, n, chars)
    assert [c for g in groups for c in g] == codes and all(groups)
    for g in groups:
        assert n is None or len(g) <= n
        cost = sum(len(c) + STREAM_NAME_OVERHEAD for c in g)
        assert chars is None or len(g) == 1 or cost <= chars - URL_BASE_CHARS


def test_a_whole_binance_spot_market_opens_connections_whose_urls_the_simulator_accepts():
    from markets.exchanges import ADAPTERS, get_adapter

    caps = ADAPTERS["binance_spot"].capabilities
    codes = [f"SYMBOL{i}USDT" for i in range(1500)]  # longer than most real codes
    groups = connection_groups(codes, caps.ws_streams_per_connection, caps.ws_url_max_chars)
    adapter = get_adapter("binance_spot", rest_url="http://127.0.0.1:1",
                          ws_url="ws://127.0.0.1:1")
    for stream in ("trade", "aggTrade"):
        urls = [adapter._streams_url([f"{c.lower()}@{stream}" for c in g]) for g in groups]
        assert max(len(u) for u in urls) < 8190  # aiohttp's request-line limit
    assert len(groups) == 6


def test_the_stream_runner_builds_through_the_factory_with_the_text_ping_where_declared():
    from markets.stream import StreamRunner, SymbolSpec, VenueSpec

    runner = StreamRunner()
    built = {}
    for key in ("upbit", "binance_spot"):
        spec = VenueSpec(f"sim{key}", key, "http://127.0.0.1:1", "ws://127.0.0.1:1",
                         (SymbolSpec("KRW-BTC" if key == "upbit" else "BTCUSDT", 1, ("1m",)),))
        stream = runner._make(spec)
        built[key] = stream
        adapter = stream.connections[0].adapter
        assert isinstance(adapter.limiter, RedisRateLimiter)
        assert adapter.limiter.venue == f"sim{key}"
        assert stream.rest.limiter is adapter.limiter  # one limiter for the venue's stream
    assert built["upbit"].connections[0].adapter.ws_text_ping_s == pytest.approx(10.0)
    assert not hasattr(built["binance_spot"].connections[0].adapter, "ws_text_ping_s")
    for stream in built.values():
        stream.db.shutdown(), stream.io.shutdown()
