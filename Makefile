# The template's own targets. `make test` and `make demo` install everything they need:
# a pinned uv into .bootstrap/, then the locked tools into .venv/.
SHELL := /bin/bash
PYTHON3 ?= python3
UV_VERSION := 0.13.9
UV := $(CURDIR)/.bootstrap/bin/uv
VENV_PYTHON := $(CURDIR)/.venv/bin/python
export DVC_NO_ANALYTICS := 1
DEMO_DIR := $(CURDIR)/build/demo
PYTEST_ARGS ?=

.PHONY: help bootstrap test test-fast lint demo locks wheels demo-tables bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(UV):
	$(PYTHON3) -m venv .bootstrap
	.bootstrap/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --compile-bytecode --quiet
	touch $@

bootstrap: .venv/.synced ## Install uv and the template's locked tools

# Three workers on two cores: the tier-3 tests wait a tenth of their time (servers, DVC's
# queue, uv linking environments), which a third worker fills (-n 2: 29.4 min, -n 3: 26.5 to
# 27.9 min on fresh clones). A fourth was slower (28.8 min) and made a timing test flaky.
test: bootstrap ## Every tier: hook units, the bake matrix, end-to-end projects
	UV=$(UV) $(VENV_PYTHON) -m pytest -n 3 --dist loadgroup --durations=40 $(PYTEST_ARGS)

test-fast: bootstrap ## Tiers 1 and 2 only
	UV=$(UV) $(VENV_PYTHON) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

lint: bootstrap ## ruff over the template, hooks, tests and the project's plain files
	$(VENV_PYTHON) -m ruff check --config pyproject.toml . && $(VENV_PYTHON) -m ruff format --config pyproject.toml --check .

demo: bootstrap ## Bake the default project, set it up, run its pipeline, show its outputs
	UV=$(UV) $(VENV_PYTHON) scripts/demo.py $(DEMO_DIR)

# uv's own build backend writes the same bytes from the same source (fixed timestamps, sorted
# entries), so the wheels kept in the template are checked against a fresh build by the tests.
WHEELS := {{cookiecutter.project_slug}}/wheels
wheels: $(UV) ## Build the machinery's two wheels (library/) into the template's wheels/
	rm -f $(WHEELS)/*.whl
	$(UV) build --quiet --wheel --out-dir $(WHEELS) library/runtime
	$(UV) build --quiet --wheel --out-dir $(WHEELS) library/tools
	rm -f $(WHEELS)/.gitignore  # uv's, which would keep the wheels out of git

locks: bootstrap ## Re-resolve the shipped locks of every Python x remote pair
	UV=$(UV) $(VENV_PYTHON) scripts/update_locks.py

demo-tables: bootstrap ## Rewrite the shipped demo tables and the project tests' fixture (tests/demo_data.py)
	UV=$(UV) $(VENV_PYTHON) scripts/update_demo_tables.py

bench: bootstrap ## Bake time, cost against a plain pipeline (demo, 10^4..10^6 rows), sweeps, CI caches, model families
	UV=$(UV) $(VENV_PYTHON) bench/bake.py
	UV=$(UV) $(VENV_PYTHON) bench/repro_overhead.py
	UV=$(UV) $(VENV_PYTHON) bench/scale.py
	UV=$(UV) $(VENV_PYTHON) bench/sweep.py
	UV=$(UV) $(VENV_PYTHON) bench/ci_cache.py
	UV=$(UV) $(VENV_PYTHON) bench/families.py

clean: ## Remove the demo and the environments (keeps the uv cache)
	rm -rf build .venv .bootstrap
