"""How reading and preparing event data grows with its size: wall time and peak memory as a curve.

    .venv/bin/python benchmarks/scale.py --data [--events 1M 10M 50M] [--with-100m]
        [--formats csv csv.gz parquet parquet.gz] [--compare /tmp/base] [--out benchmarks/out/scale]
    .venv/bin/python benchmarks/scale.py --items 10000,100000,1000000 [--blocks 3] [--out DIR]

``--items`` measures training, export and serving by catalogue size instead: see
benchmarks/catalogue_scale.py. The rest of this text is about ``--data``.

Writes synthetic click logs (string ids, power-law item popularity, session lengths with a
long tail; see :func:`write_events`) once into ``--data-dir``, then measures, each in a fresh
Python process so that one measurement's memory never counts in another's:

* ``prepare``: training's data preparation, ``model_code.commands.training_data.load_training_data``
  with a one-day validation split (read, item index, session arrays, validation arrays);
* ``sessions``: ``python -m model_code.data.sessions`` (read and write one JSON line per session).

Peak memory is the process's maximum resident set size (``ru_maxrss``), Python and the
libraries included (about 0.1 GiB before any data). ``--compare TREE`` runs the same
measurements on another checkout of the code (e.g. ``git worktree add /tmp/base main``), one
after the other, so both columns come from one run on the same machine. Prints a table and
writes ``scale.png`` and ``scale.json`` into ``--out``. Nothing here asserts anything about time.

100M events (``--with-100m``) need about 4.4 GB of disk for CSV and, on a 2-core machine, by the
50M figures, about 3 minutes for ``prepare`` and 10 for ``sessions`` (see docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"1M": 1_000_000, "10M": 10_000_000, "25M": 25_000_000, "50M": 50_000_000, "100M": 100_000_000}
FORMATS = ("csv", "csv.gz", "parquet", "parquet.gz")
DAY = 86_400
START = 1_764_547_200  # 2025-12-01T00:00:00Z
DAYS = 30
GENERATE_CHUNK = 2_000_000  # events generated and written at a time

PREPARE = """
import json, resource, sys, time
from model_code.data.event_rules import ReadOptions
from model_code.commands.training_data import load_training_data
lines = []
start = time.perf_counter()
data = load_training_data(sys.argv[1], valid_path=None, valid_days=1.0, test_path=None,
                          read=ReadOptions(max_bad_rows="0"), log=lines.append)
