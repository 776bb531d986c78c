"""``python manage.py optimize --config ID [--trials N] [--apply] [--seed S]``: optimize a config's
parameters with walk-forward validation in this process, showing progress."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from markets import jsonlimits
from strategies import optimization
from strategies.models import OptimizationRun, StrategyConfig
from strategies.optimizer import METHODS, OBJECTIVES


class Command(BaseCommand):
    help = "Optimize a strategy config's parameters (walk-forward); --apply to apply the result."

    def add_arguments(self, parser):
        parser.add_argument("--config", type=int, help="StrategyConfig id")
        parser.add_argument("--trials", type=int, default=100,
                            help="trials per window for sampled searches; the largest grid "
                                 "searched exhaustively (default 100)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--apply", action="store_true",
                            help="apply the best parameters as a new version (no margin check)")
        parser.add_argument("--days", type=int, default=None, help="history, days (default 30)")
        parser.add_argument("--objective", choices=OBJECTIVES, default="sharpe")
        parser.add_argument("--method", choices=METHODS, default="auto")
        parser.add_argument("--folds", type=int, default=3)
        parser.add_argument("--min-trades", type=int, default=1)
        parser.add_argument("--max-drawdown", type=float, default=None,
                            help="largest drawdown allowed, a fraction (0.3 = 30%%)")
        parser.add_argument("--space", default=None,
                            help='ranges as JSON, e.g. \'{"short": {"min": 3, "max": 15}}\'')
        parser.add_argument("--weights", action="store_true",
                            help="ensemble configs: optimize the six weights and the threshold")
        parser.add_argument("--workers", type=int, default=None, help="processes (default: all)")
        parser.add_argument("--resume", type=int, default=None, metavar="RUN_ID",
                            help="resume an interrupted run instead of starting a new one")

    def handle(self, *args, **opts):
        if opts["resume"] is not None:
            run = OptimizationRun.objects.filter(pk=opts["resume"]).first()
            if run is None:
                raise CommandError(f"no optimization run {opts['resume']}")
        elif opts["config"] is None:
            raise CommandError("give --config ID (or --resume RUN_ID)")
        else:
            config = StrategyConfig.objects.filter(pk=opts["config"]).first()
            if config is None:
                raise CommandError(f"no strategy config {opts['config']}")
            try:
                space = jsonlimits.loads_object(
                    opts["space"], what="--space", example='{"short": {"min": 3, "max": 15}}'
                ) if opts["space"] else None
            except jsonlimits.JsonLimitError as exc:
                raise CommandError(str(exc)) from None
            try:
                run = optimization.create_run(
                    config,
                    kind=(OptimizationRun.Kind.ENSEMBLE_WEIGHTS if opts["weights"]
                          else OptimizationRun.Kind.PARAMS),
                    space=space, method=opts["method"], objective=opts["objective"],
                    trials=opts["trials"], seed=opts["seed"], days=opts["days"],
                    folds=opts["folds"], min_trades=opts["min_trades"],
                    max_drawdown=opts["max_drawdown"], workers=opts["workers"],
                    trigger=OptimizationRun.Trigger.COMMAND,
                )
            except optimization.OptimizationError as exc:
                raise CommandError(str(exc)) from None
        self.stdout.write(f"run {run.pk}: {run.strategy} on {run.config}, {run.start:%Y-%m-%d} .. "
                          f"{run.end:%Y-%m-%d}")
        run = optimization.execute_run(run.pk, workers=opts["workers"], progress=self._bar)
        self.stderr.write("")
        if run.status == OptimizationRun.Status.FAILED:
            raise CommandError(f"run {run.pk} failed: {run.error}")
        self.stdout.write(f"method {run.result.get('method')}, objective {run.objective}")
        for fold in run.result.get("folds", []):
            oos = (fold.get("out_of_sample") or {}).get("score")
            self.stdout.write(f"  fold {fold['window']}: in-sample {_f(fold['in_sample'])}, "
                              f"out-of-sample {_f(oos)}, params {fold['params']}")
        self.stdout.write(f"best parameters: {run.best_params}")
        self.stdout.write(f"in-sample {_f(run.in_sample_score)}, out-of-sample "
                          f"{_f(run.out_of_sample_score)}, current parameters out-of-sample "
                          f"{_f(run.baseline_out_of_sample_score)}; outcome {run.outcome}")
        if opts["apply"] and run.outcome == OptimizationRun.Outcome.PROPOSED:
            version = optimization.apply_run(run)
            self.stdout.write(self.style.SUCCESS(f"applied as version {version.number}"))

    def _bar(self, fraction: float) -> None:
        width = 30
        done = round(fraction * width)
        self.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {fraction * 100:5.1f}%",
                          ending="")
        self.stderr.flush()


def _f(value) -> str:
    return "—" if value is None else f"{value:.4f}"
