"""Keep the symbol rows of whole-market venues in step with the venue's own list.

For every active venue with ``Exchange.follow_all_symbols`` set, :func:`sync_symbols` reads the
venue's tradable symbols (``adapter.list_symbols()``) and

* creates the new listings (of the quotes ``Exchange.follow_quotes`` names, when it names
  any), active, collecting every timeframe;
* reactivates a listed symbol that is inactive (a relisting: on such a venue every listed symbol
  is followed; venues without the setting are never touched);
* deactivates symbols the venue no longer lists (delisted or halted), or in another quote;
  their candles stay;
* refreshes the trading rules (tick, step, minimums, leverage) of the rows it keeps.

The stream picks the change up through the usual reload (:mod:`markets.symbol_changes` bumps
the change stamp once per sync that changed anything). Run by ``markets.tasks.sync_symbols``
(the ``Sync venue symbols`` periodic task, every 10 minutes).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from decimal import Decimal

from django.db import transaction

from markets.exchanges.base import SymbolInfo

log = logging.getLogger(__name__)
RULES = ("base", "quote", "market_type", "tick_size", "step_size", "min_qty", "min_notional",
         "max_leverage")


@dataclasses.dataclass
class SyncReport:
    venues: int = 0
    added: list[str] = dataclasses.field(default_factory=list)
    reactivated: list[str] = dataclasses.field(default_factory=list)
    deactivated: list[str] = dataclasses.field(default_factory=list)
    updated: int = 0
    failed: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.reactivated or self.deactivated or self.updated)

    def summary(self) -> str:
        return (f"{self.venues} venue(s): {len(self.added)} added, {len(self.reactivated)} "
                f"reactivated, {len(self.deactivated)} deactivated, {self.updated} updated"
                + (f"; failed: {self.failed}" if self.failed else ""))


def _rules(info: SymbolInfo) -> dict:
    """The row's fields from the venue's rules (the model's defaults where the venue is
    silent)."""
    return {
        "base": info.base[:16], "quote": info.quote[:16], "market_type": info.market_type,
        "tick_size": info.tick_size,
        "step_size": info.step_size if info.step_size and info.step_size > 0
        else Decimal("0.00000001"),
        "min_qty": info.min_qty or Decimal("0"),
        "min_notional": info.min_notional or Decimal("0"),
        "max_leverage": min(max(int(info.max_leverage or 1), 1), 125),
    }


def sync_venue(exchange, listed: list[SymbolInfo], report: SyncReport) -> None:
    """Apply the venue's list ``listed`` to ``exchange``'s rows (one transaction)."""
    from markets.models import Symbol

    quotes = exchange.follow_quote_set()
    by_code = {s.code: s for s in listed if s.code and "/" not in s.code
               and (not quotes or s.quote.upper() in quotes)}
    with transaction.atomic():
        rows = {s.code: s for s in Symbol.objects.select_for_update().filter(exchange=exchange)}
        new = [Symbol(exchange=exchange, code=code, is_active=True, **_rules(info))
               for code, info in sorted(by_code.items()) if code not in rows]
        Symbol.objects.bulk_create(new)
        report.added += [f"{exchange.slug}:{s.code}" for s in new]
        for code, row in rows.items():
            info = by_code.get(code)
            if info is None:
                if row.is_active:
                    row.is_active = False
                    row.save(update_fields=["is_active", "updated_at"])
                    report.deactivated.append(f"{exchange.slug}:{code}")
                continue
            rules = _rules(info)
            changed = [f for f in RULES if getattr(row, f) != rules[f]]
            for f in changed:
                setattr(row, f, rules[f])
            if not row.is_active:
                row.is_active = True
                changed.append("is_active")
                report.reactivated.append(f"{exchange.slug}:{code}")
            elif changed:
                report.updated += 1
            if changed:
                row.save(update_fields=[*changed, "updated_at"])
    if new:  # bulk_create sends no post_save: say the symbol set changed once
        from markets.symbol_changes import bump

        bump()


def sync_symbols(adapter_factory: Callable | None = None, only: set[str] | None = None
                 ) -> SyncReport:
    """Sync every active venue that follows all its symbols (``only``: these slugs). A venue
    that cannot be listed is logged and skipped: its rows stay as they are."""
    from markets.models import Exchange

    if adapter_factory is None:
        from markets.adapters import adapter_for as adapter_factory
    report = SyncReport()
    venues = Exchange.objects.filter(is_active=True, follow_all_symbols=True).order_by("slug")
    for exchange in venues:
        if only and exchange.slug not in only:
            continue
        adapter = adapter_factory(exchange)
        try:
            listed = adapter.list_symbols()
        except Exception as exc:
            report.failed[exchange.slug] = f"{type(exc).__name__}: {exc}"
            log.warning("sync_symbols: cannot list the symbols of %s (%s); kept as they are",
                        exchange.slug, exc)
            continue
        finally:
            close = getattr(adapter, "close", None)
            if close is not None:
                close()
        if not listed:
            # An empty list is far likelier an outage than a venue delisting everything.
            report.failed[exchange.slug] = "the venue listed no symbol"
            log.warning("sync_symbols: %s listed no symbol; kept as they are", exchange.slug)
            continue
        sync_venue(exchange, listed, report)
        report.venues += 1
    return report
