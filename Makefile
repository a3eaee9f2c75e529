# Two entry points, both from a fresh clone with no API key:
#   make demo   set up .venv with the offline embedder, index docs/, search, ask
#   make test   set up .venv with the dev tools, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_INDEX := .ragkit-demo

.PHONY: demo test lint bench clean

# The default embedder runs on onnxruntime: neither demo nor test installs torch (tests of the
# optional sentence-transformers embedder skip without it).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.local-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[local,fast]'
	touch $@

$(VENV)/.dev-installed: $(VENV)/.local-installed pyproject.toml
	$(BIN)/pip install -q -e '.[local,fast,dev]'
	touch $@

demo: $(VENV)/.local-installed
	$(BIN)/ragkit index docs --index $(DEMO_INDEX)
	$(BIN)/ragkit search "how are BM25 and vector rankings fused?" --index $(DEMO_INDEX) -k 3
	$(BIN)/ragkit ask "How does ragkit decide not to answer a question?" --index $(DEMO_INDEX) -k 4

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check ragkit tests examples bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_INDEX)
