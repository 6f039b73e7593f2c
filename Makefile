# Set-up and everyday commands. A fresh machine needs only `make repro` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install repro test test-full bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]' > $(VENV)/pip.log 2>&1 || (tail -40 $(VENV)/pip.log; exit 1)
	$(BIN)/python -c "import geodistill, torch, timm, dvc, cv2"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package with its dev extra

repro: $(STAMP)  ## run the whole DVC pipeline on params.yaml (synthetic default)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: $(STAMP)  ## fast tests (no `slow` marker): what CI runs
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q

test-full: $(STAMP)  ## every test, slow ones included
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q -m "slow or not slow"

bench: $(STAMP)  ## throughput: world rendering, BEV pre-rendering, localization baselines, memory reuse
	$(BIN)/python benchmarks/synth_speed.py
	$(BIN)/python benchmarks/bev_speed.py
	$(BIN)/python benchmarks/localization_speed.py
	$(BIN)/python benchmarks/memory_reuse.py

clean:
	rm -rf $(VENV) .pytest_cache
