# Two commands matter: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every dependency, dev tools included, at the version CI tested; `make lock` re-resolves it after
# pyproject.toml's dependencies change.
LOCK   := requirements.lock

.PHONY: run test lint bench install lock clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/opencts serve

test: $(STAMP)
	$(BIN)/pytest -q

lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --quiet -o $(LOCK)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# Figures, printed; run on demand, never in the test suite. query.py builds 10M traces (about 12 min and
# 13 GiB under bench-data/; `--reuse` keeps them for the next run).
bench: $(STAMP)
	$(BIN)/python benchmarks/prepare.py
	$(BIN)/python benchmarks/signature.py
	$(BIN)/python benchmarks/auth_matrix.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/sources.py
	$(BIN)/python benchmarks/export.py
	$(BIN)/python benchmarks/matching.py
	$(BIN)/python benchmarks/alerts.py
	$(BIN)/python benchmarks/functions_runtime.py
	$(BIN)/python benchmarks/functions.py
	$(BIN)/python benchmarks/smn_latency.py
	$(BIN)/python benchmarks/query.py --reuse
	$(BIN)/python benchmarks/archive_transfer.py
	$(BIN)/python benchmarks/lts_transfer.py
	$(BIN)/python benchmarks/cadf.py --kill
	$(BIN)/python benchmarks/archive_pipeline.py
	$(BIN)/python benchmarks/archive_verify.py
	$(BIN)/python benchmarks/backup.py
	$(BIN)/python benchmarks/console_page.py
	$(BIN)/python benchmarks/term_index_tenants.py
	$(BIN)/python benchmarks/client_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
