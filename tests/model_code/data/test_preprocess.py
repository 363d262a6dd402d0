"""The reference preprocessing protocol, step by step against hand-worked examples."""
import pandas as pd

from model_code.data.event_table import read_events
from model_code.data.preprocess import DAY_SECONDS, drop_consecutive_repeats, filter_support, main, split_last_days


def frame(rows):
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]).astype({"Time": float})


def test_drop_consecutive_repeats_only_within_a_session():
    events = frame([("1", "a", 1), ("1", "a", 2), ("1", "b", 3), ("1", "a", 4), ("2", "a", 5), ("2", "a", 6)])
    kept = drop_consecutive_repeats(events)
    assert list(zip(kept.SessionId, kept.ItemId, kept.Time)) == [
        ("1", "a", 1),
        ("1", "b", 3),
        ("1", "a", 4),
        ("2", "a", 5),
    ]


def test_filter_support_iterates_until_stable():
    # items c and d have 1 event; without them sessions 2 and 3 are too short; without session 3, b has 1 event
    events = frame(
        [
            ("1", "a", 1),
            ("1", "b", 2),
            ("2", "a", 3),
            ("2", "c", 4),
            ("3", "b", 5),
            ("3", "d", 6),
            ("4", "a", 7),
            ("4", "a", 8),
        ]
    )
    once = filter_support(events, min_item_support=2, min_session_length=2, iterate=False)
    assert sorted(set(once.ItemId)) == ["a", "b"]
    assert once.groupby("SessionId").size().to_dict() == {"1": 2, "4": 2}
    stable = filter_support(events, min_item_support=2, min_session_length=2)
    # one pass left b with a single event in session 1; iterating removes b, then session 1
    assert stable.groupby("SessionId").size().to_dict() == {"4": 2}
    assert set(stable.ItemId) == {"a"}


def test_split_last_days_by_session_start_and_train_items():
    day = DAY_SECONDS
    events = frame(
        [
            ("1", "a", 0), ("1", "b", 10),
            ("2", "a", 2 * day - 10), ("2", "c", 2 * day + 50),  # starts before the cut: train
            ("3", "a", 2 * day + 1), ("3", "z", 2 * day + 2), ("3", "b", 2 * day + 3),  # z unknown to train
            ("4", "z", 2 * day + 5), ("4", "a", 2 * day + 6),  # one event left: dropped
            ("5", "b", 3 * day), ("5", "c", 3 * day),
        ]
    )
    train, test = split_last_days(events, test_days=1)
    assert sorted(set(train.SessionId)) == ["1", "2"]
    assert list(zip(test.SessionId, test.ItemId)) == [("3", "a"), ("3", "b"), ("5", "b"), ("5", "c")]


def test_command_writes_files_and_reports(tmp_path, capsys):
    day = int(DAY_SECONDS)
    rows = ["SessionId,ItemId,Time"]
    for s in range(30):
        start = s * day // 10
        items = ["a", "b", "b", "c"] if s % 2 else ["c", "a"] + (["rare"] if s < 8 else [])
        for k, item in enumerate(items):
            rows.append(f"{s},{item},{start + k}")
    raw = tmp_path / "raw.csv"
    raw.write_text("\n".join(rows) + "\n")
    assert main([str(raw), "--out", str(tmp_path / "out")]) == 0
    train = read_events(tmp_path / "out" / "train.tsv.gz")
    test = read_events(tmp_path / "out" / "test.tsv.gz")
    assert "rare" not in set(train.ItemId)  # fewer than 5 events
    assert not (train.ItemId.to_numpy()[1:] == train.ItemId.to_numpy()[:-1])[
        (train.SessionId.to_numpy()[1:] == train.SessionId.to_numpy()[:-1])
    ].any()
    assert set(test.SessionId) == {"20", "21", "22", "23", "24", "25", "26", "27", "28", "29"}
    assert set(train.SessionId) == {str(s) for s in range(20)}
    assert "raw: 94 events" in capsys.readouterr().err
    # switches: keep repeats, one day of 12 hours
    assert main([str(raw), "--out", str(tmp_path / "kept"), "--keep-repeats", "--day-length", str(day / 2)]) == 0
    kept = read_events(tmp_path / "kept" / "train.tsv.gz")
    assert len(kept[kept.SessionId == "1"]) == 4
    assert kept.SessionId.nunique() == 25


def test_command_error_when_nothing_is_left(tmp_path, capsys):
    raw = tmp_path / "raw.tsv"
    raw.write_text("SessionId\tItemId\tTime\n1\ta\t1\n1\tb\t2\n")
    assert main([str(raw), "--out", str(tmp_path / "out")]) == 2
    assert "no events left after filtering" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_empty_split_names_the_time_span_read(tmp_path, capsys):
    # sequence numbers, not a clock: one "day" covers them all, so the test split takes every session
    raw = tmp_path / "raw.csv"
    raw.write_text(
        "SessionId,ItemId,Time\n" + "".join(f"s{n // 3},i{n % 4},{n}\n" for n in range(60)), encoding="utf-8"
    )
    code = main([str(raw), "--out", str(tmp_path / "out"), "--min-item-support", "1"])
    err = capsys.readouterr().err
    assert (
        code != 0 and "leaves train empty (times 0 to 59 (numbers that are no dates" in err and "--time-format" in err
    )
