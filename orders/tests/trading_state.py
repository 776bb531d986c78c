"""Every row an API call could change, keyed by (model, pk) with its owner: to assert that a
refused request changed nothing, and that an accepted one changed only the caller's rows."""

from __future__ import annotations

from markets.models import Account, Balance
from orders.models import Fill, Order, Position
from strategies.models import StrategyConfig

OWNER_PATHS = [
    (Account, "owner_id"),
    (Balance, "account__owner_id"),
    (StrategyConfig, "owner_id"),
    (Order, "account__owner_id"),
    (Fill, "order__account__owner_id"),
    (Position, "account__owner_id"),
]


def snapshot() -> dict:
    """``{(model name, pk): (owner id, every field's value)}``."""
    rows = {}
    for model, owner in OWNER_PATHS:
        fields = [f.attname for f in model._meta.concrete_fields]
        for values in model.objects.values_list(owner, *fields):
            rows[(model.__name__, values[1 + fields.index("id")])] = (values[0], values[1:])
    return rows


def changed_owners(before: dict, after: dict) -> set:
    """The owners of the rows added, removed or changed between two snapshots."""
    keys = set(before) | set(after)
    return {
        (before.get(k) or after.get(k))[0] for k in keys if before.get(k) != after.get(k)
    }
