"""The training plot saved next to the model: training loss and Recall@20 per epoch."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence


def plot_training(
    path: str | os.PathLike, losses: Sequence[float], recalls: Sequence[float | None], cutoff: int = 20
) -> None:
    """Save a two-panel PNG: loss per epoch, and Recall@cutoff per epoch where it was measured."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    epochs = list(range(1, len(losses) + 1))
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    loss_axes, recall_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, losses, marker="o")
    loss_axes.set(title="training loss", xlabel="epoch", ylabel="mean loss per example")
    measured = [(epoch, value) for epoch, value in zip(epochs, recalls) if value is not None]
    if measured:
        recall_axes.plot(*zip(*measured), marker="o", color="tab:green")
    else:
        recall_axes.text(0.5, 0.5, "no test set", ha="center", va="center", transform=recall_axes.transAxes)
    recall_axes.set(title=f"Recall@{cutoff} on the test set", xlabel="epoch", ylabel=f"Recall@{cutoff}")
    for axes in (loss_axes, recall_axes):
        axes.grid(alpha=0.3)
        axes.set_xticks(epochs)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=100, format="png")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
