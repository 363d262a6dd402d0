"""``python -m model_code.commands.recommend``, run as a user runs it: the endpoint's answers, without a server."""
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from inference.contracts import MAX_PAYLOAD_BYTES
from inference.local import LocalServer
from model_code.commands.recommend import BLOCK_BYTES
from tests.conftest import MODEL_VERSION, REPO_ROOT

HTTP_TIMEOUT = 60


def recommend(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model_code.commands.recommend", *argv], cwd=REPO_ROOT,
                          capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def items(model_dir) -> list[str]:
    return json.loads((model_dir / "items.json").read_text())


@pytest.fixture(scope="module")
def job_model(model_dir, tmp_path_factory) -> Path:
    """The test model with a job's own filters.json, which both the server and the command must apply."""
    target = tmp_path_factory.mktemp("recommend") / "model"
    shutil.copytree(model_dir, target)
    catalogue = json.loads((target / "items.json").read_text())
    (target / "filters.json").write_text(json.dumps({"exclude_items": catalogue[:3]}))
    return target


def requests_body(items: list[str]) -> bytes:
    """Requests of every kind: options per line, filters, unknown and empty sessions, bad and blank lines."""
    lines = [json.dumps({"session_id": n, "items": items[n % 40:n % 40 + 1 + n % 5], "k": 1 + n % 12,
                         "exclude_seen": n % 3 == 0}) for n in range(40)]
    lines += [
        json.dumps({"session_id": "home", "items": []}),
        json.dumps({"session_id": "ghost", "items": ["nobody"], "k": 3}),
        json.dumps({"session_id": "stock", "items": items[:2], "include_items": items[10:30], "k": 4}),
        "",
        '{"session_id": "cut", "items": [',
        json.dumps({"session_id": "k0", "items": items[:1], "k": 0}),
        "[1, 2]",
        json.dumps({"session_id": "ünï", "items": items[5:7]}, ensure_ascii=False) + "\r",
    ]
    return ("\n".join(lines) + "\n").encode()


def assert_same_lines(answer: bytes, expected: bytes) -> None:
    """The same lines, ids and order; scores equal to float32 rounding (a batch's size changes the matmul's sums)."""
    got, wanted = [[json.loads(line) for line in text.splitlines()] for text in (answer, expected)]
    assert len(got) == len(wanted)
    for line, reference in zip(got, wanted):
        scores = [[item.pop("score") for item in each.get("recommendations", [])] for each in (line, reference)]
        assert line == reference
        assert scores[0] == pytest.approx(scores[1], rel=1e-5, abs=1e-5)


@pytest.mark.slow
def test_recommend_writes_the_servers_answers_line_by_line(job_model, items, tmp_path):
    body = requests_body(items)
    source = tmp_path / "requests.jsonl"
    source.write_bytes(body)
    done = recommend(str(source), "--model-dir", str(job_model), "--out", str(tmp_path / "answers.jsonl"))
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    with LocalServer(job_model, workers=1) as server:
        served = requests.post(f"{server.url}/invocations", data=body, timeout=HTTP_TIMEOUT,
                               headers={"Content-Type": "application/jsonlines"})
    assert served.status_code == 200, served.text
    answers = (tmp_path / "answers.jsonl").read_bytes()
    assert_same_lines(answers, served.content)
    parsed = [json.loads(line) for line in answers.splitlines()]
    assert sum("error" in line for line in parsed) == 3 and parsed[40]["fallback"] is True
    assert not {r["item_id"] for line in parsed for r in line.get("recommendations", [])} & set(items[:3])


def test_recommend_scores_a_file_larger_than_the_servers_limit(model_dir, items, tmp_path):
    """Over 6 MB of requests (long session ids keep the line count small), read in more than one block:
    one answer per request in order, each the answer its session gets in a small file, and the
    progress bar reaches the end."""
    pattern = [items[n % 60:n % 60 + 1 + n % 4] for n in range(60)]
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    small.write_text("".join(json.dumps({"session_id": n, "items": s}) + "\n" for n, s in enumerate(pattern)))
    with open(large, "w") as handle:
        n = 0
        while handle.tell() <= MAX_PAYLOAD_BYTES:
            handle.write(json.dumps({"session_id": session_id(n), "items": pattern[n % 60], "k": 20}) + "\n")
            n += 1
    assert large.stat().st_size > 1.5 * BLOCK_BYTES
    done = recommend(str(large), "--model-dir", str(model_dir), "--out", str(tmp_path / "large.out"))
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "100%" in done.stderr.decode() and f"{n} answers by model {MODEL_VERSION}" in done.stderr.decode()
    reference = recommend(str(small), "--model-dir", str(model_dir), "--quiet")
    expected = reference.stdout.splitlines()
    got = (tmp_path / "large.out").read_bytes().splitlines()
    assert len(got) == n
    tiled = b"\n".join(json.dumps({**json.loads(expected[i % 60]), "session_id": session_id(i)}).encode()
                       for i in range(n))
    assert_same_lines(b"\n".join(got), tiled)


def test_recommend_groups_events_as_sessions_does(model_dir, small_data, tmp_path):
    events = small_data / "test.tsv.gz"
    grouped = tmp_path / "sessions.jsonl"
    made = subprocess.run([sys.executable, "-m", "model_code.data.sessions", str(events), "--out", str(grouped)],
                          cwd=REPO_ROOT, capture_output=True)
    assert made.returncode == 0, made.stderr.decode()
    from_events = recommend(str(events), "--model-dir", str(model_dir), "--quiet")
    from_lines = recommend(str(grouped), "--model-dir", str(model_dir), "--quiet")
    assert from_events.returncode == from_lines.returncode == 0, from_events.stderr.decode()
    assert from_events.stdout == from_lines.stdout
    assert len(from_events.stdout.splitlines()) == len(grouped.read_text().splitlines()) > 10


def session_id(n: int) -> str:
    return f"{n:06d}-" + "x" * 600


@pytest.mark.parametrize("problem", ["no model", "no input"])
def test_recommend_names_a_missing_model_or_input_and_writes_nothing(model_dir, tmp_path, problem):
    source = tmp_path / "requests.jsonl"
    source.write_text('{"items": []}\n')
    folder = tmp_path / "missing" if problem == "no model" else model_dir
    if problem == "no input":
        source = tmp_path / "absent.jsonl"
    done = recommend(str(source), "--model-dir", str(folder), "--out", str(tmp_path / "answers.jsonl"))
    assert done.returncode == 1
    assert (str(folder) if problem == "no model" else str(source)) in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["requests.jsonl"]


PROGRAM = """
import json, sys
from model_code.commands import recommend
code = recommend.main([sys.argv[1], "--model-dir", sys.argv[2], "--quiet", "--out", sys.argv[3]])
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {"tensorflow", "keras", "jax", "tf2onnx"})
print(json.dumps({"code": code, "heavy": heavy}))
"""


def test_recommend_loads_neither_tensorflow_nor_keras(model_dir, tmp_path):
    source = tmp_path / "requests.jsonl"
    source.write_text('{"items": []}\n')
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(source), str(model_dir), str(tmp_path / "out")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    assert json.loads((tmp_path / "out").read_text())["fallback"] is True


def test_recommend_reads_events_as_the_model_was_trained_to_and_flags_override(model_dir, small_data, tmp_path):
    """A model trained on `sid;iid;ts` files reads such files without flags; a flag given still wins."""
    shop_model = tmp_path / "model"
    shutil.copytree(model_dir, shop_model)
    metadata = json.loads((shop_model / "metadata.json").read_text())
    assert metadata["read_options"]["separator"] == "auto"  # train records what it read with
    metadata["read_options"].update(session_column="sid", item_column="iid", time_column="ts", separator=";")
    (shop_model / "metadata.json").write_text(json.dumps(metadata))
    rows = gzip.decompress((small_data / "test.tsv.gz").read_bytes()).decode().splitlines()
    (tmp_path / "shop.txt").write_text("\n".join(["sid;iid;ts"] + [row.replace("\t", ";") for row in rows[1:]]) + "\n")
    (tmp_path / "comma.txt").write_text("\n".join(["sid,iid,ts"] + [row.replace("\t", ",") for row in rows[1:]]) + "\n")
    reference = recommend(str(small_data / "test.tsv.gz"), "--model-dir", str(model_dir), "--quiet")
    inherited = recommend(str(tmp_path / "shop.txt"), "--model-dir", str(shop_model), "--quiet")
    overridden = recommend(str(tmp_path / "comma.txt"), "--model-dir", str(shop_model), "--quiet", "--separator", ",")
    for done in (reference, inherited, overridden):
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert inherited.stdout == overridden.stdout == reference.stdout != b""
