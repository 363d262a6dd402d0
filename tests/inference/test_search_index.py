"""The search index for large catalogues against exact NumPy scoring: the reduction to nearest
neighbours, its recall at the default depth, filters and ``exclude_seen`` through the engine, and
the model directory's arrays memory-mapped rather than copied."""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference import engine as engine_module
from inference import search_index
from inference.engine import Recommender
from inference.search_index import SearchIndex
from inference.server_settings import ServerSettings, SettingsError
from model_code import artifacts
from model_code.export.scorer import write_search_index


def clustered_layer(n_items: int, dimensions: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An output layer whose items gather around topics, as trained embeddings do."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((max(2, n_items // 100), dimensions))
    table = topics[rng.integers(0, len(topics), n_items)] + 0.5 * rng.standard_normal((n_items, dimensions))
    return (0.1 * table).astype(np.float32), (0.1 * rng.standard_normal(n_items)).astype(np.float32)


def exact_top(hidden: np.ndarray, table: np.ndarray, bias: np.ndarray, k: int) -> np.ndarray:
    scores = hidden.astype(np.float64) @ table.T.astype(np.float64) + bias
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


@pytest.fixture(scope="module")
def layer():
    table, bias = clustered_layer(20_000, 32)
    return table, bias, search_index.build(table, bias)


@pytest.fixture(scope="module")
def queries():
    return np.tanh(np.random.default_rng(1).standard_normal((100, 32))).astype(np.float32)


def test_scanning_every_cluster_finds_the_exact_top_20(layer, queries):
    table, bias, index = layer
    found = SearchIndex(index, nprobe=index.nlist).search(queries, 20)
    assert search_index.recall(exact_top(queries, table, bias, 20), found) == 1.0


def test_a_query_without_the_bias_coordinate_misses_items(layer, queries):
    """Negative control: the same full scan with the bias left out of the query ranks otherwise."""
    table, bias, index = layer
    _, found = index.search(np.ascontiguousarray(np.concatenate([queries, np.zeros((100, 1), np.float32)], axis=1)),
                            20, params=search_index.faiss.SearchParametersIVF(nprobe=index.nlist))
    assert search_index.recall(exact_top(queries, table, bias, 20), found) < 0.9


def test_default_depth_recalls_most_of_the_exact_top_20(layer, queries):
    table, bias, index = layer
    search = SearchIndex(index)
    assert search.nprobe < index.nlist  # a real shortcut: not every cluster
    assert search_index.recall(exact_top(queries, table, bias, 20), search.search(queries, 20)) >= 0.9


def test_the_bitmap_keeps_out_the_blocked_items(layer, queries):
    table, bias, index = layer
    blocked = np.random.default_rng(2).random(len(table)) < 0.5
    found = SearchIndex(index, nprobe=index.nlist).search(queries, 20, search_index.allowed_bitmap(blocked))
    assert (found >= 0).all() and not blocked[found].any()
    scores = queries.astype(np.float64) @ table.T + bias
    scores[:, blocked] = -np.inf
    assert search_index.recall(np.argsort(-scores, axis=1)[:, :20], found) == 1.0


def test_cluster_count_grows_as_the_square_root():
    assert search_index.cluster_count(1_000_000) == 2048
    assert search_index.cluster_count(100_000) == 512


# -- through the engine, on the small trained model ----------------------------------------------------

@pytest.fixture(scope="module")
def indexed_dir(model_dir, tmp_path_factory) -> Path:
    target = shutil.copytree(model_dir, tmp_path_factory.mktemp("indexed") / "model")
    table, bias = artifacts.read_output_layer(target)
    search_index.write(target, table, bias)
    return target


@pytest.fixture(scope="module")
def engines(indexed_dir):
    indexed = Recommender.load(indexed_dir, top_k_search="index")
    indexed.search.nprobe = indexed.search.index.nlist  # every cluster: the answers must be the exact ones
    return indexed, Recommender.load(indexed_dir, top_k_search="exact")


def sessions_of(items: list[str], n: int = 30) -> list[list[str]]:
    rng = np.random.default_rng(3)
    return [list(rng.choice(items, size=rng.integers(1, 8))) for _ in range(n)]


def ids(results) -> list[list[str]]:
    return [[item for item, _ in result.recommendations] for result in results]


def test_auto_uses_no_index_for_a_small_catalogue(indexed_dir, engines):
    assert Recommender.load(indexed_dir).search is None
    assert engines[0].search is not None and engines[1].search is None


@pytest.mark.parametrize(
    "few_allowed", [0, engine_module.FEW_ALLOWED], ids=["filters-in-the-search", "few-scored-alone"]
)
@pytest.mark.parametrize("exclude_seen", [False, True])
def test_index_answers_match_exact_scoring_with_filters(engines, exclude_seen, few_allowed, monkeypatch):
    """Filters either go into the search (a row left with fewer than k is ranked exactly) or, where they
    allow few items, have those scored alone; both must give the exact answers."""
    monkeypatch.setattr(engine_module, "FEW_ALLOWED", few_allowed)
    indexed, exact = engines
    sessions = sessions_of(exact.items)
    few = exact.item_filter(include=exact.items[:5])  # fewer allowed than k: the row falls back to exact
    some = exact.item_filter(exclude=exact.items[::3])
    filters = [[None, few, some][n % 3] for n in range(len(sessions))]
    got = indexed.recommend(sessions, k=10, exclude_seen=exclude_seen, filters=filters)
    want = exact.recommend(sessions, k=10, exclude_seen=exclude_seen, filters=filters)
    assert ids(got) == ids(want)
    for a, b in zip(got, want):
        assert np.allclose([s for _, s in a.recommendations], [s for _, s in b.recommendations], atol=1e-5)
    assert all(len(result.recommendations) <= 5 for result in got[1::3])


def test_exact_calls_skip_the_index(engines):
    indexed, _ = engines
    indexed.search.nprobe = 1  # a shallow search could miss items; an exact call must not care
    try:
        sessions = sessions_of(indexed.items)
        full = indexed.recommend(sessions, k=20, exact=True)
        reference = engines[1].recommend(sessions, k=20)
        assert ids(full) == ids(reference)
    finally:
        indexed.search.nprobe = indexed.search.index.nlist


def test_index_mode_needs_the_index_file(model_dir):
    with pytest.raises(artifacts.ModelDirError, match=search_index.INDEX_FILE.replace(".", r"\.")):
        Recommender.load(model_dir, top_k_search="index")


def test_an_index_of_another_output_layer_is_refused(model_dir, tmp_path):
    target = shutil.copytree(model_dir, tmp_path / "model")
    table, bias = artifacts.read_output_layer(target)
    search_index.write(target, table[:-1], bias[:-1])
    with pytest.raises(artifacts.ModelDirError, match="export the model again"):
        Recommender.load(target, top_k_search="index")


def test_export_writes_the_index_for_large_catalogues_only(tmp_path, monkeypatch):
    table, bias = clustered_layer(2_000, 8)
    monkeypatch.setattr(search_index, "INDEX_MIN_ITEMS", 1_000)
    write_search_index(tmp_path, table, bias)
    assert (tmp_path / search_index.INDEX_FILE).is_file()
    write_search_index(tmp_path, table[:500], bias[:500])  # a later, smaller export removes the stale index
    assert not (tmp_path / search_index.INDEX_FILE).exists()


def test_the_top_k_setting_is_checked():
    assert ServerSettings.from_env({}).top_k == "auto"
    assert ServerSettings.from_env({"SERVE_TOP_K": "Exact"}).top_k == "exact"
    with pytest.raises(SettingsError, match="SERVE_TOP_K"):
        ServerSettings.from_env({"SERVE_TOP_K": "fast"})


# -- memory-mapped, not copied --------------------------------------------------------------------------

MAPPED = """
import sys, numpy as np
from pathlib import Path
from model_code import artifacts
path = Path(sys.argv[1])
kept = artifacts.read_output_layer(path.parent) if sys.argv[2] == "artifacts" else np.load(path)
print(any(line.rstrip().endswith(str(path)) for line in open("/proc/self/maps")))
"""


def maps_file(model_dir: Path, how: str) -> bool:
    path = (model_dir / artifacts.EMBEDDINGS_FILE).resolve()
    done = subprocess.run([sys.executable, "-c", MAPPED, str(path), how], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], check=True)
    return done.stdout.strip() == "True"


