# Two commands for a fresh machine: `make run` (the demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SHELL := /bin/bash

.PHONY: run test venv bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

run: venv
	scripts/run-demo.sh

test: venv
	scripts/test.sh

clean:
	rm -rf var .pytest_cache .hypothesis
