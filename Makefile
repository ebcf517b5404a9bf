# Every target builds .venv from the system python3 first, so each one works
# as the first command on a fresh clone.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

lint: $(STAMP)
	$(BIN)/ruff check shardio shardio_net shardio_disk tests bench examples
	$(BIN)/ruff format --check shardio shardio_net shardio_disk tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy shardio shardio_net shardio_disk

test: lint typecheck
	$(BIN)/python -m pytest -q
	$(BIN)/python docs/check_examples.py

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
