# ScriptMesh: `make run` starts everything on one machine, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test lint bench migration clean

run: $(INSTALLED)
	$(BIN)/scriptmesh dev

test: $(INSTALLED)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check orchestrator agent tests wsgi.py

bench: $(INSTALLED)
	$(BIN)/python -m tests.benchmarks

# Regenerate the initial migration from the models (only while 0.x has not shipped).
migration: $(INSTALLED)
	rm -rf /tmp/scriptmesh-migration && rm -f orchestrator/migrations/versions/0001_*.py
	SCRIPTMESH_DATA_DIR=/tmp/scriptmesh-migration $(BIN)/scriptmesh db revision \
		--autogenerate -m "initial schema" --rev-id 0001

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(INSTALLED)

clean:
	rm -rf $(VENV) instance .pytest_cache
