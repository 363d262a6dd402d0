#!/usr/bin/env bash
# The main job end to end on the built-in data: generate sessions, run the baselines, train GRU4Rec,
# and show all three side by side. Output lands in demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=demo_output
EPOCHS=${DEMO_EPOCHS:-5}
mkdir -p "$OUT"

echo "== 1. built-in session data"
$PY -m model_code.data.synthetic --out "$OUT/data"

echo "== 2. baselines (most-popular, item-kNN)"
$PY -m model_code.ranking.baselines --train "$OUT/data/train.tsv.gz" --test "$OUT/data/test.tsv.gz" \
    --out "$OUT/baselines.json"

echo "== 3. GRU4Rec ($EPOCHS epochs, rsc15 parameters)"
rm -rf "$OUT/model"
$PY -m model_code.commands.train --train "$OUT/data/train.tsv.gz" --test "$OUT/data/test.tsv.gz" \
    --preset rsc15 --epochs "$EPOCHS" --model-dir "$OUT/model"

echo "== 4. GRU4Rec beside the baselines (conservative ties)"
$PY - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
from model_code import artifacts
from model_code.commands.report import metrics_table

out = Path(sys.argv[1])
rows = json.loads((out / "baselines.json").read_text())
metadata = artifacts.read_metadata(out / "model")
rows["gru4rec"] = metadata["metrics"]
print(metrics_table(rows))
training = metadata["training"]
print(f"\nGRU4Rec trained in {training['seconds']:.1f} s ({training['events_per_second']:.0f} events/s)")
print(f"model directory: {out / 'model'} ({', '.join(sorted(p.name for p in (out / 'model').iterdir()))})")
print(f"training curve:  {out / 'model' / artifacts.PLOT_FILE}")
PYEOF

echo "== 5. the SageMaker container's serve on this model: a JSON request and a JSON-lines batch"
$PY scripts/serve_demo.py --model-dir "$OUT/model" --test "$OUT/data/test.tsv.gz"

echo "== 6. the playground: pick items, watch the recommendations change, read the model's report"
echo "   $PY -m inference.playground --model-dir $OUT/model   (add --items FILE for names; then open http://127.0.0.1:8765/)"
