"""The columnar read (event_table): block by block, ids as codes, and the training arrays built from them."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from model_code.data import event_table
from model_code.data.event_rules import ReadOptions
from model_code.data.event_table import read_event_codes
from model_code.data.events import DataError, parse_times
from model_code.data.item_index import ItemIndex
from model_code.data.preprocess import split_by_time, split_codes_by_time
from model_code.data.session_batches import SessionArrays

QUIET = dict(log=lambda line: None)


def random_log(seed=0, events=400):
    """Interleaved sessions (ids that look like numbers, non-ASCII ones), times with ties and steps back."""
    rng = np.random.default_rng(seed)
    sessions = rng.choice(["007", "7", "s1", "sé", "x y", "42", "0"] + [f"u{n}" for n in range(30)], size=events)
    items = rng.choice(["0042", "42", "a", "商品", "b"] + [f"i{n}" for n in range(60)], size=events)
    times = rng.integers(1_000, 1_000 + 5 * 86_400, size=events)
    return pd.DataFrame({"SessionId": sessions, "ItemId": items, "Time": times})


def write_tsv(path, frame):
    frame.to_csv(path, sep="\t", index=False)
    return path


def reference_order(frame):
    """Independent reference: sessions by first appearance, then time (stable)."""
    first = {s: n for n, s in enumerate(pd.unique(frame["SessionId"]))}
    ranked = frame.assign(rank=frame["SessionId"].map(first))
    return ranked.sort_values(["rank", "Time"], kind="stable").drop(columns="rank").reset_index(drop=True)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(event_table, "BLOCK_BYTES", 512)
    monkeypatch.setattr(event_table, "PARQUET_BATCH_ROWS", 7)


def test_blocks_give_the_reference_grouping_with_each_id_stored_once(tmp_path, small_blocks):
    frame = random_log()
    codes = read_event_codes(write_tsv(tmp_path / "e.tsv", frame), **QUIET)
    expected = reference_order(frame)
    got = codes.to_frame()
    assert got["SessionId"].tolist() == expected["SessionId"].tolist()
    assert got["ItemId"].tolist() == expected["ItemId"].tolist()
    np.testing.assert_array_equal(got["Time"].to_numpy(), expected["Time"].to_numpy(dtype=np.float64))
    assert codes.session_ids.to_pylist() == pd.unique(frame["SessionId"]).tolist()  # first appearance, once
    assert codes.item_ids.to_pylist() == pd.unique(frame["ItemId"]).tolist()
    assert codes.sessions.dtype == np.int32 and codes.items.dtype == np.int32
    assert codes.attrs["rows_read"] == len(frame)


def test_bad_rows_in_later_blocks_are_reported_with_their_own_lines(tmp_path, small_blocks):
    rows = [f"s{n // 4}\ti{n % 9}\t{1000 + n}" for n in range(300)]
    rows[200] = "s50\t\t1200"  # line 202
    rows[260] = "s65\ti1\tsoon"  # line 262
    path = tmp_path / "e.tsv"
    path.write_text("SessionId\tItemId\tTime\n" + "\n".join(rows) + "\n")
    lines = []
    codes = read_event_codes(path, ReadOptions(max_bad_rows="2"), lines.append)
    assert lines[1:] == [f"  {path} line 202, column 'ItemId': missing item id",
                         f"  {path} line 262, column 'Time': bad time 'soon'"]
    assert len(codes) == 298 and codes.attrs["skipped_rows"] == {"missing item id": 1, "bad time": 1}


@pytest.mark.parametrize("values", [
    ["+5", "5.", ".5", "-3.25", "1709421011", "0"],  # plain epoch numbers: Arrow's cast
    ["1", " 7 ", "1e5", "inf", "2024-03-02T23:08:31Z", ""],  # everything else: the rules in full
    ["1", "1e5"], ["2", "0x10"], ["3", "1_000"],  # numbers Arrow would cast that the rules call bad
])
@pytest.mark.parametrize("form", ["auto", "epoch_s", "epoch_ms"])
def test_block_times_follow_parse_times(values, form):
    column = pa.chunked_array([pa.array([v or None for v in values], type=pa.string())])
    expected = parse_times(pd.Series([v or None for v in values], dtype=object), form)
    np.testing.assert_array_equal(event_table._times(column, form), expected)


def test_parquet_batches_keep_numeric_ids_as_integer_spellings(tmp_path, small_blocks):
    frame = pd.DataFrame({"SessionId": np.repeat(np.arange(10), 3), "ItemId": np.arange(30) % 4 + 100.0,
                          "Time": np.arange(30)})
    frame.to_parquet(tmp_path / "e.parquet")
    got = read_event_codes(tmp_path / "e.parquet", **QUIET).to_frame()
    assert got["SessionId"].tolist() == [str(n) for n in np.repeat(np.arange(10), 3)]
    assert got["ItemId"].tolist() == [str(100 + n % 4) for n in range(30)]
    frame.assign(ItemId=frame["ItemId"] + (np.arange(30) == 15) * 0.5).to_parquet(tmp_path / "f.parquet")
    with pytest.raises(DataError, match=r"f\.parquet: column 'ItemId' holds a fractional id 103\.5 at row 16$"):
        read_event_codes(tmp_path / "f.parquet", **QUIET)


def test_split_and_training_arrays_from_codes_equal_the_frame_path(tmp_path, small_blocks):
    frame = random_log(seed=3, events=600)
    path = write_tsv(tmp_path / "e.tsv", frame)
    codes = read_event_codes(path, **QUIET)
    train_codes, valid_codes = split_codes_by_time(codes, 1.5)
    train_frame, valid_frame = split_by_time(codes.to_frame(), 1.5)
    pd.testing.assert_frame_equal(train_codes.to_frame(), train_frame)
    pd.testing.assert_frame_equal(valid_codes.to_frame(), valid_frame)
    index = ItemIndex.from_codes(train_codes)
    assert index.ids == ItemIndex.from_events(train_frame).ids
    known_part = ItemIndex(index.ids[::2])  # half the items unknown: their events are dropped and counted
    for items in (index, known_part):
        got, expected = SessionArrays.from_codes(codes, items), SessionArrays.from_events(codes.to_frame(), items)
        np.testing.assert_array_equal(got.items, expected.items)
        np.testing.assert_array_equal(got.offsets, expected.offsets)
        assert got.dropped_unknown == expected.dropped_unknown


def test_session_arrays_from_codes_by_hand(tmp_path):
    path = tmp_path / "e.tsv"
    path.write_text("SessionId\tItemId\tTime\nb\tx\t5\na\ty\t9\nb\tz\t7\na\tq\t3\nc\tx\t4\n")
    codes = read_event_codes(path, **QUIET)
    data = SessionArrays.from_codes(codes, ItemIndex(["x", "y", "z"]))
    # sessions by the time of their first known event: c (x@4), b (x@5, z@7), a (q@3 unknown, y@9)
    assert data.items.tolist() == [0, 0, 2, 1] and data.offsets.tolist() == [0, 1, 3, 4]
    assert data.dropped_unknown == 1


@pytest.mark.parametrize("row", ["1\tb", "1\tc\t3\t9"])
def test_a_row_with_another_number_of_fields_names_the_file_and_the_row(tmp_path, row):
    path = tmp_path / "e.tsv"
    path.write_text(f"SessionId\tItemId\tTime\n1\ta\t1\n{row}\n")
    with pytest.raises(DataError, match=rf"e\.tsv: cannot be parsed as text split at tab: .*columns.*{row}"):
        read_event_codes(path, **QUIET)
