# ScriptMesh: `make run` starts everything on one machine, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test lint bench migration clean

# make run PORT=5001 HOST=0.0.0.0 (both optional) passes them to scriptmesh dev.
run: $(INSTALLED)
	$(BIN)/scriptmesh dev $(if $(PORT),--port $(PORT)) $(if $(HOST),--host $(HOST))

test: $(INSTALLED)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check orchestrator agent scriptmesh_cli tests wsgi.py

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
	$(BIN)/python -m pip install --quiet -e '.[hub,test]'
	touch $(INSTALLED)

clean:
	rm -rf $(VENV) instance .pytest_cache
