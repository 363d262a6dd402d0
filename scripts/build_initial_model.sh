#!/usr/bin/env bash
# Build build/model.tar.gz (or $OUT) where it is missing: the first model the endpoint serves (the CDK app
# uploads it as a file asset). A short training on the built-in synthetic data; the model
# directory's files sit at the archive root, as SageMaker unpacks them into /opt/ml/model.
# Written next to its final place and renamed, so an interrupted run leaves no half-written archive.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-build/model.tar.gz}
# the version every answer of the first model names: cdk.json's initial_model_version unless given
VERSION=${MODEL_VERSION:-$("$PY" -c 'import json; print(json.load(open("cdk.json"))["context"]["initial_model_version"])')}

if [[ -f $OUT ]]; then
    echo "$OUT exists; delete it to build a new one (the deployed first model changes only with initial_model_version)"
    exit 0
fi
mkdir -p "$(dirname "$OUT")"
work=$(mktemp -d "$(dirname "$OUT")/initial-model.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$PY" -m model_code.data.synthetic --out "$work/data" --sessions 600 --items 120 --seed 1
"$PY" -m model_code.commands.train --train "$work/data/train.tsv.gz" --test "$work/data/test.tsv.gz" \
    --epochs 2 --seed 1 --model-dir "$work/model" --quiet --no-progress
"$PY" -c 'import sys; from model_code.artifacts import record_model_version; record_model_version(*sys.argv[1:])' \
    "$work/model" "$VERSION"
# shellcheck disable=SC2046  # model file names have no spaces
tar -czf "$work/model.tar.gz" -C "$work/model" $(ls -A "$work/model")
mv "$work/model.tar.gz" "$OUT"
echo "wrote $OUT (model_version $VERSION)"
