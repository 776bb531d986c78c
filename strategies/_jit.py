"""Optional numba compilation for the few loops numpy cannot vectorize.

``njit`` compiles a plain-Python scalar function with numba when numba is installed and returns
it unchanged otherwise, so every kernel stays readable Python with the same results either way
(only slower without numba). ``HAVE_NUMBA`` tells which one is in force. Setting the
environment variable ``TRADESITE_NO_NUMBA=1`` forces plain Python (to debug a kernel, or to
check that both paths agree).
"""

from __future__ import annotations

import os

HAVE_NUMBA = False
if os.environ.get("TRADESITE_NO_NUMBA", "") in ("", "0"):
    try:  # pragma: no cover - depends on the environment
        import numba

        HAVE_NUMBA = True
    except ImportError:  # pragma: no cover
        pass


def njit(func):
    if HAVE_NUMBA:
        return numba.njit(cache=True, nogil=True)(func)
    return func
