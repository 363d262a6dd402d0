"""The mechanics of ``benchmarks/transform_rate.py``, not its speed: the payloads it posts are what Batch
Transform sends with the job's settings (MultiRecord, at most MaxPayloadInMB, one session per line)."""
import json

import numpy as np

from benchmarks.transform_rate import payload
from inference import contracts
from infra.transform_settings import MAX_PAYLOAD_MB


def test_a_payload_fills_but_never_passes_the_jobs_payload_limit():
    items = [str(1000 + i) for i in range(50)]
    body, sessions = payload(items, np.random.default_rng(0), max_length=10)
    lines = body.splitlines()
    assert MAX_PAYLOAD_MB * 1024 * 1024 - 2048 < len(body) <= MAX_PAYLOAD_MB * 1024 * 1024
    assert MAX_PAYLOAD_MB * 1024 * 1024 == contracts.MAX_PAYLOAD_BYTES, "the container's own limit"
    assert len(lines) == sessions
    records = [json.loads(line) for line in lines[:: max(1, sessions // 500)]]
    assert all(1 <= len(record["items"]) <= 10 and set(record["items"]) <= set(items) for record in records)
