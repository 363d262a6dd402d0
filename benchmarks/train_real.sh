#!/usr/bin/env bash
# Full 10-epoch GRU4Rec trainings on ../shared/data (yoochoose100k/rsc15, diginetica/diginetica):
# prints Recall@20, MRR@20, training seconds, events/s, wall seconds and peak RSS per data set.
# Arguments go to benchmarks/train_real.py (e.g. --sets yoochoose100k --epochs 2).
# Each training runs as a user's does: Keras on JAX, large allocations on huge pages, which the
# training command sets itself (model_code/gru4rec/training_env.py; a GLIBC_TUNABLES hugetlb value set here is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" benchmarks/train_real.py "$@"
