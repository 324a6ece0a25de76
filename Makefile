# trawl: `make demo` and `make test` work from a fresh clone (they create .venv on first use).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/trawl demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --durations=10

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Benchmarks print ratios measured side by side in one run; none of them runs in `make test`.
bench: $(STAMP)
	$(BIN)/python -m bench.producer
	$(BIN)/python -m bench.worker
	$(BIN)/python -m bench.e2e
	$(BIN)/python -m bench.coldstart
	$(BIN)/python -m bench.status

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
# boto3/botocore are left out: the python3.11 runtime provides them.
SAM ?= sam
LAMBDA_PYTHON := 3.11
LAMBDA_PIP = $(PYTHON) -m pip install --quiet --upgrade --no-compile --target "$(ARTIFACTS_DIR)" \
	--platform manylinux2014_aarch64 --implementation cp --python-version $(LAMBDA_PYTHON) --only-binary=:all:

# $(1): first-party packages to ship; $(2): the requirements file of their runtime deps.
define lambda-artifact
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: run this through 'sam build'" >&2; exit 1; }
	mkdir -p "$(ARTIFACTS_DIR)"
	tar -cf - --exclude=__pycache__ --exclude='*.pyc' $(1) | tar -xf - -C "$(ARTIFACTS_DIR)"
	$(LAMBDA_PIP) -r $(2)
	rm -rf "$(ARTIFACTS_DIR)/bin"
	$(lambda-bytecode)
endef

# /var/task is read-only, so Lambda recompiles every module on every cold start unless the .pyc
# ships (measured: importing workers.handler 0.42 s -> 0.24 s here). unchecked-hash: the zip's
# 2-second timestamps would otherwise make the .pyc look stale. Only a 3.11 build makes 3.11 .pyc.
define lambda-bytecode
	if $(PYTHON) -c 'import sys; sys.exit("%d.%d" % sys.version_info[:2] != "$(LAMBDA_PYTHON)")'; \
	then $(PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(ARTIFACTS_DIR)"; \
	else echo "no .pyc in the artifact: $(PYTHON) is not Python $(LAMBDA_PYTHON)" >&2; fi
endef

.PHONY: sam-build build-ProducerFunction build-TikTokWorkerFunction build-TokopediaWorkerFunction \
	build-ShopeeWorkerFunction build-LazadaWorkerFunction build-LedgerFunction

build-ProducerFunction:
	$(call lambda-artifact,producer models,deploy/requirements-producer.txt)

build-TikTokWorkerFunction build-TokopediaWorkerFunction build-ShopeeWorkerFunction build-LazadaWorkerFunction:
	$(call lambda-artifact,workers models,deploy/requirements-worker.txt)

build-LedgerFunction:
	$(call lambda-artifact,ledger models,deploy/requirements-ledger.txt)

# --build-in-source: make runs in this checkout (the targets only read it) instead of SAM copying
# the whole tree, .venv included, to a scratch directory per function (measured: 32 s vs 6.5 min).
sam-build:
	$(SAM) build --build-in-source
