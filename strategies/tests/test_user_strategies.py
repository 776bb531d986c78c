"""Issue 18: strategies kept outside the source tree (a folder, an installed package) load
beside the built-in ones, are backtested and paper-traded like them; broken modules are
reported by name and never stop the others; ``new_strategy`` writes a working start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from markets.candles import upsert_candles
from orders import tasks
from orders.models import Order, Position
from orders.tests.conftest import MINUTE, T0, make_config, paper, trader  # noqa: F401
from strategies import registry
from strategies.models import Signal
from strategies.services import load_candles
from strategies.tests.user_strategies import (
    BUILT_IN,
    installed,
    sma_break,
    write_folder,
    write_package,
)

ROOT = Path(__file__).resolve().parents[2]
PRICE = 50_000_000.0


def store_walk(symbol, n=300, timeframe="1m", step=MINUTE, seed=7):
    """A seeded random walk near ``PRICE`` (open = previous close)."""
    rng = np.random.default_rng(seed)
    close = PRICE * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate(([PRICE], close[:-1]))
    rows = [(T0 + i * step, open_[i], max(open_[i], close[i]) * 1.001,
             min(open_[i], close[i]) * 0.999, close[i], 1.0) for i in range(n)]
    upsert_candles(symbol.pk, timeframe, rows)


def test_user_strategies_load_beside_the_built_in_ones_and_leave_no_trace(tmp_path):
    folder = write_folder(tmp_path / "mine", {"my_break": sma_break("my_break")})
    site = write_package(tmp_path / "site", "pkg_strats",
                         sma_break("pkg_break", cls="PkgBreak", decorate=False),
                         {"pkg_break": "pkg_strats:PkgBreak"})
    with installed([folder], site):
        assert set(registry.names()) == {*BUILT_IN, "my_break", "pkg_break"}
        assert registry.is_user("my_break") and registry.is_user("pkg_break")
        assert not registry.is_user("rsi") and registry.failures() == []
        assert ("my_break", "My Break") in registry.choices()
        assert registry.validate_params("pkg_break", {"window": "5"}) == {"window": 5}
        assert "my_break" in sys.modules
    # Nothing stays behind for the registry-wide tests.
    assert registry.names() == BUILT_IN
    assert "my_break" not in sys.modules and "pkg_strats" not in sys.modules
    assert str(folder) not in sys.path and str(site) not in sys.path


def test_a_broken_module_is_reported_by_name_and_the_rest_loads(tmp_path, install):
    folder = write_folder(tmp_path / "mine", {
        "a_good": sma_break("a_good"),
        "b_syntax": "def broken(:\n    pass\n",
        "c_import": "import no_such_module_xyz\n",
        "d_clash": sma_break("rsi"),
        "e_good": sma_break("e_good", cls="Other"),
        "colorsys": sma_break("shadowed"),  # the standard library's module has that name
        # registers a class, then fails further down: the class does not stay registered
        "f_half": sma_break("f_half") + "\nraise RuntimeError('half way')\n",
    })
    install([folder])
    assert set(registry.names()) == {*BUILT_IN, "a_good", "e_good"}
    failed = {Path(f.source.removeprefix("folder ")).name: f.error for f in registry.failures()}
    assert failed["b_syntax.py"].startswith("SyntaxError: ") and "line 1" in failed["b_syntax.py"]
    assert failed["c_import.py"].startswith(
        "ModuleNotFoundError: No module named 'no_such_module_xyz'")
    assert failed["d_clash.py"].startswith(
        "TypeError: strategy name 'rsi' is taken by the built-in strategy Rsi")
    assert failed["colorsys.py"].startswith("ImportError: the module name 'colorsys' is "
                                            "already taken by ")
    assert "rename the file" in failed["colorsys.py"]
    assert failed["f_half.py"].startswith("RuntimeError: half way")
    assert len(failed) == 5
    # The built-in rsi is untouched and an unknown name lists what did not load.
    assert registry.get("rsi").__module__ == "strategies.library.rsi"
    with pytest.raises(Exception, match=r"not loaded: folder .*c_import\.py: ModuleNotFound"):
        registry.get("c_import")


def test_a_broken_entry_point_is_reported_and_the_rest_loads(tmp_path, install):
    site = write_package(
        tmp_path / "site", "pkg_strats",
        sma_break("pkg_break", cls="PkgBreak", decorate=False) + "\ndef helper():\n    pass\n",
        {"good": "pkg_strats:PkgBreak", "not_a_strategy": "pkg_strats:helper",
         "missing": "pkg_strats.nowhere"})
    install(site=site)
    assert registry.is_user("pkg_break")
    failed = {f.source: f.error for f in registry.failures()}
    assert set(failed) == {"entry point not_a_strategy = pkg_strats:helper",
                           "entry point missing = pkg_strats.nowhere"}
    assert failed["entry point not_a_strategy = pkg_strats:helper"].startswith(
        "TypeError: pkg_strats:helper is neither a module nor a Strategy subclass")
    assert failed["entry point missing = pkg_strats.nowhere"].startswith(
        "ModuleNotFoundError: No module named 'pkg_strats.nowhere'")


def test_a_missing_folder_is_reported(tmp_path, install):
    install([tmp_path / "nowhere"])
    (failure,) = registry.failures()
    assert "nowhere" in failure.source and "not a folder" in failure.error
    assert registry.names() == BUILT_IN


@pytest.mark.django_db
@pytest.mark.redis
def test_health_and_admin_name_the_broken_modules(tmp_path, install, clean_redis):
    install([write_folder(tmp_path / "mine", {"bad_one": "import no_such_module_xyz\n",
                                              "good_one": sma_break("good_one")})])
    staff = get_user_model().objects.create_superuser("root", password="pw-root")
    client = Client()
    client.force_login(staff)
    check = client.get("/health").json()["checks"]["strategies"]
    assert check["ok"] is True, check  # a broken module alone: the others trade as usual
    assert check["user"] == ["good_one"]
    (failed,) = check["failed_modules"]
    assert failed["source"].endswith("bad_one.py") and "no_such_module_xyz" in failed["error"]
    page = client.get(reverse("admin:strategies_strategyconfig_changelist")).content.decode()
    assert "Strategy module not loaded: folder" in page and "bad_one.py" in page
    assert "no_such_module_xyz" in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("source", ["folder", "package"])
def test_a_user_strategy_backtests_and_paper_trades_on_a_closed_bar(
    source, tmp_path, install, symbol, paper, make_config  # noqa: F811
):
    if source == "folder":
        name = "folder_break"
        install([write_folder(tmp_path / "mine", {"folder_break": sma_break(name)})])
    else:
        name = "package_break"
        install(site=write_package(tmp_path / "site", "pkg_strats",
                                   sma_break(name, cls="PkgBreak", decorate=False),
                                   {name: "pkg_strats:PkgBreak"}))
    store_walk(symbol)
    out = []
    call_command("backtest", "--strategy", name, "--params", '{"window": 5}', "--venue", "sim",
                 "--symbol", "KRW-BTC", "--timeframe", "1m", "--start", "2026-01-01",
                 "--end", "2026-01-02", "--json", stdout=_Collect(out))
    result = json.loads("".join(out))
    assert result["stats"]["trade_count"] >= 3 and len(result["trades"]) >= 3

    # Paper trading: the closed bar where the strategy enters long becomes a paper position.
    config = make_config(paper, strategy=name, params={"window": 5})
    actions = registry.build(name, {"window": 5}).signals(load_candles(symbol, "1m")).actions
    entry = int(np.flatnonzero(actions == 1)[0])
    for bar in range(entry - 1, entry + 1):
        report = tasks.evaluate("sim", "KRW-BTC", "1m", T0 + bar * MINUTE)
    assert report["signals_created"] == 1 and report["executions"] == {"ordered": 1}, report
    signal = Signal.objects.get(config=config)
    assert signal.action == "enter_long"
    assert Order.objects.get(signal=signal).status == "filled"
    position = Position.objects.get(account=paper)
    assert position.side == "long" and position.closed_at is None


class _Collect:
    def __init__(self, out):
        self.out = out

    def write(self, text):
        self.out.append(text)

    def flush(self):
        pass


def test_new_strategy_writes_a_template_that_passes_its_own_test_unchanged(tmp_path):
    out = []
    call_command("new_strategy", "my_first", "--path", str(tmp_path), stdout=_Collect(out))
    module, test = tmp_path / "my_first.py", tmp_path / "test_my_first.py"
    assert module.is_file() and test.is_file()
    assert "TRADESITE_STRATEGY_PATHS" in "".join(out)
    # As a trader runs it, from the tradesite folder; it needs neither Django nor plugins.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env=env | {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout
    with pytest.raises(Exception, match="exists already"):
        call_command("new_strategy", "my_first", "--path", str(tmp_path))
    with installed([tmp_path]):
        assert registry.is_user("my_first")
        assert registry.failures() == []  # the test file is not loaded as a strategy


@pytest.mark.parametrize("name, message", [
    ("rsi", "a strategy named 'rsi' exists already"),
    ("My-Strategy", "not a usable strategy name"),
    ("test_x", "kept for test files"),
    ("x" * 41, "at most 40 characters"),
])
def test_new_strategy_refuses_bad_names(tmp_path, name, message):
    with pytest.raises(Exception, match=message):
        call_command("new_strategy", name, "--path", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


PEERS = '''
import dataclasses

import numpy as np

from strategies.base import ENTER_LONG, Signals, Strategy
from strategies.params import Params, param
from strategies.registry import register


@dataclasses.dataclass(frozen=True)
class PeerParams(Params):
    window: int = param(5, min=1, max=100, grid=(3, 5))
    symbols: tuple = param((), help="peers")


@register
class Peer(Strategy):
    name = "peer_mine"
    Params = PeerParams

    def lookback(self):
        return self.params.window + 1

    def signals(self, candles, *, peer_closes=None):
        return Signals(actions=np.zeros(len(candles), dtype=np.int8))
'''


@pytest.mark.django_db
def test_forms_the_optimizer_and_the_screener_treat_user_strategies_like_built_ins(
    tmp_path, install, symbol, paper, make_config  # noqa: F811
):
    from strategies.forms import BacktestForm
    from strategies.models import SymbolScreen
    from strategies.optimizer import Constraints, Job, Space, optimize
    from strategies.screening import set_top_symbols
    from strategies.tests.conftest import random_walk

    install([write_folder(tmp_path / "mine", {"my_break": sma_break("my_break"),
                                              "peer_mine": PEERS})])
    # The backtest page's and the admin's config form: the choices and the declared params.
    assert ("my_break", "My Break") in BacktestForm().fields["strategy"].choices
    config = make_config(paper, strategy="my_break", params={"window": "4"})
    config.full_clean()
    config.save()
    config.refresh_from_db()
    assert config.params == {"window": 4} and config.build_strategy().lookback() == 5
    # The optimizer searches the declared grid.
    space = Space.from_params(registry.get("my_break").Params)
    job = Job("my_break", random_walk(1200, seed=3), space, method="grid",
              constraints=Constraints(min_trades=1))
    result = optimize(job, workers=1)
    assert {t.params["window"] for t in result.trials} == {3, 5}
    # The screener's universe goes to a user strategy that declares a symbols list.
    assert registry.takes_peers("peer_mine") and not registry.takes_peers("my_break")
    other = symbol.__class__.objects.create(exchange=symbol.exchange, code="KRW-ETH", base="ETH",
                                            quote="KRW")
    SymbolScreen.objects.create(symbol=other, timeframe="1m", rank=1, score=1.0,
                                last_close=1, atr_pct=1, range_24h_pct=1, traded_value_24h=1,
                                momentum_pct=1, computed_at="2026-01-01T00:00Z")
    peer_config = make_config(paper, name="peers", strategy="peer_mine", params={})
    set_top_symbols(peer_config, 1)
    peer_config.refresh_from_db()
    assert peer_config.params["symbols"] == ["KRW-ETH"]
