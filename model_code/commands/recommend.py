"""Score sessions from a file with a model directory, without a server: the endpoint's answers, line by line.

    python -m model_code.commands.recommend INPUT --model-dir DIR [--out answers.jsonl] [reading options]

INPUT is either a JSON-lines file of requests (``.jsonl``, ``.ndjson`` or ``.json``, optionally
``.gz``), one ``{"session_id": ..., "items": [...]}`` per line as Batch Transform sends them, or
events (a CSV, TSV or Parquet file, a folder of them, an ``s3://`` URI), grouped into sessions as
``python -m model_code.data.sessions`` groups them. Each request gets the line the endpoint's
``application/jsonlines`` answer would hold: the same engine, the job's filters (``filters.json``
beside the model), the same checks (a bad line is answered in place) and the same writer
(:mod:`inference.streaming`). There is no size limit: the input is read, scored and written a block of lines at a time.
The answers go to ``--out`` (written whole or not at all) or to standard output; a progress bar
goes to standard error.

Nothing here loads TensorFlow or Keras: the model runs in ONNX Runtime, as on the endpoint.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from inference import streaming
from inference.contracts import SessionRequest, parse_json_line
from inference.engine import Recommender
from inference.job_filters import read_job_filters
from model_code import artifacts
from model_code.artifacts import file_mode
from model_code.data.event_rules import add_trained_read_options, trained_read_options
from model_code.data.event_table import block_starts, read_event_codes
from model_code.data.events import DataError
from model_code.data.sessions import group_sessions

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")
BLOCK_BYTES = 4 * 1024 * 1024
"""Input read, parsed and scored together (about a request body's worth): bounds the memory, whatever
the file's size."""


@dataclass
class Model:
    """What answering needs from a model directory, loaded once."""

    engine: Recommender
    defaults: SessionRequest | None
    filters: dict
    version: str
    metadata: dict

    @classmethod
    def load(cls, model_dir: Path) -> Model:
        engine = Recommender.load(model_dir)
        defaults = read_job_filters(model_dir)
        return cls(engine, defaults, streaming.job_filters(engine, defaults), artifacts.read_model_version(model_dir),
                   artifacts.read_metadata(model_dir))


def is_json_lines(source: str) -> bool:
    """Whether ``source`` names a JSON-lines file of requests (else it is read as events)."""
    name = source.lower().removesuffix(".gz")
    return name.endswith(JSON_LINES_SUFFIXES)


def answer_lines(model: Model, lines: Iterator[bytes], write: Callable[[bytes], object]) -> int:
    """Write the answer to each request line (numbered from 1, without its ``\\n``); the count of requests."""
    answered = size = 0
    block: list = []
    for number, raw in enumerate(lines, start=1):
        if raw.strip(b" \t\r\n"):
            block.append(parse_json_line(number, raw, model.defaults))
        size += len(raw) + 1
        if size >= BLOCK_BYTES:
            answered += _answer_block(model, block, write)
            block, size = [], 0
    return answered + _answer_block(model, block, write)


def _answer_block(model: Model, records: list, write: Callable[[bytes], object]) -> int:
    count = len(records)
    for chunk in streaming.stream_json_lines(model.engine, records, model.filters, model.version):
        write(chunk)
    return count


def file_lines(path: Path, progress: tqdm) -> Iterator[bytes]:
    """The lines of a JSON-lines file (gzip read as such), split at ``\\n`` only as Batch Transform
    splits them; ``progress`` advances by the bytes of the file read."""
    with open(path, "rb") as raw:
        text: BinaryIO = gzip.GzipFile(fileobj=raw) if path.name.lower().endswith(".gz") else raw
        done = 0
        for line in text:
            position = raw.tell()
            progress.update(position - done)
            done = position
            yield line[:-1] if line.endswith(b"\n") else line


def event_lines(source: str, options, progress: tqdm) -> Iterator[bytes]:
    """The sessions grouped from an event source, as the request lines ``model_code.data.sessions`` writes."""
    events = read_event_codes(source, options, with_files=True)
    progress.reset(total=len(block_starts(events.sessions)))
    progress.unit, progress.unit_scale = " sessions", False
    for session in group_sessions(events):
        progress.update()
        yield json.dumps(session, ensure_ascii=False).encode("utf-8")


@contextmanager
def output(out: str | None) -> Iterator[BinaryIO]:
    """Standard output, or ``out`` written through a partial file renamed into place only when complete."""
    if out is None or out == "-":
        yield sys.stdout.buffer
        sys.stdout.flush()
        return
    path = Path(out)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb") as handle:
            yield handle
        os.chmod(partial, file_mode())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m model_code.commands.recommend", description=__doc__.split("\n")[0],
                                     epilog="INPUT ending in .jsonl, .ndjson or .json (optionally .gz) holds "
                                            "requests; anything else is read as events, by default with the "
                                            "reading options the model was trained with (its metadata.json).")
    parser.add_argument("input", help="JSON-lines requests, or events: a file, a folder of files or an s3:// URI")
    parser.add_argument(
        "--model-dir", required=True, type=Path, help="a model directory (scorer.onnx, items.json, ...)"
    )
    parser.add_argument("--out", help="the JSON-lines file of answers to write (default: standard output)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_trained_read_options(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    json_lines = is_json_lines(args.input)
    if json_lines and not Path(args.input).is_file():
        print(f"error: {args.input} is not a file", file=sys.stderr)
        return 1
    try:
        model = Model.load(args.model_dir)
    except (artifacts.ModelDirError, OSError, ValueError) as err:
        print(f"error: cannot load the model from {args.model_dir}: {err}", file=sys.stderr)
        return 1
    size = Path(args.input).stat().st_size if json_lines else None
    with tqdm(total=size, unit="B", unit_scale=True, disable=args.quiet, file=sys.stderr,
              desc="scoring") as progress:
        try:
            lines = (file_lines(Path(args.input), progress) if json_lines
                     else event_lines(args.input, trained_read_options(args, model.metadata), progress))
            with output(args.out) as out:
                answered = answer_lines(model, lines, out.write)
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    print(f"{args.out or 'standard output'}: {answered} answers by model {model.version}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
