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
    "markets/candle_contract.py",
    "markets/jsonlimits.py",
    "markets/wire.py",
    "markets/candle_arrays.py",
    "strategies/params.py",
    "strategies/base.py",
    "strategies/registry.py",
    "strategies/plugins.py",
    "strategies/checks.py",
    "strategies/sizing.py",
    "strategies/indicators.py",
    "strategies/indicator_kernels.py",
    "strategies/trade_math.py",
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
    "tradesite/drills/ledger.py",  # drills read the simulator's own order list
    "tradesite/drills/stack.py",  # drills start it
    "tradesite/demo.py",  # the demo venues point at it
    "bench/bench_stream.py",  # the stream benchmark feeds on it
    "bench/bench_scale.py",  # the market-scale benchmark: its symbol set and trade rates
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


#: The trading decisions that run the same in backtest, paper and live: the risk gates and the
#: paper broker's fill model. Pure like the modules above, except that the paper broker
#: implements the broker interface (``orders.brokers.base``, whose only Django import is
#: deferred into the function reading the configured costs).
PURE_TRADING = {
    "orders/risk.py": (),
    "orders/brokers/paper.py": ("orders.brokers.base",),
}


@pytest.mark.parametrize("target", sorted(PURE_TRADING))
def test_the_risk_gates_and_the_paper_broker_are_pure(target):
    allowed = PURE_TRADING[target]
    offences = [
        f"{target}:{line} imports {module}"
        for line, module in imported_modules(ROOT / target)
        if module not in allowed
        and any(module == f or module.startswith(f + ".") for f in FORBIDDEN_IN_PURE)
    ]
    assert not offences, "pure trading modules must not import Django, the ORM or the services:\n" \
        + "\n".join(offences)


# ------------------------------------------------------------------------ import cycles

#: Where the project's own modules live (tests and migrations left out).
GRAPHED = ["markets", "strategies", "orders", "tradesite", "bench"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _lazy_exports(path: Path) -> dict[str, str]:
    """A package's ``_EXPORTS`` table (``{name: submodule}``): the names its ``__getattr__``
    loads on first use (``orders.services``)."""
    for node in ast.parse(path.read_text()).body:
        if (isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Dict)
                and any(getattr(t, "id", None) == "_EXPORTS"
                        for t in (node.targets if isinstance(node, ast.Assign)
                                  else [node.target]))):
            return ast.literal_eval(node.value)
    return {}


