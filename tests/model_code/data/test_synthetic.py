"""The built-in data: layout, determinism, skew and sequential structure."""
import gzip
import hashlib
from collections import Counter

import pytest

from model_code.data.event_table import read_events
from model_code.data.item_index import ItemIndex
from model_code.data.session_batches import SessionArrays
from model_code.data.synthetic import DAY, START_TIME, SyntheticSpec, generate, main, write_dataset
from model_code.ranking.baselines import ItemKNNScorer, PopularityScorer
from model_code.ranking.metrics import evaluate

SMALL = SyntheticSpec(sessions=3000, items=400, seed=3, days=10, test_days=2)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    write_dataset(out, SMALL)
    return out


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_files_read_back_in_the_real_data_layout(small):
    header = gzip.open(small / "train.tsv.gz", "rt").readline()
    assert header == "SessionId\tItemId\tTime\n"
    train, test = read_events(small / "train.tsv.gz"), read_events(small / "test.tsv.gz")
    assert len(train) > 10_000 and len(test) > 500
    assert set(test["ItemId"]) <= set(train["ItemId"])
    assert test.groupby("SessionId").size().min() >= 2
    assert train.groupby("SessionId").size().min() >= 2
    assert not set(train["SessionId"]) & set(test["SessionId"])
    test_start = START_TIME + (SMALL.days - SMALL.test_days) * DAY
    assert train.groupby("SessionId")["Time"].min().max() < test_start
    assert test.groupby("SessionId")["Time"].min().min() >= test_start
    assert train["ItemId"].nunique() <= SMALL.items


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, small):
    write_dataset(tmp_path / "again", SMALL)
    assert digest(tmp_path / "again" / "train.tsv.gz") == digest(small / "train.tsv.gz")
    assert digest(tmp_path / "again" / "test.tsv.gz") == digest(small / "test.tsv.gz")
    other, _ = generate(SyntheticSpec(sessions=3000, items=400, seed=4, days=10, test_days=2))
    assert not other.equals(read_events(small / "train.tsv.gz"))


def test_popularity_is_skewed(small):
    counts = read_events(small / "train.tsv.gz")["ItemId"].value_counts().to_numpy()
    top_tenth = counts[: len(counts) // 10].sum() / counts.sum()
    assert top_tenth > 0.3  # uniform would give 0.1


def test_sequence_beats_popularity_by_a_wide_margin(small):
    train_events, test_events = read_events(small / "train.tsv.gz"), read_events(small / "test.tsv.gz")
    index = ItemIndex.from_events(train_events)
    train, test = SessionArrays.from_events(train_events, index), SessionArrays.from_events(test_events, index)
    pop = evaluate(PopularityScorer(train, len(index)), test, progress=False)
    knn = evaluate(ItemKNNScorer(train, len(index)), test, progress=False)
    assert knn["recall@20"] > pop["recall@20"] + 0.3
    assert knn["mrr@20"] > 3 * pop["mrr@20"]


def triples(events):
    out = []
    for items in events.groupby("SessionId", sort=False)["ItemId"].agg(list):
        out += [tuple(items[i:i + 3]) for i in range(len(items) - 2)]
    return out


def test_direction_needs_more_than_the_last_item(tmp_path):
    """The item before the current one tells which way the session walks: most frequent next item given
    (previous, current), counted on train, predicts test better than given current alone."""
    write_dataset(tmp_path, SyntheticSpec(sessions=4000, items=100, seed=5, days=10, test_days=2))
    fit, held_out = triples(read_events(tmp_path / "train.tsv.gz")), triples(read_events(tmp_path / "test.tsv.gz"))
    by_pair, by_item = {}, {}
    for (a, b, c), n in Counter(fit).items():
        by_pair[a, b] = max(by_pair.get((a, b), (0, "")), (n, c))
    for (b, c), n in Counter((b, c) for _, b, c in fit).items():
        by_item[b] = max(by_item.get(b, (0, "")), (n, c))
    hits_one = sum(by_item.get(b, (0, ""))[1] == c for _, b, c in held_out)
    hits_two = sum(by_pair.get((a, b), by_item.get(b, (0, "")))[1] == c for a, b, c in held_out)
    assert hits_two > 1.2 * hits_one > 0


def test_command(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--sessions", "500", "--items", "100", "--seed", "1"]) == 0
    assert "train:" in capsys.readouterr().out
    assert (tmp_path / "train.tsv.gz").exists() and (tmp_path / "test.tsv.gz").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_spec_is_refused():
    with pytest.raises(ValueError, match="test_days"):
        SyntheticSpec(days=3, test_days=3)
