# Both targets build or refresh .venv from this repo's own files, so they work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,bench,torch,store,dask,onnx,safetensors,hf,plot,rl]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ontheline demo

# The report's browser test needs Debian's chromium; install it when missing (as root, or with sudo).
test: $(STAMP)
	@command -v chromium >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	$(BIN)/python -m pytest

# The property-based tests at length: 2,000 generated zoos and files per property (make test runs 40).
fuzz: $(STAMP)
	$(BIN)/python -m pytest tests/test_fuzz.py --hypothesis-profile=fuzz

bench: $(STAMP)
	$(BIN)/python benchmarks/agreement_throughput.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
