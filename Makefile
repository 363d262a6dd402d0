# Two commands a new user runs: `make demo` and `make test`. Each sets itself up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test synth clean

setup: $(STAMP) nginx

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

.PHONY: nginx
nginx:
	./scripts/ensure_nginx.sh

demo: setup
	./scripts/demo.sh

test: setup
	$(PY) -m pytest

clean:
	rm -rf demo_output cdk.out .pytest_cache
