"""The markets app's models, one module per job; every model is importable from here.

- :mod:`.venues`: :class:`Exchange`, :class:`Symbol` and the :class:`Timeframe` choices;
- :mod:`.marketdata`: :class:`Candle`, :class:`MarkPrice` and :class:`PendingRange`;
- :mod:`.accounts`: :class:`Account` and :class:`Balance`.
"""

from markets.models.accounts import Account, AccountQuerySet, Balance
from markets.models.marketdata import Candle, MarkPrice, PendingRange
from markets.models.venues import (
    MAIN_QUOTE,
    MONEY,
    SQLITE_MONEY_WARNING,
    Exchange,
    Symbol,
    SymbolQuerySet,
    Timeframe,
    default_timeframes,
    money_is_approximate,
)

__all__ = [
    "MAIN_QUOTE",
    "MONEY",
    "SQLITE_MONEY_WARNING",
    "Account",
    "AccountQuerySet",
    "Balance",
    "Candle",
    "Exchange",
    "MarkPrice",
    "PendingRange",
    "Symbol",
    "SymbolQuerySet",
    "Timeframe",
    "default_timeframes",
    "money_is_approximate",
]
