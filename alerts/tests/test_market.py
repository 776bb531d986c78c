"""Market-condition rules evaluated in memory (``alerts.market``): crossings fire once per
crossing, moves once per move, indicator conditions when they become true, volume spikes once
per bar, nothing within a cooldown; and the parameters of every kind are checked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts import conditions
from alerts.market import Evaluator, Rule, RuleIndex


def rule(id_, kind, cooldown_s=0.0, code="KRW-BTC", **params):
    return Rule(id_, kind, "sim", code, 1, conditions.check(kind, params), cooldown_s, f"r{id_}")


def ev(*rules):
    return Evaluator(RuleIndex(list(rules)))


def feed(e, prices, start_ms=0, step_ms=1000, code="KRW-BTC"):
    out = []
    for i, p in enumerate(prices):
        out += e.on_price("sim", code, p, p, p, start_ms + i * step_ms)
    return out


def test_a_crossing_fires_once_per_crossing_not_every_tick_above():
    e = ev(rule(1, "price_cross", level="100", direction="up"))
    fired = feed(e, [90, 95, 101, 105, 110, 103])
    assert [f.rule_id for f in fired] == [1]
    assert "crossed above 100" in fired[0].title
    # back below and up again: a second crossing
    assert [f.rule_id for f in feed(e, [99, 100.5], start_ms=10_000)] == [1]


def test_the_first_price_never_fires_and_direction_is_respected():
    e = ev(rule(1, "price_cross", level="100", direction="down"),
           rule(2, "price_cross", level="100", direction="either"))
    assert feed(e, [150]) == []  # nothing known before: no crossing
    assert feed(e, [120, 110], start_ms=5000) == []
    assert sorted(f.rule_id for f in feed(e, [99], start_ms=9000)) == [1, 2]
    assert [f.rule_id for f in feed(e, [101], start_ms=12000)] == [2]


def test_a_crossing_inside_one_update_is_seen_through_its_high_and_low():
    e = ev(rule(1, "price_cross", level="100", direction="up"))
    e.on_price("sim", "KRW-BTC", 95, 95, 95, 0)
    # the price touched 100.5 between updates and came back to 97
    assert [f.rule_id for f in e.on_price("sim", "KRW-BTC", 97, 100.5, 94, 1000)] == [1]


def test_the_cooldown_quiets_a_flapping_level():
    e = ev(rule(1, "price_cross", cooldown_s=60, level="100", direction="either"))
    fired = feed(e, [99, 101, 99, 101, 99])  # four crossings within 4 s
    assert len(fired) == 1
    assert len(feed(e, [101], start_ms=61_000)) == 1


def test_other_symbols_and_venues_are_not_evaluated():
    e = ev(rule(1, "price_cross", level="100", direction="up"))
    assert feed(e, [90, 110], code="KRW-ETH") == []
    assert e.on_price("other", "KRW-BTC", 90, 90, 90, 0) == []
    assert e.on_price("other", "KRW-BTC", 110, 110, 110, 1) == []


def test_a_move_within_its_window_fires_once_then_starts_again():
    e = ev(rule(1, "price_move", percent="5", window_s=60, direction="either"))
    assert feed(e, [100, 101, 102, 103]) == []
    fired = feed(e, [106], start_ms=4000)
    assert [f.rule_id for f in fired] == [1] and fired[0].data["direction"] == "up"
    assert feed(e, [107, 108], start_ms=5000) == []  # measured from the firing price now


def test_a_slow_move_outside_the_window_does_not_fire():
    e = ev(rule(1, "price_move", percent="5", window_s=10, direction="up"))
    # +1 % every 5 s: never 5 % within 10 s
    assert feed(e, [100 * 1.01 ** i for i in range(20)], step_ms=5000) == []


def test_a_drop_fires_a_down_rule_only():
    e = ev(rule(1, "price_move", percent="3", window_s=60, direction="down"),
           rule(2, "price_move", percent="3", window_s=60, direction="up"))
    assert [f.rule_id for f in feed(e, [100, 99, 96.5])] == [1]


def closes_falling(n=60):
    return np.linspace(200, 100, n)


def test_an_indicator_condition_fires_when_it_becomes_true():
    e = ev(rule(1, "indicator", indicator="rsi", period=14, timeframe="15m", op="below",
                value="25"))
    times = np.arange(60) * 900_000
    c = np.r_[np.full(30, 150.0) + np.sin(np.arange(30)), closes_falling(30)]
    fired = []
    for n in range(20, 60):
        fired += e.on_bars("sim", "KRW-BTC", "15m", times[:n], c[:n], np.ones(n))
    assert [f.rule_id for f in fired] == [1]  # once, though it stays below 25
    assert "RSI(14) on 15m below 25" in fired[0].title


def test_a_volume_spike_fires_once_per_bar():
    e = ev(rule(1, "volume_spike", timeframe="1m", factor="3", bars=5))
    times = np.arange(7) * 60_000
    vol = np.array([10, 10, 10, 10, 10, 10, 40.0])
    fired = e.on_bars("sim", "KRW-BTC", "1m", times, np.ones(7), vol)
    assert [f.rule_id for f in fired] == [1] and "4.0×" in fired[0].title
    assert e.on_bars("sim", "KRW-BTC", "1m", times[:-1], np.ones(6), vol[:-1]) == []


def test_a_reload_keeps_the_last_price_and_drops_gone_rules():
    e = ev(rule(1, "price_cross", level="100", direction="up"))
    feed(e, [90])
    e.load(RuleIndex([rule(2, "price_cross", level="95", direction="up")]))
    assert [f.rule_id for f in feed(e, [96], start_ms=1000)] == [2]


@pytest.mark.parametrize("kind,params,field", [
    ("price_cross", {}, "level"),
    ("price_cross", {"level": "-1"}, "level"),
    ("price_cross", {"level": "NaN"}, "level"),
    ("price_cross", {"level": "1", "direction": "sideways"}, "direction"),
    ("price_move", {"percent": "2", "window_s": 0}, "window_s"),
    ("indicator", {"indicator": "magic", "op": "below", "value": 1}, "indicator"),
    ("indicator", {"op": "below", "value": 1, "timeframe": "7m"}, "timeframe"),
    ("volume_spike", {"factor": True}, "factor"),
    ("order_filled", {"x": 1}, "x"),
])
def test_bad_parameters_name_the_field(kind, params, field):
    with pytest.raises(conditions.ParamError) as err:
        conditions.check(kind, params)
    assert err.value.field == field


json_values = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
               | st.sampled_from(["up", "rsi", "15m", "below", "1e999", "-0", "7"])
               | st.lists(st.integers(), max_size=2))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(kind=st.sampled_from(sorted(conditions.MARKET_KINDS | conditions.HEALTH_KINDS)),
       params=st.dictionaries(st.sampled_from(["level", "direction", "percent", "window_s",
                                               "indicator", "period", "timeframe", "op",
                                               "value", "factor", "bars", "minutes", "venue",
                                               "other"]), json_values, max_size=5))
def test_any_parameters_are_accepted_normalized_or_refused_with_a_field(kind, params):
    try:
        out = conditions.check(kind, params)
    except conditions.ParamError as exc:
        assert exc.field and exc.message
    else:
        assert conditions.check(kind, out) == out  # normalized parameters check again