seconds = time.perf_counter() - start
arrays = data.train.items.nbytes + data.train.offsets.nbytes
print(json.dumps({"seconds": seconds, "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "train_events": int(data.train.n_events), "items": len(data.index), "array_bytes": arrays}))
"""
SESSIONS = """
import json, resource, sys, time
from model_code.data import sessions
start = time.perf_counter()
code = sessions.main([sys.argv[1], "--out", sys.argv[2], "--max-bad-rows", "0"])
seconds = time.perf_counter() - start
assert code == 0, code
print(json.dumps({"seconds": seconds, "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


@dataclass(frozen=True)
class Shape:
    """The synthetic log's shape: catalogue size, popularity exponent and session lengths."""

    items_per_event: float = 0.02  # 1M events -> 20k items, 100M -> 2M
    zipf: float = 1.1  # item popularity ~ rank ** -zipf
    mean_extra: float = 4.0  # session length = 1 + a geometric number of further events (mean 5)
    max_length: int = 200
    mean_gap: float = 60.0  # seconds between a session's clicks (exponential)


def session_lengths(rng: np.random.Generator, total: int, shape: Shape) -> np.ndarray:
    """Lengths of sessions summing to ``total``: 1 + geometric, capped (many short, a long tail)."""
    lengths = 1 + rng.geometric(1.0 / (1.0 + shape.mean_extra), size=int(total / (1 + shape.mean_extra) * 1.2) + 16) - 1
    lengths = np.minimum(lengths, shape.max_length)
    cut = np.searchsorted(np.cumsum(lengths), total)
    lengths = lengths[: cut + 1]
    lengths[-1] -= int(lengths.sum() - total)
    return lengths[lengths > 0]


def item_vocabulary(n_items: int) -> pa.Array:
    """Item ids as a shop would write them: ``SKU-`` and eight digits."""
    numbers = pa.array(np.arange(n_items, dtype=np.int64) + 10_000_000)
    return pc.binary_join_element_wise("SKU-", pc.cast(numbers, pa.string()), "")


def event_chunks(total: int, seed: int, shape: Shape):
    """Tables of (SessionId, ItemId, Time) of ``total`` events, each chunk's events in time order."""
    rng = np.random.default_rng(seed)
    n_items = max(100, int(total * shape.items_per_event))
    vocabulary = item_vocabulary(n_items)
    popularity = np.arange(1, n_items + 1, dtype=np.float64) ** -shape.zipf
    cumulative = np.cumsum(popularity / popularity.sum())
    chunks = max(1, -(-total // GENERATE_CHUNK))
    first_session = 0
    for chunk in range(chunks):
        size = min(GENERATE_CHUNK, total - chunk * GENERATE_CHUNK)
        lengths = session_lengths(rng, size, shape)
        starts = START + (chunk + rng.random(len(lengths))) * DAYS * DAY / chunks
        session = np.repeat(np.arange(len(lengths)), lengths)
        offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
        gaps = rng.exponential(shape.mean_gap, size=size)
        gaps[offsets == np.arange(size)] = 0.0
        within = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[np.cumsum(lengths) - lengths], lengths)
        times = np.floor(starts[session] + within).astype(np.int64)
        items = np.minimum(np.searchsorted(cumulative, rng.random(size)), n_items - 1)
        order = np.argsort(times, kind="stable")
        scrambled = (np.arange(first_session, first_session + len(lengths), dtype=np.uint64)
                     * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(1)
        first_session += len(lengths)
        yield pa.table({
            "SessionId": pc.cast(pa.array(scrambled[session[order]]), pa.string()),
            "ItemId": vocabulary.take(pa.array(items[order])),
            "Time": pa.array(times[order]),
        })


def write_events(path: Path, total: int, fmt: str, seed: int = 0, shape: Shape = Shape()) -> None:
    """``total`` synthetic events into ``path`` (CSV or Parquet, gzip or not), written atomically."""
    partial = path.with_name(path.name + ".partial")
    chunks = event_chunks(total, seed, shape)
    if fmt.startswith("parquet"):
        first = next(chunks)
        with pq.ParquetWriter(partial, first.schema, compression="gzip" if fmt.endswith(".gz") else "none") as writer:
            writer.write_table(first)
            for table in chunks:
                writer.write_table(table)
    else:
        sink = pa.OSFile(str(partial), "wb")
        stream = pa.CompressedOutputStream(sink, "gzip") if fmt.endswith(".gz") else sink
        with stream:
            for number, table in enumerate(chunks):
                pcsv.write_csv(table, stream, pcsv.WriteOptions(include_header=number == 0, quoting_style="none"))
    os.replace(partial, path)


def data_file(folder: Path, label: str, fmt: str) -> Path:
    """The event file of one size and format, written on first use."""
    suffix = {"csv": ".csv", "csv.gz": ".csv.gz", "parquet": ".parquet", "parquet.gz": ".gz.parquet"}[fmt]
    path = folder / f"events-{label}{suffix}"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_events(path, SIZES[label], fmt)
        print(
            f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f} s", flush=True
        )
    return path


def measure(tree: Path, script: str, *args: str) -> dict:
    """Run ``script`` with the code of ``tree`` in a fresh process; its JSON line, or the error."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table_lines(rows: list[dict]) -> list[str]:
    lines = [f"{'events':>6} {'format':<10} {'code':<6} {'step':<9} {'seconds':>8} {'peak GiB':>9} {'arrays MiB':>10}"]
    for row in rows:
        if "error" in row:
            lines.append(
                f"{row['label']:>6} {row['format']:<10} {row['code']:<6} {row['step']:<9} error: {row['error']}"
            )
            continue
        arrays = f"{row['array_bytes'] / 2**20:10.0f}" if "array_bytes" in row else f"{'':>10}"
        lines.append(f"{row['label']:>6} {row['format']:<10} {row['code']:<6} {row['step']:<9} "
                     f"{row['seconds']:8.1f} {row['peak_bytes'] / 2**30:9.2f} {arrays}")
    return lines


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    keys = sorted({(r["code"], r["step"], r["format"]) for r in rows if "error" not in r})
    for code, step, fmt in keys:
        points = sorted(((SIZES[r["label"]], r) for r in rows
                         if "error" not in r and (r["code"], r["step"], r["format"]) == (code, step, fmt)),
                        key=lambda point: point[0])
        x = [n for n, _ in points]
        style = "-o" if code == "new" else "--x"
        left.plot(x, [r["seconds"] for _, r in points], style, label=f"{step} {fmt} ({code})")
        right.plot(x, [r["peak_bytes"] / 2**30 for _, r in points], style, label=f"{step} {fmt} ({code})")
    for axes, title in ((left, "wall time (s)"), (right, "peak resident memory (GiB)")):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("events")
        axes.set_title(title)
        axes.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def catalogue_sizes(text: str) -> list[int]:
    """``10000,100000,1000000`` (or 10k,100k,1M) as item counts."""
    factors = {"k": 1_000, "m": 1_000_000}
    sizes = []
    for part in filter(None, text.lower().replace(" ", ",").split(",")):
        try:
            sizes.append(int(float(part[:-1]) * factors[part[-1]]) if part[-1] in factors else int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a catalogue size (e.g. 10000 or 10k)") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("give one or more positive catalogue sizes")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--data", action="store_true", help="measure the data path")
    mode.add_argument(
        "--items",
        type=catalogue_sizes,
        metavar="N,N,...",
        help="measure training, export and serving at these catalogue sizes (benchmarks/catalogue_scale.py)",
    )
    parser.add_argument("--blocks", type=int, default=3, help="--items: timed training blocks per size")
    parser.add_argument("--events", nargs="*", default=["1M", "10M", "50M"], choices=[k for k in SIZES if k != "100M"])
    parser.add_argument(
        "--with-100m", action="store_true", help="add 100M events (CSV: about 3 minutes to prepare, 10 for sessions)"
    )
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--steps", nargs="+", default=["prepare", "sessions"], choices=["prepare", "sessions"])
    parser.add_argument("--compare", type=Path, help="another checkout whose code is measured the same way, first")
    parser.add_argument("--compare-events", nargs="+", default=["1M", "10M"], help="sizes measured with --compare too")
    parser.add_argument("--compare-formats", nargs="+", default=list(FORMATS), choices=FORMATS,
                        help="formats measured with --compare too")
    parser.add_argument("--compare-steps", nargs="+", default=["prepare", "sessions"], choices=["prepare", "sessions"],
                        help="steps measured with --compare too")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/gru4rec-scale"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/gru4rec-scale/out"))
    parser.add_argument("--include", nargs="+", type=Path, default=[],
                        help="scale.json files of earlier runs whose rows join this run's table and plot")
    args = parser.parse_args(argv)
    if args.items:
        sys.path.insert(0, str(ROOT))
        from benchmarks import catalogue_scale

        return catalogue_scale.run(args.items, args.data_dir / "catalogue", args.out, args.blocks)
    labels = args.events + (["100M"] if args.with_100m else [])
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), cpus: {os.cpu_count()}", flush=True)
    rows = [row for path in args.include for row in json.loads(path.read_text())]
    for label in labels:
        for fmt in args.formats:
            path = data_file(args.data_dir, label, fmt)
            compared = args.compare and label in args.compare_events and fmt in args.compare_formats
            trees = ([("base", args.compare)] if compared else []) + [("new", ROOT)]
            for code, tree in trees:
                for step in args.steps:
                    if code == "base" and step not in args.compare_steps:
                        continue
                    scripts = {"prepare": (PREPARE, str(path)),
                               "sessions": (SESSIONS, str(path), str(args.data_dir / "sessions.jsonl"))}
                    script, *script_args = scripts[step]
                    row = {
                        "label": label,
                        "format": fmt,
                        "code": code,
                        "step": step,
                        **measure(tree, script, *script_args),
                    }
                    rows.append(row)
                    print(table_lines([row])[-1], flush=True)
            (args.data_dir / "sessions.jsonl").unlink(missing_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(rows, indent=1))
    plot(rows, args.out / "scale.png")
    print("\n".join(table_lines(rows)))
    print(f"wrote {args.out / 'scale.png'} and {args.out / 'scale.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
