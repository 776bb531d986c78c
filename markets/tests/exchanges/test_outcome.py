"""``outcome.send_once``: whatever the send and the lookups do, the request leaves once, the
lookups are bounded, and an unsettled outcome is ``OrderStatusUnknown``, never a re-send."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from markets.exchanges.errors import (
    AuthenticationError,
    ExchangeUnavailable,
    OrderNotFound,
    OrderRejected,
    OrderStatusUnknown,
    RateLimited,
    RequestNotSent,
    TemporaryExchangeError,
)
from markets.exchanges.outcome import send_once
from markets.exchanges.rest import ResponseLost

FOUND = "found"
# What a send can do: answer, or fail in each way the adapters see.
SEND_FAILURES = {
    "not_sent": RequestNotSent("refused", venue="v"),
    "rate_limited": RateLimited("429", venue="v", retry_after=1.0),
    "timeout": ResponseLost("read timed out", venue="v"),
    "5xx": TemporaryExchangeError("502", venue="v", status=502),
    "unavailable": ExchangeUnavailable("503", venue="v", status=503),
    "rejected": OrderRejected("bad tick", venue="v", status=400),
    "auth": AuthenticationError("bad key", venue="v", status=401),
}
UNKNOWN = {"timeout", "5xx", "unavailable"}  # the order may exist: look it up
LOOKUP_ANSWERS = {
    FOUND: None,
    "not_found": OrderNotFound("no such order", venue="v"),
    "timeout": ResponseLost("lookup timed out", venue="v"),
    "5xx": TemporaryExchangeError("500", venue="v", status=500),
}


class Venue:
    def __init__(self, send_result: str, lookups: list[str]) -> None:
        self.send_result, self.lookups = send_result, list(lookups)
        self.sends = self.lookup_calls = 0
        self.sleeps: list[float] = []

    def send(self) -> str:
        self.sends += 1
        if self.send_result == FOUND:
            return "sent"
        raise SEND_FAILURES[self.send_result]

    def lookup(self) -> str:
        answer = self.lookups[self.lookup_calls] if self.lookup_calls < len(self.lookups) \
            else "not_found"
        self.lookup_calls += 1
        if answer == FOUND:
            return "looked-up"
        raise LOOKUP_ANSWERS[answer]


def run(venue: Venue, attempts: int):
    return send_once(venue.send, venue.lookup, venue="v", client_id="cid-1",
                     attempts=attempts, delay_s=0.25, sleep=venue.sleeps.append)


@given(send_result=st.sampled_from([FOUND, *SEND_FAILURES]),
       lookups=st.lists(st.sampled_from(list(LOOKUP_ANSWERS)), max_size=6),
       attempts=st.integers(min_value=0, max_value=5))
def test_one_send_bounded_lookups_never_resend(send_result, lookups, attempts):
    venue = Venue(send_result, lookups)
    first_found = lookups.index(FOUND) if FOUND in lookups else None
    if send_result == FOUND:
        assert run(venue, attempts) == "sent"
        assert venue.lookup_calls == 0
    elif send_result not in UNKNOWN:
        with pytest.raises(type(SEND_FAILURES[send_result])):
            run(venue, attempts)
        assert venue.lookup_calls == 0  # a known outcome is not looked up
    elif first_found is not None and first_found < attempts:
        assert run(venue, attempts) == "looked-up"
        assert venue.lookup_calls == first_found + 1
    else:
        with pytest.raises(OrderStatusUnknown) as info:
            run(venue, attempts)
        assert info.value.client_order_id == "cid-1"
        assert isinstance(info.value.__cause__, type(SEND_FAILURES[send_result]))
        assert venue.lookup_calls == attempts
    assert venue.sends == 1
    assert venue.lookup_calls <= attempts
    assert venue.sleeps == [0.25] * max(0, venue.lookup_calls - 1)


def test_a_lookup_that_fails_otherwise_propagates():
    """A lookup refused for a non-temporary reason (bad key) is that error, not a re-send."""
    venue = Venue("timeout", [])
    venue.lookup = lambda: (_ for _ in ()).throw(AuthenticationError("bad key", venue="v"))
    with pytest.raises(AuthenticationError):
        run(venue, 3)
    assert venue.sends == 1


def test_unknown_message_names_what_and_how_to_reconcile():
    venue = Venue("5xx", ["not_found"])
    with pytest.raises(OrderStatusUnknown, match=r"v: stop cid-1 outcome unknown after 502; "
                                                  r"not resent - reconcile with fetch_stop"):
        send_once(venue.send, venue.lookup, venue="v", client_id="cid-1", attempts=1,
                  delay_s=0, sleep=venue.sleeps.append, what="stop", reconcile="fetch_stop")
