"""DESIGN.md's import rules, enforced: `markets` <- `strategies` <- `orders` <- `tradesite`
(an arrow reads "may be imported by"), and the pure layers import no Django, so they test with
no database and run the same in backtest, paper and live."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["markets", "strategies", "orders", "alerts", "tradesite"]
# Modules that must stay importable without Django (stdlib, numpy and other pure modules only).
PURE = [
    "markets/exchanges",
    "markets/backoff.py",
    "markets/timeframes.py",
    "markets/aggregator.py",
    "markets/csvio.py",
    "markets/jsonlimits.py",
    "markets/wire.py",
    "markets/series.py",
    "strategies/params.py",
    "strategies/base.py",
    "strategies/registry.py",
    "strategies/sizing.py",
    "strategies/indicators.py",
    "strategies/indicator_kernels.py",
    "strategies/position.py",
    "strategies/backtest.py",
    "strategies/library",
    "strategies/optimizer",
    "strategies/screener.py",
]
FORBIDDEN_IN_PURE = (
    "django",
    "channels",
    "celery",
    "markets.models",
    "strategies.models",
    "orders",
    "tradesite",
)


def python_files(path: Path):
    if path.is_file():
        yield path
    elif path.is_dir():
        yield from (p for p in path.rglob("*.py") if "tests" not in p.parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_apps_import_only_the_layers_below_them(layer):
    above = LAYERS[LAYERS.index(layer) + 1 :]
    offences = []
    for path in python_files(ROOT / layer):
        if "migrations" in path.parts:
            continue
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            if top in above:
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not offences, f"{layer} may not import {', '.join(above)}:\n" + "\n".join(offences)


@pytest.mark.parametrize("target", PURE)
def test_pure_modules_import_no_django(target):
    if not (ROOT / target).exists():
        pytest.skip(f"{target} is not written yet")
    offences = []
    for path in python_files(ROOT / target):
        for line, module in imported_modules(path):
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN_IN_PURE):
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not offences, "pure modules must not import Django or the ORM:\n" + "\n".join(offences)
