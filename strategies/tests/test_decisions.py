"""One decision path: what an action does to the position (``strategies.decisions``) and a
position's levels (``strategies.trade_math``), shared by the backtest loop and the order services.

The loop runs the decision compiled (ahead of time, or numba's JIT); the services run the plain
Python function. The property test below drives the loop in force with random action and size
sequences and checks every trade against a replay through the plain Python :func:`decide`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import _jit, decisions, trade_math
from strategies.backtest import BacktestConfig, simulate
from strategies.base import (
    ACTION_NAMES,
    ADD_LONG,
    ADD_SHORT,
    ENTER_LONG,
    ENTER_SHORT,
    EXIT_LONG,
    EXIT_SHORT,
    HOLD,
    Signals,
)
from strategies.tests.conftest import random_walk

L, S = trade_math.LONG, trade_math.SHORT
SIGNAL, REVERSE, NONE = trade_math.REASON_SIGNAL, trade_math.REASON_REVERSE, trade_math.REASON_NONE


@pytest.mark.parametrize(
    "action, side, allow_short, expected",
    [
        (ENTER_LONG, 0, True, (NONE, L, decisions.ACTED)),
        (ENTER_LONG, L, True, (NONE, 0, decisions.IGNORED_SAME_SIDE)),
        (ENTER_LONG, S, True, (REVERSE, L, decisions.ACTED)),
        (ENTER_SHORT, L, True, (REVERSE, S, decisions.ACTED)),
        (ENTER_SHORT, L, False, (SIGNAL, 0, decisions.ACTED)),  # spot: exits the long
        (ENTER_SHORT, 0, False, (NONE, 0, decisions.IGNORED_NOTHING_TO_EXIT)),
        (EXIT_LONG, L, True, (SIGNAL, 0, decisions.ACTED)),
        (EXIT_LONG, S, True, (NONE, 0, decisions.IGNORED_NOTHING_TO_EXIT)),
        (EXIT_SHORT, S, True, (SIGNAL, 0, decisions.ACTED)),
        (ADD_LONG, L, True, (NONE, L, decisions.ACTED)),
        (ADD_LONG, 0, True, (NONE, 0, decisions.IGNORED_NOTHING_TO_ADD)),
        (ADD_SHORT, S, True, (NONE, S, decisions.ACTED)),
        (ADD_SHORT, S, False, (NONE, 0, decisions.IGNORED_NO_SHORT)),
        (HOLD, L, True, (NONE, 0, decisions.IGNORED_HOLD)),
        (42, 0, True, (NONE, 0, decisions.IGNORED_UNKNOWN)),
    ],
)
def test_decide_covers_every_action_and_side(action, side, allow_short, expected):
    assert decisions.decide(action, side, allow_short) == expected


@pytest.mark.parametrize("code", sorted(ACTION_NAMES))
@pytest.mark.parametrize("side", [0, L, S])
@pytest.mark.parametrize("can_short", [False, True])
def test_the_services_plan_is_the_decision_in_words(code, side, can_short):
    close, open_side, ignored = decisions.decide(code, side, can_short)
    plan = decisions.plan_action(ACTION_NAMES[code], side, can_short=can_short)
    assert plan == decisions.plan_action(code, side, can_short=can_short)
    assert plan.close == (None if close == NONE else trade_math.REASON_NAMES[close])
    assert plan.open_side == open_side
    assert plan.add == (open_side == side != 0 and close == NONE)
    assert bool(plan.ignored) == (ignored != decisions.ACTED)


def test_an_unknown_action_name_is_ignored_and_named():
    assert decisions.plan_action("buy", 0, can_short=True).ignored == "unknown action 'buy'"


def _replay(actions, sizes, allow_short: bool, n: int) -> list[tuple]:
    """The trades the loop must record, decided bar by bar by the plain Python ``decide``
    (no exits, no limits, sizes small enough that every order fills)."""
    trades, side, opened, entries = [], 0, 0, 0
    for i in range(1, n):
        close, want, _ignored = decisions.decide(int(actions[i - 1]), side, allow_short)
        if close != NONE:
            trades.append((side, opened, i, trade_math.REASON_NAMES[close], entries))
            side = 0
        if want != 0 and sizes[i - 1] > 0:
            if side == 0:
                side, opened, entries = want, i, 1
            else:
                entries += 1
    if side != 0:
        trades.append((side, opened, n - 1, "end_of_data", entries))
    return trades


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 6), st.sampled_from([0.0, 0.005, 0.01, math.nan])),
        min_size=1, max_size=80,
    ),
    allow_short=st.booleans(),
    seed=st.integers(0, 10),
)
def test_the_compiled_loop_decides_as_the_python_decision(steps, allow_short, seed):
    """The loop in force (``_jit.MODE``: compiled ahead of time or by numba's JIT, or plain
    Python) records exactly the trades the plain Python decision gives, for any sequence."""
    n = len(steps)
    candles = random_walk(n, seed=seed, vol=0.001)
    actions = np.array([a for a, _ in steps], dtype=np.int8)
    sizes = np.array([s for _, s in steps])
    result = simulate(
        candles, Signals(actions, size=sizes),
        BacktestConfig(risk=trade_math.RiskParams(fee_rate=0.0), allow_short=allow_short),
    )
    times = candles.open_time_ms.tolist()
    got = [
        (1 if t.side == "long" else -1, times.index(t.entry_time_ms),
         times.index(t.exit_time_ms), t.reason, t.entries)
        for t in result.trades
    ]
    assert got == _replay(actions, np.nan_to_num(sizes), allow_short, n), _jit.MODE


@settings(max_examples=200, deadline=None)
@given(
    side=st.sampled_from([L, S]),
    entry=st.floats(0.01, 1e6),
    best_move=st.floats(-0.5, 0.5),
    stop=st.floats(0, 50), target=st.floats(0, 200), trailing=st.floats(0, 50),
    leverage=st.floats(1, 50),
)
def test_the_guard_holds_the_levels_the_backtester_checks(
    side, entry, best_move, stop, target, trailing, leverage
):
    """Levels fixed at the fill (``entry_levels``, ``position_liquidation``, what the services
    store) and assembled by the exit guard (``held_levels``) equal the backtester's ``levels``."""
    risk = trade_math.RiskParams(stop_loss_pct=stop, take_profit_pct=target,
                                 trailing_stop_pct=trailing, leverage=leverage,
                                 maintenance_margin_rate=0.004)
    qty, best = 2.0, entry * (1 + best_move)
    margin = qty * entry / leverage
    backtester = trade_math.exit_levels(risk, side=side, quantity=qty, entry_price=entry,
                                        margin=margin, best_price=best)
    stored_stop, stored_target = trade_math.entry_levels(side, entry, stop, target)
    guard = trade_math.held_levels(
        side, stop=stored_stop, target=stored_target, best_price=best,
        trailing_stop_pct=trailing,
        liquidation=trade_math.position_liquidation(side, qty, entry, margin, leverage, 0.004),
    )
    for name in ("stop", "trailing", "liquidation", "target"):
        want, got = getattr(backtester, name), getattr(guard, name)
        assert (math.isnan(want) and math.isnan(got)) or want == got, name


def test_an_unleveraged_long_has_no_liquidation_but_a_short_has():
    assert math.isnan(trade_math.position_liquidation(L, 1.0, 100.0, 100.0, 1.0, 0.005))
    assert trade_math.position_liquidation(S, 1.0, 100.0, 100.0, 1.0, 0.005) == pytest.approx(
        200.0 / 1.005
    )
    assert math.isnan(trade_math.held_levels(L, stop=math.nan, target=math.nan, best_price=math.nan,
                                      trailing_stop_pct=3.0, liquidation=math.nan).trailing)
