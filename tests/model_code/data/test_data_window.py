"""The data window: which day folders a run reads, on real small files of the formats the reader takes."""
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from model_code.data.data_window import Window, link_window, parse_day
from model_code.data.event_table import read_events
from model_code.data.events import DataError


def write_day(root: Path, day: str, name: str, text: str) -> None:
    folder = root / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


@pytest.fixture
def days(tmp_path) -> Path:
    """dt=2026-11-27 .. dt=2026-12-02, one session per day named after it, in TSV and CSV; 11-29 only a marker."""
    root = tmp_path / "events"
    for day in ("2026-11-27", "2026-11-28", "2026-11-30", "2026-12-01", "2026-12-02"):
        write_day(root, day, "part-0.tsv", f"SessionId\tItemId\tTime\ns{day}\ta\t1\ns{day}\tb\t2\n")
        write_day(root, day, "_SUCCESS", "")
    write_day(root, "2026-11-29", "_SUCCESS", "")
    write_day(root, "2026-11-30", "extra.csv", "SessionId,ItemId,Time\ncsv-2026-11-30,c,3\n")
    (root / "README.txt").write_text("not a day")
    return root


def sessions_read(folder: Path) -> set[str]:
    return set(read_events(folder, log=lambda message: None)["SessionId"])


def test_the_window_reads_its_first_and_last_day_and_nothing_outside(days, tmp_path):
    window = Window.parse("2026-11-28", "2026-12-01")
    found = link_window(days, window, tmp_path / "window")
    assert sessions_read(found.folder) == {"s2026-11-28", "s2026-11-30", "csv-2026-11-30", "s2026-12-01"}
    assert found.empty_days == [date(2026, 11, 29)]
    assert sorted(p.name for p in found.folder.iterdir()) == [
        "dt=2026-11-28_part-0.tsv", "dt=2026-11-30_extra.csv", "dt=2026-11-30_part-0.tsv", "dt=2026-12-01_part-0.tsv"]
    assert found.summary(window) == ("data window 2026-11-28 to 2026-12-01 (4 days): 4 event files from 3 days; "
                                     "no event files for 2026-11-29")


def test_a_one_day_window(days, tmp_path):
    found = link_window(days, Window.parse("2026-12-02", "2026-12-02"), tmp_path / "window")
    assert sessions_read(found.folder) == {"s2026-12-02"}


def test_a_window_without_files_says_which_days_there_are(days, tmp_path):
    with pytest.raises(DataError, match=r"no event files for the data window 2026-12-03 to 2026-12-09 .*"
                                        r"from dt=2026-11-27 to dt=2026-12-02"):
        link_window(days, Window.parse("2026-12-03", "2026-12-09"), tmp_path / "window")
    with pytest.raises(DataError, match="no event files for the data window 2026-11-29 to 2026-11-29"):
        link_window(days, Window.parse("2026-11-29", "2026-11-29"), tmp_path / "marker-only")


def test_gzip_and_parquet_days_are_read(tmp_path):
    root = tmp_path / "events"
    frame = pd.DataFrame({"SessionId": ["p", "p"], "ItemId": ["x", "y"], "Time": [1, 2]})
    (root / "dt=2026-01-01").mkdir(parents=True)
    frame.to_parquet(root / "dt=2026-01-01" / "part.parquet")
    (root / "dt=2026-01-02").mkdir()
    frame.assign(SessionId="g").to_csv(root / "dt=2026-01-02" / "part.tsv.gz", sep="\t", index=False)
    found = link_window(root, Window.parse("2026-01-01", "2026-01-02"), tmp_path / "window")
    assert sessions_read(found.folder) == {"p", "g"}


@pytest.mark.parametrize("first, last, problem", [
    ("2026-11-31", "2026-12-01", "window_start: cannot use '2026-11-31'"),
    ("2026-11-01", "20261201", "window_end: cannot use '20261201'"),
    ("2026-12-02", "2026-12-01", "window_start 2026-12-02 is after window_end 2026-12-01"),
])
def test_bad_window_days_name_the_field(first, last, problem):
    with pytest.raises(DataError, match=problem):
        Window.parse(first, last)


def test_parse_day():
    assert parse_day(" 2024-02-29 ", "window_end") == date(2024, 2, 29)
