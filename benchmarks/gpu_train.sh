#!/usr/bin/env bash
# GRU4Rec on a GPU machine with Keras on JAX: trains yoochoose100k (rsc15 preset) and diginetica (diginetica
# preset) and prints training time, events/s, Recall@20, MRR@20 and peak RSS beside the reference's figures on
# one H100 GPU (ANCHORS.md: 61 s and 242 s for 10 epochs) and how many times faster this run trained.
# The ONNX export runs in a TensorFlow child process where TensorFlow is installed (the train-gpu image); on a
# machine without it training says so and writes the rest of the model directory.
#
#   benchmarks/gpu_train.sh [--epochs N] [--sets yoochoose100k diginetica] [--param k=v ...]
#
# Python packages the machine lacks (keras, namex, optree) travel as wheels in .whl/ and are installed into
# /tmp/site first. Data: $DATA_ROOT/<set>/{train,test}.tsv.gz, by default ../shared/data, else .data/ in the
# repository (a git-ignored copy carried to a machine that cannot see ../shared). Runs on a CPU too wherever
# JAX is installed (KERAS_BACKEND=jax), e.g. with --epochs 1 as a smoke test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -z "${DATA_ROOT:-}" ]; then
  if [ -d ../shared/data ]; then DATA_ROOT=../shared/data; else DATA_ROOT=.data; fi
fi
export KERAS_BACKEND=jax
"$PY" - <<'PY'
import jax, keras
print(f"keras {keras.__version__} on {keras.backend.backend()}, jax {jax.__version__}, devices {jax.devices()}", flush=True)
PY
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
exec "$PY" benchmarks/train_real.py --data-root "$DATA_ROOT" --reference h100 "$@"
