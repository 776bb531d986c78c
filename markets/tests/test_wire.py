import pytest
from hypothesis import given
from hypothesis import strategies as st

from markets import wire


def test_group_names_follow_the_contract():
    assert wire.bars_group("sim", "KRW-BTC", "1m") == "bars.sim.KRW-BTC.1m"
    assert wire.user_group(42) == "user.42"


@pytest.mark.parametrize("symbol", ["KRW/BTC", "BTC USDT", "", "x" * 120])
def test_group_names_reject_what_channels_would_refuse(symbol):
    with pytest.raises(ValueError, match="slash-free"):
        wire.bars_group("sim", symbol, "1m")


def test_messages_carry_their_type():
    bar = {"t": 0, "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 3.0}
    message = wire.bar_message("sim", "KRW-BTC", "1m", bar, closed=True)
    assert message == {
        "type": "bar.update",
        "venue": "sim",
        "symbol": "KRW-BTC",
        "timeframe": "1m",
        "bar": bar,
        "closed": True,
    }
    assert wire.private_message("order.updated", {"id": 3})["type"] == "order.updated"
    with pytest.raises(ValueError):
        wire.private_message("order.deleted", {})


@given(st.text(max_size=200), st.text(max_size=200))
def test_any_session_key_gives_a_valid_group_that_does_not_reveal_it(key, other):
    """Session keys are credentials: the group (a Redis key) carries only a hash of one."""
    from hypothesis import assume

    group = wire.session_group(key)
    assert group.startswith("session.") and len(group) < 100
    assert wire._NAME.match(group)
    if len(key) >= 8:
        assert key not in group
    assume(key != other)
    assert wire.session_group(other) != group
