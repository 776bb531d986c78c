"""Venue differences are data on the adapter's ``Capabilities``: the KRW price-band table is
picked by ``price_bands``, and no code outside the adapters (and the simulator, which plays the
venues) branches on a venue's name."""

from __future__ import annotations

import ast
import re
from decimal import Decimal as D
from pathlib import Path

import pytest

from markets.exchanges import ADAPTERS, capabilities_of
from markets.exchanges.base import SymbolInfo
from markets.exchanges.rounding import BITHUMB_KRW_TICKS, UPBIT_KRW_TICKS, band_table

ROOT = Path(__file__).resolve().parents[3]
VENUE_NAMES = set(ADAPTERS)


def _symbol(code="KRW-BTC", quote="KRW", tick=None):
    return SymbolInfo(code=code, base=code.split("-")[-1], quote=quote, market_type="spot",
                      tick_size=tick, step_size=None, min_qty=None, min_notional=None)


@pytest.mark.parametrize(("venue", "table"), [("upbit", UPBIT_KRW_TICKS),
                                              ("bithumb", BITHUMB_KRW_TICKS)])
def test_krw_band_table_comes_from_the_venues_capabilities(venue, table):
    assert band_table(_symbol(), capabilities_of(venue)) is table


@pytest.mark.parametrize("venue", sorted(VENUE_NAMES))
def test_no_band_table_for_a_fixed_tick_or_a_quote_without_one(venue):
    caps = capabilities_of(venue)
    assert band_table(_symbol("KRW-BTC", "KRW", tick=D("0.01")), caps) is None
    assert band_table(_symbol("BTC-ETH", "BTC"), caps) is None
    assert band_table(_symbol("BTCUSDT", "USDT"), caps) is None


def test_unknown_adapter_is_named():
    with pytest.raises(ValueError, match="unknown exchange adapter 'kraken'"):
        capabilities_of("kraken")


def _name_checks(path: Path) -> list[str]:
    """``x == "upbit"``, ``x in ("upbit", ...)``, ``"upbit" in x`` comparisons in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Compare):
            continue
        parts = [node.left, *node.comparators]
        for part in parts:
            elts = part.elts if isinstance(part, (ast.Tuple, ast.List, ast.Set)) else [part]
            if any(isinstance(e, ast.Constant) and e.value in VENUE_NAMES for e in elts):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                break
    return found


def test_no_venue_name_branches_outside_the_adapters():
    skip = re.compile(r"(^|/)(tests|migrations|exchanges|simulator)(/|$)")
    offences = []
    for app in ("markets", "orders", "strategies", "tradesite"):
        for path in sorted((ROOT / app).rglob("*.py")):
            if not skip.search(str(path.relative_to(ROOT).parent)):
                offences += _name_checks(path)
    assert not offences, ("branch on Capabilities, not on the venue's name:\n"
                          + "\n".join(offences))
