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

# The benchmark suite on its own PostgreSQL (port 55433); QUICK=1 for the reduced scale (< 5 minutes),
# PARTITIONED=1 to measure the ledger partitioned by month.
bench: venv
	$(PY) bench/run.py $(if $(filter-out 0,$(QUICK)),--quick,) $(if $(filter-out 0,$(PARTITIONED)),--partitioned,)

clean:
	rm -rf var .pytest_cache .hypothesis
