"""Fixtures: simulators on 127.0.0.1 with free ports, a fixed clock anchor and a fixed seed."""

from __future__ import annotations

import aiohttp
import pytest

from simulator.server import SimConfig, Simulator

#: 2026-03-11 14:40:30 UTC: a fixed anchor so generated history is the same on every run.
ANCHOR_MS = 1_773_240_030_000


def config(**overrides) -> SimConfig:
    base = {"seed": 11, "now_ms": ANCHOR_MS, "history_days": 1.0, "trade_rate": 4.0, "tick_s": 0.05}
    return SimConfig(**(base | overrides))


@pytest.fixture
async def sim():
    async with Simulator(config()) as running:
        yield running


@pytest.fixture
async def frozen_sim():
    """A simulator whose clock ticks once at start and then not for the test's duration."""
    async with Simulator(config(tick_s=3600.0, speed=0.0)) as running:
        yield running


@pytest.fixture
async def http():
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session
