# Two entry points (see README): `make run` and `make test`. Both create .venv when needed and
# re-install only when pyproject.toml or constraints.txt changed, so re-running them is fast.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
STAMP  := $(VENV)/.installed

.PHONY: run test lint ui serve train bench e2e-deps clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -U pip setuptools wheel
	$(PIP) torch==2.13.0
	$(PIP) -e ".[train,serve,dev,scale,words]"
	$(PIP) webrtcvad-wheels && $(PIP) --no-deps resemblyzer
	touch $(STAMP)

# Main job: the web app on the bundled default model (http://127.0.0.1:7860).
run: $(STAMP)
	$(BIN)/accent-rater fetch-weights --words || echo "word feedback stays off until the weights are set up (the rest works)"
	$(BIN)/accent-rater rate src/accent_rater/assets/samples
	$(BIN)/accent-rater ui

# The whole test suite (what CI runs through .ci/run): lint, type-check the runtime package, tests.
test: lint e2e-deps
	$(BIN)/python -m pytest -q

# ruff over everything (rules in pyproject.toml); mypy over the runtime package (what rating runs).
lint: $(STAMP)
	$(BIN)/ruff check src tests scripts experiments
	$(BIN)/mypy

# Browser test dependencies (playwright-core driving Debian's chromium; never a downloaded browser).
e2e-deps:
	@if command -v npm >/dev/null 2>&1 && [ -f tests/serve/e2e/package.json ] && [ ! -d tests/serve/e2e/node_modules/playwright-core ]; then \
		cd tests/serve/e2e && npm install --no-audit --no-fund --silent; fi

serve: $(STAMP)
	$(BIN)/accent-rater serve

# Reproduce the bundled default model from ../shared/data (downloads and verifies the Whisper
# tiny.en weights once; see the README for the time).
train: $(STAMP)
	$(BIN)/accent-rater fetch-weights tiny.en
	$(BIN)/accent-rater train --config configs/default.toml
	$(BIN)/accent-rater fetch-weights --words
	$(BIN)/python -m accent_rater.training.pronunciation measure
	$(BIN)/python -m accent_rater.training.pronunciation fit

bench: $(STAMP)
	$(BIN)/python scripts/bench_frontend.py
	$(BIN)/python scripts/bench_rate.py

clean:
	rm -rf $(VENV) cache runs .pytest_cache
