"""The scoring engine against an independent reference: each session alone through scorer.onnx, then NumPy."""
import shutil

import numpy as np
import onnxruntime
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inference import engine as engine_module
from inference.engine import MAX_SESSION_LENGTH, Recommender, top_k
from model_code import artifacts

UNKNOWN = ["never-seen-1", "never-seen-2", "", "-1"]


class Reference:
    """Top k of one session, computed the plain way: no padding, no batching, a full sort."""

    def __init__(self, model_dir):
        self.scorer = onnxruntime.InferenceSession(str(model_dir / artifacts.SCORER_FILE),
                                                   providers=["CPUExecutionProvider"])
        self.items = artifacts.read_items(model_dir)
        self.index = {item: i for i, item in enumerate(self.items)}
        self.table = np.load(model_dir / artifacts.EMBEDDINGS_FILE)
        self.bias = np.load(model_dir / artifacts.BIAS_FILE)

    def scores(self, session: list[str]) -> np.ndarray:
        indices = [self.index[item] for item in session][-MAX_SESSION_LENGTH:]
        hidden = self.scorer.run(["hidden"], {"items": np.array([indices], dtype=np.int32),
                                              "lengths": np.array([len(indices)], dtype=np.int32)})[0][0]
        return hidden.astype(np.float64) @ self.table.T.astype(np.float64) + self.bias

    def top(self, session: list[str], k: int, exclude: set[str] = frozenset()) -> list[tuple[str, float]]:
        scores = self.scores(session)
        ranked = [i for i in np.argsort(-scores, kind="stable") if self.items[i] not in exclude]
        return [(self.items[i], float(scores[i])) for i in ranked[:k]]


@pytest.fixture(scope="module")
def engine(model_dir) -> Recommender:
    loaded = Recommender.load(model_dir)
    loaded.warm_up()
    return loaded


@pytest.fixture(scope="module")
def reference(model_dir) -> Reference:
    return Reference(model_dir)


@pytest.fixture(scope="module")
def sessions(reference) -> list[list[str]]:
    """Sessions of many lengths (1 to 40, and a few over the 200-item cut) over the known items."""
    rng = np.random.default_rng(3)
    items = reference.items
    lengths = [1, 1, 2, 3, 4, 5, 5, 6, 7, 9, 12, 13, 17, 25, 40, 1, 3, 250, 2, 201, 8]
    return [[items[i] for i in rng.integers(0, len(items), size=n)] for n in lengths]


def assert_same_ranking(got: list[tuple[str, float]], expected: list[tuple[str, float]], reference, session):
    """``got`` is a correct top-k: same length, same scores as the reference, each item's own score (ties aside)."""
    assert len(got) == len(expected)
    assert [score for _, score in got] == pytest.approx([score for _, score in expected], abs=1e-4)
    all_scores = reference.scores(session) if session else None
    for item, score in got:
        assert isinstance(item, str) and isinstance(score, float)
        if all_scores is not None:
            assert all_scores[reference.index[item]] == pytest.approx(score, abs=1e-4)
    assert len({item for item, _ in got}) == len(got)


def test_each_session_of_a_batch_matches_the_reference(engine, reference, sessions):
    results = engine.recommend(sessions, k=20)
    assert len(results) == len(sessions)
    for session, result in zip(sessions, results):
        assert result.unknown_items == 0 and not result.fallback
        assert_same_ranking(result.recommendations, reference.top(session, 20), reference, session)


def test_a_batch_answers_as_the_sessions_would_one_by_one(engine, sessions):
    together = engine.recommend(sessions, k=7)
    for session, result in zip(sessions, together):
        alone = engine.recommend([session], k=7)[0]
        assert [item for item, _ in alone.recommendations] == [item for item, _ in result.recommendations]
        assert [s for _, s in alone.recommendations] == pytest.approx([s for _, s in result.recommendations], abs=1e-5)


def test_small_chunks_give_the_same_answers(model_dir, engine, sessions):
    chunked = Recommender.load(model_dir)
    chunked.chunk_rows = 3
    for a, b in zip(
        chunked.recommend(sessions, k=5, exclude_seen=True), engine.recommend(sessions, k=5, exclude_seen=True)
    ):
        assert [item for item, _ in a.recommendations] == [item for item, _ in b.recommendations]


