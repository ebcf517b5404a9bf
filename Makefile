# Every target builds .venv from the system python3 first, so each one works
# as the first command on a fresh clone.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One stamp per set of packages: the demo needs only shardio itself, the
# tests and the benchmarks add their own extras on top.
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo tour serve native-demo test lint typecheck bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

# The memcached job: the sharded server under a load for about ten seconds.
demo: $(STAMP)
	$(BIN)/python -m examples.memcached.demo

# A tour of the core: nurseries, deadlines, shards, channels (examples/demo.py).
tour: $(STAMP)
	$(BIN)/python -m examples.demo

# The memcached server in the foreground on every shard; Ctrl-C stops it.
# Options go in SERVE_ARGS, e.g. make serve SERVE_ARGS="-p 11311 --data-dir /var/tmp/mc".
SERVE_ARGS ?= -p 11211 -l 127.0.0.1
serve: $(STAMP)
	$(BIN)/python -m examples.memcached $(SERVE_ARGS)

# The native TCP/IP stack over a TAP device, in a network namespace of its
# own: httpd on every shard, curl and wrk from the kernel's side (as root).
native-demo: $(STAMP)
	$(BIN)/python -m examples.native_demo

lint: $(TEST_STAMP)
	$(BIN)/ruff check shardio shardio_net shardio_disk tests bench examples
	$(BIN)/ruff format --check shardio shardio_net shardio_disk tests bench examples

typecheck: $(TEST_STAMP)
	$(BIN)/mypy shardio shardio_net shardio_disk examples

test: lint typecheck
	$(BIN)/python -m pytest -q
	$(BIN)/python docs/check_examples.py

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
