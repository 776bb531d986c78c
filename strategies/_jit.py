"""Compiled versions of the few loops numpy cannot vectorize: ahead of time, just in time, or none.

Every kernel is plain, readable Python decorated with :func:`njit`; which implementation runs
is decided once per process, when this module is imported (``MODE``):

``"aot"``
    The kernels compiled ahead of time into the extension module ``strategies._kernels`` by
    ``python -m strategies.aot`` (numba's ``pycc``, at install time). Loading it costs about
    1 MB and never imports numba or LLVM; numba's JIT costs about 115 MB of resident memory in
    every process that runs a kernel (65 MB to import numba, 45 MB to load LLVM and the cached
    machine code), which alone was most of a backtest process's memory. Used only when the
    module's fingerprint equals :func:`source_fingerprint` of the kernel sources below, so an
    edited kernel never runs stale code: a stale or missing module falls back to ``"jit"``
    (a stale one with a logged warning that says how to rebuild).
``"jit"``
    numba's JIT with an on-disk cache (``cache=True``), as before; when numba is installed.
``"python"``
    The plain Python functions (without numba, or with ``TRADESITE_NO_NUMBA=1`` to debug a
    kernel or check that the paths agree). Same results, only slower.

``TRADESITE_NO_AOT=1`` skips the ahead-of-time module (JIT; what the build itself runs under).

A kernel that Python code calls is declared with its numba signature,
``@njit(aot="f8[:](f8[:], i8)")``, or a function that builds it (for struct arguments, whose
types need numba: ``strategies.backtest.inputs.kernel_signature``, called only by the build);
the ahead-of-time version accepts exactly those types (arrays of that dtype, any strides). A
helper that only kernels call (and brokers, from plain Python: :mod:`strategies.trade_math`,
:mod:`strategies.decisions`) is ``@njit`` without a signature: compiled into its callers
ahead of time, and a plain Python function in ``"aot"`` mode.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent
#: Every file whose code a compiled kernel contains (kernels and the helpers they call), relative
#: to the ``strategies`` package. ``python -m strategies.aot`` refuses to build a kernel or a
#: helper defined elsewhere, so an edit to any kernel's code changes the fingerprint.
SOURCES = (
    "_jit.py",
    "backtest/engine.py",
    "backtest/inputs.py",
    "backtest/statistics.py",
    "decisions.py",
    "indicator_kernels.py",
    "library/macd_turtle.py",
    "trade_math.py",
    "sizing.py",
)

#: ``(export name, Python function, signature)`` of every kernel declared with a signature
#: (a string, or a function returning one or a numba signature), in declaration order: what
#: ``python -m strategies.aot`` compiles.
AOT_EXPORTS: list[tuple[str, object, object]] = []


def source_fingerprint() -> int:
    """A signed 64-bit digest of :data:`SOURCES` (what the compiled module must have been built
    from)."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update((_PACKAGE / name).read_bytes())
        digest.update(b"\0")
    return int.from_bytes(digest.digest()[:8], "little", signed=True)


def export_name(func) -> str:
    """The ahead-of-time module's name for ``func``: ``<module>__<function>``."""
    return f"{func.__module__.rsplit('.', 1)[-1]}__{func.__name__}"


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _choose_mode():
    if _flag("TRADESITE_NO_NUMBA"):
        return "python", None
    if not _flag("TRADESITE_NO_AOT"):
        try:
            from strategies import _kernels  # type: ignore[attr-defined]
        except ImportError:
            _kernels = None
        if _kernels is not None:
            if _kernels.fingerprint() == source_fingerprint():
                return "aot", _kernels
            log.warning(
                "the compiled kernels (%s) were built from other sources than these; using "
                "numba's JIT instead (about 115 MB more per process). Rebuild them with "
                "`python -m strategies.aot`.", _kernels.__file__,
            )
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a requirement
        return "python", None
    return "jit", numba


MODE, _impl = _choose_mode()
HAVE_NUMBA = MODE != "python"  # the kernels run compiled


def njit(func=None, *, aot=None):
    """Compile ``func`` as :data:`MODE` says; ``aot`` is its numba signature (or a function
    that builds it) when Python code calls it (exported by the ahead-of-time module), None for
    a helper only kernels call."""
    if func is None:
        return lambda f: njit(f, aot=aot)
    if aot is not None:
        AOT_EXPORTS.append((export_name(func), func, aot))
    if MODE == "jit":
        return _impl.njit(cache=True, nogil=True)(func)
    if MODE == "aot" and aot is not None:
        return getattr(_impl, export_name(func))
    return func
