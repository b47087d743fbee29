# Two commands on a fresh machine: `make serve` and `make test`.
# Both build what they need from nothing (Python 3.11 + pip, Node + npm, apt)
# the first time: .venv/, node_modules/ and, for the browser tests, Chromium.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CHROMIUM ?= /usr/bin/chromium
ARGS ?=

.PHONY: serve test lint bench venv node browser clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,rtc]'
	touch $@

# Node packages for the browser tests (playwright-core), pinned by package-lock.json.
node: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for the browser tests; installing it needs root. Without
# it the browser tests skip (CI makes that an error).
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "note: $(CHROMIUM) is missing; run 'sudo apt-get install chromium' for the browser tests"; \
	  fi; \
	fi

# Standalone server on ws://0.0.0.0:9080 (and the demo on http://localhost:9080/)
# with the defaults; pass options with ARGS, e.g.
# make serve ARGS="--port tcp:9999 --seal-timeout 30".
serve: $(STAMP)
	$(BIN)/twistd --pidfile= -n webrtc-signal $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint $(NODE_STAMP) browser
	$(BIN)/python -m pytest $(ARGS)

# Benchmark against Godot's Node reference server (README, "Benchmarks"):
# make bench REF=path/to/godot-demo-projects/networking/webrtc_signaling/server_node
# Without REF it measures ours alone. More options: make bench ARGS="--help".
REF ?=
bench: $(STAMP) $(NODE_STAMP)
	$(BIN)/python bench/run.py $(if $(REF),--ref $(REF)) $(ARGS)

clean:
	rm -rf $(VENV) node_modules build *.egg-info twisted/plugins/dropin.cache test-artifacts

# Abuse scenarios beside the Node reference (docs/security.md):
# make abuse REF=path/to/server_node
.PHONY: abuse soak
abuse: $(STAMP)
	$(BIN)/python bench/abuse.py $(if $(REF),--ref $(REF)) $(ARGS)

# Lobby churn for SOAK_SECONDS (default 5 minutes), printing RSS and
# descriptor slopes; both should be flat.
SOAK_SECONDS ?= 300
soak: $(STAMP)
	$(BIN)/python bench/soak.py --seconds $(SOAK_SECONDS) $(ARGS)
