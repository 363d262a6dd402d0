"""One CloudWatch embedded-metric-format (EMF) log line per scored ``/invocations`` request.

SageMaker ships the container's stdout to CloudWatch Logs (``/aws/sagemaker/Endpoints/<endpoint>``
for an endpoint, ``/aws/sagemaker/TransformJobs`` for Batch Transform), and CloudWatch turns a log
event that is an EMF JSON object into metrics: no AWS call is made, which a network-isolated
container could not make anyway. The format:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

Namespace ``GRU4Rec``, one dimension ``Service``: the value of ``$METRICS_SERVICE``, which the stacks
set to the endpoint's name (``gru4rec-<stage>``) on the endpoint's models and to
``gru4rec-<stage>-batch`` on the batch pipelines' models (``local`` where unset). Metrics, per request:

================  =====  =============================================================
Sessions          Count  sessions scored (JSON lines that were bad are not counted)
RequestItems      Count  item ids in those sessions
UnknownItems      Count  of those, the ids the model does not know (skipped in scoring)
UnknownItemShare  None   UnknownItems / RequestItems (absent when RequestItems is 0)
================  =====  =============================================================

``ModelVersion`` rides along as a plain field (searchable in Logs Insights, no metric of its own).
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence

NAMESPACE = "GRU4Rec"
DIMENSION = "Service"
SERVICE_VARIABLE = "METRICS_SERVICE"
DEFAULT_SERVICE = "local"
LOGGER_NAME = "gru4rec.metrics"
"""gunicorn.conf.py writes this logger's records to stdout as they are: one JSON object per line."""

log = logging.getLogger(LOGGER_NAME)


def service_name(environ: Mapping[str, str] | None = None) -> str:
    """The ``Service`` dimension: ``$METRICS_SERVICE``, or ``local``."""
    value = (os.environ if environ is None else environ).get(SERVICE_VARIABLE, "").strip()
    return value or DEFAULT_SERVICE


def request_record(sessions: Sequence, results: Sequence, service: str, model_version: str,
                   timestamp_ms: int | None = None) -> dict:
    """The EMF object for one request: ``sessions`` (each with ``.items``) and their engine results
    (each with ``.unknown_items``), in the same order."""
    return counts_record(len(sessions), sum(len(session.items) for session in sessions),
                         sum(result.unknown_items for result in results), service, model_version, timestamp_ms)


def counts_record(sessions: int, items: int, unknown: int, service: str, model_version: str,
                  timestamp_ms: int | None = None) -> dict:
    """The EMF object for one request from its counts: sessions scored, their item ids, the unknown ones."""
    values = {"Sessions": sessions, "RequestItems": items, "UnknownItems": unknown}
    units = {"Sessions": "Count", "RequestItems": "Count", "UnknownItems": "Count"}
    if items:
        values["UnknownItemShare"] = unknown / items
        units["UnknownItemShare"] = "None"
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION]],
                "Metrics": [{"Name": name, "Unit": unit} for name, unit in units.items()],
            }],
        },
        DIMENSION: service,
        "ModelVersion": model_version,
        **values,
    }


def log_request(sessions: Sequence, results: Sequence, model_version: str) -> None:
    """Write the request's EMF line through the ``gru4rec.metrics`` logger."""
    _write(request_record(sessions, results, service_name(), model_version))


def log_counts(sessions: int, items: int, unknown: int, model_version: str) -> None:
    """Write the EMF line of a request answered a chunk at a time, from the counts summed over its chunks."""
    _write(counts_record(sessions, items, unknown, service_name(), model_version))


def _write(record: dict) -> None:
    log.info("%s", json.dumps(record, separators=(",", ":")))