def test_scores_are_best_first_and_ties_go_to_the_lower_index(engine, sessions):
    for result in engine.recommend(sessions, k=50):
        scores = [score for _, score in result.recommendations]
        assert scores == sorted(scores, reverse=True)
        for (item_a, a), (item_b, b) in zip(result.recommendations, result.recommendations[1:]):
            if a == b:
                assert engine.index[item_a] < engine.index[item_b]


def test_unknown_items_are_skipped_and_counted(engine, reference):
    known = reference.items[5:8]
    mixed = [UNKNOWN[0], known[0], UNKNOWN[1], known[1], known[2], UNKNOWN[0]]
    result = engine.recommend([mixed], k=10)[0]
    assert result.unknown_items == 3 and not result.fallback
    assert_same_ranking(result.recommendations, reference.top(known, 10), reference, known)


def test_a_session_without_known_items_gets_the_popular_items(engine, model_dir):
    popular = artifacts.read_metadata(model_dir)["popular_items"]
    unknown_only, empty = engine.recommend([UNKNOWN, []], k=5)
    assert unknown_only.fallback and empty.fallback
    assert unknown_only.recommendations == [(item, 0.0) for item in popular[:5]]
    assert empty.recommendations == unknown_only.recommendations
    assert unknown_only.unknown_items == len(UNKNOWN) and empty.unknown_items == 0


def test_fallback_honours_exclude_seen_and_k(engine, model_dir):
    popular = artifacts.read_metadata(model_dir)["popular_items"]
    result = engine.recommend([UNKNOWN], k=1000, exclude_seen=True)[0]
    assert [item for item, _ in result.recommendations] == popular[:1000]
    assert not set(UNKNOWN) & {item for item, _ in result.recommendations}


def test_fallback_leaves_out_popular_items_the_model_does_not_know(engine, model_dir):
    items = artifacts.read_items(model_dir)
    table, bias = artifacts.read_output_layer(model_dir)
    custom = Recommender(engine.scorer, items, table, bias, ["ghost", items[3], items[3], items[1]])
    assert custom.recommend([["ghost"]], k=3)[0].recommendations == [(items[3], 0.0), (items[1], 0.0)]


def test_exclude_seen_removes_the_session_items(engine, reference, sessions):
    for session, result in zip(sessions, engine.recommend(sessions, k=15, exclude_seen=True)):
        expected = reference.top(session, 15, exclude=set(session))
        assert not set(session) & {item for item, _ in result.recommendations}
        assert_same_ranking(result.recommendations, expected, reference, session)


def test_exclude_seen_covers_items_before_the_length_cut(engine, reference):
    items = reference.items
    early, late = items[:10], items[10:20]
    session = early + late * 25  # 260 items: the first ten fall before the 200-item cut
    result = engine.recommend([session], k=len(items), exclude_seen=True)[0]
    assert len(result.recommendations) == len(items) - 20
    assert not set(early + late) & {item for item, _ in result.recommendations}


def test_long_sessions_use_their_last_items(engine, reference):
    items = reference.items
    session = [items[i % 50] for i in range(MAX_SESSION_LENGTH + 37)]
    got = engine.recommend([session], k=10)[0].recommendations
    assert_same_ranking(got, reference.top(session[-MAX_SESSION_LENGTH:], 10), reference, session)


@pytest.mark.parametrize("k", [1, 2, 119, 120, 121, 1000])
def test_k_is_capped_by_the_catalogue(engine, reference, k):
    session = reference.items[:4]
    result = engine.recommend([session], k=k)[0]
    assert len(result.recommendations) == min(k, len(reference.items))
    assert_same_ranking(result.recommendations, reference.top(session, k), reference, session)


def test_everything_seen_leaves_nothing_to_recommend(engine, reference):
    result = engine.recommend([list(reference.items)], k=5, exclude_seen=True)[0]
    assert result.recommendations == [] and result.unknown_items == 0 and not result.fallback


