"""``python -m strategies.aot``: compile the kernels ahead of time into ``strategies._kernels``.

Every kernel declared with ``@njit(aot=signature)`` (see :mod:`strategies._jit`) is compiled by
numba's ``pycc`` into one extension module next to this file, with a ``fingerprint()`` of the
sources it was built from. A process that finds the module, built from the sources it runs,
uses it and never imports numba (about 115 MB less per process); otherwise it uses numba's JIT
as before. Run it after installing and after changing any file in :data:`strategies._jit.SOURCES`
(a stale module is ignored with a warning, never run). Needs numba and a C compiler; a process
that only uses the result needs neither.

``--cpu`` picks the LLVM CPU model: empty (the default) is generic x86-64 code that runs on any
machine of the architecture; ``host`` uses this machine's instructions (AVX2 ...) and must not be
copied to an older CPU.

The build runs in a process of its own (it needs the JIT dispatchers, not the compiled module)
and replaces the module atomically, so processes already running keep the one they loaded.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

MODULE = "_kernels"


def _dispatchers_called(func, seen: dict) -> None:
    """Collect the numba dispatchers ``func`` calls through its globals, recursively."""
    for name in func.__code__.co_names:
        target = func.__globals__.get(name)
        py_func = getattr(target, "py_func", None)
        if py_func is not None and py_func not in seen:
            seen[py_func] = target
            _dispatchers_called(py_func, seen)


def build(output_dir: Path | None = None, cpu: str = "") -> Path:
    """Compile every exported kernel into ``output_dir`` (default: the ``strategies`` package);
    returns the module's path. Must run where :mod:`strategies._jit` chose the JIT."""
    from strategies import _jit

    if _jit.MODE != "jit":
        raise RuntimeError(
            f"the kernels are in {_jit.MODE!r} mode in this process; build them in a fresh one: "
            "TRADESITE_NO_AOT=1 python -m strategies.aot"
        )
    from numba.pycc import CC

    # Import every module that declares kernels.
    import strategies.backtest
    import strategies.indicator_kernels  # noqa: F401
    from strategies import registry

    registry.load_built_in()

    package = Path(_jit.__file__).resolve().parent
    sources = {str(package / name) for name in _jit.SOURCES}
    used: dict = {}
    for _name, func, _sig in _jit.AOT_EXPORTS:
        used[func] = None
        _dispatchers_called(func, used)
    outside = sorted(
        f"{f.__module__}.{f.__name__}" for f in used
        if str(Path(f.__code__.co_filename).resolve()) not in sources
    )
    if outside:
        raise RuntimeError(
            "kernels defined outside strategies._jit.SOURCES (add their files there, or the "
            f"fingerprint would miss their changes): {', '.join(outside)}"
        )

    fingerprint = _jit.source_fingerprint()

    def fingerprint_of_sources():
        return fingerprint

    output_dir = Path(output_dir or package)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kernels-", dir=output_dir) as tmp:
        cc = CC(MODULE, source_module=_jit.__name__)
        cc.output_dir = tmp
        cc.target_cpu = cpu
        for name, func, sig in _jit.AOT_EXPORTS:
            cc.export(name, sig() if callable(sig) else sig)(func)
        cc.export("fingerprint", "i8()")(fingerprint_of_sources)
        cc.compile()
        built = Path(tmp) / cc.output_file
        target = output_dir / cc.output_file
        os.replace(built, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", default="", help="LLVM CPU model ('' generic, 'host')")
    parser.add_argument("--output-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    path = build(args.output_dir, args.cpu)
    from strategies import _jit

    print(f"compiled {len(_jit.AOT_EXPORTS)} kernels into {path} in "
          f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    os.environ["TRADESITE_NO_AOT"] = "1"  # before strategies._jit is imported
    sys.exit(main())
