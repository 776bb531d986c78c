"""The one reconnect backoff (``markets.backoff``): jittered, doubling, capped, and reset only after
a healthy stretch. Pure: a fake clock and random source, no sleeping."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from markets.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_delays_double_from_the_minimum_up_to_the_cap():
    b = Backoff(0.5, 30.0, jitter=0.0)
    assert [b.failed() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert b.failures == 9


def test_a_short_lived_success_keeps_backing_off_a_healthy_one_starts_over():
    clock = Clock()
    b = Backoff(1.0, 60.0, jitter=0.0, healthy_s=5.0, clock=clock)
    assert [b.failed() for _ in range(3)] == [1, 2, 4]
    b.healthy()  # connected ...
    clock.t += 1.0
    assert b.failed() == 8  # ... and dropped at once: a flapping venue is not hammered
    b.healthy()
    clock.t += 2.0
    b.healthy()  # a later report does not restart the stretch
    clock.t += 3.0
    assert b.failed() == 1  # up 5 s: healthy, start over
    assert b.failures == 1


def test_healthy_zero_resets_on_any_success_and_reset_is_immediate():
    b = Backoff(0.1, 5.0, jitter=0.0)
    b.failed(), b.failed()
    b.healthy()
    assert b.failed() == 0.1
    b.failed()
    b.reset()
    assert b.base_s == 0.1 and b.failures == 0


@pytest.mark.parametrize("kwargs, field", [
    ({"min_s": 0.0}, "min_s"), ({"min_s": 5.0, "max_s": 1.0}, "min_s"),
    ({"factor": 0.5}, "factor"), ({"jitter": 1.0}, "jitter"), ({"healthy_s": -1.0}, "healthy_s"),
])
def test_nonsense_settings_are_refused_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Backoff(**kwargs)


@given(
    min_s=st.floats(0.01, 10.0), span=st.floats(1.0, 100.0), factor=st.floats(1.0, 4.0),
    jitter=st.floats(0.0, 0.99), rolls=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40),
)
def test_every_delay_stays_between_the_jittered_minimum_and_the_cap(min_s, span, factor,
                                                                    jitter, rolls):
    max_s = min_s * span
    it = iter(rolls)
    b = Backoff(min_s, max_s, factor=factor, jitter=jitter, rand=lambda: next(it))
    bases = []
    for _ in rolls:
        bases.append(b.base_s)
        delay = b.failed()
        assert min_s * (1 - jitter) * (1 - 1e-12) <= delay <= max_s
        assert delay <= bases[-1] * (1 + jitter) * (1 + 1e-12)
    assert bases == sorted(bases)  # without a success the base never shrinks
    assert all(x <= max_s for x in bases)


@given(st.lists(st.sampled_from(["fail", "ok", "wait"]), max_size=60))
def test_the_base_restarts_only_after_a_success_that_lasted(steps):
    clock = Clock()
    b = Backoff(1.0, 1000.0, jitter=0.0, healthy_s=10.0, clock=clock)
    expected, since = 1.0, None
    for step in steps:
        if step == "wait":
            clock.t += 4.0
        elif step == "ok":
            since = clock.t if since is None else since
            b.healthy()
        else:
            if since is not None and clock.t - since >= 10.0:
                expected = 1.0
            since = None
            assert b.failed() == expected
            expected = min(expected * 2, 1000.0)


def test_sleep_waits_the_delay_it_returns(monkeypatch):
    slept = []

    async def fake_sleep(s):
        slept.append(s)

    monkeypatch.setattr("markets.backoff.asyncio.sleep", fake_sleep)
    b = Backoff(0.5, 2.0, jitter=0.0)
    assert asyncio.run(b.sleep()) == 0.5
    assert asyncio.run(b.sleep()) == 1.0
    assert slept == [0.5, 1.0]
