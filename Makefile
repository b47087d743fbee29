# Two commands on a fresh machine: `make serve` and `make test`.
# Both build .venv from nothing (Python 3.11 + pip) the first time.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: serve test lint venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Standalone server on ws://0.0.0.0:9080 with the defaults; pass options with
# ARGS, e.g. make serve ARGS="--port tcp:9999 --seal-timeout 30".
serve: $(STAMP)
	$(BIN)/twistd --pidfile= -n webrtc-signal $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info twisted/plugins/dropin.cache
