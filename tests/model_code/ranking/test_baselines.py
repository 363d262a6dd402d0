"""Baselines against hand-built references."""
import json
import math

import numpy as np
import pytest

from model_code.data.session_batches import SessionArrays
from model_code.ranking.baselines import ItemKNNScorer, PopularityScorer, item_similarity, main
from model_code.ranking.metrics import NextItemScorer, evaluate

TRAIN = [[0, 1, 2], [1, 2], [2, 3, 3], [0, 4], [1, 1]]
N_ITEMS = 6  # item 5 never occurs


def reference_similarity(sessions, n_items, lam, include_self=False):
    sets = [set(s) for s in sessions]
    support = [sum(i in s for s in sets) for i in range(n_items)]
    sim = np.zeros((n_items, n_items))
    for i in range(n_items):
        for j in range(n_items):
            if i == j and not include_self:
                continue
            both = sum(i in s and j in s for s in sets)
            sim[i, j] = both / math.sqrt((support[i] + lam) * (support[j] + lam)) if both else 0.0
    return sim


@pytest.mark.parametrize("lam", [0.0, 20.0])
@pytest.mark.parametrize("include_self", [False, True])
def test_item_similarity_matches_set_based_reference(lam, include_self):
    train = SessionArrays.from_lists(TRAIN)
    sim = item_similarity(train, N_ITEMS, lam, include_self).toarray()
    np.testing.assert_allclose(sim, reference_similarity(TRAIN, N_ITEMS, lam, include_self), rtol=1e-6)


def test_item_similarity_by_hand():
    sim = item_similarity(SessionArrays.from_lists(TRAIN), N_ITEMS, 0.0).toarray()
    # items 1 and 2 share two sessions; item 1 is in 3 sessions, item 2 in 3
    assert sim[1, 2] == pytest.approx(2 / 3)
    # item 0 (2 sessions) and item 4 (1 session) share one
    assert sim[0, 4] == pytest.approx(1 / math.sqrt(2))
    assert sim[3, 3] == 0 and not sim[5].any()


def test_item_knn_scores_rows_of_the_current_item():
    train = SessionArrays.from_lists(TRAIN)
    scorer = ItemKNNScorer(train, N_ITEMS)
    assert isinstance(scorer, NextItemScorer)
    scores = scorer.score(np.array([2, 0], dtype=np.int32), np.array([True, False]))
    assert scores.shape == (2, N_ITEMS) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, reference_similarity(TRAIN, N_ITEMS, 20.0)[[2, 0]], rtol=1e-6)


def test_popularity_scores_are_event_counts():
    scorer = PopularityScorer(SessionArrays.from_lists(TRAIN), N_ITEMS)
    scores = scorer.score(np.array([0, 3, 4], dtype=np.int32), np.zeros(3, bool))
    np.testing.assert_array_equal(scores, np.tile([2, 4, 3, 2, 1, 0], (3, 1)))


def test_baselines_evaluated_by_hand():
    train = SessionArrays.from_lists(TRAIN)
    test = SessionArrays.from_lists([[1, 2], [0, 4, 1]])
    # pop ranks 1 (4 events) first, 2 (3) second, 0 and 3 (2 each) tied 3rd-4th, 4 fifth
    # targets: 2 -> rank 2; 4 -> rank 5; 1 -> rank 1
    pop = evaluate(PopularityScorer(train, N_ITEMS), test, cutoffs=(1, 2, 5), progress=False)
    assert pop == pytest.approx(
        {"recall@1": 1 / 3, "recall@2": 2 / 3, "recall@5": 1.0, "mrr@1": 1 / 3, "mrr@2": 1.5 / 3, "mrr@5": 1.7 / 3}
    )
    # item-kNN (lambda 0): after 1 the best is 2 (2/3); after 0 the best is 4 (0.707); 4 -> 1: 4 and 1 share
    # no session, every item scores 0 after 4 so conservative rank is 6
    knn = evaluate(ItemKNNScorer(train, N_ITEMS, 0.0), test, cutoffs=(1, 5), progress=False)
    assert knn == pytest.approx({"recall@1": 2 / 3, "recall@5": 2 / 3, "mrr@1": 2 / 3, "mrr@5": 2 / 3})


def write_tsv(path, sessions, start=0):
    lines = ["SessionId\tItemId\tTime"]
    t = start
    for s, items in enumerate(sessions):
        for item in items:
            t += 1
            lines.append(f"s{s + start}\titem{item}\t{t}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_command_prints_table_and_writes_json(tmp_path, capsys):
    train = write_tsv(tmp_path / "train.tsv", TRAIN)
    test = write_tsv(tmp_path / "test.tsv", [[1, 2], [0, 4, 1, 9]], start=100)
    out = tmp_path / "results.json"
    assert main(["--train", str(train), "--test", str(test), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert set(results) == {"pop", "item-knn"}
    assert set(results["pop"]) == {f"{m}@{k}" for m in ("recall", "mrr") for k in (1, 5, 10, 20)}
    assert results["pop"]["recall@5"] == pytest.approx(1.0)  # unknown item9 dropped: same cases as above
    header, _, pop_row, knn_row = printed.strip().splitlines()
    assert "Recall@20" in header and pop_row.startswith("| pop") and knn_row.startswith("| item-knn")
    assert f"{results['item-knn']['mrr@1']:.4f}" in knn_row


def test_command_reports_bad_data(tmp_path, capsys):
    train = tmp_path / "train.tsv"
    train.write_text("Session\tItemId\tTime\n1\ta\t1\n")
    assert main(["--train", str(train), "--test", str(train), "--quiet"]) == 2
    assert "column 'SessionId' missing" in capsys.readouterr().err


def test_command_refuses_a_test_set_without_cases(tmp_path, capsys):
    train = write_tsv(tmp_path / "train.tsv", TRAIN)
    test = write_tsv(tmp_path / "test.tsv", [[1, 9], [7, 8]], start=100)
    assert main(["--train", str(train), "--test", str(test), "--quiet"]) == 2
    assert "no test session has two or more events with items known to training" in capsys.readouterr().err


def test_item_knn_beats_pop_on_real_data(yoochoose100k, capsys):
    assert (
        main(["--train", str(yoochoose100k / "train.tsv.gz"), "--test", str(yoochoose100k / "test.tsv.gz"), "--quiet"])
        == 0
    )
    rows = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines()[2:]}
    recall20 = {name: float(line.split("|")[8]) for name, line in rows.items()}
    assert recall20["item-knn"] > 3 * recall20["pop"] > 0
