# trawl: `make demo` and `make test` work from a fresh clone (they create .venv on first use).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench chaos clean chromium screenshots

$(STAMP): pyproject.toml deploy/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c deploy/constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/trawl demo

# tests/browser drive Debian's chromium through Playwright (whose own browser downloads are never
# used): installed here when missing, as root (as CI runs); the package lists are refreshed only
# when the install cannot find it without.
CHROMIUM := /usr/bin/chromium
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

chromium:
	@test -x $(CHROMIUM) || { \
	  test "$$(id -u)" = 0 || { echo "tests/browser need $(CHROMIUM): apt-get install chromium (as root)" >&2; exit 1; }; \
	  $(APT_INSTALL) || { apt-get update -qq && $(APT_INSTALL); }; }

# --dist loadscope: a module's tests run on one worker, so a module-scoped stack starts once
# (7 min against 8 with tests spread one by one, on 2 cores).
test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadscope --durations=10

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# docs/img/ui-job.png and ui-jobs.png, as README.md shows them: taken by the browser tests.
screenshots: $(STAMP) chromium
	TRAWL_SCREENSHOTS=$(CURDIR)/docs/img $(BIN)/pytest -p no:xdist tests/browser/test_dashboard.py

# Benchmarks print ratios measured side by side in one run; none of them runs in `make test`.
bench: $(STAMP)
	$(BIN)/python -m bench.producer
	$(BIN)/python -m bench.worker
	$(BIN)/python -m bench.e2e
	$(BIN)/python -m bench.coldstart
	$(BIN)/python -m bench.status
	$(BIN)/python -m bench.ratelimit

# 2,000 items, ~20% retryable faults, latency spikes, a worker crash, then a re-drive; asserts
# nothing is lost or duplicated (a few-dozen-item version runs in `make test`).
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos

clean:
	rm -rf $(VENV) trawl-data .pytest_cache .mypy_cache .ruff_cache

# ------------------------------------------------------------------ sam build (BuildMethod: makefile)
# `sam build` runs `make build-<LogicalId>` with ARTIFACTS_DIR set. An artifact holds the handler's
# own packages (no tests/, trawl/, bench/, .venv or __pycache__) plus its runtime deps, installed as
# arm64 CPython 3.11 wheels so compiled ones (pydantic-core) match Lambda on any build machine.
# The AWS SDK is shipped too, at deploy/constraints.txt's versions (the runtime's own copy is of
# whatever version AWS bundled, which the code's parameters may postdate).
SAM ?= sam
LAMBDA_PYTHON := 3.11
# Which wheels, from where: Lambda's from the package index. tests/unit/test_packaging.py builds
# an artifact for this machine from an offline wheelhouse instead, so that it can import it.
LAMBDA_WHEELS ?= --platform manylinux2014_aarch64 --implementation cp --python-version $(LAMBDA_PYTHON) \
	--only-binary=:all:
LAMBDA_PIP = $(PYTHON) -m pip install --quiet --upgrade --no-compile --target "$(ARTIFACTS_DIR)" \
	-c deploy/constraints.txt $(LAMBDA_WHEELS)

# $(1): first-party packages to ship; $(2): the requirements file of their runtime deps.
define lambda-artifact
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: run this through 'sam build'" >&2; exit 1; }
	mkdir -p "$(ARTIFACTS_DIR)"
	tar -cf - --exclude=__pycache__ --exclude='*.pyc' $(1) | tar -xf - -C "$(ARTIFACTS_DIR)"
	$(LAMBDA_PIP) -r $(2)
	rm -rf "$(ARTIFACTS_DIR)/bin"
	$(lambda-bytecode)
endef

# /var/task is read-only, so Lambda compiles every module on every cold start unless the .pyc
# ships (README, Performance: cold start). unchecked-hash: the zip's
# 2-second timestamps would otherwise make the .pyc look stale. Only a 3.11 build makes 3.11 .pyc.
define lambda-bytecode
	if $(PYTHON) -c 'import sys; sys.exit("%d.%d" % sys.version_info[:2] != "$(LAMBDA_PYTHON)")'; \
	then $(PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(ARTIFACTS_DIR)"; \
	else echo "no .pyc in the artifact: $(PYTHON) is not Python $(LAMBDA_PYTHON)" >&2; fi
endef

comma := ,
# $(1): a function's logical id; $(2): the column of deploy/artifacts.txt (2 packages, 3 requirements).
artifact-field = $(word $(2),$(shell grep -E '^$(1)[[:space:]]' deploy/artifacts.txt))

.PHONY: sam-build

# One rule for every function: what it ships is its line of deploy/artifacts.txt.
build-%:
	@test -n "$(call artifact-field,$*,1)" || { echo "no line for $* in deploy/artifacts.txt" >&2; exit 1; }
	$(call lambda-artifact,$(subst $(comma), ,$(call artifact-field,$*,2)),$(call artifact-field,$*,3))

# --build-in-source: make runs in this checkout (the targets only read it) instead of SAM copying
# the whole tree, .venv included, to a scratch directory per function, for every function.
sam-build:
	$(SAM) build --build-in-source
