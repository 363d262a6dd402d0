"""Reading event logs: formats, sources, validation messages."""
import gzip
import warnings

import numpy as np
import pandas as pd
import pytest

from model_code.events import DataError, DataWarning, EventColumns, read_events

TSV = "SessionId\tItemId\tTime\n1\t0042\t10\n1\t7\t11\n2\t7\t5\n2\t9.50\t6\n"


def write(path, text):
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def check_canonical(events):
    assert list(events.columns) == ["SessionId", "ItemId", "Time"]
    assert events["SessionId"].tolist() == ["1", "1", "2", "2"]
    assert events["ItemId"].tolist() == ["0042", "7", "7", "9.50"]
    assert events["Time"].dtype == np.float64
    assert events["Time"].tolist() == [10.0, 11.0, 5.0, 6.0]


@pytest.mark.parametrize("name", ["events.tsv", "events.tsv.gz", "events.txt"])
def test_tab_separated(tmp_path, name):
    check_canonical(read_events(write(tmp_path / name, TSV)))


@pytest.mark.parametrize("name", ["events.csv", "events.csv.gz"])
def test_comma_separated(tmp_path, name):
    check_canonical(read_events(write(tmp_path / name, TSV.replace("\t", ","))))


def test_parquet_with_numeric_ids_gives_integer_strings(tmp_path):
    frame = pd.DataFrame({"SessionId": [1, 1, 2, 2], "ItemId": [42.0, 7.0, 7.0, np.nan], "Time": [10, 11, 5, 6]})
    frame.to_parquet(tmp_path / "events.parquet")
    with pytest.warns(DataWarning, match="dropped 1 of 4 rows"):
        events = read_events(tmp_path / "events.parquet")
    assert events["ItemId"].tolist() == ["42", "7", "7"]
    assert events["SessionId"].tolist() == ["1", "1", "2"]


def test_parquet_string_ids(tmp_path):
    frame = pd.DataFrame({"SessionId": ["1", "1", "2", "2"], "ItemId": ["0042", "7", "7", "9.50"], "Time": [10, 11, 5, 6]})
    frame.to_parquet(tmp_path / "events.parquet")
    check_canonical(read_events(tmp_path / "events.parquet"))


def test_folder_of_mixed_files(tmp_path):
    write(tmp_path / "a.tsv.gz", "SessionId\tItemId\tTime\n1\t0042\t10\n2\t7\t5\n")
    write(tmp_path / "b.csv", "SessionId,ItemId,Time\n1,7,11\n2,9.50,6\n")
    write(tmp_path / "README.md", "not events")
    write(tmp_path / ".hidden.tsv", "garbage")
    check_canonical(read_events(tmp_path))


def test_configurable_column_names_and_extra_columns(tmp_path):
    path = write(tmp_path / "e.csv", "user,product,ts,price\nu,p1,3,1.5\nu,p2,4,2.0\n")
    events = read_events(path, EventColumns(session="user", item="product", time="ts"))
    assert events.to_dict("list") == {"SessionId": ["u", "u"], "ItemId": ["p1", "p2"], "Time": [3.0, 4.0]}


def test_iso_times_become_unix_seconds(tmp_path):
    path = write(tmp_path / "e.csv", "SessionId,ItemId,Time\ns,a,2014-04-07T10:51:09.277Z\ns,b,2014-04-07T10:51:10.277Z\n")
    events = read_events(path)
    assert events["Time"].tolist() == pytest.approx([1396867869.277, 1396867870.277])


def test_bad_iso_time_names_its_line(tmp_path):
    path = write(tmp_path / "e.csv", "SessionId,ItemId,Time\ns,a,2014-04-07T10:51:09Z\ns,b,2014-04-07T25:99:00Z\n")
    with pytest.raises(DataError, match=r"unparsable time '2014-04-07T25:99:00Z' at line 3"):
        read_events(path)


