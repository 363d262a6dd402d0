"""The per-request EMF record: what CloudWatch's embedded metric format requires of it, and its figures.

The serving stack's tests (test_serve.py) read the same lines from the real server's stdout.
"""
import json
import logging
from types import SimpleNamespace

import pytest

from inference import request_metrics
from inference.predictor import create_app
from model_code import artifacts


def sessions_of(*item_lists):
    return [SimpleNamespace(items=list(items)) for items in item_lists]


def results_of(*unknown_counts):
    return [SimpleNamespace(unknown_items=count) for count in unknown_counts]


def test_the_record_follows_the_emf_specification():
    """Each declared metric and dimension is a top-level member of the right type; the timestamp is epoch ms."""
    record = request_metrics.request_record(sessions_of(["a", "b", "c"], ["d"]), results_of(1, 0),
                                            "gru4rec-dev", "job-1", timestamp_ms=1_764_633_600_000)
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert record["_aws"]["Timestamp"] == 1_764_633_600_000
    assert directive["Namespace"] == "GRU4Rec"
    for dimension_set in directive["Dimensions"]:
        assert all(isinstance(record[name], str) for name in dimension_set)
    for metric in directive["Metrics"]:
        assert isinstance(record[metric["Name"]], (int, float)) and not isinstance(record[metric["Name"]], bool)
        assert metric["Unit"] in ("Count", "None")
    assert record["Service"] == "gru4rec-dev" and record["ModelVersion"] == "job-1"
    assert (record["Sessions"], record["RequestItems"], record["UnknownItems"]) == (2, 4, 1)
    assert record["UnknownItemShare"] == 0.25


def test_no_share_is_declared_when_the_request_holds_no_items():
    record = request_metrics.request_record([], [], "s", "v")
    names = [metric["Name"] for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert names == ["Sessions", "RequestItems", "UnknownItems"]
    assert "UnknownItemShare" not in record


@pytest.mark.parametrize("environ, expected", [({}, "local"), ({"METRICS_SERVICE": " "}, "local"),
                                               ({"METRICS_SERVICE": "gru4rec-prod"}, "gru4rec-prod")])
def test_the_service_dimension_comes_from_the_environment(environ, expected):
    assert request_metrics.service_name(environ) == expected


def test_the_app_logs_one_line_per_request_not_per_session(model_dir, caplog):
    client = create_app(model_dir).test_client()
    known = artifacts.read_items(model_dir)[:3]
    with caplog.at_level(logging.INFO, logger=request_metrics.LOGGER_NAME):
        response = client.post("/invocations", json={"sessions": [{"items": known}, {"items": ["zz-unknown"]},
                                                                  {"items": known[:1]}]})
        client.post("/invocations", data=b'{"items": 1}', content_type="application/json")  # refused: no line
    assert response.status_code == 200
    lines = [record.getMessage() for record in caplog.records if record.name == request_metrics.LOGGER_NAME]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert (record["Sessions"], record["RequestItems"], record["UnknownItems"]) == (3, 5, 1)