@pytest.mark.parametrize("k", [0, -1, 2.5, True, None])
def test_k_must_be_a_positive_integer(engine, k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        engine.recommend([["a"]], k=k)


def test_no_sessions_no_results(engine):
    assert engine.recommend([], k=3) == []


def test_sessions_are_not_modified(engine, sessions):
    copies = [list(session) for session in sessions]
    engine.recommend(sessions, k=3, exclude_seen=True)
    assert sessions == copies


def test_onnx_threads_are_configurable(model_dir):
    loaded = Recommender.load(model_dir, intra_op_threads=2)
    assert loaded.scorer.get_session_options().intra_op_num_threads == 2
    assert Recommender.load(model_dir).scorer.get_session_options().intra_op_num_threads == 1


def test_warm_up_answers_and_n_items(engine, reference):
    engine.warm_up()
    assert engine.n_items == len(reference.items)


@pytest.mark.parametrize("broken", ["no_scorer", "bad_scorer", "short_table", "no_items"])
def test_a_broken_model_directory_names_the_problem(model_dir, tmp_path, broken):
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    if broken == "no_scorer":
        (target / artifacts.SCORER_FILE).unlink()
        message = "scorer.onnx"
    elif broken == "bad_scorer":
        (target / artifacts.SCORER_FILE).write_bytes(b"not an onnx graph")
        message = "not a usable ONNX model"
    elif broken == "short_table":
        table = np.load(target / artifacts.EMBEDDINGS_FILE)
        bias = np.load(target / artifacts.BIAS_FILE)
        np.save(target / artifacts.EMBEDDINGS_FILE, table[:-1])
        np.save(target / artifacts.BIAS_FILE, bias[:-1])
        message = "does not match"
    else:
        (target / artifacts.ITEMS_FILE).unlink()
        message = "items.json"
    with pytest.raises(artifacts.ModelDirError, match=message):
        Recommender.load(target)


@pytest.mark.parametrize("name, content", [
    (artifacts.EMBEDDINGS_FILE, None),
    (artifacts.BIAS_FILE, None),
    (artifacts.METADATA_FILE, None),
    (artifacts.EMBEDDINGS_FILE, b"\x93NUMPY truncated"),
    (artifacts.BIAS_FILE, b""),
    (artifacts.ITEMS_FILE, b'["a", '),
    (artifacts.ITEMS_FILE, b"[1, 2]"),
    (artifacts.METADATA_FILE, b"\xff\xfe not UTF-8"),
    (artifacts.METADATA_FILE, b"[]"),
])
def test_a_missing_or_unreadable_file_is_named(model_dir, tmp_path, name, content):
    """``None``: the file is missing; else its content is replaced."""
    target = shutil.copytree(model_dir, tmp_path / "model")
    if content is None:
        (target / name).unlink()
    else:
        (target / name).write_bytes(content)
    with pytest.raises(artifacts.ModelDirError, match=name.replace(".", r"\.")):
        Recommender.load(target)


# -- top_k on its own: every path (full sort, argpartition, strided groups) against a full sort ------------

def check_top_k(scores: np.ndarray, k: int) -> None:
    columns, values = top_k(scores, k)
    kept = min(k, scores.shape[1])
    expected = -np.sort(-scores, axis=1)[:, :kept]
    assert columns.shape == values.shape == (scores.shape[0], kept)
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_array_equal(np.take_along_axis(scores, columns, axis=1), values)
    for row_columns, row_values in zip(columns.tolist(), values.tolist()):
        assert len(set(row_columns)) == kept
        for (a, va), (b, vb) in zip(zip(row_columns, row_values), zip(row_columns[1:], row_values[1:])):
            assert va > vb or (va == vb and a < b)


@settings(max_examples=60)
@given(
    scores=hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 3000)),
                      elements=st.one_of(st.floats(-5, 5, width=32), st.sampled_from([-np.inf, -1.0, 0.0, 2.5]))),
    k=st.integers(1, 40),
)
def test_top_k_equals_a_full_sort(scores, k):
    check_top_k(scores, k)