def test_out_of_order_session_is_sorted_with_a_warning(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItemId\tTime\n1\ta\t10\n2\tx\t1\n1\tb\t5\n1\tc\t7\n")
    with pytest.warns(DataWarning, match=r"1 sessions have events out of time order \(first: session '1'\)"):
        events = read_events(path)
    assert events["ItemId"].tolist() == ["b", "c", "a", "x"]
    assert events.attrs["sessions_reordered"] == 1


def test_interleaved_sessions_in_time_order_are_grouped_silently(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n2\tx\t2\n1\tb\t3\n2\ty\t4\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events = read_events(path)
    assert events["ItemId"].tolist() == ["a", "b", "x", "y"]


def test_missing_ids_are_dropped_counted_and_warned(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n1\t\t2\n\tb\t3\n1\tc\t4\n")
    with pytest.warns(DataWarning, match="dropped 2 of 4 rows without a session or item id"):
        events = read_events(path)
    assert events["ItemId"].tolist() == ["a", "c"]
    assert events.attrs["dropped_missing_ids"] == 2


def test_the_string_nan_is_an_id_not_a_missing_value(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItemId\tTime\n1\tNaN\t1\n1\tnull\t2\n")
    assert read_events(path)["ItemId"].tolist() == ["NaN", "null"]


def test_missing_column_names_file_and_column(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItem\tTime\n1\ta\t1\n")
    with pytest.raises(DataError, match=r"e\.tsv: column 'ItemId' missing from the header"):
        read_events(path)


def test_missing_column_in_parquet(tmp_path):
    pd.DataFrame({"SessionId": ["1"], "ItemId": ["a"]}).to_parquet(tmp_path / "e.parquet")
    with pytest.raises(DataError, match=r"e\.parquet: column 'Time' missing from the schema"):
        read_events(tmp_path / "e.parquet")


def test_unparsable_time_names_file_column_and_first_bad_line(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n1\tb\t2\n1\tc\tyesterday\n1\td\toops\n")
    with pytest.raises(DataError, match=r"e\.tsv: column 'Time' has an unparsable time 'yesterday' at line 4 \(2 such rows"):
        read_events(path)


def test_line_numbers_count_dropped_rows(tmp_path):
    path = write(tmp_path / "e.csv", "SessionId,ItemId,Time\n1,,1\n1,b,x\n")
    with pytest.raises(DataError, match="line 3"):
        read_events(path)


def test_missing_time_is_an_error(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n1\tb\t\n")
    with pytest.raises(DataError, match="line 3"):
        read_events(path)


@pytest.mark.parametrize("text", ["", "SessionId\tItemId\tTime\n"])
def test_empty_input(tmp_path, text):
    path = write(tmp_path / "e.tsv", text)
    with pytest.raises(DataError, match=r"e\.tsv: (empty file|no events)"):
        read_events(path)


def test_nonexistent_path_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        read_events(tmp_path / "nope.tsv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="folder holds no event files"):
        read_events(tmp_path / "empty")


def test_unknown_extension(tmp_path):
    path = write(tmp_path / "e.json", "{}")
    with pytest.raises(DataError, match="unknown file type"):
        read_events(path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "e.tsv.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match=r"e\.tsv\.gz: cannot be parsed"):
        read_events(path)


def test_s3_object_and_prefix(tmp_path):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="clicks/part-0.tsv.gz", Body=gzip.compress(b"SessionId\tItemId\tTime\n1\t0042\t10\n2\t7\t5\n"))
        frame = pd.DataFrame({"SessionId": ["1", "2"], "ItemId": ["7", "9.50"], "Time": [11, 6]})
        frame.to_parquet(tmp_path / "p.parquet")
        s3.put_object(Bucket="data", Key="clicks/part-1.parquet", Body=(tmp_path / "p.parquet").read_bytes())
        s3.put_object(Bucket="data", Key="clicks/_SUCCESS", Body=b"")
        s3.put_object(Bucket="data", Key="clicks-other/x.tsv", Body=b"SessionId\tItemId\tTime\n9\tz\t1\n")
        check_canonical(read_events("s3://data/clicks"))
        check_canonical(read_events("s3://data/clicks/"))
        one = read_events("s3://data/clicks/part-0.tsv.gz")
        assert one["ItemId"].tolist() == ["0042", "7"]
        with pytest.raises(DataError, match="s3://data/missing: no event objects"):
            read_events("s3://data/missing")


def test_real_data_reads_with_string_ids(yoochoose100k):
    events = read_events(yoochoose100k / "test.tsv.gz")
    assert len(events) == 13_568
    assert events["SessionId"].nunique() == 3_416
    assert events["ItemId"].str.fullmatch(r"\d+").all()


@pytest.mark.parametrize("name", ["out.tsv", "out.tsv.gz"])
def test_write_events_round_trip(tmp_path, name):
    from model_code.events import write_events

    events = read_events(write(tmp_path / "in.tsv", TSV))
    write_events(tmp_path / name, events)
    check_canonical(read_events(tmp_path / name))
    text = gzip.open(tmp_path / name, "rt").read() if name.endswith(".gz") else (tmp_path / name).read_text()
    assert text.splitlines()[1] == "1\t0042\t10"  # whole-number times written without ".0"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.tsv", name])  # no temporary file left
