"""Positions per config, and the account's net position that the venue sees.

Each config owns its positions (``orders.models.Position``: one open per account, config and
symbol; manual orders, ``config`` empty, have their own). A fill is attributed to a position by
its order's config, so a config's exit closes only its own quantity.

The venue holds one net position per symbol and account (spot: one base balance; futures in
one-way mode: one signed position). Here that net is the sum of the signed open quantities
(+ long, - short) over the account's configs and its manual position on the symbol:

* :func:`net_positions` computes it (dashboard, API, chart, reconciliation);
* :func:`opposite_reason` refuses an entry on a perpetual whose side is opposite to another
  config's open position (or entry order) on the same account and symbol: in one-way mode the
  venue would net it against, i.e. reduce or reverse, that other config's position;
* :func:`reconcile_net_positions` compares each live perpetual account's net with the venue's
  position per symbol.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from decimal import Decimal

from markets.models import Account, Symbol
from orders.models import Order, Position, Side

log = logging.getLogger(__name__)
ZERO = Decimal("0")


def signed(position: Position) -> Decimal:
    """The position's quantity, + long, - short."""
    return position.quantity if position.side == Position.PositionSide.LONG else -position.quantity


def owner_label(config) -> str:
    """A config's name for a position row, ``manual`` for the account's own orders."""
    return config.name if config is not None else "manual"


def held_by_configs(account_id: int, asset: str) -> tuple[Decimal, list[str]]:
    """Of a spot account's ``asset``, the quantity its configs' open long positions hold, and
    their names: coins a manual sell must leave alone, or those configs' exits (and the kill
    switch closing them) would find them gone."""
    held, names = ZERO, []
    rows = Position.objects.filter(
        account_id=account_id, closed_at__isnull=True, config__isnull=False,
        side=Position.PositionSide.LONG, symbol__base=asset,
        symbol__market_type=Symbol.MarketType.SPOT,
    ).select_related("config").order_by("id")
    for position in rows:
        held += position.quantity
        names.append(position.config.name)
    return held, names


@dataclasses.dataclass
class Net:
    """The account's net on one symbol: ``quantity`` signed (+ long, - short), and the open
    positions it sums (``parts``: ``(config id or None, signed quantity)``)."""

    account_id: int
    symbol: Symbol
    quantity: Decimal = ZERO
    parts: list[tuple[int | None, Decimal]] = dataclasses.field(default_factory=list)

    @property
    def side(self) -> str:
        if self.quantity > 0:
            return Position.PositionSide.LONG
        return Position.PositionSide.SHORT if self.quantity < 0 else "flat"

    def payload(self) -> dict:
        from orders.services.payloads import _symbol_name, _text

        return {
            "account": self.account_id,
            "symbol": _symbol_name(self.symbol),
            "side": self.side,
            "quantity": _text(abs(self.quantity)),
            "net_quantity": _text(self.quantity),
            "positions": len(self.parts),
            "configs": [config_id for config_id, _ in self.parts],
        }


def net_positions(positions: Iterable[Position]) -> list[Net]:
    """The nets of the given open positions, per (account, symbol), in first-seen order."""
    out: dict[tuple[int, int], Net] = {}
    for position in positions:
        if position.closed_at is not None:
            continue
        key = (position.account_id, position.symbol_id)
        if key not in out:
            out[key] = Net(position.account_id, position.symbol)
        out[key].quantity += signed(position)
        out[key].parts.append((position.config_id, signed(position)))
    return list(out.values())


def net_quantity(account_id: int, symbol_id: int) -> Decimal:
    """The account's net open quantity on the symbol (signed), from the stored positions."""
    return sum(
        (signed(p) for p in Position.objects.filter(
            account_id=account_id, symbol_id=symbol_id, closed_at__isnull=True)),
        ZERO,
    )


def _direction(side: str) -> int:
    return 1 if side in (Side.BUY, Position.PositionSide.LONG) else -1


def others_on_symbol(account_id: int, symbol_id: int, config_id: int | None):
    """``[(config id or None, +1 long / -1 short)]``: the open positions and working entry
    orders of the *other* configs (and of manual orders when ``config_id`` is a config) on the
    account and symbol. Venue stops and closes are reduce-only and never count."""
    bucket = {"config__isnull": True} if config_id is None else {"config_id": config_id}
    out = [
        (cid, _direction(side))
        for cid, side in Position.objects.filter(
            account_id=account_id, symbol_id=symbol_id, closed_at__isnull=True
        ).exclude(**bucket).values_list("config_id", "side")
    ]
    out += [
        (cid, _direction(side))
        for cid, side in Order.objects.filter(
            account_id=account_id, symbol_id=symbol_id, status__in=Order.OPEN_STATUSES,
            reduce_only=False,
        ).exclude(**bucket).values_list("config_id", "side")
    ]
    return out


