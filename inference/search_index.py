"""Fast top-k for large catalogues: a FAISS inverted-file index over the output layer.

A session's scores are ``hidden @ table.T + bias``: an inner product of the query ``[hidden, 1]``
with the items ``[embedding, bias]``. The index (``faiss.IndexIVFFlat``, inner-product metric) splits
the items into :func:`cluster_count` clusters by k-means and files each item under the centroid it
scores best against; a search scores the query against the centroids, scans the items of the
``nprobe`` best clusters, so it reads a few percent of the table instead of all of it, and may miss
an item whose cluster it does not scan: :func:`recall` measures how often. (The textbook reduction
of inner products to distances, an extra coordinate ``sqrt(M^2 - |item|^2)``, recalled far less
here: item norms vary, and that coordinate then dominates the clustering.)

The index is written at export time beside the output layer (:data:`INDEX_FILE`, for catalogues of
:data:`INDEX_MIN_ITEMS` items or more) and read memory-mapped, so the server's workers share its
pages as they share the table's. ``python -m inference.search_index --model-dir DIR`` builds it for
an existing model directory.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from model_code import artifacts

INDEX_FILE = "item_search.faiss"
INDEX_MIN_ITEMS = 100_000
"""Catalogues this large get an index at export, and the server uses it by default (see ``SERVE_TOP_K``)."""
PROBE_FRACTION = 1 / 8
"""Clusters scanned per search, as a share of all clusters (``nprobe``; see docs/benchmarks.md for recall)."""
TRAINING_POINTS_PER_CLUSTER = 64
"""k-means trains on at most this many items per cluster (a sample: FAISS needs about 39)."""


def cluster_count(n_items: int) -> int:
    """About 2 sqrt(n) clusters, a power of two: 2,048 for a million items."""
    return max(1, 2 ** round(math.log2(2 * math.sqrt(n_items))))


def augment_items(table: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The items as ``[embedding, bias]`` rows: their inner product with :func:`augment_queries` is the score."""
    return np.ascontiguousarray(np.concatenate([table, bias[:, None]], axis=1), dtype=np.float32)


def augment_queries(hidden: np.ndarray) -> np.ndarray:
    """The sessions' hidden states as ``[hidden, 1]`` rows."""
    ones = np.ones((hidden.shape[0], 1), np.float32)
    return np.ascontiguousarray(np.concatenate([hidden.astype(np.float32), ones], axis=1))


def build(table: np.ndarray, bias: np.ndarray, seed: int = 0) -> faiss.Index:
    """An inverted-file index of the output layer's items (ids: the item indices)."""
    vectors = augment_items(table, bias)
    clusters = cluster_count(len(vectors))
    dimensions = vectors.shape[1]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimensions), dimensions, clusters, faiss.METRIC_INNER_PRODUCT)
    sample = min(len(vectors), clusters * TRAINING_POINTS_PER_CLUSTER)
    chosen = np.random.default_rng(seed).choice(len(vectors), size=sample, replace=False)
    index.train(vectors[np.sort(chosen)])
    index.add(vectors)
    return index


def write(model_dir: str | Path, table: np.ndarray, bias: np.ndarray) -> Path:
    """Build the index and write it into ``model_dir`` atomically; returns its path."""
    target = Path(model_dir) / INDEX_FILE
    partial = target.with_name(f".{INDEX_FILE}.partial")
    try:
        faiss.write_index(build(table, bias), str(partial))
        partial.chmod(artifacts.file_mode())
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


class SearchIndex:
    """A model directory's index, memory-mapped, searched ``nprobe`` clusters deep."""

    def __init__(self, index: faiss.Index, nprobe: int | None = None):
        self.index = index
        self.nprobe = nprobe or max(1, round(index.nlist * PROBE_FRACTION))

    @classmethod
    def load(cls, model_dir: str | Path, n_items: int, dimensions: int) -> SearchIndex | None:
        """The index of ``model_dir``, or None where it has none; ModelDirError where it does not fit."""
        path = Path(model_dir) / INDEX_FILE
        if not path.is_file():
            return None
        try:
            # MMAP_IFC maps the item vectors read-only (shared between processes) and scans them as
            # in-memory lists; plain MMAP reads them through a locked on-disk list type, ten times slower
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
        except RuntimeError as err:  # FAISS reports unreadable files as RuntimeError
            raise artifacts.ModelDirError(f"{INDEX_FILE} is not a readable FAISS index") from err
        if index.ntotal != n_items or index.d != dimensions + 1:
            raise artifacts.ModelDirError(f"{INDEX_FILE} holds {index.ntotal} items of {index.d - 1} dimensions, "
                              f"the output layer {n_items} of {dimensions}: export the model again")
        return cls(index)

    def search(self, hidden: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """Item indices ``[rows, k]`` of the best-scored items found, best first, -1 past the last found.

        ``allowed``: a bitmap of the items that may be returned (:func:`allowed_bitmap`), or None for all.
        """
        selector = None if allowed is None else faiss.IDSelectorBitmap(self.index.ntotal, faiss.swig_ptr(allowed))
        params = faiss.SearchParametersIVF(nprobe=self.nprobe, sel=selector)
        _, found = self.index.search(augment_queries(hidden), k, params=params)
        return found


def allowed_bitmap(blocked: np.ndarray) -> np.ndarray:
    """FAISS's bitmap (bit i of byte i // 8, least significant first) of the items ``blocked`` does not rule out."""
    return np.packbits(~blocked, bitorder="little")


def recall(exact: np.ndarray, found: np.ndarray) -> float:
    """Mean share of each row's exact top items that ``found`` (same rows) holds."""
    hits = [len(np.intersect1d(want, got[got >= 0])) for want, got in zip(exact, found)]
    return float(np.sum(hits) / exact.size)


def main(argv: list[str] | None = None) -> int:
    """``python -m inference.search_index --model-dir DIR``: write DIR's index from its output layer."""
    parser = argparse.ArgumentParser(prog="python -m inference.search_index", description=main.__doc__)
    parser.add_argument("--model-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        table, bias = artifacts.read_output_layer(args.model_dir)
    except artifacts.ModelDirError as err:
        parser.error(f"--model-dir: {err}")
    start = time.perf_counter()
    path = write(args.model_dir, table, bias)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB, {cluster_count(len(table))} clusters) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
