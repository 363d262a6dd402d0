"""Serving speed and memory, against the obvious alternative, in one run.

For each model directory:

- in-process engine: single-session latency p50/p99 and sessions/s in batches of 1,000, beside a
  plain NumPy matmul of the same shapes (the ceiling for scoring a batch);
- HTTP through the real ``inference/serve`` (nginx -> gunicorn -> Flask -> ONNX Runtime) at
  concurrency 1, 8 and 32: requests/s, p50, p99 and errors, measured with ``wrk`` where it is
  installed (``apt-get install wrk``) and with a Python client otherwise;
- Batch Transform shape: 6 MB JSON-lines payloads posted to ``/invocations``, sessions/s, and each
  gunicorn worker's peak resident size while answering them (VmHWM, reset before the first payload;
  ``--batch-only`` measures just this, against a fresh server);
- RSS per gunicorn worker;
- cold start: the time from starting ``serve`` (real nginx + gunicorn, as the serving tests run it) to
  its first ``/ping`` 200, ``--cold-starts`` times, median and max (``benchmarks/image_cold_start.py``
  measures the same for the container image);
- business rules: a request with a 10,000-id ``include_items`` list against the same request without
  it, in the engine and through the Flask app (parsing the list included), and batches of 1,000
  sharing one list (``--filters-only`` measures just this);
- the same HTTP figures and RSS for a Flask app that calls Keras ``predict`` per request
  (``benchmarks/keras_predict_app.py``) under gunicorn with the same number of workers.

Prints a table per model and, with ``--json FILE``, writes every figure as JSON.

    .venv/bin/python benchmarks/serving.py --model yoochoose100k=build/bench_models/yoochoose100k \\
        --model diginetica=build/bench_models/diginetica
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from inference.engine import Recommender  # noqa: E402
from inference.local import LocalServer, free_port, stop, wait_for_ping  # noqa: E402
from inference.processes import children, command_line, descendants, rss_mib  # noqa: E402
from model_code import artifacts  # noqa: E402

PAYLOAD_BYTES = 6 * 1024 * 1024
BATCH_INVOCATION_TIMEOUT_S = 900  # MODEL_SERVER_TIMEOUT of the batch stack's transform jobs
BODY_VARIANTS = 200
COLD_START_POLL_S = 0.02  # /ping polling interval while timing a cold start: the figures' resolution


def random_sessions(items: list[str], n: int, rng: np.random.Generator, max_length: int = 10) -> list[list[str]]:
    """``n`` sessions of 1..max_length item ids drawn from the catalogue."""
    lengths = rng.integers(1, max_length + 1, size=n)
    picks = rng.integers(0, len(items), size=int(lengths.sum()))
    sessions, start = [], 0
    for length in lengths:
        sessions.append([items[i] for i in picks[start:start + length]])
        start += length
    return sessions


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    values = np.asarray(seconds) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def bench_engine(model_dir: Path, rng: np.random.Generator, single: int = 2000, batch: int = 1000) -> dict:
    """Single-session latency and batch throughput of the in-process engine, and the matmul ceiling."""
    engine = Recommender.load(model_dir)
    engine.warm_up()
    items = artifacts.read_items(model_dir)
    sessions = random_sessions(items, single, rng)
    latencies = []
    for session in sessions:
        start = time.perf_counter()
        engine.recommend([session], k=20)
        latencies.append(time.perf_counter() - start)
    p50, p99 = percentiles_ms(latencies)
    batches = [random_sessions(items, batch, rng) for _ in range(5)]
    engine.recommend(batches[0], k=20)
    start = time.perf_counter()
    for sessions_batch in batches:
        engine.recommend(sessions_batch, k=20)
    batch_rate = batch * len(batches) / (time.perf_counter() - start)
    return {
        "single_p50_ms": p50, "single_p99_ms": p99, "single_per_s": 1.0 / float(np.mean(latencies)),
        "batch_sessions_per_s": batch_rate, "matmul_sessions_per_s": matmul_rate(model_dir, batch, rng),
    }


FILTER_IDS = 10_000



def _calls(engine, client, session, include, other, plain, filtered) -> dict:
    """The timed calls for one session: the engine alone and the app, each with and without a filter list."""
    def post(body):
        return client.post("/invocations", data=body, content_type="application/json")

    return {
        "engine_plain": lambda: engine.recommend([session], k=20),
        "engine_repeated_list": lambda: engine.recommend(
            [session], k=20, filters=[engine.item_filter(include=include)]),
        "engine_new_list": lambda: engine.recommend([session], k=20, filters=[engine.item_filter(include=other)]),
        "app_plain": lambda: post(plain),
        "app_repeated_list": lambda: post(filtered),
    }

def bench_filters(model_dir: Path, rng: np.random.Generator, requests_n: int = 300, rounds: int = 3) -> dict:
    """What a 10,000-id include list costs a one-session request, against the same request without it.

    Engine alone, with the list a shop sends with every request (the engine keeps the last few filters)
    and with a list it has not seen (more lists than it keeps, in turn); and through the Flask app,
    parsing the list included. Interleaved in rounds, so that load on the machine hits every variant
    alike. Also batches of 1,000 sessions sharing one list.
    """
    from inference.engine import FILTER_CACHE_SIZE
    from inference.predictor import create_app

    engine = Recommender.load(model_dir)
    engine.warm_up()
    items = artifacts.read_items(model_dir)
    size = min(FILTER_IDS, len(items))
    lists = [[items[i] for i in rng.choice(len(items), size=size, replace=False)] for _ in range(FILTER_CACHE_SIZE + 1)]
    include = lists[0]
    sessions = random_sessions(items, requests_n, rng)
    client = create_app(model_dir).test_client()
    bodies = [(json.dumps({"items": session, "k": 20}).encode(),
               json.dumps({"items": session, "k": 20, "include_items": include}).encode()) for session in sessions]
    timings: dict[str, list[float]] = {}
    for _ in range(rounds):
        for n, (session, (plain, filtered)) in enumerate(zip(sessions, bodies)):
            other = lists[1 + n % FILTER_CACHE_SIZE] if n % 2 else lists[1 + (n + 2) % FILTER_CACHE_SIZE]
            calls = _calls(engine, client, session, include, other, plain, filtered)
            for key, call in calls.items():
                timings.setdefault(key, []).append(_timed(call))
    figures = {f"{key}_p50_ms": percentiles_ms(values)[0] for key, values in timings.items()}
    batch = random_sessions(items, 1000, rng)
    shared = engine.item_filter(include=include)
    figures["batch_plain_per_s"] = 1000 / min(_timed(lambda: engine.recommend(batch, k=20)) for _ in range(rounds))
    figures["batch_include_per_s"] = 1000 / min(_timed(lambda: engine.recommend(batch, k=20, filters=[shared] * 1000))
                                                for _ in range(rounds))
    for variant in ("engine_repeated_list", "engine_new_list"):
        figures[f"{variant}_overhead"] = figures[f"{variant}_p50_ms"] / figures["engine_plain_p50_ms"] - 1
    figures["app_repeated_list_overhead"] = figures["app_repeated_list_p50_ms"] / figures["app_plain_p50_ms"] - 1
    figures["batch_overhead"] = figures["batch_plain_per_s"] / figures["batch_include_per_s"] - 1
    return figures


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def print_filters(name: str, figures: dict) -> None:
    print(f"  {name}: a {FILTER_IDS:,}-id include_items list, p50 of one session without it"
          f" {figures['engine_plain_p50_ms']:.2f} ms (engine) / {figures['app_plain_p50_ms']:.2f} ms (app);"
          f" with the list sent before {figures['engine_repeated_list_p50_ms']:.2f} ms"
          f" ({figures['engine_repeated_list_overhead']:+.0%}) / {figures['app_repeated_list_p50_ms']:.2f} ms"
          f" ({figures['app_repeated_list_overhead']:+.0%}); with a new list {figures['engine_new_list_p50_ms']:.2f} ms"
          f" ({figures['engine_new_list_overhead']:+.0%}); batches of 1,000 sharing one list"
          f" {figures['batch_plain_per_s']:,.0f} / {figures['batch_include_per_s']:,.0f} sessions/s"
          f" ({figures['batch_overhead']:+.0%})")


def matmul_rate(model_dir: Path, batch: int, rng: np.random.Generator, repeats: int = 10) -> float:
    """Sessions/s of ``hidden @ table.T + bias`` alone for a batch of random hidden states."""
    table, bias = artifacts.read_output_layer(model_dir)
    hidden = rng.standard_normal((batch, table.shape[1])).astype(np.float32)
    hidden @ table.T + bias
    start = time.perf_counter()
    for _ in range(repeats):
        hidden @ table.T + bias
    return batch * repeats / (time.perf_counter() - start)


@contextmanager
def keras_server(model_dir: Path, workers: int, log_path: Path):
    """The Keras-predict alternative under gunicorn on a free port: yields (url, gunicorn pid)."""
    port = free_port()
    env = dict(os.environ, MODEL_DIR=str(model_dir.resolve()), PYTHONPATH=str(REPO_ROOT))
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
               "--timeout", "120", "--log-level", "warning", "benchmarks.keras_predict_app:app"]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            wait_for_ping(url, process)
            yield url, process.pid
        finally:
            stop(process)


@contextmanager
def onnx_server(model_dir: Path, workers: int, log_path: Path):
    """The real ``inference/serve`` over a temporary /opt/ml: yields (url, serve pid).

    Its invocation timeout is the batch stack's (a 6 MB payload of a large catalogue takes about a minute).
    """
    os.environ.setdefault("MODEL_SERVER_TIMEOUT", str(BATCH_INVOCATION_TIMEOUT_S))
    with open(log_path, "ab") as log, LocalServer(model_dir, workers=workers, log=log) as server:
        yield server.url, server.process.pid


def request_bodies(items: list[str], rng: np.random.Generator) -> list[str]:
    return [json.dumps({"items": session, "k": 20}) for session in random_sessions(items, BODY_VARIANTS, rng)]


WRK_SCRIPT = """
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "/invocations", nil, bodies[i])
end
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format('WRK_JSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"errors": %%d}\\n', summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.connect + errors.read + errors.write + errors.status + errors.timeout))
end
"""


def load_wrk(url: str, bodies: list[str], concurrency: int, seconds: int, workdir: Path) -> dict:
    bodies_file = workdir / "bodies.txt"
    bodies_file.write_text("\n".join(bodies) + "\n")
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT % {"bodies": bodies_file})
    threads = min(concurrency, 2)
    done = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "30s",
         "-s", str(script), url], capture_output=True, text=True, check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("WRK_JSON "))
    figures = json.loads(line[len("WRK_JSON "):])
    return {
        "requests_per_s": figures["requests"] / (figures["duration_us"] / 1e6),
        "p50_ms": figures["p50_us"] / 1000.0, "p99_ms": figures["p99_us"] / 1000.0,
        "errors": figures["errors"], "requests": figures["requests"],
    }


def load_python(url: str, bodies: list[str], concurrency: int, seconds: int, workdir: Path) -> dict:
    """A keep-alive client per thread; counts any non-200 or exception as an error."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(offset: int) -> None:
        session, i, mine, failed = requests.Session(), offset, [], 0
        while time.monotonic() < deadline:
            body = bodies[i % len(bodies)]
            i += 1
            start = time.perf_counter()
            try:
                ok = session.post(f"{url}/invocations", data=body, timeout=30,
                                  headers={"Content-Type": "application/json"}).status_code == 200
            except requests.RequestException:
                ok = False
            mine.append(time.perf_counter() - start)
            failed += not ok
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    p50, p99 = percentiles_ms(latencies)
    return {"requests_per_s": len(latencies) / (time.monotonic() - started), "p50_ms": p50, "p99_ms": p99,
            "errors": errors[0], "requests": len(latencies)}


