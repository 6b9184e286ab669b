# The two commands the README starts with: `make run` and `make test`. Both set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ES := tools/elasticsearch/es
export CIVICSOC_DATA_DIR ?= $(CURDIR)/.work/data

.PHONY: run test install lint bench es-start es-stop clean system-deps

$(BIN)/civicsoc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/civicsoc

## run: install, then serve the API on the embedded SQLite store (.work/data/civicsoc.db)
run: install
	$(BIN)/civicsoc serve

## system-deps: the Debian tools civicsoc and its tests run (tshark for captures, logger, openssl,
## chromium for the UI tests, poppler's pdftotext/pdftoppm to read back PDF reports)
SYSTEM_TOOLS := tshark capinfos logger openssl chromium pdftotext pdftoppm
SYSTEM_PACKAGES := tshark openssl bsdutils chromium poppler-utils fonts-dejavu-core
system-deps:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages for:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null \
	      || { echo "apt-get install failed"; exit 1; }; \
	  else \
	    echo "missing:$$missing. Install them: sudo apt-get install $(SYSTEM_PACKAGES)"; exit 1; \
	  fi; \
	fi

## test: install, lint, start a real Elasticsearch node (built from Maven Central), run every test
test: install lint system-deps
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
