# The two set-up commands of the README: `make demo` and `make test`.
# Both work on a fresh machine: they install Debian's redis-server (and, for
# the tests, chromium and chromium-driver) when missing, create .venv, install the bundle into it (non-editable: Platypush
# finds plugins only inside its own package) and run.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench install redis chromium lint clean

demo: install
	$(PY) -m platypush_ext.demo

# The suite on five pytest-xdist workers (on 2 cores: many tests wait on processes and sockets),
# each test file on one worker (an e2e module's Platypush starts once, its tests run in their
# order), the longest modules first (tests/conftest.py's LONGEST_FIRST; --no-loadscope-reorder keeps
# that order); coverage of platypush_ext across every process, workers included (pyproject.toml's
# [tool.coverage.*]); the report fails under its floor.
test: install chromium
	$(PY) -m coverage erase
	$(PY) -m coverage run -m pytest -q -n 5 --dist loadfile --no-loadscope-reorder
	$(PY) -m coverage combine -q
	$(PY) -m coverage report

bench: install
	$(PY) -m benchmarks

lint: install
	$(PY) -m ruff check platypush_ext platypush tests benchmarks
	$(PY) -m ruff format --check platypush_ext platypush tests benchmarks
	$(PY) -m mypy

install: $(VENV)/.deps redis
	rm -rf build  # setuptools keeps removed modules in build/lib and would install them again
	$(PY) -m pip install -q --no-deps --no-build-isolation --force-reinstall .

$(VENV)/.deps: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=68" wheel
	$(PY) -m pip install -q ".[test,bench]"
	touch $@

redis:
	@command -v redis-server >/dev/null || { \
	  echo "installing Debian's redis-server"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# The web panel test (tests/e2e/test_web_panel.py) drives Debian's Chromium.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing Debian's chromium and chromium-driver"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

clean:
	rm -rf $(VENV) build dist *.egg-info run
