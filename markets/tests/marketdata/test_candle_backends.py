"""The candle store's backends: one per vendor, chosen like Django's cache backends; the C
SQLite reader and the PostgreSQL binary COPY codec each live in their backend only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.db import connection

from markets.candles.backends import DEFAULT_BACKENDS, backend_for
from markets.candles.backends.base import CandleBackend

ROOT = Path(__file__).resolve().parents[3]


class _Connection:
    vendor = "oracle"


@pytest.mark.postgres  # the vendor of the suite's connection, without a query
def test_the_connections_vendor_picks_its_backend_and_another_vendor_is_refused():
    backend = backend_for(connection)
    assert isinstance(backend, CandleBackend) and backend.vendor == connection.vendor
    assert backend.connection is connection
    assert set(DEFAULT_BACKENDS) == {"sqlite", "postgresql"}
    with pytest.raises(NotImplementedError, match="supports postgresql and sqlite, not oracle"):
        backend_for(_Connection())


def test_a_setting_can_name_another_backend_class(settings):
    class Custom(CandleBackend):
        vendor = "oracle"

    import sys
    import types

    module = types.ModuleType("candle_backend_under_test")
    module.Custom = Custom
    sys.modules[module.__name__] = module
    try:
        settings.CANDLE_STORE_BACKENDS = {"oracle": "candle_backend_under_test.Custom"}
        assert isinstance(backend_for(_Connection()), Custom)
    finally:
        del sys.modules[module.__name__]


def _importers(name: str) -> set[str]:
    found = set()
    for path in ROOT.glob("*/**/*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in (".venv", "node_modules") or "tests" in rel.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(m == name or m.startswith(name + ".") for m in modules):
                found.add(str(rel))
    return found


def test_the_c_reader_and_the_copy_codec_are_used_by_their_backend_only():
    assert _importers("markets.sqlite_columns") == {"markets/candles/backends/sqlite.py"}
    assert _importers("markets.candles.backends.postgresql_copy") == {
        "markets/candles/backends/postgresql.py"}
