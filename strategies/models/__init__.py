"""The strategies app's models, one module per job; every model is importable from here.

- :mod:`.config`: :class:`StrategyConfig` and its choices (sizing, risk percentages);
- :mod:`.signal`: :class:`Signal` and its :class:`Action` choices;
- :mod:`.runs`: :class:`BacktestRun`, :class:`OptimizationRun`, :class:`OptimizationTrial` and
  :class:`ParamVersion`;
- :mod:`.screen`: :class:`SymbolScreen`.
"""

from strategies.models.config import (
    MAX_LEVERAGE,
    MONEY,
    PCT,
    RISK_PCT_FIELDS,
    SizingMethod,
    StrategyConfig,
    StrategyConfigQuerySet,
    strategy_choices,
)
from strategies.models.runs import BacktestRun, OptimizationRun, OptimizationTrial, ParamVersion
from strategies.models.screen import SymbolScreen
from strategies.models.signal import Action, Signal

__all__ = [
    "MAX_LEVERAGE",
    "MONEY",
    "PCT",
    "RISK_PCT_FIELDS",
    "Action",
    "BacktestRun",
    "OptimizationRun",
    "OptimizationTrial",
    "ParamVersion",
    "Signal",
    "SizingMethod",
    "StrategyConfig",
    "StrategyConfigQuerySet",
    "SymbolScreen",
    "strategy_choices",
]
