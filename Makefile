# The two commands the README starts with: `make run` and `make test`. Both set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ES := tools/elasticsearch/es
export CIVICSOC_DATA_DIR ?= $(CURDIR)/.work/data

.PHONY: run test install lint bench es-start es-stop clean

$(BIN)/civicsoc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/civicsoc

## run: install, then serve the API on the embedded SQLite store (.work/data/civicsoc.db)
run: install
	$(BIN)/civicsoc serve

## test: install, lint, start a real Elasticsearch node (built from Maven Central), run every test
test: install lint
	@started=0; \
	if ! $(ES) status >/dev/null 2>&1; then $(ES) start || exit 1; started=1; fi; \
	$(BIN)/pytest; status=$$?; \
	if [ $$started = 1 ]; then $(ES) stop; fi; \
	exit $$status

lint: install
	$(BIN)/ruff check .

## bench: store throughput and latency on both backends (needs `make es-start`)
bench: install
	$(BIN)/python -m bench.store

es-start:
	$(ES) start

es-stop:
	$(ES) stop

clean:
	-$(ES) stop
	rm -rf $(VENV) .work tools/elasticsearch/target
