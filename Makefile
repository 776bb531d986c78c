# tradesite: `make run` (the whole stack, offline, demo data) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
CI ?=
export XDG_RUNTIME_DIR ?= /tmp/tradesite-xdg-$(shell id -u)
# Tests serve static files from their source folders, never from a stale collection.
test test-sqlite test-postgres test-both: export WHITENOISE_USE_FINDERS = 1

.PHONY: run test test-sqlite test-postgres test-both lint bench drills install install-dev ci-deps clean kernels screenshots

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-installed: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.run-installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## The strategy kernels compiled ahead of time (numba's pycc; needs a C compiler). Without them
## every process still runs, on numba's JIT, about 115 MB larger; see strategies/aot.py.
KERNEL_SOURCES := $(addprefix strategies/,_jit.py backtest/engine.py backtest/inputs.py backtest/statistics.py decisions.py indicator_kernels.py library/macd_turtle.py trade_math.py sizing.py aot.py)
## The file-name suffix of this Python's C extension modules (e.g. .cpython-311-x86_64-linux-gnu.so).
EXT_SUFFIX := $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))" 2>/dev/null)
KERNELS := strategies/_kernels$(EXT_SUFFIX)

$(KERNELS): $(KERNEL_SOURCES) | $(VENV)/.run-installed
	@$(PY) -m strategies.aot || echo "warning: strategy kernels not compiled ahead of time (is a C compiler installed?); numba's JIT runs them instead"

## The SQLite candle reader (cffi; needs a C compiler and sqlite3.h). Without it candle loads
## from SQLite go through the sqlite3 module, about 6x slower; see markets/sqlite_columns.py.
SQLITE_READER := markets/_sqlite_columns$(EXT_SUFFIX)

$(SQLITE_READER): markets/sqlite_columns_build.py markets/sqlite_columns.c | $(VENV)/.run-installed
	@$(PY) -m markets.sqlite_columns_build || echo "warning: SQLite candle reader not built (is a C compiler with sqlite3.h installed?); candle loads use the sqlite3 module instead"

kernels: $(KERNELS) $(SQLITE_READER)

install: $(VENV)/.run-installed node_modules/.installed $(KERNELS) $(SQLITE_READER)
install-dev: $(VENV)/.dev-installed node_modules/.installed $(KERNELS) $(SQLITE_READER)

## The whole stack on embedded defaults: web, worker, beat and (unless REDIS_URL is set) Redis.
run: install
	scripts/run.sh

## Lint, then the suite on SQLite with a real Redis; with CI=true also on a real PostgreSQL
## (there only the tests that can differ by backend: conftest.runs_on_postgresql), both passes
## at once. PYTEST_ARGS passes arguments to pytest, e.g. PYTEST_ARGS="-x orders".
PYTEST_ARGS ?=
SQLITE_PASS = $(PY) -m tradesite.devservices with-redis -- $(PY) -m pytest $(PYTEST_ARGS)
POSTGRES_PASS = $(PY) -m tradesite.devservices with-postgres -- $(SQLITE_PASS)

ifeq ($(CI),true)
test: install-dev ci-deps lint test-both
else
test: install-dev ci-deps lint test-sqlite
endif

test-sqlite: install-dev
	@install -d -m 700 $(XDG_RUNTIME_DIR)
	$(SQLITE_PASS)

test-postgres: install-dev
	@install -d -m 700 $(XDG_RUNTIME_DIR)
	$(POSTGRES_PASS)

## Both passes at the same time (CI's 2 cores; lint has already created var/'s secrets). They
## share nothing: each has its own Redis and PostgreSQL (tradesite.devservices: free ports,
## temporary folders), the SQLite pass its own file (test_<pid>_db.sqlite3), servers free
## ports, and only the SQLite pass runs the browser tests (test-artifacts/). Every line says
## which pass wrote it; the target fails when either pass fails.
test-both: install-dev
	@install -d -m 700 $(XDG_RUNTIME_DIR)
	@set -o pipefail; \
	( $(SQLITE_PASS) 2>&1 | sed -u 's/^/[sqlite] /' ) & sqlite=$$!; \
	( $(POSTGRES_PASS) 2>&1 | sed -u 's/^/[postgres] /' ) & postgres=$$!; \
	wait $$sqlite; sqlite_status=$$?; wait $$postgres; postgres_status=$$?; \
	echo "SQLite pass: exit $$sqlite_status; PostgreSQL pass: exit $$postgres_status"; \
	test $$sqlite_status -eq 0 -a $$postgres_status -eq 0

## CI needs what a full run needs: Chromium for the browser tests (Debian's package).
ci-deps:
ifeq ($(CI),true)
	@if [ ! -x /usr/bin/chromium ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi
	@test -x /usr/bin/chromium || (echo "chromium is required with CI=true" && exit 1)
endif

lint: install-dev
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run

bench: install-dev
	@install -d -m 700 $(XDG_RUNTIME_DIR)
	$(PY) -m tradesite.devservices with-redis -- $(PY) -m bench

## Fault drills on a scratch stack (about 20 minutes, 19.1 and 19.5 measured; nightly or on
## demand, not part of `make test` or CI; the suite runs rate-limit and a short order-delays):
## each kills or starves one process and checks the stack heals. README "Fault drills".
## DRILLS_ARGS passes flags, e.g. DRILLS_ARGS="--only rate-limit --keep".
drills: $(VENV)/.run-installed
	@mkdir -p $(XDG_RUNTIME_DIR)
	$(PY) -m tradesite.drills $(DRILLS_ARGS)

## PNGs of every page (desktop 1280x800 and phone 390x844, dark and light) into var/screenshots/,
## on demo-like rows the run creates (tradesite/tests/test_screenshots.py); needs Chromium.
## Not part of `make test`.
screenshots: export WHITENOISE_USE_FINDERS = 1
screenshots: export SCREENSHOTS_DIR ?= $(CURDIR)/var/screenshots
screenshots: install-dev
	@install -d -m 700 $(XDG_RUNTIME_DIR)
	$(PY) -m tradesite.devservices with-redis -- $(PY) -m pytest -q tradesite/tests/test_screenshots.py
	@ls $(SCREENSHOTS_DIR)/*.png | wc -l | xargs echo "screenshots written to $(SCREENSHOTS_DIR):"

clean:
	rm -rf staticfiles .pytest_cache .ruff_cache