def import_graph() -> dict[str, set[str]]:
    """``{module: the project modules it imports}``, counting imports inside functions too (a
    deferred import is still a dependency). ``from pkg import name`` depends on ``pkg.name``
    when that is a module, else on the submodule a lazy ``_EXPORTS`` table names, else on
    ``pkg``; a lazily exporting package depends on every submodule of its table. Imports under
    ``if TYPE_CHECKING:`` are annotations only and not counted. The parent
    packages Python initialises on the way are not counted: an ``__init__`` that imports its
    own submodules would otherwise turn every import between siblings into a cycle."""
    files = {}
    for top in GRAPHED:
        for path in (ROOT / top).rglob("*.py"):
            if "tests" in path.parts or "migrations" in path.parts:
                continue
            files[_module_name(path)] = path
    exports = {name: _lazy_exports(path) for name, path in files.items()
               if path.name == "__init__.py"}

    def resolve(module: str) -> str | None:
        while module and module not in files:
            module = module.rpartition(".")[0]
        return module or None

    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] |= {f"{name}.{sub}" for sub in exports.get(name, {}).values()}
        tree = ast.parse(path.read_text(), filename=str(path))
        typing_only = {  # ``if TYPE_CHECKING:`` imports: annotations, never run
            id(inner) for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for stmt in node.body for inner in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    lazy = exports.get(base, {}).get(alias.name)
                    if f"{base}.{alias.name}" in files:
                        targets.append(f"{base}.{alias.name}")
                    elif lazy:
                        targets.append(f"{base}.{lazy}")
                    else:
                        targets.append(base)
            for target in targets:
                found = resolve(target)
                if found and found != name:
                    graph[name].add(found)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module (the import cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def _a_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle inside ``component``, for the failure message."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(n for n in graph[path[-1]] if n in members)
        step = next((n for n in nxt if n not in seen), None) or next(
            n for n in nxt if n in seen)
        if step in seen:
            return [*path[path.index(step):], step]
        path.append(step)
        seen.add(step)


def test_the_project_has_no_import_cycle():
    graph = import_graph()
    assert "orders.services.ledger" in graph and graph["orders.venue_stops"]  # the graph is real
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles (a module reaches itself through its imports):\n" + "\n".join(
        " -> ".join(_a_cycle(graph, c)) for c in cycles)


def test_the_ledger_never_reaches_venue_stops_or_the_signal_path():
    """The ledger records fills; asking for venue stops is its callers' job (dispatch)."""
    graph = import_graph()
    reached, todo = set(), ["orders.services.ledger"]
    while todo:
        for nxt in graph[todo.pop()] - reached:
            reached.add(nxt)
            todo.append(nxt)
    assert not reached & {"orders.venue_stops", "orders.services.dispatch",
                          "orders.services.execution", "orders.services.batch"}, sorted(reached)


def test_the_cycle_check_finds_a_cycle_through_deferred_imports():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    (component,) = strongly_connected(graph)
    assert component == ["a", "b", "c"]
    assert _a_cycle(graph, component) == ["a", "b", "c", "a"]
    # The lazy export table counts: a module naming a re-export depends on its submodule.
    real = import_graph()
    assert {"orders.services.batch", "orders.services.dispatch"} <= real["orders.services"]
    assert "orders.services" in real["orders.evaluation"]  # from orders import services
    # venue_stops names the ledger's module, never the package (which would reach dispatch,
    # and dispatch imports venue_stops).
    assert "orders.services.ledger" in real["orders.venue_stops"]
    assert "orders.services" not in real["orders.venue_stops"]


LAZY_FORBIDDEN = (
    "requests", "websockets", "channels.layers", "channels_redis",
    "markets.exchanges.upbit", "markets.exchanges.bithumb", "markets.exchanges.binance_spot",
    "markets.exchanges.binance_futures", "markets.exchanges.rest", "markets.exchanges.ws",
    "orders.brokers.live",
)


def _in_a_fresh_django(code: str):
    """Run ``code`` in a fresh interpreter after ``django.setup()``; its ``result`` (JSON)."""
    import json
    import subprocess
    import sys

    script = ("import json, os, sys\n"
              "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tradesite.settings')\n"
              "import django; django.setup()\n" + code + "print(json.dumps(result))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_trading_services_loads_no_adapter_and_no_channel_layer():
    """The admin, a backtest and the evaluation import the services: the exchange adapters
    (HTTP and WebSocket clients) and the channel layer load only where an order is sent or an
    event pushed. A fresh interpreter, so nothing imported by other tests counts."""
    loaded = _in_a_fresh_django(
        "import importlib, pkgutil\n"
        "import orders.services\n"
        "for m in pkgutil.iter_modules(orders.services.__path__):\n"
        "    importlib.import_module('orders.services.' + m.name)\n"
        "import orders.venue_stops, orders.killswitch, orders.evaluation\n"
        "result = sorted(sys.modules)\n"
    )
    assert "orders.services.batch" in loaded and "orders.services.ledger" in loaded
    offending = [m for m in loaded
                 if any(m == f or m.startswith(f + ".") for f in LAZY_FORBIDDEN)]
    assert not offending, f"importing orders.services loaded {offending}"


def test_a_celery_worker_loads_the_trading_path_before_its_pool_starts():
    """The counterpart of the lazy imports above: a worker process (Celery's ``worker_init``,
    before the pool forks) loads the adapters and every services module, so the first closed
    bar after a (re)start does not pay for them (~185 ms of CPU, cProfile)."""
    before, loaded, services = _in_a_fresh_django(
        "import pkgutil\n"
        "import orders.tasks, orders.services\n"
        "from celery.signals import worker_init\n"
        "before = 'markets.exchanges.binance_futures' in sys.modules\n"
        "worker_init.send(sender=None)\n"
        "names = ['orders.services.' + m.name for m in pkgutil.iter_modules("
        "orders.services.__path__)]\n"
        "result = [before, sorted(sys.modules), names]\n"
    )
    assert not before, "importing orders.tasks already loads the adapters"
    adapters = ["markets.exchanges." + name for name in
                ("upbit", "bithumb", "binance_spot", "binance_futures")]
    missing = [m for m in adapters + services if m not in loaded]
    assert not missing, f"a worker start did not load {missing}"