@pytest.mark.parametrize("columns, k", [(256, 1), (2933, 1), (5120, 20), (43_097, 20), (43_097, 168), (30_000, 100)])
def test_top_k_shortcut_for_large_catalogues(columns, k):
    assert columns >= 256 * k  # the strided-group path
    rng = np.random.default_rng(columns + k)
    scores = rng.standard_normal((5, columns)).astype(np.float32)
    scores[1] = np.round(scores[1])  # many ties
    scores[2, rng.integers(0, columns, size=columns // 2)] = -np.inf
    scores[3, :] = -np.inf
    scores[3, -1] = 1.0  # the best score in the columns no group covers
    scores[4] = np.arange(columns)  # rising: the top k all in the last groups
    check_top_k(scores, k)


def test_length_groups_keep_padding_low():
    lengths = [1, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 10, 40, 49, 50, 200]
    groups = list(engine_module._length_groups(lengths))
    assert groups[0][0] == 0 and groups[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
    for start, stop in groups:
        assert lengths[stop - 1] <= lengths[start] * engine_module.LENGTH_SPREAD
    assert len(groups) < len(set(lengths))


# -- business rules: exclude and include lists -------------------------------------------------------------

def test_exclude_items_are_never_recommended_and_the_rest_is_the_reference_top_k(engine, reference, sessions):
    top = {item for result in engine.recommend(sessions, k=10) for item, _ in result.recommendations}
    excluded = sorted(top)[: len(top) // 2]
    item_filter = engine.item_filter(exclude=excluded)
    results = engine.recommend(sessions, k=10, filters=[item_filter] * len(sessions))
    for session, result in zip(sessions, results):
        assert_same_ranking(
            result.recommendations, reference.top(session, 10, exclude=set(excluded)), reference, session
        )
        assert result.unknown_filter_items == 0 and result.unknown_items == 0


def test_include_items_restrict_the_answer_to_the_list(engine, reference, sessions):
    allowed = reference.items[::7]
    item_filter = engine.item_filter(include=allowed + UNKNOWN)
    results = engine.recommend(sessions, k=12, filters=[item_filter] * len(sessions))
    outside = set(reference.items) - set(allowed)
    for session, result in zip(sessions, results):
        assert_same_ranking(result.recommendations, reference.top(session, 12, exclude=outside), reference, session)
        assert len(result.recommendations) == min(12, len(allowed))
        assert result.unknown_filter_items == len(UNKNOWN) and result.unknown_items == 0


def test_fewer_than_k_come_back_only_where_fewer_remain(engine, reference, sessions):
    allowed = reference.items[10:13]
    session = sessions[4]
    both = engine.item_filter(exclude=[allowed[0]], include=allowed)
    result = engine.recommend([session], k=20, filters=[both])[0]
    assert sorted(item for item, _ in result.recommendations) == sorted(allowed[1:])
    seen_too = engine.recommend([session], k=20, exclude_seen=True, filters=[both])[0]
    assert {item for item, _ in seen_too.recommendations} == set(allowed[1:]) - set(session)


def test_each_session_keeps_its_own_filter(engine, reference, sessions):
    """Rows with different filters, rows sharing one, and rows with none, in one call: each as if alone."""
    chosen = sessions[:6]
    shared = engine.item_filter(exclude=reference.items[:40])
    filters = [shared, None, engine.item_filter(include=reference.items[20:60]), shared, None,
               engine.item_filter(exclude=["never-seen-1"])]
    together = engine.recommend(chosen, k=8, filters=filters)
    excludes = [set(reference.items[:40]), set(), set(reference.items) - set(reference.items[20:60]),
                set(reference.items[:40]), set(), set()]
    for session, result, exclude, item_filter in zip(chosen, together, excludes, filters):
        assert_same_ranking(result.recommendations, reference.top(session, 8, exclude=exclude), reference, session)
        assert result.unknown_filter_items == (None if item_filter is None else item_filter.unknown)
    assert together[5].unknown_filter_items == 1


def test_fallback_answers_follow_the_filters(engine, model_dir):
    popular = artifacts.read_metadata(model_dir)["popular_items"]
    item_filter = engine.item_filter(exclude=popular[:3], include=popular[:10])
    result = engine.recommend([UNKNOWN], k=5, filters=[item_filter])[0]
    assert result.fallback and result.recommendations == [(item, 0.0) for item in popular[3:8]]


def test_filters_must_match_the_sessions(engine, sessions):
    with pytest.raises(ValueError, match="2 filters for 3 sessions"):
        engine.recommend(sessions[:3], filters=[None, None])


def test_the_last_few_filters_are_kept_by_their_lists_contents(model_dir, reference):
    fresh = Recommender.load(model_dir)
    first = fresh.item_filter(include=reference.items[:30])
    assert fresh.item_filter(include=list(reference.items[:30])) is first, "the same ids again: the kept filter"
    assert fresh.item_filter(exclude=reference.items[:30]) is not first
    for n in range(engine_module.FILTER_CACHE_SIZE):
        fresh.item_filter(include=reference.items[n:n + 5])
    again = fresh.item_filter(include=reference.items[:30])
    assert again is not first and np.array_equal(again.blocked, first.blocked), "evicted, then built anew alike"
