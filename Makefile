# Both targets build or refresh .venv from this repo's own files, so they work on a fresh machine.
# `make demo` installs what the demo needs; `make test` adds every extra the tests exercise.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test fuzz bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e ".[bench,torch,store,ot]"
	touch $(DEMO_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e ".[dev,bench,torch,store,ot,dask,onnx,safetensors,hf,plot,rl,text]"
	touch $(TEST_STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/ontheline demo

# The report's browser test needs Debian's chromium; install it when missing (as root, or with sudo).
test: $(TEST_STAMP)
	@command -v chromium >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest --durations=15

# The property-based tests at length: 2,000 generated zoos and files per property (make test runs 40).
fuzz: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/test_fuzz.py --hypothesis-profile=fuzz

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/agreement_throughput.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
