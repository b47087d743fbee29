# Two commands on a fresh machine: `make serve` and `make test`.
# Both build what they need from nothing (Python 3.11 + pip, Node + npm, apt)
# the first time: .venv/, node_modules/ and, for the browser tests, Chromium.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What serving needs (the package and its dependencies), then everything for
# development on top: `make serve` on a fresh clone installs only the first.
SERVE_STAMP := $(VENV)/.installed-serve
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CHROMIUM ?= /usr/bin/chromium
ARGS ?=

.PHONY: serve test suite test-repeat lint bench venv node browser clean turn redis godot

venv: $(STAMP)

$(SERVE_STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The test tools, and aiortc for the Python WebRTC peers.
$(STAMP): $(SERVE_STAMP)
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

# Standalone server on port 9080, IPv6 and IPv4 (and the demo on
# http://localhost:9080/) with the defaults; pass options with ARGS, e.g.
# make serve ARGS="--port tcp:9999 --seal-timeout 30".
# Ctrl-C reaches make and twistd alike. twistd shuts down and ends itself
# with SIGINT, which make would report as "*** [serve] Interrupt"; the trap
# makes the recipe's shell exit 0 once twistd has gone instead, so make
# stops quietly (itself still ended by the SIGINT, as a caller expects).
serve: $(SERVE_STAMP)
	@trap 'exit 0' INT; $(BIN)/twistd --pidfile= -n webrtc-signal $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint suite

# The test suite alone, under coverage: the test process and every Python
# process it starts (servers, commands, the documentation's programs) measure
# branch coverage into $(COVERAGE_FILE).*, combined and totalled at the end;
# the report by file is in test-artifacts/coverage.txt.
# It runs on WORKERS pytest-xdist workers (WORKERS=0: in one process); a
# worker that runs out of tests takes some of another's.
# Bytecode is cached (__pycache__) even where PYTHONDONTWRITEBYTECODE is set,
# as in many container images: the suite starts some 200 Python processes,
# and each would otherwise compile the package and its tests anew.
COVERAGE_FILE := $(CURDIR)/.coverage
WORKERS ?= 2
suite: $(STAMP) $(NODE_STAMP) browser turn redis godot
	@rm -f $(COVERAGE_FILE) $(COVERAGE_FILE).*
	env -u PYTHONDONTWRITEBYTECODE COVERAGE_FILE=$(COVERAGE_FILE) \
	  $(BIN)/python -m coverage run -m pytest -n $(WORKERS) --dist worksteal $(ARGS)
	@# A measured process killed just as it opens its data file leaves it
	@# empty (a few runs in twenty): it holds nothing, and combine would warn.
	@find $(dir $(COVERAGE_FILE)) -maxdepth 1 -name '$(notdir $(COVERAGE_FILE)).*' -empty -delete
	@COVERAGE_FILE=$(COVERAGE_FILE) $(BIN)/python -m coverage combine -q
	@mkdir -p test-artifacts
	@COVERAGE_FILE=$(COVERAGE_FILE) $(BIN)/python -m coverage report > test-artifacts/coverage.txt
	@echo "total coverage (statements and branches, all processes):" \
	  "$$(COVERAGE_FILE=$(COVERAGE_FILE) $(BIN)/python -m coverage report --format=total)%"

# Is the suite green every time, under load? Lint once, then the suite N
# times in a row beside two busy loops, one pinned to each of the first two
# cores, stopping at the first failure (its log: test-artifacts/repeat/).
N ?= 10
test-repeat: lint
	$(BIN)/python tests/support/repeat.py --runs $(N) -- $(MAKE) --no-print-directory suite ARGS="$(ARGS)"

# Benchmark against Godot's Node reference server (README, "Benchmarks"):
# make bench REF=path/to/godot-demo-projects/networking/webrtc_signaling/server_node
# Without REF it measures ours alone. More options: make bench ARGS="--help".
REF ?=
bench: $(STAMP) $(NODE_STAMP)
	$(BIN)/python bench/run.py $(if $(REF),--ref $(REF)) $(ARGS)

clean:
	rm -rf $(VENV) node_modules build *.egg-info twisted/plugins/dropin.cache test-artifacts \
	  .coverage .coverage.*

# Debian's coturn for the TURN tests (docs/turn.md); installing it needs root.
# Without it those tests skip (CI makes that an error). The tests run
# turnserver themselves on a random port; they do not use the package's service.
# Other installs may hold the dpkg lock: wait for it rather than fail.
TURNSERVER ?= /usr/bin/turnserver
turn:
	@if [ ! -x $(TURNSERVER) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get -o DPkg::Lock::Timeout=300 update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq coturn; \
	  else \
	    echo "note: $(TURNSERVER) is missing; run 'sudo apt-get install coturn' for the TURN tests"; \
	  fi; \
	fi

# Debian's redis-server for the cluster tests (docs/cluster.md); installing it
# needs root. Without it those tests skip (CI makes that an error). The tests
# run redis-server themselves on a random port, without persistence; they do
# not use the package's service.
REDIS_SERVER ?= /usr/bin/redis-server
redis:
	@if [ ! -x $(REDIS_SERVER) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get -o DPkg::Lock::Timeout=300 update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq redis-server; \
	  else \
	    echo "note: $(REDIS_SERVER) is missing; run 'sudo apt-get install redis-server' for the cluster tests"; \
	  fi; \
	fi

# Debian's headless Godot 3 engine for the Godot engine test
# (tests/e2e/test_godot_engine.py: two engines quick-match); installing it
# needs root. Without it that test skips (CI makes that an error). The test
# runs the engine itself on a project it writes to a temporary directory.
GODOT3_SERVER ?= /usr/bin/godot3-server
godot:
	@if [ ! -x $(GODOT3_SERVER) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get -o DPkg::Lock::Timeout=300 update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq godot3-server; \
	  else \
	    echo "note: $(GODOT3_SERVER) is missing; run 'sudo apt-get install godot3-server' for the Godot engine test"; \
	  fi; \
	fi

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
