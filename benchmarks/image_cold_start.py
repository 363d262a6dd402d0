"""The serve image's cold start and the images' sizes, for the images ``make image`` built.

Cold start: from creating a container of ``gru4rec:serve`` to its first ``/ping`` 200, run as SageMaker
runs it (``serve``, the model directory at ``/opt/ml/model``), for each model directory given, a few
times each (the container is stopped with SIGTERM in between). On a serverless endpoint SageMaker's own
provisioning comes on top of this. Prints a table, and with ``--json FILE`` writes the figures.

    .venv/bin/python benchmarks/image_cold_start.py --model small=build/model --model large=DIR
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import containers  # noqa: E402
from model_code import artifacts  # noqa: E402

IMAGES = (containers.BASE_IMAGE, containers.SERVE_IMAGE, containers.TRAIN_IMAGE)


def cold_starts(model_dir: Path, repeats: int, workers: int | None, log_path: Path) -> list[float]:
    """Seconds from container creation to the first /ping 200, once per run; every run must stop cleanly."""
    seconds = []
    for _ in range(repeats):
        with containers.ImageServer(model_dir, workers=workers, log_path=log_path) as server:
            seconds.append(server.cold_start_s)
        if server.exit_code != 0:
            raise containers.ContainerError(f"serve exited with {server.exit_code} after SIGTERM (see {log_path})")
    return seconds


def measure(models: dict[str, Path], repeats: int, workers: int | None) -> dict:
    figures = {
        "image_sizes": {image: containers.image_size(image) for image in IMAGES if containers.image_exists(image)},
        "cold_start": {},
    }
    with tempfile.TemporaryDirectory(prefix="cold_start_") as tmp:
        for name, model_dir in models.items():
            table, _ = artifacts.read_output_layer(model_dir)
            runs = cold_starts(model_dir, repeats, workers, Path(tmp) / f"{name}.log")
            figures["cold_start"][name] = {
                "items": int(table.shape[0]), "units": int(table.shape[1]),
                "model_mb": sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file()) / 1e6,
                "seconds": runs, "median_s": statistics.median(runs),
            }
    return figures


def print_table(figures: dict) -> None:
    print("image sizes:")
    for image, size in figures["image_sizes"].items():
        print(f"  {image:<46} {size}")
    print("serve image cold start (container created -> first /ping 200):")
    print(f"  {'model':<10} {'items':>8} {'units':>6} {'files MB':>9} {'median s':>9}  runs")
    for name, row in figures["cold_start"].items():
        runs = ", ".join(f"{s:.2f}" for s in row["seconds"])
        print(
            f"  {name:<10} {row['items']:>8,} {row['units']:>6} {row['model_mb']:>9.1f} {row['median_s']:>9.2f}  {runs}"
        )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR",
                        help="a trained model directory to serve (repeatable)")
    parser.add_argument("--repeats", type=int, default=3, help="cold starts per model")
    parser.add_argument("--workers", type=int, help="MODEL_SERVER_WORKERS (default: the image's, one per core)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    models = {}
    for spec in args.model:
        name, _, folder = spec.partition("=")
        models[name] = Path(folder or name)
        if not (models[name] / artifacts.ITEMS_FILE).is_file():
            parser.error(f"--model {spec}: {models[name]} is not a model directory (no {artifacts.ITEMS_FILE})")
    args.models = models
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    reason = containers.unavailable_reason()
    if reason:
        print(f"cannot run the images here: {reason}", file=sys.stderr)
        return 2
    figures = measure(args.models, args.repeats, args.workers)
    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
