"""Ranks and Recall/MRR against hand-computed values, ties included."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from model_code.data.session_batches import SessionArrays
from model_code.ranking.metrics import CUTOFFS, TIE_MODES, NextItemScorer, RankingMetrics, evaluate, target_ranks

SCORES = np.array(
    [
        [0.1, 0.5, 0.3, 0.5, 0.2],  # target 3 (0.5): one tie (item 1), nothing higher
        [1.0, 1.0, 1.0, 1.0, 1.0],  # target 2: all five tied
        [0.9, 0.8, 0.7, 0.6, 0.5],  # target 4: last, no ties
        [0.2, 0.9, 0.2, 0.9, 0.2],  # target 0 (0.2): two higher, two tied
    ],
    dtype=np.float32,
)
TARGETS = np.array([3, 2, 4, 0])
HAND_RANKS = {
    "standard": [1, 1, 5, 3],
    "conservative": [2, 5, 5, 5],
    "median": [1.5, 3, 5, 4],
}


@pytest.mark.parametrize("ties", TIE_MODES)
def test_target_ranks_by_hand(ties):
    ranks = target_ranks(SCORES, TARGETS, ties)
    assert ranks.dtype == np.float64
    np.testing.assert_array_equal(ranks, HAND_RANKS[ties])


def test_default_ties_are_conservative():
    np.testing.assert_array_equal(target_ranks(SCORES, TARGETS), HAND_RANKS["conservative"])


def test_unknown_tie_mode_is_refused():
    with pytest.raises(ValueError, match="ties"):
        target_ranks(SCORES, TARGETS, "optimistic")


def test_nan_target_score_is_refused():
    scores = SCORES.copy()
    scores[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(scores, TARGETS)


@pytest.mark.parametrize("ties", TIE_MODES)
def test_metrics_by_hand(ties):
    metrics = RankingMetrics((1, 2, 5))
    metrics.add(target_ranks(SCORES[:2], TARGETS[:2], ties))
    metrics.add(target_ranks(SCORES[2:], TARGETS[2:], ties))
    ranks = HAND_RANKS[ties]
    expected = {}
    for k in (1, 2, 5):
        expected[f"recall@{k}"] = sum(r <= k for r in ranks) / 4
    for k in (1, 2, 5):
        expected[f"mrr@{k}"] = sum(1 / r for r in ranks if r <= k) / 4
    assert metrics.n_events == 4
    assert metrics.result() == pytest.approx(expected)
    assert list(metrics.result()) == list(expected)


def test_metric_values_spelled_out():
    metrics = RankingMetrics((1, 5, 10, 20))
    metrics.add(np.array([1.0, 2.0, 7.0, 25.0]))
    assert metrics.result() == pytest.approx(
        {
            "recall@1": 0.25, "recall@5": 0.5, "recall@10": 0.75, "recall@20": 0.75,
            "mrr@1": 0.25, "mrr@5": (1 + 0.5) / 4, "mrr@10": (1 + 0.5 + 1 / 7) / 4, "mrr@20": (1 + 0.5 + 1 / 7) / 4,
        }
    )


@settings(max_examples=60)
@given(
    scores=hnp.arrays(
        np.float32, st.tuples(st.integers(1, 6), st.integers(1, 8)), elements=st.sampled_from([0.0, 0.5, 1.0, -2.0])
    ),
    data=st.data(),
)
def test_ranks_match_a_sort_based_reference(scores, data):
    n, m = scores.shape
    targets = np.array(data.draw(st.lists(st.integers(0, m - 1), min_size=n, max_size=n)))
    for ties in TIE_MODES:
        ranks = target_ranks(scores, targets, ties)
        for i in range(n):
            ordered = sorted(scores[i], reverse=True)  # positions 1..m of a descending sort
            target = scores[i, targets[i]]
            positions = [p + 1 for p, s in enumerate(ordered) if s == target]
            expected = {"standard": positions[0], "conservative": positions[-1], "median": np.mean(positions)}[ties]
            assert ranks[i] == expected


class FixedTransitions:
    """Scores from a fixed table: row = current item (stateless)."""

    def __init__(self, table):
        self.table = np.asarray(table, dtype=np.float32)
        self.n_items = self.table.shape[1]
        self.calls = 0

    def score(self, inputs, resets):
        self.calls += 1
        return self.table[inputs]


class RemembersFirstItem:
    """Stateful: scores the session's first item highest, so resets must be honoured."""

    n_items = 4

    def __init__(self):
        self.first = None

    def score(self, inputs, resets):
        if self.first is None:
            self.first = np.array(inputs)
        self.first = np.where(resets, inputs, self.first)
        scores = np.zeros((len(inputs), self.n_items), dtype=np.float32)
        scores[np.arange(len(inputs)), self.first] = 1.0
        return scores


def test_evaluate_by_hand():
    # 4 items; item i's row ranks items in a fixed order
    table = [
        [0.0, 4.0, 3.0, 2.0],  # after 0: 1, 2, 3, 0
        [1.0, 0.0, 3.0, 3.0],  # after 1: {2,3} tied, then 0, then 1
        [4.0, 3.0, 2.0, 1.0],  # after 2: 0, 1, 2, 3
        [1.0, 1.0, 1.0, 1.0],  # after 3: all tied
    ]
    test = SessionArrays.from_lists([[0, 1, 2], [3, 0], [2], [1, 3]])
    # cases: 0->1 rank 1; 1->2 rank 2 (cons) / 1 (std); 3->0 rank 4 / 1; 1->3 rank 2 / 1
    scorer = FixedTransitions(table)
    assert isinstance(scorer, NextItemScorer)
    result = evaluate(scorer, test, batch_size=2, cutoffs=(1, 2), progress=False)
    assert result == pytest.approx({"recall@1": 0.25, "recall@2": 0.75, "mrr@1": 0.25, "mrr@2": (1 + 0.5 + 0.5) / 4})
    standard = evaluate(scorer, test, batch_size=3, cutoffs=(1,), ties="standard", progress=False)
    assert standard == pytest.approx({"recall@1": 1.0, "mrr@1": 1.0})
    median = evaluate(scorer, test, batch_size=1, cutoffs=(2,), ties="median", progress=False)
    assert median == pytest.approx({"recall@2": 0.75, "mrr@2": (1 + 1 / 1.5 + 1 / 1.5) / 4})


def test_evaluate_resets_a_stateful_scorer_at_each_session():
    # the scorer predicts "the session's first item"; targets equal it only where the session returns to it
    test = SessionArrays.from_lists([[0, 1, 0], [2, 2], [3, 1], [1, 1, 1]])
    result = evaluate(RemembersFirstItem(), test, batch_size=2, cutoffs=(1,), ties="standard", progress=False)
    # cases: 0->1 no, 1->0 yes, 2->2 yes, 3->1 no, 1->1 yes, 1->1 yes
    assert result == pytest.approx({"recall@1": 4 / 6, "mrr@1": 4 / 6})


def test_evaluate_is_independent_of_batch_size():
    rng = np.random.default_rng(0)
    table = rng.integers(0, 3, size=(6, 6)).astype(np.float32)
    test = SessionArrays.from_lists([list(rng.integers(0, 6, size=n)) for n in rng.integers(1, 7, size=30)])
    results = [evaluate(FixedTransitions(table), test, batch_size=b, progress=False) for b in (1, 4, 64)]
    assert results[1] == pytest.approx(results[0])
    assert results[2] == pytest.approx(results[0])
    assert set(results[0]) == {f"{m}@{k}" for m in ("recall", "mrr") for k in CUTOFFS}
