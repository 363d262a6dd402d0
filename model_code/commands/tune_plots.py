"""The tuning study's plot: best validation figure so far against trials and against time, and parameter importances."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def best_so_far(study) -> tuple[list[int], list[float], list[float]]:
    """(trial numbers, minutes since the first trial started, best value so far) over the completed trials."""
    from optuna.trial import TrialState

    trials = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    if not trials:
        return [], [], []
    start = min(t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start)
    numbers, minutes, best = [], [], []
    for trial in trials:
        numbers.append(trial.number + 1)
        minutes.append((trial.datetime_complete - start).total_seconds() / 60)
        best.append(max(trial.value, best[-1]) if best else trial.value)
    return numbers, minutes, best


def importances(study) -> dict[str, float]:
    """Optuna's parameter importances ({} while too few completed trials differ)."""
    import optuna

    try:
        return optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}


def plot_search(study, path: str | os.PathLike, metric: str) -> None:
    """Save a three-panel PNG: best so far vs trial, best so far vs minutes, parameter importances."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    numbers, minutes, best = best_so_far(study)
    figure = Figure(figsize=(13, 3.8), layout="constrained")
    by_trial, by_time, bars = figure.subplots(1, 3)
    by_trial.step(numbers, best, where="post", marker="o")
    by_trial.set(title=f"best validation {metric} so far", xlabel="trial", ylabel=metric)
    by_time.step(minutes, best, where="post", marker="o", color="tab:green")
    by_time.set(title="against time", xlabel="minutes", ylabel=metric)
    weights = importances(study)
    if weights:
        names = list(weights)[::-1]
        bars.barh(names, [weights[name] for name in names], color="tab:orange")
    else:
        bars.text(0.5, 0.5, "too few completed trials", ha="center", va="center", transform=bars.transAxes)
    bars.set(title="parameter importance", xlabel="share")
    for axes in (by_trial, by_time):
        axes.grid(alpha=0.3)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=100, format="png")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
