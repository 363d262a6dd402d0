"""The images ``make image`` built, run as SageMaker runs them (marker ``image``: ``pytest -m image``).

``make test`` leaves these out; CI runs them after ``make image``. They skip, saying why, on a machine
that cannot run containers (no buildah, not root, no mount or network namespace); a missing image fails.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from benchmarks import containers
from inference.local import LocalServer
from model_code import artifacts
from tests.conftest import MODEL_VERSION, REPO_ROOT, run_module

pytestmark = pytest.mark.image

TRAINING_ONLY = ("tensorflow", "tensorflow-cpu", "keras", "tf-keras", "tf2onnx", "pandas", "scipy")
MODEL_FILES = {artifacts.MODEL_FILE, artifacts.SCORER_FILE, artifacts.EMBEDDINGS_FILE, artifacts.BIAS_FILE,
               artifacts.ITEMS_FILE, artifacts.METADATA_FILE, artifacts.PLOT_FILE}
HYPERPARAMETERS = {"layers": "24", "batch_size": "16", "n_sample": "24", "block_steps": "16",
                   "eval_batch_size": "64", "epochs": "2", "seed": "7"}
# What the image's Python has: importable top-level modules and installed distributions, as JSON
INVENTORY = """
import importlib.metadata, importlib.util, json
print(json.dumps({
    "importable": {name: importlib.util.find_spec(name) is not None for name in ("tensorflow", "keras")},
    "distributions": {d.metadata["Name"].lower().replace("_", "-"): d.version
                      for d in importlib.metadata.distributions()},
}))
"""


@pytest.fixture(scope="session", autouse=True)
def images():
    """Skip where containers cannot run; fail where they could but ``make image`` has not built them.

    Session-scoped so that it comes before the session's model fixtures: a skip trains nothing first."""
    reason = containers.unavailable_reason()
    if reason:
        pytest.skip(f"the images cannot run on this machine: {reason}")
    missing = [
        image for image in (containers.SERVE_IMAGE, containers.TRAIN_IMAGE) if not containers.image_exists(image)
    ]
    assert not missing, f"{', '.join(missing)} not in buildah's store: run `make image` first"


# -- the serve image, called as SageMaker calls it --------------------------------------------------------

def calls(items: list[str]) -> list[dict]:
    """The requests both servers get: one session, several sessions, a JSON-lines batch with a bad line."""
    lines = [{"session_id": "s1", "items": items[:3]}, {"session_id": "s2", "items": ["never-seen", items[5]]},
             {"session_id": "bad", "items": "not a list"}, {"session_id": "s3", "items": ["never-seen"]}]
    return [
        {"content_type": "application/json", "body": {"items": items[:4], "k": 5}},
        {"content_type": "application/json",
         "body": {"sessions": [{"session_id": "a", "items": items[2:6]}, {"session_id": "b", "items": items[7:8]}],
                  "k": 7, "exclude_seen": True}},
        {"content_type": "application/jsonlines", "body": lines},
    ]


def encode(call: dict) -> bytes:
    if call["content_type"] == "application/jsonlines":
        return "".join(json.dumps(line) + "\n" for line in call["body"]).encode()
    return json.dumps(call["body"]).encode()


def decode(content_type: str, body: bytes):
    if content_type == "application/jsonlines":
        return [json.loads(line) for line in body.decode().splitlines()]
    return json.loads(body)


def same(a, b) -> bool:
    """Equal JSON values, floats within 1e-5 (the same ONNX Runtime and NumPy builds on both sides)."""
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, (int, float))
            and isinstance(b, (int, float))
            and math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5)
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return a == b


@pytest.fixture(scope="module")
def expected(model_dir):
    """The answers of the same model served from the repository (inference/serve on this machine)."""
    answers = []
    with LocalServer(model_dir, workers=1) as server:
        for call in calls(artifacts.read_items(model_dir)):
            response = requests.post(f"{server.url}/invocations", data=encode(call), timeout=60,
                                     headers={"Content-Type": call["content_type"], "Accept": call["content_type"]})
            assert response.status_code == 200, response.text
            answers.append(decode(call["content_type"], response.content))
    return answers


@pytest.mark.parametrize("isolated", [False, True], ids=["network", "no-network"])
def test_serve_image_answers_as_the_repository_does_and_stops_on_sigterm(model_dir, expected, isolated, tmp_path):
    with containers.ImageServer(model_dir, isolated=isolated, log_path=tmp_path / "serve.log") as server:
        if isolated:
            assert server.interfaces() == ["lo"], "no network but loopback in SageMaker's network isolation"
            assert server.port == 8080
        status, body = server.request("GET", "/ping")
        assert status == 200 and json.loads(body) == {"status": "ready", "model_version": MODEL_VERSION}
        for call, answer in zip(calls(artifacts.read_items(model_dir)), expected):
            status, body = server.request("POST", "/invocations", encode(call), call["content_type"],
                                          accept=call["content_type"])
            assert status == 200, body
            got = decode(call["content_type"], body)
            assert same(got, answer), f"{call['content_type']}: the image answered {got}, the repository {answer}"
    assert server.exit_code == 0, (tmp_path / "serve.log").read_text()[-3000:]


