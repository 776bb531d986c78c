"""The simulator at market scale: hundreds of symbols per venue, Zipf trade rates, bursts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cli import config_from
from simulator.market import Market, SymbolSpec
from simulator.prices import Garch, SyntheticFeed
from simulator.server import SimConfig, Simulator
from simulator.symbols import MarketScale, round_price, tick_of, zipf_rates

NOW = 1_773_240_030_000


def scaled(n: int = 300, seed: int = 5, **scale) -> SimConfig:
    return SimConfig(seed=seed, now_ms=NOW, history_days=0.01, trade_rate=2.0,
                     scale=MarketScale(symbols=n, **scale))


@given(st.integers(1, 600), st.floats(0.1, 50.0), st.floats(0.0, 2.0))
@settings(max_examples=50, deadline=None)
def test_zipf_rates_keep_the_mean_and_fall_with_the_rank(n, mean, exponent):
    rates = zipf_rates(n, mean, exponent)
    assert len(rates) == n
    assert sum(rates) == pytest.approx(mean * n)
    assert all(a >= b for a, b in itertools.pairwise(rates))


def test_every_venue_serves_the_defaults_then_made_up_symbols_up_to_the_count():
    config = scaled(300)
    for venue in ("upbit", "binance", "futures", "bithumb"):
        pairs = config.venue_symbols(venue)
        specs = [spec for spec, _ in pairs]
        assert len(specs) == 300 and len({s.symbol for s in specs}) == 300
        defaults = [s.symbol for s in SimConfig().symbols[venue]]
        assert [s.symbol for s in specs[: len(defaults)]] == defaults
        quote = "KRW" if venue in ("upbit", "bithumb") else "USDT"
        assert all(s.quote == quote for s in specs)
        for spec in specs:  # a level that sits on its own tick grid, a positive step
            assert spec.step > 0 and spec.price > 0
            assert round_price(spec, spec.price) == spec.price
            assert tick_of(spec, spec.price) < spec.price


def test_the_symbol_set_is_the_same_for_the_same_seed_and_differs_for_another():
    first = [(s.symbol, s.price, r) for s, r in scaled(seed=5).venue_symbols("binance")]
    again = [(s.symbol, s.price, r) for s, r in scaled(seed=5).venue_symbols("binance")]
    other = [(s.symbol, s.price, r) for s, r in scaled(seed=6).venue_symbols("binance")]
    assert first == again and first != other


def test_without_a_scale_the_simulator_serves_its_default_symbols_at_the_flat_rate():
    config = SimConfig(seed=5)
    assert [(s.symbol, r) for s, r in config.venue_symbols("upbit")] == [
        (s.symbol, 2.0) for s in config.symbols["upbit"]
    ]


def test_a_few_symbols_trade_most_and_the_tail_is_quiet():
    sim = Simulator(scaled(200))
    markets = list(sim.venues["binance"].markets.values())
    assert len(markets) == 200
    counts = [len(m.advance(NOW + 120_000)["ts"]) if m.visible else 0 for m in markets]
    counts = np.array(counts)
    top10 = np.sort(counts)[::-1][:10].sum()
    assert top10 > 0.3 * counts.sum()  # 5 % of the symbols: over 30 % of the trades
    assert np.median(counts) < counts.mean() / 2  # the typical symbol is quiet
    assert counts[0] > 20 * np.median(counts)


def feed(bursts=None, seed=9) -> SyntheticFeed:
    spec = SymbolSpec("A001USDT", "A001", "USDT", 10.0, 0.001, 0.01, 0.002, 100.0)
    rng = np.random.default_rng(seed)
    return SyntheticFeed(spec, rng, NOW, 10.0, 5.0, Garch(0.002**2), bursts)


def test_bursts_add_trades_in_windows_and_stay_deterministic():
    calm, bursty = feed(), feed(bursts=(20.0, 3.0, 10.0))
    end = NOW + 600_000
    calm_n = len(calm.until(end)[0])
    ts = bursty.until(end)[0]
    assert bursty.burst_trades > 0
    assert len(ts) > calm_n * 1.5  # ~3 s of 10x every ~20 s: about twice the trades
    per_second = np.bincount((ts - NOW) // 1000)
    assert per_second.max() >= 8 * np.median(per_second)
    again = feed(bursts=(20.0, 3.0, 10.0))
    chunks = [again.until(t) for t in range(NOW + 1_000, end + 1, 1_000)]
    stepped = np.concatenate([chunk[0] for chunk in chunks if chunk is not None])
    assert np.array_equal(stepped, ts)  # the same trades however often the clock ticks


def test_the_flags_build_the_scale():
    from argparse import ArgumentParser

    from simulator.cli import add_arguments

    parser = ArgumentParser()
    add_arguments(parser)
    options = parser.parse_args(["--market-symbols", "500", "--zipf", "1.3", "--burst-every",
                                 "30", "--burst-seconds", "2", "--burst-factor", "5"])
    scale = config_from(options).scale
    assert scale == MarketScale(500, 1.3, 30.0, 2.0, 5.0)
    with pytest.raises(ValueError, match="burst_factor"):
        MarketScale(10, burst_factor=0.5)


def test_a_market_with_a_burst_schedule_is_built_from_the_config():
    sim = Simulator(scaled(50, burst_every_s=10.0))
    market: Market = sim.venues["upbit"].markets["KRW-A001"]
    assert market.feed is not None and market.feed.bursts == (10.0, 3.0, 8.0)
