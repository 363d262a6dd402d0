"""Serve a trained model with the container's ``serve`` and call it as SageMaker would.

Starts ``inference/serve`` (nginx -> gunicorn -> Flask -> ONNX Runtime) on a free localhost port
over a temporary stand-in for ``/opt/ml``, sends one JSON request (a real test session) and one
JSON-lines batch (as Batch Transform sends it, with an unknown item and a bad line), prints the
answers, and stops the server with SIGTERM.

    .venv/bin/python scripts/serve_demo.py --model-dir demo_output/model --test demo_output/data/test.tsv.gz
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inference.local import LocalServer  # noqa: E402


def test_sessions(path: Path, n: int) -> list[tuple[str, list[str]]]:
    """The first ``n`` test sessions with at least two events: (session id, item ids in time order)."""
    events = pd.read_csv(path, sep="\t", dtype={"SessionId": str, "ItemId": str})
    sessions = []
    for session_id, group in events.sort_values(["SessionId", "Time"]).groupby("SessionId", sort=False):
        if len(group) >= 2:
            sessions.append((session_id, group["ItemId"].tolist()))
        if len(sessions) == n:
            break
    return sessions


def show(title: str, response: requests.Response) -> None:
    print(f"\n-- {title}: HTTP {response.status_code} ({response.headers.get('Content-Type')})")
    print(response.text.strip())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="a trained model directory")
    parser.add_argument("--test", type=Path, required=True, help="test events (TSV) to take sessions from")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (MODEL_SERVER_WORKERS)")
    parser.add_argument(
        "--log", type=Path, help="where serve's own output goes (default: serve.log beside the model directory)"
    )
    args = parser.parse_args(argv)

    sessions = test_sessions(args.test, 4)
    (first_id, first_items), batch = sessions[0], sessions[1:]
    log_path = args.log or args.model_dir.resolve().parent / "serve.log"
    with open(log_path, "ab") as log, LocalServer(args.model_dir, workers=args.workers, log=log) as server:
        print(f"serve is up at {server.url} (ping 200); nginx, gunicorn and app logs: {log_path}")
        show("execution parameters", requests.get(f"{server.url}/execution-parameters", timeout=10))
        request = {"items": first_items[:-1], "k": 5}
        print(f"\nJSON request for session {first_id} (its next item was {first_items[-1]}): {json.dumps(request)}")
        show("recommendations", requests.post(f"{server.url}/invocations", json=request, timeout=10))
        lines = [json.dumps({"session_id": sid, "items": items[:-1], "k": 3}) for sid, items in batch]
        lines.insert(1, json.dumps({"session_id": "unknown-items", "items": ["no-such-item", batch[0][1][0]], "k": 3}))
        lines.insert(2, '{"session_id": "broken", "items": "not a list"}')
        body = "\n".join(lines) + "\n"
        print(f"\nJSON-lines batch ({len(lines)} lines, one of them bad):\n{body.strip()}")
        show("batch output, one line per input line", requests.post(
            f"{server.url}/invocations", data=body, timeout=10,
            headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}))
        print("\nstopping serve with SIGTERM")
    print(f"serve exited with {server.exit_code}")
    return 0 if server.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