def test_expected_answers_are_real_recommendations(expected):
    """The reference itself: k recommendations per session, the bad JSON line answered in place."""
    single, several, lines = expected
    assert len(single["recommendations"]) == 5 and single["unknown_items"] == 0
    assert [len(r["recommendations"]) for r in several["results"]] == [7, 7]
    assert [line["session_id"] for line in lines] == ["s1", "s2", "bad", "s3"]
    assert "error" in lines[2] and lines[1]["unknown_items"] == 1 and lines[3].get("fallback") is True


# -- what each image holds --------------------------------------------------------------------------------

def inventory(image: str) -> dict:
    done = containers.run_command(image, ["python3", "-c", INVENTORY])
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def pins(name: str) -> dict[str, str]:
    """{name: version} of a requirements file's exact pins, following ``-r`` includes."""
    found = {}
    for raw in (REPO_ROOT / name).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found.update(pins(line[3:].strip()))
        elif line:
            package, version = line.split("==")
            found[package.lower().replace("_", "-")] = version
    return found


def test_serve_image_holds_no_tensorflow_or_keras():
    found = inventory(containers.SERVE_IMAGE)
    assert found["importable"] == {"tensorflow": False, "keras": False}
    assert not set(found["distributions"]) & set(TRAINING_ONLY)
    for package, version in pins("requirements-serve.txt").items():
        assert found["distributions"].get(package) == version, f"{package}: {found['distributions'].get(package)}"


def test_train_image_holds_tensorflow_and_keras():
    found = inventory(containers.TRAIN_IMAGE)
    assert found["importable"] == {"tensorflow": True, "keras": True}
    for package, version in pins("requirements-train.txt").items():
        assert found["distributions"].get(package) == version, f"{package}: {found['distributions'].get(package)}"


# -- the train image, as a training job -------------------------------------------------------------------

def test_train_image_trains_from_a_folder_laid_out_as_opt_ml(small_data, tmp_path):
    root = tmp_path / "opt_ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(HYPERPARAMETERS))
    for channel in ("train", "test"):
        (root / "input" / "data" / channel).mkdir(parents=True)
        (root / "input" / "data" / channel / f"{channel}.tsv.gz").write_bytes(
            (small_data / f"{channel}.tsv.gz").read_bytes()
        )
    (root / "model").mkdir()

    done = containers.run_command(containers.TRAIN_IMAGE, ["train"], volumes={root: "/opt/ml"})

    assert done.returncode == 0, done.stderr[-3000:]
    assert not (root / "output" / "failure").exists()
    model = root / "model"
    assert {p.name for p in model.iterdir()} == MODEL_FILES
    meta = artifacts.read_metadata(model)
    assert meta["data"]["train"]["source"] == "/opt/ml/input/data/train", "the job read the container's /opt/ml"
    assert meta["parameters"]["layers"] == [24] and meta["training"]["epochs"] == 2
    assert {"recall@20", "mrr@20"} <= set(meta["metrics"])
    lines = done.stdout.splitlines()
    for name, value in meta["metrics"].items():
        assert f"{name}={value:.4f};" in lines, f"no metric line for {name}"
    assert len(artifacts.read_items(model)) > 0


# -- cold start ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def large_model(tmp_path_factory) -> Path:
    """A model with a catalogue of about 20,000 items and 256 units, trained briefly (its size is the point)."""
    folder = tmp_path_factory.mktemp("large_model")
    run_module("model_code.data.synthetic", "--out", str(folder / "data"), "--sessions", "20000", "--items", "30000",
               "--seed", "3")
    run_module(
        "model_code.commands.train",
        "--train",
        str(folder / "data" / "train.tsv.gz"),
        "--epochs",
        "1",
        "--seed",
        "1",
        "--quiet",
        "--no-progress",
        "--model-dir",
        str(folder / "model"),
        "--param",
        "layers=256",
        "--param",
        "batch_size=64",
        "--param",
        "n_sample=256",
        "--param",
        "block_steps=32",
    )
    return folder / "model"


def test_cold_start_benchmark_serves_a_small_and_a_large_model(model_dir, large_model, tmp_path):
    """The benchmark prints container start -> first /ping 200 per model; the times are not judged here."""
    figures_file = tmp_path / "cold_start.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "image_cold_start.py"),
                           "--model", f"small={model_dir}", "--model", f"large={large_model}", "--repeats", "1",
                           "--json", str(figures_file)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    figures = json.loads(figures_file.read_text())
    for name, folder in (("small", model_dir), ("large", large_model)):
        row = figures["cold_start"][name]
        assert row["items"] == len(artifacts.read_items(folder))
        assert len(row["seconds"]) == 1 and f"{row['median_s']:.2f}" in done.stdout
    assert figures["cold_start"]["large"]["items"] > 100 * figures["cold_start"]["small"]["items"]
    assert set(figures["image_sizes"]) >= {containers.SERVE_IMAGE, containers.TRAIN_IMAGE}
