# photopipe: `make demo` and `make test` set everything up on a fresh Debian/Ubuntu machine.
VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.photopipe-setup
DEMO_DIR  ?= var/demo
SAMPLES   := $(wildcard samples/*.jpg)

.PHONY: services setup demo test check lint typecheck clean bench bench-peers bench-looks

$(STAMP): setup.cfg setup.py pyproject.toml scripts/setup-venv filters/_fused.c
	bash scripts/setup-venv $(VENV)
	touch $@

setup: $(STAMP)

demo: setup
	PHOTOPIPE_DATA_DIR=$(DEMO_DIR) $(PY) -m pipeline.cli process $(SAMPLES)

test: setup services
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy

check: lint typecheck test

bench-peers: .venv-peers/.setup

.venv-peers/.setup: benchmarks/peers/setup-venv
	bash benchmarks/peers/setup-venv .venv-peers
	touch $@

bench-looks: setup bench-peers
	$(PY) -m benchmarks.looks

bench: setup bench-peers services
	$(PY) -m benchmarks.looks
	$(PY) -m benchmarks.pipeline
	$(PY) -m benchmarks.encoding
	$(PY) -m benchmarks.perceptual
	$(PY) -m benchmarks.peak
	$(PY) -m benchmarks.glue
	$(PY) -m benchmarks.api
	$(PY) -m benchmarks.frameworks
	$(PY) -m benchmarks.placeholder
	$(PY) -m benchmarks.page
	$(PY) -m benchmarks.observability 10
	$(PY) -m benchmarks.shards
	$(PY) -m benchmarks.failover

clean:
	rm -rf $(VENV) .venv-peers .venv-patroni var .mypy_cache .ruff_cache .pytest_cache

services:
	bash scripts/services-up
