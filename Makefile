# The one entry point, used locally and in CI. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install services-up services-down demo test lint bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/crm-score: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	@touch $@

install: $(BIN)/crm-score  ## create .venv and install crm-scoring with its dev and bench tools

services-up: install  ## start Kafka (KRaft, from Maven Central jars) and Redis on 127.0.0.1
	$(BIN)/crm-score services up

services-down: install  ## stop the Kafka and Redis that services-up started
	$(BIN)/crm-score services down

demo: install  ## services up, worker, simulated customers through the pipeline, a summary
	$(BIN)/crm-score services up
	$(BIN)/crm-score demo

test: install  ## lint, then all tests (unit + integration) against real Kafka and Redis
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/crm-score services run -- $(BIN)/pytest $(PYTEST_ARGS)

lint: install  ## ruff (lint + format check) and mypy strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install  ## pipeline benchmark (prints JSON); services must be up
	$(BIN)/crm-score services up
	$(BIN)/python -m bench.pipeline

clean:  ## remove the venv and local service data
	-$(BIN)/crm-score services down
	rm -rf $(VENV) .services
