"""The declaration machinery every strategy and sizing method uses, and the registry."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strategies import registry, sizing
from strategies.base import Candles, Signals, Strategy
from strategies.params import ParamError, Params, param


@dataclasses.dataclass(frozen=True)
class CrossParams(Params):
    fast: int = param(7, min=2, max=50, help="bars")
    slow: int = param(20, min=3, max=200)
    band: float = param(2.0, min=0.5, max=4.0)
    allow_short: bool = param(False)
    symbols: tuple = param((), help="other symbols")
    mode: str = param("close", choices=("close", "hl2"))

    def check(self):
        if self.fast >= self.slow:
            raise ParamError(f"fast ({self.fast}) must be less than slow ({self.slow})")


class Cross(Strategy):
    name = "test_cross"
    Params = CrossParams

    def lookback(self):
        return self.params.slow

    def signals(self, candles):
        return Signals(actions=np.zeros(len(candles), dtype=np.int8))


@pytest.fixture(autouse=True)
def registered():
    registry.register(Cross)
    yield
    registry.unregister(Cross.name)


def test_defaults_fill_missing_params_and_strings_are_coerced():
    params = CrossParams.from_dict(
        {"fast": "5", "band": "2.5", "allow_short": "true", "symbols": "KRW-BTC, KRW-ETH"}
    )
    assert params == CrossParams(fast=5, band=2.5, allow_short=True, symbols=("KRW-BTC", "KRW-ETH"))
    assert params.to_dict()["symbols"] == ["KRW-BTC", "KRW-ETH"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"fast": 1}, "fast must be between 2 and 50; got 1"),
        ({"fast": 2.5}, "fast must be a whole number, not 2.5"),
        ({"fast": True}, "fast must be a whole number"),
        ({"band": "wide"}, "band must be a number, not 'wide'"),
        ({"band": "nan"}, "band must be a finite number"),
        ({"fast": 30, "slow": 20}, "fast (30) must be less than slow (20)"),
        ({"mode": "open"}, "mode must be one of close, hl2; got 'open'"),
        (
            {"fsat": 3},
            "unknown parameter fsat for strategy 'test_cross'; it takes: fast, slow, band",
        ),
        ([1, 2], "parameters must be a JSON object"),
    ],
)
def test_bad_params_explain_the_fix(data, message):
    with pytest.raises(ParamError) as excinfo:
        registry.validate_params("test_cross", data)
    assert message in str(excinfo.value)


def test_registry_lists_builds_and_rejects_unknown_strategies():
    assert "test_cross" in registry.names()
    assert ("test_cross", "Test Cross") in registry.choices()
    strategy = registry.build("test_cross", {"fast": 3})
    assert isinstance(strategy, Cross) and strategy.lookback() == 20
    with pytest.raises(ParamError, match=r"unknown strategy 'nope'; available: .*test_cross"):
        registry.get("nope")


def test_a_name_cannot_be_registered_twice():
    other = type("Other", (Cross,), {})
    with pytest.raises(TypeError, match="taken"):
        registry.register(other)


def test_describe_lists_declared_parameters():
    rows = {row["name"]: row for row in CrossParams.describe()}
    assert rows["fast"] == {
        "name": "fast",
        "type": "int",
        "default": 7,
        "min": 2,
        "max": 50,
        "choices": None,
        "help": "bars",
        "grid": None,
    }
    assert rows["mode"]["choices"] == ["close", "hl2"]


def test_candles_tail_and_shape_errors():
    n = 10
    candles = Candles.from_arrays(np.arange(n) * 60_000, *(np.ones(n),) * 5)
    assert len(candles.tail(3)) == 3 and candles.tail(3).open_time_ms[0] == 7 * 60_000
    assert len(candles.tail(50)) == n
    with pytest.raises(ValueError, match="every column must have one value per candle"):
        Candles.from_arrays(
            np.arange(3), np.ones(2), np.ones(3), np.ones(3), np.ones(3), np.ones(3)
        )


# --- sizing -----------------------------------------------------------------------------------


def test_fraction_and_fixed_quote_sizing():
    assert sizing.quantity(sizing.Fraction(fraction=0.5), equity=1000, price=10) == 50
    assert sizing.quantity(sizing.Fraction(fraction=0.5), equity=1000, price=10, leverage=3) == 150
    # A fixed amount never spends more than the equity there is.
    assert sizing.quantity(sizing.FixedQuote(amount=500), equity=200, price=10) == 20


def test_atr_unit_risks_the_given_percent_per_atr():
    qty = sizing.quantity(sizing.AtrUnit(risk_pct=1.0), equity=100_000, price=100, atr=5)
    assert qty == pytest.approx(200)  # a 5-point move costs 1,000 = 1% of equity
    assert qty * 5 == pytest.approx(100_000 * 0.01)
    assert sizing.quantity(sizing.AtrUnit(), equity=100_000, price=100, atr=None) == 0.0
    # Capped at the margin available.
    assert sizing.quantity(sizing.AtrUnit(risk_pct=50), equity=1000, price=100, atr=0.01) == 10


def test_kelly_fraction_formula_and_estimate():
    assert sizing.kelly_fraction(0.6, 1.0) == pytest.approx(0.2)
    assert sizing.kelly_fraction(0.3, 1.0) == 0.0  # negative edge: bet nothing
    half = sizing.Kelly(win_rate=0.6, payoff=2.0, fraction=0.5)
    assert sizing.quantity(half, equity=1000, price=1) == pytest.approx(1000 * 0.4 * 0.5)
    estimated = sizing.Kelly(win_rate=0.0, min_trades=4, fraction=1.0)
    trades = [0.02, 0.02, 0.02, -0.01]  # W = 0.75, R = 2
    assert sizing.quantity(estimated, equity=1000, price=1, trade_returns=trades) == pytest.approx(
        1000 * (0.75 - 0.25 / 2)
    )
    assert sizing.quantity(estimated, equity=1000, price=1, trade_returns=trades[:2]) == 100


@given(
    equity=st.floats(0, 1e12),
    price=st.floats(0, 1e9),
    fraction=st.floats(0.0001, 1.0),
    leverage=st.integers(1, 125),
)
def test_fraction_sizing_never_commits_more_margin_than_equity(equity, price, fraction, leverage):
    qty = sizing.quantity(
        sizing.Fraction(fraction=fraction), equity=equity, price=price, leverage=leverage
    )
    assert qty >= 0 and math.isfinite(qty)
    if price > 0:
        assert qty * price / leverage <= equity * (1 + 1e-9)


def test_unknown_sizing_method_is_named():
    with pytest.raises(ParamError, match="unknown sizing method 'martingale'"):
        sizing.validate("martingale", {})
