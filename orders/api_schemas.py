"""What the JSON API accepts, as pydantic schemas (django-ninja validates every request with them
and publishes them in ``/api/openapi.json``).

Each check names the field and says what would be right; ``tradesite.api`` turns the failures
into ``{"error": ..., "detail": [{"field", "message"}]}`` with status 400. Bounds are the
database's: ids fit a 64-bit integer, money fits ``DecimalField(30, 12)``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import BaseModel as Schema
from pydantic import BeforeValidator, Field, model_validator

from orders.models import Order

#: The largest id a database's 64-bit primary key holds.
MAX_ID = 2**63 - 1
#: Money columns are ``DecimalField(30, 12)``: under 10^18, 12 decimal places.
MAX_MONEY = Decimal(10) ** 18
MIN_MONEY = Decimal("1e-12")
MAX_DIGITS = 30
MAX_LIST = 1_000
PAGE = 100
MAX_PAGE = 1_000


def _id(value):
    """A whole number in the id range: JSON numbers or digit strings; never true/false."""
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal | float):
        raise ValueError(f"must be an id (a whole number), got {_shown(value)}")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise ValueError(f"must be an id (a whole number), got {_shown(value)}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"must be an id (a whole number), got {_shown(value)}")
    if not 1 <= number <= MAX_ID:
        raise ValueError(f"must be an id between 1 and {MAX_ID}, got {_shown(value)}")
    return int(number)


def _money(value):
    """A positive decimal as text ("0.001") or a JSON number, within the money columns."""
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal | float):
        raise ValueError(f'must be a number (text like "0.001" or a JSON number), got '
                         f"{_shown(value)}")
    if isinstance(value, str) and len(value) > 64:
        raise ValueError("must be a number of at most 64 characters")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"must be a number, got {_shown(value)}") from None
    if not number.is_finite():
        raise ValueError("must be a finite number")
    if number <= 0:
        raise ValueError("must be more than 0")
    if number >= MAX_MONEY:
        raise ValueError("must be less than 10^18")
    if number < MIN_MONEY:
        raise ValueError("must be at least 0.000000000001 (12 decimal places)")
    # Counted on the exact digits (normalize() would round them to the context's 28).
    if len("".join(map(str, number.as_tuple().digits)).rstrip("0")) > MAX_DIGITS:
        raise ValueError(f"has more than {MAX_DIGITS} significant digits")
    return number


def _text(max_length: int):
    def check(value):
        if not isinstance(value, str):
            raise ValueError(f"must be text, got {_shown(value)}")
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        if "\x00" in value or (not value.isprintable() and _unencodable(value)):
            raise ValueError("must be plain text (no NUL, no lone surrogate)")
        return value

    return check


def _unencodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _page(value):
    """``limit``: a whole number, clamped to 1..1000 as the API always did."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) <= 30:
        return max(1, min(int(value), MAX_PAGE))
    if isinstance(value, int) and not isinstance(value, bool):
        return max(1, min(value, MAX_PAGE))
    raise ValueError("must be a whole number")


# Field before the validator, so the OpenAPI description shows minimum/maximum.
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_id)]
Money = Annotated[Decimal, BeforeValidator(_money)]
Limit = Annotated[int, Field(ge=1, le=MAX_PAGE), BeforeValidator(_page)]


def Text(max_length: int):
    return Annotated[str, Field(max_length=max_length), BeforeValidator(_text(max_length))]


class OrderIn(Schema):
    """A manual order. Without ``price`` it is a market order. A market buy is sized by exactly
    one of ``quantity`` or ``quote_amount``; every other order by ``quantity``."""

    account: Id = Field(description="one of your account ids (GET /api/balances)")
    symbol: Text(64) = Field(description="venue:code, e.g. sim:KRW-BTC")
    side: Literal["buy", "sell"]
    quantity: Money | None = Field(
        None, description='base-asset quantity, e.g. "0.001"; omit when giving quote_amount'
    )
    quote_amount: Money | None = Field(
        None,
        description='market buy only: quote currency to spend, e.g. "10000" (KRW). Paper '
        "spends at most this, fees included; live, the venue's quote-amount market buy (Upbit "
        "adds its fee on top, Binance spot takes it from the coin bought). Upbit takes a "
        "market buy only this way, Binance futures never",
    )
    price: Money | None = Field(None, description="limit price; omit for a market order")

    @model_validator(mode="after")
    def one_size(self):
        if self.quote_amount is not None:
            if self.quantity is not None:
                raise ValueError('give either "quantity" or "quote_amount", not both')
            if self.side != "buy" or self.price is not None:
                raise ValueError('"quote_amount" sizes a market buy only (side "buy", no '
                                 '"price"); give "quantity" for this order')
        elif self.quantity is None:
            raise ValueError('give "quantity" (or "quote_amount" for a market buy)')
        return self


class KillSwitchIn(Schema):
    """Exactly one scope: ``{"all": true}`` or ``{"configs": [ids]}``."""

    all: bool | None = Field(None, strict=True, description="true stops everything of yours")
    configs: list[Id] | None = Field(None, max_length=MAX_LIST)
    close_positions: bool = Field(False, strict=True)
    reason: Text(200) | None = None

    @model_validator(mode="after")
    def one_scope(self):
        if self.all is True and self.configs is not None:
            raise ValueError('send either "all": true or "configs": [ids], not both')
        if self.all is not True and self.configs is None:
            raise ValueError('say what to stop: {"all": true} or {"configs": [ids]}')
        return self


class Page(Schema):
    limit: Limit = PAGE


class PositionsQuery(Page):
    open: Text(8) = Field("1", description='"0" lists closed positions too')


class OrdersQuery(Page):
    status: Literal[tuple(Order.Status.values)] | None = None  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def empty_status_is_none(cls, data):
        if isinstance(data, dict) and data.get("status") == "":
            data = {**data, "status": None}
        return data


class SignalsQuery(Page):
    config: Id | None = None

    @model_validator(mode="before")
    @classmethod
    def empty_config_is_none(cls, data):
        if isinstance(data, dict) and data.get("config") == "":
            data = {**data, "config": None}
        return data


# ------------------------------------------------------------------------ responses


class BalanceOut(Schema):
    asset: str
    free: str = Field(description='decimal as text, e.g. "0.00100000"')
    locked: str = Field(description="held by open orders (spot) or as margin (futures)")


class AccountBalancesOut(Schema):
    account: int
    label: str
    venue: str
    mode: Literal["paper", "live"]
    halted: bool
    halted_reason: str
    credentials: Literal["none", "stored", "unreadable"]
    quote_asset: str
    equity: str = Field(description="in quote_asset, decimal as text")
    venue_confirmed_at: str | None = Field(
        description="live accounts: when the venue last stated these balances (user-data "
        "stream, or reconciliation's fetch once a minute), ISO 8601 UTC; null for paper "
        "accounts and for a live account the venue has not confirmed yet"
    )
    unpriced_assets: list[str]
    balances: list[BalanceOut]


class BalancesOut(Schema):
    accounts: list[AccountBalancesOut]
