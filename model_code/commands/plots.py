"""The training plot saved next to the model: training loss per epoch, and Recall@20 as it was measured.

The right panel holds the validation figure of each epoch where one was measured (the validation
sessions, ``--valid-days``), and the test figure (``--test``) once, after the last epoch, as a point of
its own; its title and legend say which is which, so a run without ``--test`` shows no test figure and
a run without validation sessions says so.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path


def recall_title(cutoff: int, validation: bool, test: bool) -> str:
    """The right panel's title: what it plots."""
    parts = (["validation per epoch"] if validation else []) + (["test after the last epoch"] if test else [])
    return f"Recall@{cutoff}: " + ("; ".join(parts) if parts else "no validation or test set")


def training_figure(losses: Sequence[float], validation: Sequence[float | None], test: float | None = None,
                    cutoff: int = 20):
    """The two-panel figure: loss per epoch; Recall@cutoff per epoch on validation, and on test at the end."""
    from matplotlib.figure import Figure

    epochs = list(range(1, len(losses) + 1))
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    loss_axes, recall_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, losses, marker="o")
    loss_axes.set(title="training loss", xlabel="epoch", ylabel="mean loss per example")
    measured = [(epoch, value) for epoch, value in zip(epochs, validation) if value is not None]
    if measured:
        recall_axes.plot(*zip(*measured), marker="o", color="tab:green", label="validation (each epoch)")
    if test is not None:
        recall_axes.plot([epochs[-1]], [test], marker="*", markersize=12, linestyle="none", color="tab:red",
                         label="test (once, after the last epoch)")
    if measured or test is not None:
        recall_axes.legend(loc="best")
    recall_axes.set(title=recall_title(cutoff, bool(measured), test is not None), xlabel="epoch",
                    ylabel=f"Recall@{cutoff}")
    for axes in (loss_axes, recall_axes):
        axes.grid(alpha=0.3)
        axes.set_xticks(epochs)
    return figure


def plot_training(path: str | os.PathLike, losses: Sequence[float], validation: Sequence[float | None],
                  test: float | None = None, cutoff: int = 20) -> None:
    """Save :func:`training_figure` as a PNG, written whole or not at all."""
    import matplotlib

    matplotlib.use("Agg")
    figure = training_figure(losses, validation, test, cutoff)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=100, format="png")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
