# spaceflow: `make demo` runs the system locally, `make test` runs the tests. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
# checkov's dependency pins clash with ours (requirements-checkov.txt says which): it gets a virtualenv of its own.
CHECKOV_VENV := .venv-checkov
STAMP_CHECKOV := $(CHECKOV_VENV)/.installed
STAMP_NPM := node_modules/.installed
VENDOR := functions/static/vendor/.copied
PORT ?= 7071
PYTEST_ARGS ?=

.PHONY: setup vendor browser-check demo serve test lint policy test-unit test-integration schemas clean

setup: $(STAMP_PY) $(STAMP_CHECKOV) $(STAMP_NPM) vendor browser-check

# Re-installs only when the pinned requirements change, so `make setup` is idempotent and quick the second time.
$(STAMP_PY): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

$(STAMP_CHECKOV): requirements-checkov.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	@touch $@

$(STAMP_NPM): package.json package-lock.json
	@command -v npm >/dev/null || { echo "need Node.js 20 and npm on PATH (the emulators are npm packages)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The dashboard's and /api/docs' browser assets (Leaflet, Chart.js, oidc-client-ts, Swagger UI), copied from node_modules into
# functions/static/vendor/ (gitignored); azure.yaml's prepackage hook runs the same copy before a deployment.
vendor: $(VENDOR)

$(VENDOR): $(STAMP_NPM) devkit/vendor.py
	$(PY) -m devkit.vendor
	@touch $@

# The browser tests (tests/e2e/test_dashboard.py) drive Debian's chromium; say what to install, never fail setup.
browser-check:
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || echo "setup: no chromium on PATH: the browser \
	tests (tests/e2e/test_dashboard.py) will fail. Install it: Debian/Ubuntu 'sudo apt-get install -y chromium', \
	Fedora 'sudo dnf install chromium', macOS 'brew install --cask chromium' (then set CHROMIUM=/path/to/chromium)"

DEMO_ARGS ?=

demo: setup
	$(PY) -m devkit demo --port $(PORT) $(DEMO_ARGS)

serve: setup
	$(PY) -m devkit serve --port $(PORT)

# Lint and types first (seconds), then every test.
test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The policy scan of infra/bicep as a reviewer reads it (tests/unit/test_infra.py runs the same scan and fails on any
# finding or parse error); --skip-download keeps it offline.
policy: $(STAMP_CHECKOV)
	$(CHECKOV_VENV)/bin/checkov --directory infra/bicep --framework bicep --skip-download --compact

test-unit: setup
	$(PY) -m pytest tests/unit tests/functions $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest tests/integration tests/e2e $(PYTEST_ARGS)

schemas: setup
	$(PY) -m devkit export-schemas

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .pytest_cache .hypothesis
