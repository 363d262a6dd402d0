"""How training, export and serving grow with the catalogue: ``benchmarks/scale.py --items 10000 100000 1000000``.

For each catalogue size, at the rsc15 preset's shape (one GRU layer of 100 units), in fresh
processes so that one measurement's memory never counts in another's:

* **train**: ``benchmarks/train_speed.py`` (the compiled training block on synthetic sessions) for
  ``--blocks`` timed blocks: events/s, and the process's peak resident memory;
* **export**: an untrained model of that size saved as ``model.keras``, then
  ``python -m model_code.export.scorer`` (TensorFlow, the ONNX check against Keras, and for large catalogues
  the search index): seconds, peak memory, and the sizes of ``scorer.onnx`` and the model directory;
* **serving in process**: the output layer is replaced by a clustered one of the same shape (an
  untrained table is random: no index finds structure in it; trained item vectors gather by what is
  bought together) and the index rebuilt for it (``benchmarks/index_recall.py`` measures the recall on
  a trained model and its own sessions); then single-session p50/p99 with exact scoring and
  with the index, the index's recall of the exact top 20 on those sessions, and batch sessions/s
  (1,000 sessions a call, exact);
* **serving through HTTP**: ``inference/serve`` with 2 workers: seconds from start to the first
  ``/ping`` 200, one-session JSON requests one at a time (p50/p99), each worker's resident and
  proportional (PSS: shared pages split between the processes that map them) memory.

Nothing here asserts anything about time. Prints a table and writes ``catalogue.json`` and
``catalogue.png`` into ``--out``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.serving import gunicorn_workers, percentiles_ms, random_sessions  # noqa: E402
from inference import search_index  # noqa: E402
from inference.engine import Recommender  # noqa: E402
from inference.local import LocalServer  # noqa: E402
from model_code import artifacts  # noqa: E402

PRESET = "rsc15"
SINGLE_SESSIONS = 200
BATCH_SESSIONS = 1000
HTTP_REQUESTS = 300

CHILD_PEAK = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "code": done.returncode,
                  "stdout": done.stdout[-2000:], "stderr": done.stderr[-2000:],
                  "peak_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""
"""Runs a command and reports its wall time and peak resident memory (this wrapper's only child)."""

UNTRAINED_MODEL = """
import sys
from pathlib import Path
from model_code.gru4rec.training_env import use_training_environment
use_training_environment()
from model_code import artifacts
from model_code.gru4rec.model import GRU4Rec
from model_code.gru4rec.params import PRESETS
n_items, folder = int(sys.argv[1]), Path(sys.argv[2])
params = PRESETS[sys.argv[3]]
model = GRU4Rec(n_items, layers=params.layers, embedding=params.embedding, embedding_size=params.embedding_size, seed=0)
model.save(folder / artifacts.MODEL_FILE)
items = [f"SKU-{i:08d}" for i in range(n_items)]
artifacts.write_json(folder / artifacts.ITEMS_FILE, items)
artifacts.write_json(folder / artifacts.METADATA_FILE, {"popular_items": items[:100]})
"""


def run_measured(*command: str) -> dict:
    """``command`` in a fresh wrapper process: seconds, peak bytes; raises with its stderr if it fails."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD_PEAK, *command], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["code"] != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {figures['stderr']}")
    return figures


def train_figures(n_items: int, blocks: int) -> dict:
    figures = run_measured(sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--preset", PRESET,
                           "--items", str(n_items), "--blocks", str(blocks))
    rate_line = next(line for line in figures["stdout"].splitlines() if "events/s" in line)
    events_per_s = float(rate_line.split(" events/s")[0].split(", ")[-1].replace(",", ""))
    return {"train_events_per_s": events_per_s, "train_peak_bytes": figures["peak_bytes"]}


def export_figures(n_items: int, model_dir: Path) -> dict:
    model_dir.mkdir(parents=True, exist_ok=True)
    run_measured(sys.executable, "-c", UNTRAINED_MODEL, str(n_items), str(model_dir), PRESET)
    figures = run_measured(sys.executable, "-m", "model_code.export.scorer", "--model-dir", str(model_dir))
    return {
        "export_s": figures["seconds"],
        "export_peak_bytes": figures["peak_bytes"],
        "scorer_bytes": sum(
            path.stat().st_size
            for path in (model_dir / artifacts.SCORER_FILE, model_dir / artifacts.SCORER_DATA_FILE)
            if path.exists()
        ),
        "model_dir_bytes": sum(path.stat().st_size for path in model_dir.iterdir() if path.is_file()),
    }


def clustered_layer(n_items: int, hidden: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors around n_items / 100 topics, with the untrained table's scale (+-1/sqrt(hidden)), and
    the untrained model's zero bias (with a random bias as large as the untrained sessions' scores are
    small, the ranking would be the bias alone, the same for every session, which no session model gives)."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(hidden)
    topics = rng.uniform(-scale, scale, (max(2, n_items // 100), hidden)).astype(np.float32)
    table = topics[rng.integers(0, len(topics), n_items)]
    table += rng.normal(0.0, 0.3 * scale, table.shape).astype(np.float32)
    return table, np.zeros(n_items, np.float32)


def use_clustered_layer(model_dir: Path) -> dict:
    """Swap in :func:`clustered_layer` of the same shape; rebuild the index for it (timed)."""
    table, _ = artifacts.read_output_layer(model_dir)
    table, bias = clustered_layer(*table.shape)
    artifacts.write_array(model_dir / artifacts.EMBEDDINGS_FILE, table)
    artifacts.write_array(model_dir / artifacts.BIAS_FILE, bias)
    if len(table) < search_index.INDEX_MIN_ITEMS:
        return {}
    start = time.perf_counter()
    path = search_index.write(model_dir, table, bias)
    return {"index_build_s": time.perf_counter() - start, "index_bytes": path.stat().st_size}


def single_latencies(engine: Recommender, sessions: list[list[str]], exact: bool) -> tuple[list, list[float]]:
    answers, seconds = [], []
    for session in sessions:
        start = time.perf_counter()
        answers.append(engine.recommend([session], k=20, exact=exact)[0])
        seconds.append(time.perf_counter() - start)
    return answers, seconds


def engine_figures(model_dir: Path, rng: np.random.Generator) -> dict:
    engine = Recommender.load(model_dir, top_k_search="auto")
    engine.warm_up()
    sessions = random_sessions(engine.items, SINGLE_SESSIONS, rng)
    exact, exact_s = single_latencies(engine, sessions, exact=True)
    figures = dict(zip(("exact_p50_ms", "exact_p99_ms"), percentiles_ms(exact_s)))
    if engine.search is not None:
        found, found_s = single_latencies(engine, sessions, exact=False)
        figures.update(zip(("index_p50_ms", "index_p99_ms"), percentiles_ms(found_s)))
        hits = [
            len({i for i, _ in a.recommendations} & {i for i, _ in b.recommendations}) for a, b in zip(exact, found)
        ]
        figures["recall_at_20"] = sum(hits) / (20 * len(sessions))
        figures["nprobe"] = engine.search.nprobe
    batch = random_sessions(engine.items, BATCH_SESSIONS, rng)
    start = time.perf_counter()
    engine.recommend(batch, k=20, exact=True)
    figures["batch_sessions_per_s"] = BATCH_SESSIONS / (time.perf_counter() - start)
    return figures


def memory_kib(pid: int) -> dict[str, int]:
    """Rss, Pss and the file-backed part of Pss of one process (/proc/PID/smaps_rollup), in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return {"rss": fields["Rss"], "pss": fields["Pss"], "pss_file": fields.get("Pss_File", 0)}


def http_figures(model_dir: Path, rng: np.random.Generator, log_path: Path) -> dict:
    items = artifacts.read_items(model_dir)
    bodies = [json.dumps({"items": session, "k": 20}) for session in random_sessions(items, HTTP_REQUESTS, rng)]
    with log_path.open("ab") as log:
        start = time.perf_counter()
        with LocalServer(model_dir, workers=2, log=log, ping_poll_seconds=0.02) as server:
            cold = time.perf_counter() - start
            client, seconds = requests.Session(), []
            for body in bodies:
                begin = time.perf_counter()
                response = client.post(f"{server.url}/invocations", data=body, timeout=60,
                                       headers={"Content-Type": "application/json"})
                seconds.append(time.perf_counter() - begin)
                response.raise_for_status()
            memory = [memory_kib(pid) for pid in gunicorn_workers(server.process.pid)]
    p50, p99 = percentiles_ms(seconds)
    return {"cold_start_s": cold, "http_p50_ms": p50, "http_p99_ms": p99,
            "worker_rss_mib": [m["rss"] / 1024 for m in memory], "worker_pss_mib": [m["pss"] / 1024 for m in memory],
            "worker_pss_file_mib": [m["pss_file"] / 1024 for m in memory]}


def measure_size(n_items: int, work: Path, blocks: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    model_dir = work / f"items-{n_items}"
    row = {"items": n_items, "load_before": os.getloadavg()[0]}
    row.update(train_figures(n_items, blocks))
    row.update(export_figures(n_items, model_dir))
    row.update(use_clustered_layer(model_dir))
    row.update(engine_figures(model_dir, rng))
    row.update(http_figures(model_dir, rng, work / "serve.log"))
    row["load_after"] = os.getloadavg()[0]
    return row


def table_lines(rows: list[dict]) -> list[str]:
    def cell(row, key, fmt):
        return format(row[key], fmt) if key in row else "-"

    lines = [f"{'items':>9} {'train ev/s':>10} {'train GiB':>9} {'export s':>8} {'onnx MiB':>8} {'dir MiB':>8} "
             f"{'exact p50/p99 ms':>16} {'index p50/p99 ms':>16} {'recall':>6} {'batch/s':>8} "
             f"{'http p50/p99 ms':>15} {'worker RSS/PSS MiB':>18} {'cold s':>6} {'load':>9}"]
    for row in rows:
        index = (f"{row['index_p50_ms']:.1f}/{row['index_p99_ms']:.1f}" if "index_p50_ms" in row else "-")
        memory = "/".join(f"{np.mean(row[key]):.0f}" for key in ("worker_rss_mib", "worker_pss_mib"))
        lines.append(
            f"{row['items']:>9,} {row['train_events_per_s']:>10,.0f} {row['train_peak_bytes'] / 2**30:>9.2f} "
            f"{row['export_s']:>8.1f} {row['scorer_bytes'] / 2**20:>8.0f} {row['model_dir_bytes'] / 2**20:>8.0f} "
            f"{row['exact_p50_ms']:>7.1f}/{row['exact_p99_ms']:<8.1f} {index:>16} "
            f"{cell(row, 'recall_at_20', '.3f'):>6} "
            f"{row['batch_sessions_per_s']:>8,.0f} {row['http_p50_ms']:>6.1f}/{row['http_p99_ms']:<8.1f} "
            f"{memory:>18} {row['cold_start_s']:>6.1f} {row['load_before']:>4.1f}-{row['load_after']:<4.1f}"
        )
    return lines


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda row: row["items"])
    x = [row["items"] for row in rows]
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    axes[0].plot(x, [row["exact_p50_ms"] for row in rows], "-o", label="in process, exact p50")
    axes[0].plot(
        x, [row.get("index_p50_ms", row["exact_p50_ms"]) for row in rows], "-s", label="in process, served p50"
    )
    axes[0].plot(x, [row["http_p50_ms"] for row in rows], "-^", label="HTTP, 2 workers, p50")
    axes[0].plot(x, [row["http_p99_ms"] for row in rows], "--^", label="HTTP, 2 workers, p99")
    axes[0].set_title("one session (ms)")
    axes[1].plot(x, [row["train_events_per_s"] for row in rows], "-o", label="training events/s")
    axes[1].plot(x, [row["batch_sessions_per_s"] for row in rows], "-s", label="batch sessions/s (exact)")
    axes[1].set_title("throughput")
    axes[2].plot(x, [row["train_peak_bytes"] / 2**20 for row in rows], "-o", label="training peak")
    axes[2].plot(x, [row["export_peak_bytes"] / 2**20 for row in rows], "-s", label="export peak")
    axes[2].plot(x, [row["model_dir_bytes"] / 2**20 for row in rows], "-x", label="model directory")
    axes[2].plot(x, [np.mean(row["worker_rss_mib"]) for row in rows], "-^", label="worker RSS")
    axes[2].plot(x, [np.mean(row["worker_pss_mib"]) for row in rows], "--^", label="worker PSS")
    axes[2].set_title("memory and size (MiB)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("items")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def run(sizes: list[int], work: Path, out: Path, blocks: int) -> int:
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), cpus: {os.cpu_count()}", flush=True)
    rows = []
    for n_items in sizes:
        rows.append(measure_size(n_items, work, blocks))
        print(table_lines(rows)[-1], flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "catalogue.json").write_text(json.dumps(rows, indent=1))
    plot(rows, out / "catalogue.png")
    print("\n".join(table_lines(rows)))
    print(f"wrote {out / 'catalogue.png'} and {out / 'catalogue.json'}")
    return 0
