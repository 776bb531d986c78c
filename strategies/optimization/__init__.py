"""Optimizer runs for configs: create, execute (resumably), apply, roll back, schedule.

Modules: :mod:`.runs` (inputs, create, execute, finish), :mod:`.versions` (apply, roll back),
:mod:`.schedule` (nightly runs, stale runs), :mod:`.errors`. Every name is importable from here.

The Django shell around :mod:`strategies.optimizer`. Tasks, the command, the admin and the views
call these functions; nothing else writes ``OptimizationRun``, ``OptimizationTrial`` or
``ParamVersion`` rows.

Decisions:

* A run compares its proposal with the config's *current* parameters on the same out-of-sample
  ranges (``baseline_out_of_sample_score``), so both are judged on the same bars.
* A config with ``auto_apply_optimized`` takes a run's parameters only when its out-of-sample
  score beats the current parameters' by more than ``margin`` (objective units, e.g. 0.1 Sharpe;
  setting ``OPTIMIZER_APPLY_MARGIN``) and the config's parameters did not change during the run.
  Otherwise the run stays a proposal that a trader can apply.
* Every applied parameter set is a new :class:`ParamVersion`; the parameters in force before the
  first change are saved as version 1 (``initial``), so there is always something to roll back to.
"""

from strategies.optimization.errors import OptimizationError
from strategies.optimization.runs import (
    DEFAULT_CASH,
    ENSEMBLE_THRESHOLD,
    ENSEMBLE_WEIGHTS,
    MIN_BARS,
    backtest_config,
    create_run,
    ensemble_space,
    execute_run,
    run_space,
    should_auto_apply,
)
from strategies.optimization.schedule import (
    STALE_AFTER,
    schedule_nightly,
    stale_runs,
    unfinished_runs,
)
from strategies.optimization.versions import apply_params, apply_run, current_version, rollback

__all__ = [
    "DEFAULT_CASH",
    "ENSEMBLE_THRESHOLD",
    "ENSEMBLE_WEIGHTS",
    "MIN_BARS",
    "STALE_AFTER",
    "OptimizationError",
    "apply_params",
    "apply_run",
    "backtest_config",
    "create_run",
    "current_version",
    "ensemble_space",
    "execute_run",
    "rollback",
    "run_space",
    "schedule_nightly",
    "should_auto_apply",
    "stale_runs",
    "unfinished_runs",
]
