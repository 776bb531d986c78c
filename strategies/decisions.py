"""What a strategy's action does to the position: the one decision the backtester's loop and
the paper/live order services both take.

An action (the :mod:`strategies.base` codes) meets the position's side (``LONG``, ``SHORT`` or
0 for flat) and gives a plan: close the position (reason ``signal`` or ``reverse``), then open
one on a side, or add to the position of that side; or nothing, and why.

* ``EXIT_*`` closes a position of that side (reason ``signal``).
* ``ENTER_*`` while flat opens; of the other side it closes (reason ``reverse``) and opens;
  of the same side it is ignored.
* ``ADD_*`` adds to a position of that side; flat or on the other side it is ignored.
* Without short selling (spot; the backtester's ``allow_short=False``) ``ENTER_SHORT`` is an
  ``EXIT_LONG`` and ``ADD_SHORT`` is ignored.

:func:`decide` is the kernel both paths run: the backtest loop calls it compiled (it is an
``@njit`` helper, compiled into the loop), the order services call it through
:func:`plan_action`, which adds the trader's words. Pure: the standard library only.
"""

from __future__ import annotations

import dataclasses

from strategies._jit import njit
from strategies.base import (
    ACTION_CODES,
    ADD_LONG,
    ADD_SHORT,
    ENTER_LONG,
    ENTER_SHORT,
    EXIT_LONG,
    EXIT_SHORT,
    HOLD,
)
from strategies.trade_math import (
    LONG,
    REASON_NAMES,
    REASON_NONE,
    REASON_REVERSE,
    REASON_SIGNAL,
    SHORT,
)

# Why an action does nothing (0: it does something).
ACTED = 0
IGNORED_HOLD = 1
IGNORED_SAME_SIDE = 2
IGNORED_NOTHING_TO_EXIT = 3
IGNORED_NOTHING_TO_ADD = 4
IGNORED_NO_SHORT = 5
IGNORED_UNKNOWN = 6


@njit
def effective_action(action, allow_short):
    """``action`` as carried out without short selling: ``ENTER_SHORT`` exits a long and
    ``ADD_SHORT`` holds. Unchanged when shorts are allowed."""
    if not allow_short:
        if action == ENTER_SHORT:
            return EXIT_LONG
        if action == ADD_SHORT:
            return HOLD
    return action


@njit
def action_side(action):
    """The side an action is about (``LONG`` / ``SHORT``), 0 for ``HOLD`` or an unknown code."""
    if action in (ENTER_LONG, EXIT_LONG, ADD_LONG):
        return LONG
    if action in (ENTER_SHORT, EXIT_SHORT, ADD_SHORT):
        return SHORT
    return 0


@njit
def decide(action, side, allow_short):
    """``(close_reason, open_side, ignored)`` for ``action`` (an int code) on a position of
    ``side`` (``LONG``, ``SHORT``, 0 flat).

    ``close_reason`` is ``REASON_SIGNAL`` / ``REASON_REVERSE`` to close the whole position
    first, else ``REASON_NONE``; ``open_side`` is the side to open (flat after any close) or to
    add to (when it equals ``side`` and nothing closes), else 0; ``ignored`` is ``ACTED`` or the
    ``IGNORED_*`` reason nothing happens.
    """
    if action == HOLD:  # most bars, so first: the loop runs this once per bar
        return REASON_NONE, 0, IGNORED_HOLD
    act = effective_action(action, allow_short)
    want = action_side(act)
    if want == 0:
        return REASON_NONE, 0, IGNORED_NO_SHORT if action == ADD_SHORT else IGNORED_UNKNOWN
    if act in (EXIT_LONG, EXIT_SHORT):
        if side == want:
            return REASON_SIGNAL, 0, ACTED
        return REASON_NONE, 0, IGNORED_NOTHING_TO_EXIT
    if act in (ENTER_LONG, ENTER_SHORT):
        if side == want:
            return REASON_NONE, 0, IGNORED_SAME_SIDE
        if side == -want:
            return REASON_REVERSE, want, ACTED
        return REASON_NONE, want, ACTED
    if side == want:  # ADD_LONG, ADD_SHORT
        return REASON_NONE, want, ACTED
    return REASON_NONE, 0, IGNORED_NOTHING_TO_ADD


# ---------------------------------------------------------------------------- for the services


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a signal means for the current position (:func:`decide` in a trader's words):
    ``close`` the open position (reason ``signal`` or ``reverse``), then ``open_side`` a new
    one or ``add`` to it; ``ignored`` says why nothing happens."""

    close: str | None = None
    open_side: int = 0
    add: bool = False
    ignored: str = ""


def _side_word(side: int) -> str:
    return "long" if side == LONG else "short"


def plan_action(action: str | int, position_side: int, *, can_short: bool) -> Plan:
    """``action`` is a Signal action name (``"enter_long"``) or its int code;
    ``position_side`` +1 long, -1 short, 0 flat. ``can_short=False`` (spot) is the
    backtester's ``allow_short=False``."""
    code = ACTION_CODES.get(action, -1) if isinstance(action, str) else int(action)
    close_reason, open_side, ignored = decide(code, position_side, can_short)
    if ignored != ACTED:
        word = _side_word(action_side(effective_action(code, can_short)))
        return Plan(ignored={
            IGNORED_SAME_SIDE: f"already {word}",
            IGNORED_NOTHING_TO_EXIT: f"no {word} position to exit",
            IGNORED_NOTHING_TO_ADD: f"no {word} position to add to",
            IGNORED_NO_SHORT: "short selling is not available on a spot market",
            IGNORED_HOLD: "hold: nothing to do",
        }.get(ignored, f"unknown action {action!r}"))
    return Plan(
        close=None if close_reason == REASON_NONE else REASON_NAMES[close_reason],
        open_side=open_side,
        add=open_side != 0 and open_side == position_side and close_reason == REASON_NONE,
    )
