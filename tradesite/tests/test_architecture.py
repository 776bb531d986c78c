"""DESIGN.md's import rules, enforced: `markets` <- `strategies` <- `orders` <- `tradesite`
(an arrow reads "may be imported by"), and the pure layers import no Django, so they test with
no database and run the same in backtest, paper and live."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["markets", "strategies", "orders", "tradesite"]
# Modules that must stay importable without Django (stdlib, numpy and other pure modules only).
PURE = [
    "markets/exchanges",
    "markets/backoff.py",
    "markets/timeframes.py",
    "markets/aggregator.py",
    "markets/csvio.py",
    "markets/candle_contract.py",
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
    "strategies/backtest",
    "strategies/decisions.py",
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


# ------------------------------------------------------------------ the simulator, a package apart
# `simulator/` is the project's exchange: a plain Python package and program. It imports nothing
# from the project (nor Django), so it runs and tests alone; and only these files, besides tests,
# may import it (the exchange never leaks into the product's code paths).
PROJECT = (*LAYERS, "bench")
SIMULATOR_FORBIDDEN = (*PROJECT, "django", "channels", "celery", "daphne")
SIMULATOR_IMPORTERS = {
    "markets/management/commands/simexchange.py",  # `manage.py simexchange`, its Django shell
    "tradesite/devservices.py",  # the private services of tests and drills
    "tradesite/drills/stack.py",  # drills start it
    "tradesite/demo.py",  # the demo venues point at it
    "bench/bench_stream.py",  # the stream benchmark feeds on it
}
SKIP_DIRS = {".venv", "node_modules", ".git", "var", "staticfiles", "__pycache__"}


def imported_modules_everywhere(path: Path) -> list[tuple[int, str]]:
    """Every import in ``path``: statements at any depth (inside functions too) and
    ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name."""
    found = imported_modules(path)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func, first = node.func, node.args[0]
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
        if name in ("import_module", "__import__") and literal:
            found.append((node.lineno, first.value))
    return found


def project_files():
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if not SKIP_DIRS.intersection(rel.parts):
            yield rel


def is_test_file(rel: Path) -> bool:
    return "tests" in rel.parts or rel.name == "conftest.py"


def test_the_scanner_sees_imports_inside_functions_and_by_name(tmp_path):
    source = tmp_path / "x.py"
    source.write_text(
        "import importlib\n"
        "def f():\n"
        "    from markets.models import Symbol\n"
        "    return importlib.import_module('orders.services'), __import__('tradesite')\n"
    )
    modules = {module for _, module in imported_modules_everywhere(source)}
    assert {"markets.models", "orders.services", "tradesite"} <= modules


def test_the_simulator_imports_nothing_from_the_project():
    files = [rel for rel in project_files() if rel.parts[0] == "simulator"]
    assert len(files) > 20, "the simulator package was not found at the top level"
    offences = [
        f"{rel}:{line} imports {module}"
        for rel in files
        for line, module in imported_modules_everywhere(ROOT / rel)
        if module.split(".")[0] in SIMULATOR_FORBIDDEN
    ]
    assert not offences, "simulator/ (its tests too) must import nothing from the project:\n" + (
        "\n".join(offences)
    )


def test_only_tests_and_the_listed_wiring_import_the_simulator():
    offences = [
        f"{rel}:{line} imports {module}"
        for rel in project_files()
        if rel.parts[0] != "simulator"
        and not is_test_file(rel)
        and rel.as_posix() not in SIMULATOR_IMPORTERS
        for line, module in imported_modules_everywhere(ROOT / rel)
        if module.split(".")[0] == "simulator"
    ]
    assert not offences, (
        "only tests and SIMULATOR_IMPORTERS may import the simulator:\n" + "\n".join(offences)
    )


def test_the_listed_simulator_importers_exist():
    missing = sorted(p for p in SIMULATOR_IMPORTERS if not (ROOT / p).exists())
    assert not missing, f"SIMULATOR_IMPORTERS names files that are gone: {missing}"
