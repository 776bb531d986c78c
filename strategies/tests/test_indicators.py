"""Indicators agree with TA-Lib, never read the future and never modify their inputs."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import indicators as ind
from strategies.tests.conftest import random_walk

CANDLES = random_walk(3000, seed=7, vol=0.01)
H, L, C = CANDLES.high, CANDLES.low, CANDLES.close


def _bbands():
    return talib.BBANDS(C, 20, 2, 2, 0)


def assert_matches(ours, theirs):
    ours = np.asarray(ours)
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    valid = ~np.isnan(theirs)
    np.testing.assert_allclose(ours[valid], theirs[valid], rtol=1e-9, atol=1e-12)


PAIRS = {
    "sma": (lambda: ind.sma(C, 20), lambda: talib.SMA(C, 20)),
    "ema": (lambda: ind.ema(C, 20), lambda: talib.EMA(C, 20)),
    "ema_short": (lambda: ind.ema(C, 3), lambda: talib.EMA(C, 3)),
    "wma": (lambda: ind.wma(C, 14), lambda: talib.WMA(C, 14)),
    "bollinger_upper": (lambda: ind.bollinger(C, 20, 2.0)[0], lambda: _bbands()[0]),
    "bollinger_middle": (lambda: ind.bollinger(C, 20, 2.0)[1], lambda: _bbands()[1]),
    "bollinger_lower": (lambda: ind.bollinger(C, 20, 2.0)[2], lambda: _bbands()[2]),
    "stddev": (lambda: ind.rolling_std(C, 10), lambda: talib.STDDEV(C, 10, 1)),
    "rsi": (lambda: ind.rsi(C, 14), lambda: talib.RSI(C, 14)),
    "rsi_short": (lambda: ind.rsi(C, 2), lambda: talib.RSI(C, 2)),
    "macd": (lambda: ind.macd(C)[0], lambda: talib.MACD(C, 12, 26, 9)[0]),
    "macd_signal": (lambda: ind.macd(C)[1], lambda: talib.MACD(C, 12, 26, 9)[1]),
    "macd_hist": (lambda: ind.macd(C)[2], lambda: talib.MACD(C, 12, 26, 9)[2]),
    "macd_5_35_5": (lambda: ind.macd(C, 5, 35, 5)[2], lambda: talib.MACD(C, 5, 35, 5)[2]),
    "true_range": (lambda: ind.true_range(H, L, C), lambda: talib.TRANGE(H, L, C)),
    "atr": (lambda: ind.atr(H, L, C, 14), lambda: talib.ATR(H, L, C, 14)),
    "roc": (lambda: ind.roc(C, 10), lambda: talib.ROC(C, 10)),
    "rolling_max": (lambda: ind.rolling_max(H, 20), lambda: talib.MAX(H, 20)),
    "rolling_min": (lambda: ind.rolling_min(L, 20), lambda: talib.MIN(L, 20)),
    "donchian_upper": (lambda: ind.donchian(H, L, 20)[0], lambda: talib.MAX(H, 20)),
    "donchian_lower": (lambda: ind.donchian(H, L, 20)[2], lambda: talib.MIN(L, 20)),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_indicator_matches_talib_after_warmup(name):
    ours, theirs = PAIRS[name]
    assert_matches(ours(), theirs())


def test_realized_volatility_is_population_stdev_of_log_returns():
    value = ind.realized_volatility(C, 10)
    log_ret = np.log(C[1:] / C[:-1])
    expected = np.array([log_ret[i - 10 : i].std() for i in range(10, len(C))])
    assert np.isnan(value[:10]).all()
    np.testing.assert_allclose(value[10:], expected, rtol=1e-9)


def test_crosses_fire_only_on_the_bar_of_the_cross():
    a = np.array([1.0, 2.0, 3.0, 2.0, 1.0, 2.0])
    assert ind.crossed_above(a, 2.5).tolist() == [False, False, True, False, False, False]
    assert ind.crossed_below(a, 2.5).tolist() == [False, False, False, True, False, False]
    assert ind.crossed_above(a, np.full(6, np.nan)).sum() == 0


def test_short_input_gives_all_nan_of_the_same_length():
    short = C[:5]
    for values in (ind.sma(short, 20), ind.ema(short, 20), ind.rsi(short, 14),
                   ind.atr(H[:5], L[:5], short, 14), ind.macd(short)[0], ind.wma(short, 10)):
        assert values.shape == (5,)
        assert np.isnan(values).all()


def test_bad_period_is_a_clear_error():
    with pytest.raises(ValueError, match="period"):
        ind.sma(C, 0)


# Every indicator as a function of (high, low, close) returning one array.
FUNCTIONS = {
    "sma": lambda h, lo, c: ind.sma(c, 5),
    "ema": lambda h, lo, c: ind.ema(c, 5),
    "wma": lambda h, lo, c: ind.wma(c, 5),
    "bollinger": lambda h, lo, c: ind.bollinger(c, 5, 2.0)[0],
    "rsi": lambda h, lo, c: ind.rsi(c, 5),
    "macd": lambda h, lo, c: ind.macd(c, 3, 6, 3)[2],
    "true_range": lambda h, lo, c: ind.true_range(h, lo, c),
    "atr": lambda h, lo, c: ind.atr(h, lo, c, 5),
    "realized_volatility": lambda h, lo, c: ind.realized_volatility(c, 5),
    "volatility_rising": lambda h, lo, c: ind.volatility_rising(c, 5).astype(float),
    "donchian": lambda h, lo, c: ind.donchian(h, lo, 5)[1],
    "roc": lambda h, lo, c: ind.roc(c, 5),
    "rolling_max": lambda h, lo, c: ind.rolling_max(h, 5),
    "rolling_min": lambda h, lo, c: ind.rolling_min(lo, 5),
    "crossed_above": lambda h, lo, c: ind.crossed_above(c, ind.sma(c, 3)).astype(float),
    "crossed_below": lambda h, lo, c: ind.crossed_below(c, ind.sma(c, 3)).astype(float),
}

prices = st.lists(st.floats(min_value=1.0, max_value=1000.0), min_size=2, max_size=80)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@settings(max_examples=40, deadline=None)
@given(data=prices, changed=prices, cut=st.integers(min_value=0, max_value=79))
def test_indicator_never_reads_the_future(name, data, changed, cut):
    func = FUNCTIONS[name]
    close = np.array(data)
    cut = min(cut, len(close) - 1)
    other = close.copy()
    tail = np.array(changed)[: len(close) - cut]
    other[cut : cut + len(tail)] = tail
    before = func(close * 1.01, close * 0.99, close)
    after = func(other * 1.01, other * 0.99, other)
    np.testing.assert_array_equal(before[:cut], after[:cut])
    assert before.shape == close.shape


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@settings(max_examples=20, deadline=None)
@given(data=prices)
def test_indicator_never_modifies_its_inputs(name, data):
    close = np.array(data)
    high, low = close * 1.01, close * 0.99
    copies = (high.copy(), low.copy(), close.copy())
    FUNCTIONS[name](high, low, close)
    for original, copy in zip((high, low, close), copies):
        np.testing.assert_array_equal(original, copy)