def bench_batch(url: str, items: list[str], rng: np.random.Generator, payloads: int) -> dict:
    """Sessions/s for Batch Transform-sized JSON-lines payloads (just under 6 MB each)."""
    lines, size, n = [], 0, 0
    while True:
        line = json.dumps({"session_id": f"s{n}", "items": random_sessions(items, 1, rng)[0]})
        if size + len(line) + 1 > PAYLOAD_BYTES - 1024:
            break
        lines.append(line)
        size += len(line) + 1
        n += 1
    body = ("\n".join(lines) + "\n").encode()
    elapsed, errors = 0.0, 0
    for _ in range(payloads):
        start = time.perf_counter()
        response = requests.post(f"{url}/invocations", data=body, timeout=300,
                                 headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"})
        elapsed += time.perf_counter() - start
        output = response.text.splitlines()
        errors += response.status_code != 200 or len(output) != len(lines) or any('"error"' in o for o in output)
    return {"payload_mb": len(body) / 1e6, "sessions_per_payload": len(lines),
            "sessions_per_s": len(lines) * payloads / elapsed, "errors": errors}


def cold_starts(model_dir: Path, workers: int, repeats: int, log_path: Path) -> dict:
    """Seconds from starting ``serve`` to its first ``/ping`` 200, ``repeats`` times, each server stopped
    (SIGTERM, which must end it with 0) before the next starts; their median and max."""
    seconds = []
    with log_path.open("ab") as log:
        for _ in range(repeats):
            server = LocalServer(model_dir, workers=workers, log=log, ping_poll_seconds=COLD_START_POLL_S)
            start = time.perf_counter()
            with server:
                seconds.append(time.perf_counter() - start)
            if server.exit_code != 0:
                raise RuntimeError(f"serve exited with {server.exit_code} after SIGTERM; see {log_path}")
    return {"seconds": seconds, "median_s": float(np.median(seconds)), "max_s": max(seconds)}


def gunicorn_workers(root_pid: int) -> list[int]:
    """The gunicorn workers under ``root_pid``: gunicorn processes whose parent is gunicorn."""
    gunicorn = {pid for pid in [root_pid, *descendants(root_pid)] if "gunicorn" in command_line(pid)}
    return sorted({child for pid in gunicorn for child in children(pid)} & gunicorn)


def worker_rss_mib(root_pid: int) -> list[float]:
    """RSS of the gunicorn workers under ``root_pid``."""
    return [rss for rss in map(rss_mib, gunicorn_workers(root_pid)) if rss is not None]


def reset_peak_rss(root_pid: int) -> None:
    """Start each gunicorn worker's peak resident size (VmHWM) afresh (Linux: ``5`` written to clear_refs)."""
    for pid in gunicorn_workers(root_pid):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def worker_peak_rss_mib(root_pid: int) -> list[float]:
    """Each gunicorn worker's peak resident size (VmHWM) since the last reset, in MiB."""
    peaks = []
    for pid in gunicorn_workers(root_pid):
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        peaks.append(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024.0)
    return peaks


def bench_http(server, args, bodies, workdir: Path, label: str, batch_items=None) -> dict:
    """Load levels, optional Batch Transform payloads and worker RSS for one server context."""
    load = load_wrk if shutil.which("wrk") and not args.python_client else load_python
    results: dict = {"load_generator": "wrk" if load is load_wrk else "python"}
    with server as (url, pid):
        for concurrency in [] if args.batch_only else args.concurrency:
            print(f"  {label}: concurrency {concurrency} for {args.seconds} s", flush=True)
            results[f"c{concurrency}"] = load(url, bodies, concurrency, args.seconds, workdir)
        if batch_items is not None:
            print(f"  {label}: 6 MB JSON-lines payloads", flush=True)
            rss_before = worker_rss_mib(pid)
            reset_peak_rss(pid)
            results["batch"] = bench_batch(url, batch_items, np.random.default_rng(1), args.payloads)
            results["batch"]["worker_peak_rss_mib"] = worker_peak_rss_mib(pid)
            results["batch"]["worker_rss_before_mib"] = rss_before
        results["worker_rss_mib"] = worker_rss_mib(pid)
    return results


def bench_model(name: str, model_dir: Path, args) -> dict:
    rng = np.random.default_rng(args.seed)
    items = artifacts.read_items(model_dir)
    table, _ = artifacts.read_output_layer(model_dir)
    print(f"== {name}: {len(items):,} items x {table.shape[1]} units", flush=True)
    figures = {"items": len(items), "units": int(table.shape[1]), "workers": args.workers}
    if args.batch_only:
        with tempfile.TemporaryDirectory(prefix="bench_serving_") as tmp:
            figures["onnx_http"] = bench_http(onnx_server(model_dir, args.workers, Path(tmp) / "serve.log"), args, [],
                                              Path(tmp), "onnx serve", batch_items=items)
        return figures
    print("  in-process engine", flush=True)
    figures["engine"] = bench_engine(model_dir, rng)
    figures["filters"] = bench_filters(model_dir, rng)
    if args.filters_only:
        return figures
    bodies = request_bodies(items, rng)
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as tmp:
        workdir = Path(tmp)
        print(f"  cold start of serve, {args.cold_starts} times", flush=True)
        figures["cold_start"] = cold_starts(model_dir, args.workers, args.cold_starts, workdir / "cold_start.log")
        figures["onnx_http"] = bench_http(onnx_server(model_dir, args.workers, workdir / "serve.log"), args, bodies,
                                          workdir, "onnx serve", batch_items=items)
        if not args.skip_keras:
            figures["keras_http"] = bench_http(keras_server(model_dir, args.workers, workdir / "keras.log"), args,
                                               bodies, workdir, "keras predict")
    return figures


def ratios(figures: dict) -> dict:
    if "engine" not in figures or "onnx_http" not in figures:
        return {}
    engine, onnx = figures["engine"], figures["onnx_http"]
    found = {
        "http_c8_vs_in_process_single": onnx["c8"]["requests_per_s"] / engine["single_per_s"],
        "batch_engine_vs_matmul": engine["batch_sessions_per_s"] / engine["matmul_sessions_per_s"],
    }
    if "keras_http" in figures:
        keras = figures["keras_http"]
        found["http_c8_vs_keras_c8"] = onnx["c8"]["requests_per_s"] / keras["c8"]["requests_per_s"]
        found["worker_rss_vs_keras"] = float(np.mean(onnx["worker_rss_mib"]) / np.mean(keras["worker_rss_mib"]))
    return found


def print_table(name: str, figures: dict, concurrency: list[int]) -> None:
    print(f"\n{name} ({figures['items']:,} items x {figures['units']} units, {figures['workers']} workers)")
    if "engine" not in figures:
        print_batch(figures["onnx_http"]["batch"])
        return
    engine = figures["engine"]
    print(f"  in-process single session: p50 {engine['single_p50_ms']:.3f} ms, p99 {engine['single_p99_ms']:.3f} ms,"
          f" {engine['single_per_s']:,.0f} sessions/s")
    print(f"  in-process batches of 1,000: {engine['batch_sessions_per_s']:,.0f} sessions/s;"
          f" numpy matmul alone {engine['matmul_sessions_per_s']:,.0f} sessions/s")
    print_filters("business rules", figures["filters"])
    if "onnx_http" not in figures:
        return
    cold = figures["cold_start"]
    print(f"  cold start, serve started -> first /ping 200: median {cold['median_s']:.2f} s, max {cold['max_s']:.2f} s"
          f" ({len(cold['seconds'])} starts)")
    rows = [("onnx serve", figures["onnx_http"])] + ([("keras predict", figures["keras_http"])]
                                                     if "keras_http" in figures else [])
    print(f"  {'HTTP':<14} {'conc':>5} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for label, http in rows:
        for c in concurrency:
            run = http[f"c{c}"]
            print(f"  {label:<14} {c:>5} {run['requests_per_s']:>10,.0f} {run['p50_ms']:>9.2f} {run['p99_ms']:>9.2f}"
                  f" {run['errors']:>7}")
        rss = ", ".join(f"{value:.0f}" for value in http["worker_rss_mib"])
        print(f"  {label:<14} worker RSS MiB: {rss}")
    batch = figures["onnx_http"].get("batch")
    if batch:
        print_batch(batch)
    for key, value in figures["ratios"].items():
        print(f"  {key}: {value:.2f}")


def print_batch(batch: dict) -> None:
    peaks = ", ".join(f"{value:.0f}" for value in batch["worker_peak_rss_mib"])
    before = ", ".join(f"{value:.0f}" for value in batch["worker_rss_before_mib"])
    print(f"  Batch Transform shape: {batch['payload_mb']:.1f} MB payloads of {batch['sessions_per_payload']:,}"
          f" sessions, {batch['sessions_per_s']:,.0f} sessions/s, {batch['errors']} errors;"
          f" worker RSS before {before} MiB, peak while answering {peaks} MiB")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR",
                        help="a trained model directory to measure (repeatable)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="gunicorn workers for both apps")
    parser.add_argument("--seconds", type=int, default=30, help="duration of each HTTP load level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--skip-keras", action="store_true", help="do not measure the Keras-predict alternative")
    parser.add_argument("--filters-only", action="store_true",
                        help="measure the in-process engine and the business rules' cost only (no servers)")
    parser.add_argument("--python-client", action="store_true", help="use the Python load generator even if wrk exists")
    parser.add_argument("--batch-only", action="store_true",
                        help="measure only the 6 MB JSON-lines payloads and the workers' peak memory (fresh server)")
    parser.add_argument("--payloads", type=int, default=3, metavar="N", help="6 MB payloads to post (default: 3)")
    parser.add_argument("--cold-starts", type=int, default=5, metavar="N",
                        help="how many times to time serve's start-up to the first /ping 200 (default: 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    if 8 not in args.concurrency:
        parser.error("--concurrency must include 8 (the ratios are taken there)")
    if args.cold_starts < 1:
        parser.error(f"--cold-starts must be at least 1, got {args.cold_starts}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    results = {}
    for spec in args.model:
        name, _, folder = spec.partition("=")
        model_dir = Path(folder or name)
        figures = bench_model(name, model_dir, args)
        figures["ratios"] = ratios(figures)
        results[name] = figures
    for name, figures in results.items():
        print_table(name, figures, args.concurrency)
    print("\n" + json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
