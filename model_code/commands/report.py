"""Evaluation results as text: the metrics table, and the ``name=value;`` lines training jobs are read by.

The names of the figures in metadata.json and the prefixes of their lines are defined here, once; the
training pipeline's metric definitions import them (this module needs nothing beyond the standard library).
"""
from __future__ import annotations

import re

VALIDATION_KEY = "validation_metrics"
"""metadata.json's key (and a history record's) for the validation figures."""
CHAMPION_KEY = "champion_validation_metrics"
"""metadata.json's key for the champion's figures on the same validation sessions."""
VALIDATION_PREFIX = "validation:"
CHAMPION_PREFIX = "champion:" + VALIDATION_PREFIX
PLOT_METRIC = "recall@20"
"""The figure the epoch log and training.png follow."""
_KEY = re.compile(r"^(recall|mrr)@(\d+)$")


def metrics_table(rows: dict[str, dict]) -> str:
    """One row per model, columns Recall@k and MRR@k for every k found, as an aligned Markdown table.

    ``rows`` maps a model name to a metrics dict such as ``evaluate`` returns
    ({"recall@20": 0.5, "mrr@20": 0.2, ...}); other keys are ignored and a
    metric a row lacks shows as "-".
    """
    cutoffs = sorted({int(m.group(2)) for metrics in rows.values() for m in map(_KEY.match, metrics) if m})
    header = ["model"] + [f"{name}@{k}" for k in cutoffs for name in ("Recall", "MRR")]
    body = [
        [model] + [_cell(metrics.get(f"{name}@{k}")) for k in cutoffs for name in ("recall", "mrr")]
        for model, metrics in rows.items()
    ]
    widths = [max(len(row[j]) for row in [header] + body) for j in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [cells[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:])]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    return "\n".join([line(header), rule] + [line(row) for row in body])


def _cell(value) -> str:
    return "-" if value is None else f"{float(value):.4f}"


def metric_lines(metrics: dict, prefix: str = "") -> str:
    """One ``prefix + name=value;`` line per metric, the form training-job metric definitions match."""
    return "\n".join(f"{prefix}{name}={value:.4f};" for name, value in metrics.items())
