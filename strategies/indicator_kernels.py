"""The loops of :mod:`strategies.indicators` that numpy cannot vectorize (recursions, rolling
windows): small kernels compiled as :mod:`strategies._jit` decides (ahead of time, numba's JIT,
or plain Python, with the same results). Each takes and returns float64 arrays; the public,
checked functions are in :mod:`strategies.indicators`.

Pure: numpy and the standard library only.
"""

from __future__ import annotations

import math

import numpy as np

from strategies._jit import njit


@njit(aot="f8[:](f8[:], i8, f8)")
def ema_kernel(x, period, alpha):
    n = x.shape[0]
    out = np.full(n, np.nan)
    start = 0
    while start < n and np.isnan(x[start]):
        start += 1
    seed_end = start + period - 1
    if seed_end >= n:
        return out
    total = 0.0
    for j in range(start, seed_end + 1):
        total += x[j]
    value = total / period
    out[seed_end] = value
    for j in range(seed_end + 1, n):
        value = value + alpha * (x[j] - value)
        out[j] = value
    return out


@njit(aot="f8[:](f8[:], i8, i8)")
def wilder_kernel(x, period, first):
    """Wilder average of ``x`` seeded with the mean of ``x[first : first + period]``."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    seed_end = first + period - 1
    if seed_end >= n:
        return out
    total = 0.0
    for j in range(first, seed_end + 1):
        total += x[j]
    value = total / period
    out[seed_end] = value
    for j in range(seed_end + 1, n):
        value = (value * (period - 1) + x[j]) / period
        out[j] = value
    return out


@njit(aot="f8[:](f8[:], i8)")
def window_sums(x, period):
    """Sum of each ``period``-window ending at ``i`` (NaN before), in a fixed order.

    Every window is summed from scratch (eight partial sums, which the compiler vectorizes), so
    a window's value never depends on where the series starts: the newest value computed on a
    tail equals the full series' to the last bit. O(n * period), fast for the usual periods.
    """
    n = x.shape[0]
    out = np.full(n, np.nan)
    acc = np.zeros(8)
    for i in range(period - 1, n):
        for k in range(8):
            acc[k] = 0.0
        j = i - period + 1
        while j + 7 <= i:
            for k in range(8):
                acc[k] += x[j + k]
            j += 8
        rest = 0.0
        while j <= i:
            rest += x[j]
            j += 1
        low = (acc[0] + acc[1]) + (acc[2] + acc[3])
        high = (acc[4] + acc[5]) + (acc[6] + acc[7])
        out[i] = (low + high) + rest
    return out


@njit(aot="f8[:](f8[:], i8)")
def rolling_std_kernel(x, period):
    """Population standard deviation over ``period`` values, two passes per window (exact)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    means = window_sums(x, period) / period
    for i in range(period - 1, n):
        mean = means[i]
        d0 = 0.0
        d1 = 0.0
        j = i - period + 1
        while j + 1 <= i:
            a = x[j] - mean
            b = x[j + 1] - mean
            d0 += a * a
            d1 += b * b
            j += 2
        if j <= i:
            a = x[j] - mean
            d0 += a * a
        out[i] = math.sqrt((d0 + d1) / period)
    return out


@njit(aot="f8[:](f8[:], i8, b1)")
def rolling_extreme_kernel(x, period, want_max):
    """Rolling max (or min) with a monotonic deque: O(n) whatever the period."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    dq = np.empty(n, dtype=np.int64)
    head = 0
    tail = 0
    for i in range(n):
        v = x[i]
        if want_max:
            while tail > head and x[dq[tail - 1]] <= v:
                tail -= 1
        else:
            while tail > head and x[dq[tail - 1]] >= v:
                tail -= 1
        dq[tail] = i
        tail += 1
        if dq[head] <= i - period:
            head += 1
        if i >= period - 1:
            out[i] = x[dq[head]]
    return out
