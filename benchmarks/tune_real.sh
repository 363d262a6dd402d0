#!/usr/bin/env bash
# The tuning measurement of the README: a study on yoochoose100k (--valid-days 1, at most 60 trials or
# 45 minutes), then the best settings and the rsc15 preset trained on train+valid with seeds 1-3 and scored on
# the test set. Arguments go to benchmarks/tune_real.py (e.g. --trials 6 --epochs 2 for a short run;
# --set diginetica --time-budget 3h --start-from rsc15 for the diginetica one; --prune-after 0: no pruning).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" benchmarks/tune_real.py "$@"
