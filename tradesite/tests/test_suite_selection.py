"""Which tests the PostgreSQL pass of the suite runs (``conftest.runs_on_postgresql``): the
ones that use the database or are marked ``postgres``; never a browser test."""

from __future__ import annotations

import pytest

from conftest import runs_on_postgresql


class Item:
    """What the rule reads of a collected test: its marks and the fixtures it uses."""

    def __init__(self, *marks: str, fixtures: tuple[str, ...] = ()) -> None:
        self.marks = {name: getattr(pytest.mark, name).mark for name in marks}
        self.fixturenames = list(fixtures)

    def get_closest_marker(self, name: str):
        return self.marks.get(name)


@pytest.mark.parametrize("item, runs", [
    (Item(fixtures=("db", "settings")), True),
    (Item(fixtures=("transactional_db",)), True),
    (Item(fixtures=("live_server",)), True),
    (Item("django_db"), True),
    (Item("postgres"), True),
    (Item("postgres", "browser"), True),
    (Item(fixtures=("settings", "tmp_path", "monkeypatch")), False),
    (Item("redis", "slow", fixtures=("redis_url",)), False),
    (Item("browser", "django_db", fixtures=("live_server", "page")), False),
], ids=["db", "transactional_db", "live_server", "django_db mark", "postgres mark",
        "postgres mark beats browser", "no database", "redis only", "browser"])
def test_the_postgresql_pass_keeps_only_what_can_differ_by_backend(item, runs):
    assert runs_on_postgresql(item) is runs


def test_this_suite_marks_its_own_database_tests(request, db):
    """The rule on a real collected test: this one uses ``db``."""
    assert runs_on_postgresql(request.node)
