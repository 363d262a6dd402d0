"""Sessions per second of one Batch Transform instance, measured through the container with the job's settings.

For each model directory and each ``--instance-type``, the real ``inference/serve`` (nginx -> gunicorn ->
Flask -> ONNX Runtime) starts with the environment the batch stack gives the job (``MODEL_SERVER_WORKERS``
= MaxConcurrentTransforms for that type, ``MODEL_SERVER_TIMEOUT``); its ``/execution-parameters`` must
report those settings (MaxConcurrentTransforms, BatchStrategy MULTI_RECORD, MaxPayloadInMB 6). Then, as
Batch Transform does with SplitType Line and MultiRecord, MaxConcurrentTransforms clients each post
JSON-lines payloads of just under MaxPayloadInMB (sessions of 1 to ``--max-length`` items drawn from the
catalogue) until ``--payloads`` per client have been answered; every answer must have one line per session
and no error line. Printed: sessions/s on this machine, the CPUs this process may use, the load average
before and after, and sessions/s per busy core (the rate divided by the cores that could work at once).

This machine is not the instance: an instance of the type has ``vCPUs`` cores of its own, so its rate is
about the per-core figure times its vCPUs where the cores here are of a similar generation (an estimate,
not a measurement: docs/deploy.md's sizing table says which it uses).

    .venv/bin/python benchmarks/transform_rate.py --model diginetica=DIR --instance-type ml.m5.xlarge
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from inference.local import LocalServer  # noqa: E402
from infra.transform_settings import MAX_PAYLOAD_MB, instance_vcpus, transform_workers  # noqa: E402
from model_code import artifacts  # noqa: E402

INVOCATION_TIMEOUT_S = 900  # the batch stack's MODEL_SERVER_TIMEOUT
PAYLOAD_MARGIN_BYTES = 1024
HEADERS = {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}


def payload(items: list[str], rng: np.random.Generator, max_length: int) -> tuple[bytes, int]:
    """One MultiRecord request body of just under MaxPayloadInMB, and its number of sessions."""
    limit = MAX_PAYLOAD_MB * 1024 * 1024 - PAYLOAD_MARGIN_BYTES
    lines, size = [], 0
    while True:
        length = int(rng.integers(1, max_length + 1))
        session = [items[i] for i in rng.integers(0, len(items), size=length)]
        line = json.dumps({"session_id": f"s{len(lines)}", "items": session}).encode() + b"\n"
        if size + len(line) > limit:
            return b"".join(lines), len(lines)
        lines.append(line)
        size += len(line)


def check_settings(url: str, workers: int) -> dict:
    """The container's /execution-parameters, which SageMaker reads: they must be the job's."""
    reported = requests.get(f"{url}/execution-parameters", timeout=30).json()
    expected = {"MaxConcurrentTransforms": workers, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": MAX_PAYLOAD_MB}
    if reported != expected:
        raise SystemExit(f"/execution-parameters reported {reported}, the job's settings are {expected}")
    return reported


def post(url: str, body: bytes, sessions: int) -> None:
    response = requests.post(f"{url}/invocations", data=body, headers=HEADERS, timeout=INVOCATION_TIMEOUT_S + 60)
    lines = response.content.splitlines()
    if response.status_code != 200 or len(lines) != sessions or any(b'"error"' in line for line in lines):
        raise SystemExit(f"a payload of {sessions} sessions got {response.status_code} with {len(lines)} lines")


def measure(model_dir: Path, instance_type: str, payloads: int, max_length: int, seed: int, log) -> dict:
    workers = transform_workers(instance_type)
    items = artifacts.read_items(model_dir)
    body, sessions = payload(items, np.random.default_rng(seed), max_length)
    os.environ["MODEL_SERVER_TIMEOUT"] = str(INVOCATION_TIMEOUT_S)
    with LocalServer(model_dir, workers=workers, log=log) as server:
        settings = check_settings(server.url, workers)
        post(server.url, body, sessions)  # every worker's first request pays its warm-up once, outside the timing
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as clients:
            list(clients.map(lambda _: post(server.url, body, sessions), range(workers * payloads)))
        elapsed = time.perf_counter() - started
        load_after = os.getloadavg()[0]
    cores = len(os.sched_getaffinity(0))
    rate = sessions * workers * payloads / elapsed
    return {"instance_type": instance_type, "vcpus": instance_vcpus(instance_type), "settings": settings,
            "items": len(items), "sessions_per_payload": sessions, "payloads": workers * payloads,
            "seconds": elapsed, "sessions_per_s": rate, "cpus_here": cores,
            "sessions_per_s_per_core": rate / min(cores, workers), "load_before": load_before, "load_after": load_after}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", action="append", required=True, metavar="NAME=DIR", help="a model directory (repeatable)"
    )
    parser.add_argument("--instance-type", action="append", metavar="TYPE",
                        help="transform instance type whose settings to use (repeatable; default ml.m5.xlarge)")
    parser.add_argument("--payloads", type=int, default=2, help="payloads each concurrent client posts (default: 2)")
    parser.add_argument("--max-length", type=int, default=10, help="longest session, in items (default: 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.payloads < 1:
        parser.error(f"--payloads must be at least 1, got {args.payloads}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="transform_rate_") as tmp, open(Path(tmp) / "serve.log", "ab") as log:
        for spec in args.model:
            name, _, folder = spec.partition("=")
            for instance_type in args.instance_type or ["ml.m5.xlarge"]:
                figures = {"model": name, **measure(Path(folder or name), instance_type, args.payloads,
                                                    args.max_length, args.seed, log)}
                results.append(figures)
                print(f"{name} ({figures['items']:,} items), {instance_type} settings "
                      f"(MaxConcurrentTransforms {figures['settings']['MaxConcurrentTransforms']}): "
                      f"{figures['payloads']} payloads of {figures['sessions_per_payload']:,} sessions in "
                      f"{figures['seconds']:.1f} s = {figures['sessions_per_s']:,.0f} sessions/s on "
                      f"{figures['cpus_here']} CPUs, {figures['sessions_per_s_per_core']:,.0f} per busy core; "
                      f"load average {figures['load_before']:.1f} -> {figures['load_after']:.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