def opposite_reason(symbol: Symbol, direction: int, others, names=None) -> str:
    """Why an entry in ``direction`` (+1 long, -1 short) on a perpetual is refused, or "".
    ``others``: ``[(config id or None, direction)]`` of the other configs' open positions and
    entry orders on the same account and symbol (:func:`others_on_symbol`)."""
    if symbol.market_type != Symbol.MarketType.PERPETUAL:
        return ""
    against = sorted({cid for cid, d in others if d != direction}, key=lambda c: (c is None, c))
    if not against:
        return ""
    if names is None:
        from strategies.models import StrategyConfig

        names = dict(StrategyConfig.objects.filter(pk__in=[c for c in against if c])
                     .values_list("pk", "name"))
    who = ", ".join(
        "manual orders" if cid is None else f"config {names.get(cid, cid)!s} (id {cid})"
        for cid in against
    )
    side = "long" if direction > 0 else "short"
    other = "short" if direction > 0 else "long"
    return (
        f"a {side} entry on {symbol} is refused: {who} holds a {other} position or entry on this "
        "account and symbol, and the venue keeps one net position per symbol (one-way mode), so "
        "this entry would reduce or reverse it; close that position first or use another account"
    )


# ------------------------------------------------------------------------ reconciliation


@dataclasses.dataclass
class NetMismatch:
    account_id: int
    symbol: str
    ours: Decimal
    venue: Decimal

    def __str__(self) -> str:
        return (f"account {self.account_id} {self.symbol}: net {self.ours.normalize():f} here, "
                f"{self.venue.normalize():f} at the venue")


def compare_nets(ours: dict[str, Decimal], venue: dict[str, Decimal]) -> list[tuple[str, Decimal,
                                                                                       Decimal]]:
    """``[(symbol code, ours, venue's)]`` where the signed nets differ (a symbol missing on one
    side counts as 0)."""
    out = []
    for code in sorted(set(ours) | set(venue)):
        mine, theirs = ours.get(code, ZERO), venue.get(code, ZERO)
        if mine != theirs:
            out.append((code, mine, theirs))
    return out


def reconcile_net_positions(account_ids=None, broker_factory=None) -> list[NetMismatch]:
    """Compare each live perpetual account's net position per symbol (the sum over its configs
    and manual orders) with the venue's position (``broker.positions()``, signed). Returns the
    mismatches, each logged as a warning: a trader compares the venue with the dashboard; no
    repair is attempted (which config a difference belongs to is not knowable)."""
    from markets.exchanges.errors import ExchangeError
    from orders.brokers import BrokerUnavailable, broker_for

    broker_factory = broker_factory or broker_for
    accounts = Account.objects.filter(mode=Account.Mode.LIVE).select_related("exchange")
    if account_ids is not None:
        accounts = accounts.filter(pk__in=list(account_ids))
    out: list[NetMismatch] = []
    for account in accounts:
        symbols = {
            s.code: s for s in Symbol.objects.filter(
                exchange=account.exchange, market_type=Symbol.MarketType.PERPETUAL)
        }
        if not symbols:
            continue
        try:
            at_venue = broker_factory(account).positions()
        except (BrokerUnavailable, ExchangeError, NotImplementedError) as exc:
            log.warning("net positions of %s not compared: %s", account, exc)
            continue
        venue = {p.symbol: Decimal(p.quantity) for p in at_venue if p.symbol in symbols}
        ours: dict[str, Decimal] = {}
        for net in net_positions(
            Position.objects.filter(account=account, closed_at__isnull=True,
                                    symbol__market_type=Symbol.MarketType.PERPETUAL)
            .select_related("symbol")
        ):
            ours[net.symbol.code] = net.quantity
        for code, mine, theirs in compare_nets(ours, venue):
            mismatch = NetMismatch(account.pk, code, mine, theirs)
            log.warning("net position differs from the venue: %s", mismatch)
            out.append(mismatch)
    return out
