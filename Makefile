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
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/biomechgpt run $(ARGS)

test: install
	$(BIN)/python -m pytest -q $(ARGS)

lint: install
	$(BIN)/pip install -q ruff && $(BIN)/ruff check .
