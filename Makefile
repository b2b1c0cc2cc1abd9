# stratpos — every target does its own set-up: a fresh machine needs only python3.11, pip and make.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
# two pytest-xdist workers, each test file on one worker (its module-scoped warehouses are built once)
PYTEST_ARGS ?= -n 2 --dist loadfile

export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := False
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False
export GX_ANALYTICS_ENABLED := False

.DEFAULT_GOAL := help

.PHONY: help setup lock test lint format demo report airflow clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	@touch $@

setup: $(STAMP) ## create or refresh .venv from requirements.lock

lock: ## re-resolve requirements.lock from pyproject.toml (needs PyPI)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

test: setup ## run the whole test suite (MariaDB tests skip unless a server answers or REQUIRE_MYSQL=1)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup ## ruff lint + format check, sqlfluff on the dbt project (.sqlfluff)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@mkdir -p dbt_project/target/sqlfluff
	DBT_TARGET_PATH=$(CURDIR)/dbt_project/target/sqlfluff STRATPOS_TARGET=duckdb STRATPOS_SCHEMA_PREFIX= \
	STRATPOS_DUCKDB_PATH=$(CURDIR)/dbt_project/target/sqlfluff/lint.duckdb \
	$(BIN)/sqlfluff lint dbt_project/models dbt_project/tests

format: setup ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: setup ## paper account → fake Binance API → the real DAG (dag.test) into DuckDB → leaderboard + HTML report
	$(BIN)/stratpos demo

report: setup ## write warehouse/report.html from the marts of the configured warehouse (else the demo's)
	$(BIN)/stratpos report

airflow: setup ## a local Airflow (api-server, scheduler, dag-processor) on the sandbox, UI on localhost:8080
	bash scripts/airflow_local.sh

clean: ## remove the virtualenv and generated data
	rm -rf $(VENV) warehouse .pytest_cache
