"""Which kernels run (ahead of time, numba's JIT, plain Python), and that they agree."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import strategies
from strategies import _jit, backtest, registry
from strategies.backtest import BacktestConfig
from strategies.tests.conftest import random_walk
from strategies.trade_math import RiskParams

ROOT = Path(__file__).resolve().parents[2]


def _fake_kernels(fingerprint: int) -> types.ModuleType:
    module = types.ModuleType("strategies._kernels")
    module.fingerprint = lambda: fingerprint
    module.__file__ = "/nowhere/_kernels.so"
    return module


@pytest.fixture
def no_mode_flags(monkeypatch):
    monkeypatch.delenv("TRADESITE_NO_NUMBA", raising=False)
    monkeypatch.delenv("TRADESITE_NO_AOT", raising=False)


def test_a_module_built_from_these_sources_is_used(monkeypatch, no_mode_flags):
    fresh = _fake_kernels(_jit.source_fingerprint())
    monkeypatch.setattr(strategies, "_kernels", fresh, raising=False)
    monkeypatch.setitem(sys.modules, "strategies._kernels", fresh)
    assert _jit._choose_mode() == ("aot", fresh)


def test_a_stale_module_is_never_run_and_says_how_to_rebuild(monkeypatch, caplog, no_mode_flags):
    stale = _fake_kernels(_jit.source_fingerprint() + 1)
    monkeypatch.setattr(strategies, "_kernels", stale, raising=False)
    monkeypatch.setitem(sys.modules, "strategies._kernels", stale)
    with caplog.at_level(logging.WARNING, logger="strategies._jit"):
        mode, impl = _jit._choose_mode()
    assert mode == "jit" and impl.__name__ == "numba"
    assert "python -m strategies.aot" in caplog.text and "/nowhere/_kernels.so" in caplog.text


def test_the_environment_can_force_the_jit_or_plain_python(monkeypatch, no_mode_flags):
    fresh = _fake_kernels(_jit.source_fingerprint())
    monkeypatch.setattr(strategies, "_kernels", fresh, raising=False)
    monkeypatch.setitem(sys.modules, "strategies._kernels", fresh)
    monkeypatch.setenv("TRADESITE_NO_AOT", "1")
    assert _jit._choose_mode()[0] == "jit"
    monkeypatch.setenv("TRADESITE_NO_NUMBA", "1")
    assert _jit._choose_mode() == ("python", None)


def test_the_fingerprint_changes_with_any_kernel_source(tmp_path, monkeypatch):
    for name in _jit.SOURCES:
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((Path(_jit.__file__).parent / name).read_bytes())
    monkeypatch.setattr(_jit, "_PACKAGE", tmp_path)
    before = _jit.source_fingerprint()
    assert before == _jit.source_fingerprint()
    edited = tmp_path / "library/macd_turtle.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    assert _jit.source_fingerprint() != before


_RUN_ALL = """
import json, sys
from strategies import _jit, backtest, registry
from strategies.backtest import BacktestConfig
from strategies.trade_math import RiskParams
from strategies.tests.conftest import random_walk
from strategies import sizing

candles = random_walk(3000, seed=11)
out = {"mode": _jit.MODE}
for name in registry.names():
    sizing_params = sizing.AtrUnit(risk_pct=1.0, atr_period=20) if name == "macd_turtle" else None
    config = BacktestConfig(risk=RiskParams(fee_rate=0.0005, slippage_bps=2.0, stop_loss_pct=1.0,
                                            take_profit_pct=2.0), sizing=sizing_params)
    result = backtest.run(registry.build(name), candles, config)
    out[name] = {"stats": result.stats, "trades": result.trade_dicts(),
                 "equity": result.equity.tolist()}
print(json.dumps(out))
"""


def _run_all(env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_ALL], cwd=ROOT, env={**os.environ, **env},
        stdout=subprocess.PIPE, text=True, check=True,
    )
    return json.loads(proc.stdout)


def _assert_close(got, want, where: str) -> None:
    """Equal structure and text; numbers equal to 12 significant digits."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            _assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, str):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), where
    else:
        assert got == want, where


