#!/usr/bin/env bash
# Full 10-epoch GRU4Rec trainings on ../shared/data (yoochoose100k/rsc15, diginetica/diginetica):
# prints Recall@20, MRR@20, training seconds, events/s, wall seconds and peak RSS per data set.
# Arguments go to benchmarks/train_real.py (e.g. --sets yoochoose100k --epochs 2).
# As in the training image: Keras on JAX, large allocations on huge pages (either can be overridden).
set -euo pipefail
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" benchmarks/train_real.py "$@"
