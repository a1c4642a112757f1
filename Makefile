# The two commands of the README: `make run` and `make test`. Everything else is a helper.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.xlir-installed
# pip on some machines prints one warning per missing local index folder; keep the log readable.
QUIET_PIP := grep -v '^WARNING: Location' || true

.PHONY: help setup run stop status cli-run test data model pg-server redis-server chromium clean-venv

help:
	@echo "make run    set up everything and run the main job on the embedded default"
	@echo "make test   run the test suite (what CI runs)"
	@echo "make stop   stop the local stack started by make run; make status shows it"

$(STAMP): requirements-lock.txt pyproject.toml
	@echo ">> creating $(VENV) from requirements-lock.txt (first time: about 2 minutes)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-lock.txt 2>&1 | $(QUIET_PIP)
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | $(QUIET_PIP)
	$(BIN)/python -c "import torch, sys; sys.exit('CUDA torch build installed; expected the CPU build' if torch.version.cuda else 0)"
	$(BIN)/pip check
	touch $@

setup: $(STAMP)

data: setup
	$(BIN)/xlir data fetch

model: setup
	$(BIN)/xlir model prepare $(BASE_MODEL)

# The main job on the embedded default, the way users' data goes: start the local stack (MLflow +
# Airflow on 127.0.0.1, each process by pid), land MLQA-R, trigger xlir_ingest through the REST
# API; its asset event starts xlir_train with the default params (hybrid batches on MLQA-R,
# zero-shot evaluation on XQuAD-R and DREAM, gates against the champion). A second `make run`
# reuses the venv, data, encoder, servers and results. `make stop` stops the stack.
# XLIR_DB=postgres: Airflow's metadata DB and MLflow's backend store on a local PostgreSQL server.
# XLIR_EXECUTOR=celery: PostgreSQL, Redis and Celery workers (default queue, training queue).
run: data model $(if $(filter postgres,$(XLIR_DB))$(filter celery,$(XLIR_EXECUTOR)),pg-server) \
	$(if $(filter celery,$(XLIR_EXECUTOR)),redis-server)
	$(BIN)/xlir stack up
	$(BIN)/xlir stack run

# PostgreSQL's server binaries (the Debian package), for XLIR_DB=postgres and its system test.
pg-server:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null || \
	{ if [ "$$(id -u)" = 0 ]; then echo ">> installing PostgreSQL (Debian package postgresql)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL server binaries missing: sudo apt-get install postgresql"; exit 1; fi; }

# Redis's server (the Debian package redis-server), for XLIR_EXECUTOR=celery and its system tests.
# Only the binary is used: the package's own service is not started (no systemd here; the local
# stack runs its own server, 127.0.0.1 only, with a password, state under the stack folder).
redis-server:
	@command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || \
	{ if [ "$$(id -u)" = 0 ]; then echo ">> installing Redis (Debian package redis-server)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else echo "Redis server binary missing: sudo apt-get install redis-server"; exit 1; fi; }

# Headless Chromium (the Debian package chromium), for the browser test of the MLflow pages.
chromium:
	@command -v chromium >/dev/null || \
	{ if [ "$$(id -u)" = 0 ]; then echo ">> installing Chromium (Debian package chromium)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium missing: sudo apt-get install chromium"; exit 1; fi; }

stop:
	@if [ -x $(BIN)/xlir ]; then $(BIN)/xlir stack down; else echo "no venv: nothing was started"; fi

status:
	$(BIN)/xlir stack status

# The same training and evaluation with the CLI only (no Airflow, no MLflow).
BASE_MODEL ?= bundled:multilingual-e5-small
RUN_DIR ?= .xlir/run
RUN_STEPS ?= 20
RUN_EVAL_QUESTIONS ?= 200
cli-run: data model
	$(BIN)/xlir validate "$$($(BIN)/xlir data path mlqa-r)"
	$(BIN)/xlir train --base-model $(BASE_MODEL) --train-datasets mlqa-r --strategy hybrid --alpha 0.5 \
		--steps $(RUN_STEPS) --output $(RUN_DIR)/train
	$(BIN)/xlir evaluate --model $(BASE_MODEL) --dataset xquad-r --max-questions-per-lang $(RUN_EVAL_QUESTIONS) \
		--train-languages ar,de,en,es,hi,vi,zh --output $(RUN_DIR)/eval-untuned
	$(BIN)/xlir evaluate --model $(RUN_DIR)/train/model --dataset xquad-r --max-questions-per-lang $(RUN_EVAL_QUESTIONS) \
		--train-languages ar,de,en,es,hi,vi,zh --output $(RUN_DIR)/eval-hybrid

test: setup
	@$(MAKE) --no-print-directory pg-server || echo "(the PostgreSQL-mode system test will be skipped)"
	@$(MAKE) --no-print-directory redis-server || echo "(the Celery-mode system tests will be skipped)"
	@$(MAKE) --no-print-directory chromium || echo "(the browser test of the MLflow pages will be skipped)"
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