def test_the_kernels_in_force_give_what_plain_python_gives():
    """Every strategy's backtest with the kernels this checkout runs (compiled ahead of time
    when built, else numba's JIT) against the same in plain Python."""
    compiled = _run_all({"TRADESITE_NO_NUMBA": "0"})
    plain = _run_all({"TRADESITE_NO_NUMBA": "1"})
    assert compiled.pop("mode") in ("aot", "jit") and plain.pop("mode") == "python"
    assert compiled.keys() == plain.keys() == set(registry.names())
    for name, got in compiled.items():
        _assert_close(got, plain[name], name)
        assert got["stats"]["trade_count"] > 0 or name == "volatility_breakout"


def fresh_build_in_tree() -> Path | None:
    """The module ``make kernels`` built in this checkout, if it is what a build would write
    now: built from the current kernel sources (its fingerprint) after the last edit of the
    build script (make's own rule). CI builds it from a clean clone just before the suite."""
    found = list((ROOT / "strategies").glob("_kernels.*"))
    aot_source = ROOT / "strategies" / "aot.py"
    if len(found) != 1 or found[0].stat().st_mtime < aot_source.stat().st_mtime:
        return None
    probe = subprocess.run(
        [sys.executable, "-c", "from strategies import _jit; print(_jit.MODE)"], cwd=ROOT,
        env={k: v for k, v in os.environ.items()
             if k not in ("TRADESITE_NO_NUMBA", "TRADESITE_NO_AOT")},
        stdout=subprocess.PIPE, text=True, check=True,
    )
    return found[0] if probe.stdout.strip() == "aot" else None  # "jit": stale fingerprint


def test_the_build_compiles_every_kernel_into_a_module_that_matches(tmp_path):
    """``python -m strategies.aot`` (numba's pycc and a C compiler), then the module it wrote,
    loaded in a process without numba's JIT, against the plain Python kernels. The build takes
    about a minute: a fresh module ``make`` built in this checkout is checked instead of
    building it a second time (a missing or stale one is built here)."""
    in_tree = fresh_build_in_tree()
    if in_tree is not None:
        built = [in_tree]
        assert not list((ROOT / "strategies").glob("kernels-*"))  # no build leftovers
    else:
        subprocess.run(
            [sys.executable, "-m", "strategies.aot", "--output-dir", str(tmp_path)], cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k != "TRADESITE_NO_NUMBA"}, check=True,
            stdout=subprocess.PIPE,
        )
        built = list(tmp_path.glob("_kernels.*"))
        assert len(built) == 1 and not list(tmp_path.glob("kernels-*"))  # no build leftovers
    check = f"""
import importlib.util, sys
import numpy as np
from strategies import _jit, backtest, indicator_kernels, registry
registry.names()  # the library's kernels too
spec = importlib.util.spec_from_file_location("strategies._kernels", {str(built[0])!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert module.fingerprint() == _jit.source_fingerprint()
assert "numba" not in sys.modules and _jit.MODE == "python"
names = [name for name, _func, _sig in _jit.AOT_EXPORTS]
assert len(names) == len(set(names)) and all(hasattr(module, name) for name in names), names
x = np.random.default_rng(5).normal(100.0, 1.0, 500)
for name, period in (("window_sums", 7), ("rolling_std_kernel", 20)):
    got = getattr(module, "indicator_kernels__" + name)(x, period)
    want = getattr(indicator_kernels, name)(x, period)
    assert np.array_equal(got, want, equal_nan=True), name
got = module.indicator_kernels__rolling_extreme_kernel(x[::2], 9, True)  # any strides
want = indicator_kernels.rolling_extreme_kernel(x[::2], 9, True)
assert np.array_equal(got, want, equal_nan=True)
print(len(names))
"""
    proc = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, env={**os.environ, "TRADESITE_NO_NUMBA": "1"},
        stdout=subprocess.PIPE, text=True, check=True,
    )
    assert int(proc.stdout) == len(_jit.AOT_EXPORTS) == 8


def test_without_a_kernel_signature_a_helper_stays_callable_from_python():
    """Brokers call the position helpers from plain Python in every mode."""
    from strategies import trade_math

    assert trade_math.slipped_price(100.0, 1, 10.0) == pytest.approx(100.1)
    assert backtest.run(
        registry.build("rsi"), random_walk(300, seed=2),
        BacktestConfig(risk=RiskParams(fee_rate=0.0)),
    ).stats["bars"] == 300
