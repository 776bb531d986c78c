"""Optional numba compilation for the few loops numpy cannot vectorize.

``njit`` compiles a plain-Python scalar function with numba when numba is installed and returns
it unchanged otherwise, so every kernel stays readable Python with the same results either way
(only slower without numba). ``HAVE_NUMBA`` tells which one is in force.
"""

from __future__ import annotations

try:  # pragma: no cover - depends on the environment
    import numba

    HAVE_NUMBA = True

    def njit(func):
        return numba.njit(cache=True, nogil=True)(func)

except ImportError:  # pragma: no cover
    HAVE_NUMBA = False

    def njit(func):
        return func
