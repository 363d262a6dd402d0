#!/usr/bin/env bash
# Full 10-epoch GRU4Rec trainings on ../shared/data (yoochoose100k/rsc15, diginetica/diginetica):
# prints Recall@20, MRR@20, training seconds, events/s, wall seconds and peak RSS per data set.
# Arguments go to benchmarks/train_real.py (e.g. --sets yoochoose100k --epochs 2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" benchmarks/train_real.py "$@"
