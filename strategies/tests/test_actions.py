"""Actions have one definition (``strategies.base.ACTIONS``): the codes strategies and the
backtest loop carry and the names stored signals carry are two spellings of the same table."""

from strategies import base
from strategies.models import Action, Signal


def test_stored_actions_are_the_table_but_hold():
    table = [(name, label) for code, name, label in base.ACTIONS if code != base.HOLD]
    assert Action.choices == table
    assert Signal._meta.get_field("action").choices == table


def test_codes_and_names_round_trip():
    assert len({code for code, _, _ in base.ACTIONS}) == len(base.ACTIONS)
    for code, name, _label in base.ACTIONS:
        assert base.ACTION_CODES[base.ACTION_NAMES[code]] == code
        assert getattr(base, name.upper()) == code