def test_the_output_layer_is_mapped_from_its_file(model_dir):
    assert maps_file(model_dir, "artifacts")
    assert not maps_file(model_dir, "plain")  # negative control: np.load reads a private copy


def test_the_engine_keeps_the_mapped_table_read_only(model_dir):
    engine = Recommender.load(model_dir)
    assert not engine.table.flags.writeable and not engine.bias.flags.writeable
    mapped = np.load(model_dir / artifacts.EMBEDDINGS_FILE, mmap_mode="r")
    assert np.array_equal(engine.table, mapped)


def test_json_lines_are_scored_exactly_and_json_requests_through_the_index(engines, monkeypatch):
    """The server's two paths: a JSON request asks the index, a JSON-lines (batch) request never does."""
    from inference import contracts, streaming

    indexed, _ = engines
    searched = []
    search = Recommender._search
    monkeypatch.setattr(
        Recommender, "_search", lambda self, *args: searched.append(len(args[0])) or search(self, *args)
    )
    body = {"items": indexed.items[:3], "k": 5}
    lines = contracts.parse_json_lines(json.dumps({"session_id": "s", **body}).encode() + b"\n")
    list(streaming.stream_json_lines(indexed, lines, {}, "v"))
    assert searched == []
    streaming.score(indexed, contracts.parse_json_request(json.dumps(body).encode()).sessions)
    assert searched == [1]  # the control: the same session as a JSON request goes through the index


def test_the_index_command_writes_an_index_the_engine_takes(model_dir, tmp_path, capsys):
    target = shutil.copytree(model_dir, tmp_path / "model")
    assert search_index.main(["--model-dir", str(target)]) == 0
    assert search_index.INDEX_FILE in capsys.readouterr().out
    assert Recommender.load(target, top_k_search="index").search.index.ntotal == len(artifacts.read_items(target))


def test_the_index_command_names_a_directory_without_an_output_layer(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        search_index.main(["--model-dir", str(tmp_path)])
    assert exited.value.code == 2 and "--model-dir" in capsys.readouterr().err


def test_catalogue_sizes_read_as_the_benchmark_takes_them():
    from benchmarks.scale import catalogue_sizes

    assert catalogue_sizes("10000,100000,1000000") == catalogue_sizes("10k,100k,1M") == [10_000, 100_000, 1_000_000]
    with pytest.raises(argparse.ArgumentTypeError, match="'ten'"):
        catalogue_sizes("ten")


def test_the_index_is_mapped_from_its_file(indexed_dir):
    """The loaded index's item vectors are the file's pages (shared by the workers), not a copy."""
    path = (indexed_dir / search_index.INDEX_FILE).resolve()
    search = SearchIndex.load(indexed_dir, *artifacts.read_output_layer(indexed_dir)[0].shape)
    assert search is not None
    assert any(line.rstrip().endswith(str(path)) for line in open("/proc/self/maps"))
