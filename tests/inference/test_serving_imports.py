"""The serving side never loads TensorFlow or Keras: importing the app, loading a model and answering a
request in a fresh interpreter leaves neither in ``sys.modules``."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import json, sys
import inference.predictor, inference.wsgi
client = inference.wsgi.app.test_client()
answered = [client.get("/ping").status_code,
            client.post("/invocations", json={"items": [json.load(open(sys.argv[1]))[0]], "k": 3}).status_code]
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {"tensorflow", "keras", "tf2onnx", "tf_keras"})
print(json.dumps({"answered": answered, "heavy": heavy, "loaded": sorted(m for m in ("onnxruntime", "flask", "numpy")
                                                                         if m in sys.modules)}))
"""


def test_serving_loads_neither_tensorflow_nor_keras(model_dir):
    env = {**os.environ, "OPT_ML_DIR": str(model_dir.parent)}
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(model_dir / "items.json")], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["answered"] == [200, 200], "the app did not load the model, so the check would prove nothing"
    assert report["loaded"] == ["flask", "numpy", "onnxruntime"]
    assert report["heavy"] == []
