"""Bounds on user-triggered work as configuration: the limits come from the environment (a bad
value stops the process at start, naming it), and under ``make run`` the trader queue has a
worker of its own, so trading never waits behind an optimization or a backtest."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from tradesite import envconfig
from tradesite.celery import QUEUES
from tradesite.tests.test_settings import start_django

ROOT = Path(__file__).resolve().parents[2]
LIMITS = ["OPTIMIZER_MAX_TRIALS", "OPTIMIZER_MAX_FOLDS", "OPTIMIZER_MAX_DAYS",
          "OPTIMIZER_MAX_RUNS_PER_USER", "BACKTEST_MAX_DAYS", "BACKTEST_MAX_RUNS_PER_USER"]


def procfile() -> dict[str, list[str]]:
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            processes[name.strip()] = shlex.split(command)
    return processes


def celery_workers() -> dict[str, list[str]]:
    return {name: argv for name, argv in procfile().items()
            if "celery" in argv[0] and "worker" in argv}


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_the_trader_queue_has_a_worker_of_its_own_with_one_process():
    workers = celery_workers()
    consumers = {name: option(argv, "-Q").split(",") for name, argv in workers.items()}
    assert sorted(q for queues in consumers.values() for q in queues) == sorted(QUEUES)
    (trader,) = [name for name, queues in consumers.items() if "trader" in queues]
    assert consumers[trader] == ["trader"]
    assert re.fullmatch(r"\$\{TRADER_CONCURRENCY:-1\}", option(workers[trader], "--concurrency"))
    # Two workers on one host need their own node names (Celery refuses duplicates).
    names = [option(argv, "-n") for argv in workers.values()]
    assert len(set(names)) == len(names) == len(workers)


@pytest.mark.parametrize("value, message", [
    ("abc", "is not a whole number"), ("0", "must be at least 1"), ("1e3", "not a whole number"),
    ("99999999999", "above its maximum"),
])
def test_a_bad_limit_stops_the_process_at_start_naming_it(tmp_path, value, message):
    result = start_django(tmp_path, OPTIMIZER_MAX_TRIALS=value)
    assert result.returncode != 0
    last = result.stderr.splitlines()[-1]
    assert "ImproperlyConfigured" in last and "OPTIMIZER_MAX_TRIALS" in last and message in last


@pytest.mark.parametrize("name", LIMITS)
def test_every_limit_is_read_from_the_environment(monkeypatch, name):
    from tradesite import settings as site_settings

    monkeypatch.setenv(name, " 7 ")
    assert envconfig.integer(name, 3) == 7
    monkeypatch.setenv(name, "-2")
    with pytest.raises(ImproperlyConfigured, match=f"{name}='-2' must be at least 1"):
        envconfig.integer(name, 3)
    source = Path(site_settings.__file__).read_text()
    assert f'{name} = envconfig.integer("{name}"' in source


def test_every_limit_is_documented():
    readme = (ROOT / "README.md").read_text()
    for name in [*LIMITS, "TRADER_CONCURRENCY"]:
        assert re.search(rf"^\| `{name}` \|", readme, re.M), name
