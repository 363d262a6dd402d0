"""Reading event logs: formats, sources, validation messages."""
import gzip
import os
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from model_code.data.event_rules import (
    OptionError,
    ReadOptions,
    parse_max_bad_rows,
    parse_separator,
    parse_session_gap,
    parse_time_format,
)
from model_code.data.event_table import read_events
from model_code.data.events import DataError, parse_times

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
    lines = []
    events = read_events(tmp_path / "events.parquet", ReadOptions(max_bad_rows="1"), lines.append)
    assert lines[1] == f"  {tmp_path / 'events.parquet'} row 4, column 'ItemId': missing item id"
    assert events["ItemId"].tolist() == ["42", "7", "7"]
    assert events["SessionId"].tolist() == ["1", "1", "2"]


def test_parquet_string_ids(tmp_path):
    frame = pd.DataFrame(
        {"SessionId": ["1", "1", "2", "2"], "ItemId": ["0042", "7", "7", "9.50"], "Time": [10, 11, 5, 6]}
    )
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
    events = read_events(path, ReadOptions(session_column="user", item_column="product", time_column="ts"))
    assert events.to_dict("list") == {"SessionId": ["u", "u"], "ItemId": ["p1", "p2"], "Time": [3.0, 4.0]}


def test_iso_times_become_unix_seconds(tmp_path):
    path = write(
        tmp_path / "e.csv", "SessionId,ItemId,Time\ns,a,2014-04-07T10:51:09.277Z\ns,b,2014-04-07T10:51:10.277Z\n"
    )
    events = read_events(path)
    assert events["Time"].tolist() == pytest.approx([1396867869.277, 1396867870.277])


def test_bad_iso_time_names_its_line(tmp_path):
    path = write(tmp_path / "e.csv", "SessionId,ItemId,Time\ns,a,2014-04-07T10:51:09Z\ns,b,2014-04-07T25:99:00Z\n")
    with pytest.raises(DataError, match=r"e\.csv line 3, column 'Time': bad time '2014-04-07T25:99:00Z'"):
        read_events(path)


def test_out_of_order_session_is_sorted_with_a_warning(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItemId\tTime\n1\ta\t10\n2\tx\t1\n1\tb\t5\n1\tc\t7\n")
    lines = []
    events = read_events(path, log=lines.append)
    assert lines == [f"{path}: 1 sessions have events out of time order (first: session '1'); sorted them by time"]
    assert events["ItemId"].tolist() == ["b", "c", "a", "x"]
    assert events.attrs["sessions_reordered"] == 1


def test_interleaved_sessions_in_time_order_are_grouped_silently(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n2\tx\t2\n1\tb\t3\n2\ty\t4\n")
    lines = []
    events = read_events(path, log=lines.append)
    assert lines == []
    assert events["ItemId"].tolist() == ["a", "b", "x", "y"]


def test_missing_ids_are_skipped_counted_and_reported_with_file_line_and_column(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n1\t\t2\n\tb\t3\n1\tc\t4\n")
    lines = []
    events = read_events(path, ReadOptions(max_bad_rows="2"), lines.append)
    assert events["ItemId"].tolist() == ["a", "c"]
    assert events.attrs["skipped_rows"] == {"missing session id": 1, "missing item id": 1}
    assert lines == [
        f"{path}: skipped 2 of 4 rows (1 missing session id, 1 missing item id; --max-bad-rows 2 allows 2); first:",
        f"  {path} line 3, column 'ItemId': missing item id",
        f"  {path} line 4, column 'SessionId': missing session id",
    ]


def test_the_string_nan_is_an_id_not_a_missing_value(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItemId\tTime\n1\tNaN\t1\n1\tnull\t2\n")
    assert read_events(path)["ItemId"].tolist() == ["NaN", "null"]


def test_missing_column_names_file_and_column(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItem\tTime\n1\ta\t1\n")
    with pytest.raises(
        DataError,
        match=r"e\.tsv: column 'ItemId' missing from the header \(split at tab\): "
        r"found \['SessionId', 'Item', 'Time'\]; name the columns with --session-column",
    ):
        read_events(path)


def test_missing_column_in_parquet(tmp_path):
    pd.DataFrame({"SessionId": ["1"], "ItemId": ["a"]}).to_parquet(tmp_path / "e.parquet")
    with pytest.raises(DataError, match=r"e\.parquet: column 'Time' missing from the schema"):
        read_events(tmp_path / "e.parquet")


def test_unparsable_time_names_file_column_and_first_bad_line(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n1\tb\t2\n1\tc\tyesterday\n1\td\toops\n")
    with pytest.raises(
        DataError,
        match=r"e\.tsv: 2 of 4 rows are bad \(2 bad time\), more than --max-bad-rows 1% allows 0; "
        r"first: \S*e\.tsv line 4, column 'Time': bad time 'yesterday'; \S*e\.tsv line 5",
    ):
        read_events(path)


def test_line_numbers_count_dropped_rows(tmp_path):
    path = write(tmp_path / "e.csv", "SessionId,ItemId,Time\n1,,1\n1,b,x\n")
    with pytest.raises(
        DataError, match=r"line 2, column 'ItemId': missing item id; \S+ line 3, column 'Time': bad time 'x'"
    ):
        read_events(path)


def test_missing_time_is_a_bad_row(tmp_path):
    path = write(tmp_path / "e.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n1\tb\t\n")
    with pytest.raises(DataError, match=r"line 3, column 'Time': bad time \(empty\)"):
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
        s3.put_object(
            Bucket="data",
            Key="clicks/part-0.tsv.gz",
            Body=gzip.compress(b"SessionId\tItemId\tTime\n1\t0042\t10\n2\t7\t5\n"),
        )
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
    from model_code.data.events import write_events

    events = read_events(write(tmp_path / "in.tsv", TSV))
    write_events(tmp_path / name, events)
    check_canonical(read_events(tmp_path / name))
    text = gzip.open(tmp_path / name, "rt").read() if name.endswith(".gz") else (tmp_path / name).read_text()
    assert text.splitlines()[1] == "1\t0042\t10"  # whole-number times written without ".0"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.tsv", name])  # no temporary file left


# -- header, separator -----------------------------------------------------------------------------------

SHOP_HEADER = "user_session,product_id,event_time"


def test_header_lacking_the_names_is_shown_as_read_and_the_flags_named(tmp_path):
    path = write(tmp_path / "shop.csv", f"{SHOP_HEADER}\ns1,p1,1\n")
    with pytest.raises(DataError) as raised:
        read_events(path)
    message = str(raised.value)
    assert "found ['user_session', 'product_id', 'event_time']" in message
    assert "--session-column, --item-column and --time-column" in message and "--separator" in message


@pytest.mark.parametrize("sep, name", [(";", "semicolon"), ("|", "pipe"), ("\t", "tab")])
def test_separator_is_detected_from_the_header(tmp_path, sep, name):
    path = write(tmp_path / "e.csv", TSV.replace("\t", sep))
    check_canonical(read_events(path))
    lacking = write(tmp_path / "f.csv", f"{SHOP_HEADER}\ns1,p1,1\n".replace(",", sep))
    with pytest.raises(DataError, match=rf"\(split at {name}\): found \['user_session', 'product_id', 'event_time'\]"):
        read_events(lacking)


def test_separator_option_overrides_detection(tmp_path):
    # a header that holds commas inside its names: detection would split there, the option does not
    path = write(tmp_path / "e.txt", "SessionId;ItemId;Time;a,b,c,d,e\n1;0042;10;x\n1;7;11;x\n2;7;5;x\n2;9.50;6;x\n")
    with pytest.raises(DataError, match=r"split at comma"):
        read_events(path)
    check_canonical(read_events(path, ReadOptions(separator="semicolon")))
    check_canonical(read_events(path, ReadOptions(separator=";")))


@pytest.mark.parametrize(
    "text, expected", [("auto", None), ("tab", "\t"), ("\\t", "\t"), ("COMMA", ","), (";", ";"), ("|", "|")]
)
def test_separator_values(text, expected):
    assert parse_separator(text) == expected


@pytest.mark.parametrize("text", ["", ";;", "colon", '"', "\n"])
def test_bad_separator_values_are_refused(text):
    with pytest.raises(OptionError, match="allowed: auto, tab, comma, semicolon, pipe, or one character"):
        parse_separator(text)


# -- time forms --------------------------------------------------------------------------------------------

def unix(*fields, offset_minutes=0, micro=0):
    moment = datetime(*fields, microsecond=micro, tzinfo=timezone(timedelta(minutes=offset_minutes)))
    return moment.timestamp()


@pytest.mark.parametrize("text, expected", [
    ("1709421011", 1709421011.0),
    ("-12.5", -12.5),
    (" 1709421011.25 ", 1709421011.25),
    ("2024-03-02T23:08:31Z", unix(2024, 3, 2, 23, 8, 31)),
    ("2024-03-02 23:08:31 UTC", unix(2024, 3, 2, 23, 8, 31)),
    ("2024-03-02 23:08:31UTC", unix(2024, 3, 2, 23, 8, 31)),
    ("2024-03-02 23:08:31", unix(2024, 3, 2, 23, 8, 31)),
    ("2024-03-02T23:08:31.250+01:00", unix(2024, 3, 2, 23, 8, 31, offset_minutes=60, micro=250_000)),
    ("2024-03-02 23:08:31.5 -05:30", unix(2024, 3, 2, 23, 8, 31, offset_minutes=-330, micro=500_000)),
    ("2024-03-02T23:08:31+0530", unix(2024, 3, 2, 23, 8, 31, offset_minutes=330)),
    ("2024-03-02T23:08:31-03", unix(2024, 3, 2, 23, 8, 31, offset_minutes=-180)),
    ("2024-03-02T23:08", unix(2024, 3, 2, 23, 8)),
    ("2024-02-29", unix(2024, 2, 29)),
])
def test_accepted_time_forms(text, expected):
    assert parse_times(pd.Series([text])) == pytest.approx([expected], abs=1e-6)


@pytest.mark.parametrize("text", [
    "yesterday", "1e5", "inf", "nan", "0x10", "1_000", "2024-02-30", "2023-02-29", "2024-13-01", "2024-03-02T24:00:00",
    "2024-03-02T23:60", "2024-03-02T23:08:61", "2024-03-02T23:08:31+25:00", "2024-3-2", "02/03/2024", "2024-03-02T23",
    "2024-03-02 23:08:31 CET", "2024-03-02T23:08:31.1234567890Z", "", None,
])
def test_other_times_are_bad(text):
    assert np.isnan(parse_times(pd.Series([text], dtype=object))).all()


def test_time_format_options():
    assert parse_times(pd.Series(["1709421011250"]), "epoch_ms") == pytest.approx([1709421011.25])
    assert np.isnan(parse_times(pd.Series(["2024-03-02"]), "epoch_s")).all()
    assert np.isnan(parse_times(pd.Series(["1709421011"]), "datetime")).all()
    assert parse_times(pd.Series(["2024-03-02 23:08:31 UTC"]), "datetime") == pytest.approx(
        [unix(2024, 3, 2, 23, 8, 31)]
    )
    pattern = parse_time_format("%d/%m/%Y %H:%M")
    assert parse_times(pd.Series(["02/03/2024 23:08", "2024-03-02"]), pattern)[0] == pytest.approx(
        unix(2024, 3, 2, 23, 8)
    )
    assert np.isnan(parse_times(pd.Series(["2024-03-02"]), pattern)).all()
    zoned = parse_time_format("%Y%m%d %H%M%S %z")
    assert parse_times(pd.Series(["20240302 230831 +0100"]), zoned) == pytest.approx(
        [unix(2024, 3, 2, 23, 8, 31, offset_minutes=60)]
    )


def test_parquet_typed_times_keep_their_meaning(tmp_path):
    stamps = pd.to_datetime(["2024-03-02T23:08:31Z", "2024-03-02T23:09:31Z"], utc=True)
    pd.DataFrame({"SessionId": ["s", "s"], "ItemId": ["a", "b"], "Time": stamps}).to_parquet(tmp_path / "d.parquet")
    assert read_events(tmp_path / "d.parquet")["Time"].tolist() == [
        unix(2024, 3, 2, 23, 8, 31),
        unix(2024, 3, 2, 23, 9, 31),
    ]
    pd.DataFrame({"SessionId": ["s", "s"], "ItemId": ["a", "b"], "Time": [1000, 3000]}).to_parquet(
        tmp_path / "m.parquet"
    )
    assert read_events(tmp_path / "m.parquet", ReadOptions(time_format="epoch_ms"))["Time"].tolist() == [1.0, 3.0]


@pytest.mark.parametrize("text", ["iso", "%Y-%m", "%d/%m/%Y %I:%M %p", "%s", "nothing"])
def test_bad_time_formats_are_refused(text):
    with pytest.raises(OptionError, match="allowed: auto, epoch_s, epoch_ms, datetime, or a pattern"):
        parse_time_format(text)


# -- bad rows ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, rows, limit", [("0", 1000, 0), ("25", 1000, 25), ("0.01", 1000, 10), ("1%", 3517, 35),
                                                ("2.5%", 200, 5), ("1.0", 7, 7)])
def test_max_bad_rows_is_a_count_or_a_share(text, rows, limit):
    assert parse_max_bad_rows(text).limit(rows) == limit


@pytest.mark.parametrize("text", ["-1", "1.5", "101%", "a lot", ""])
def test_bad_max_bad_rows_values_are_refused(text):
    with pytest.raises(OptionError, match="allowed: a count"):
        parse_max_bad_rows(text)


def bad_rows_file(tmp_path, good: int, bad_times: int):
    rows = [f"s{i // 3},i{i % 7},{1000 + i}" for i in range(good)] + [f"b{i},i1,never" for i in range(bad_times)]
    return write(tmp_path / "e.csv", "SessionId,ItemId,Time\n" + "\n".join(rows) + "\n")


def test_bad_rows_up_to_the_bound_are_skipped_and_the_first_five_reported(tmp_path):
    path = bad_rows_file(tmp_path, good=993, bad_times=7)  # the default bound: 1% of 1000 rows = 10
    lines = []
    events = read_events(path, log=lines.append)
    assert len(events) == 993 and events.attrs["skipped_rows"] == {"bad time": 7}
    assert lines[0] == f"{path}: skipped 7 of 1000 rows (7 bad time; --max-bad-rows 1% allows 10); first:"
    assert lines[1:] == [f"  {path} line {995 + i}, column 'Time': bad time 'never'" for i in range(5)]


def test_bad_rows_beyond_the_bound_fail_with_the_report(tmp_path):
    path = bad_rows_file(tmp_path, good=989, bad_times=11)
    with pytest.raises(
        DataError, match=r"11 of 1000 rows are bad \(11 bad time\), more than --max-bad-rows 1% allows 10"
    ):
        read_events(path)
    assert len(read_events(path, ReadOptions(max_bad_rows="11"), log=lambda line: None)) == 989
    with pytest.raises(DataError, match="more than --max-bad-rows 0 allows 0"):
        read_events(bad_rows_file(tmp_path, good=10, bad_times=1), ReadOptions(max_bad_rows="0"))


def test_the_bound_counts_rows_over_all_files_of_a_folder(tmp_path):
    write(tmp_path / "a.csv", "SessionId,ItemId,Time\n" + "".join(f"s{i},i,{i}\n" for i in range(200)))
    write(tmp_path / "b.csv", "SessionId,ItemId,Time\nt1,i,when\nt2,i,then\n")
    events = read_events(tmp_path, log=lambda line: None)  # 2 bad of 202 rows: 1% allows 2
    assert events.attrs["rows_read"] == 202 and events.attrs["skipped_rows"] == {"bad time": 2}
    with pytest.raises(DataError, match="2 of 2 rows are bad"):
        read_events(tmp_path / "b.csv")


def test_a_file_without_one_readable_time_is_told_to_name_the_time_format(tmp_path):
    write(tmp_path / "a.csv", "SessionId,ItemId,Time\n" + "".join(f"s{i},i,{i}\n" for i in range(20)))
    write(tmp_path / "b.csv", "SessionId,ItemId,Time\nt1,i,03/02/2024 10:00\nt2,i,04/02/2024 11:00\n")
    with pytest.raises(DataError, match=r"in \S+b\.csv no row has a time that --time-format auto reads "
                                        r"\(first: \S+b\.csv line 2, column 'Time': bad time '03/02/2024 10:00'\)"
                                        r"\. Name the form of the times with --time-format") as raised:
        read_events(tmp_path)
    assert "--max-bad-rows" not in str(raised.value)
    # negative control: a few bad times among good ones keep the bound's advice
    write(tmp_path / "b.csv", "SessionId,ItemId,Time\nt1,i,03/02/2024 10:00\nt2,i,5\n")
    with pytest.raises(DataError, match="raise --max-bad-rows"):
        read_events(tmp_path, ReadOptions(max_bad_rows="0"))


def test_written_files_follow_the_umask(tmp_path):
    from model_code.data.events import write_events

    events = read_events(write(tmp_path / "in.tsv", TSV))
    previous = os.umask(0o022)
    try:
        write_events(tmp_path / "out.tsv.gz", events)
        os.umask(0o027)
        write_events(tmp_path / "private.tsv", events)
    finally:
        os.umask(previous)
    assert (tmp_path / "out.tsv.gz").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.tsv").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("written", ["1709421011", "1709421011000", "1709421011000000", "1709421011.5"])
def test_auto_reads_epoch_seconds_milliseconds_and_microseconds_by_magnitude(tmp_path, written):
    events = read_events(write(tmp_path / "e.csv", f"SessionId,ItemId,Time\ns,a,{written}\ns,b,2024-03-02T23:12:11Z\n"))
    expected = float(written) if "." in written else 1709421011.0
    assert events["Time"].tolist() == [expected, 1709421011.0 + 120]  # 2024-03-02T23:12:11Z is 120 s later


def test_epoch_s_keeps_every_number_as_seconds(tmp_path):
    path = write(tmp_path / "e.csv", "SessionId,ItemId,Time\ns,a,1709421011000\ns,b,7\n")
    assert read_events(path, ReadOptions(time_format="epoch_s"))["Time"].tolist() == [7.0, 1709421011000.0]
    assert read_events(path)["Time"].tolist() == [7.0, 1709421011.0]


def test_typed_parquet_milliseconds_are_read_by_magnitude(tmp_path):
    frame = pd.DataFrame({"SessionId": ["s", "s"], "ItemId": ["a", "b"],
                          "Time": np.array([1709421011000, 1709421012000], dtype=np.int64)})
    frame.to_parquet(tmp_path / "e.parquet")
    assert read_events(tmp_path / "e.parquet")["Time"].tolist() == [1709421011.0, 1709421012.0]


@pytest.mark.parametrize("text, seconds", [("30m", 1800.0), ("1800s", 1800.0), ("1800", 1800.0), ("1.5h", 5400.0),
                                           ("1d", 86400.0), (" 2 h ", 7200.0), ("off", None), ("OFF", None)])
def test_session_gaps(text, seconds):
    assert parse_session_gap(text) == seconds


@pytest.mark.parametrize("text", ["0", "0m", "-5m", "30x", "m", "", "inf", "1e3"])
def test_bad_session_gaps_name_what_is_allowed(text):
    with pytest.raises(OptionError, match="a duration > 0"):
        parse_session_gap(text)


def test_event_types_need_an_event_column():
    assert ReadOptions(event_column="event_type", event_types=" view, cart ").kinds == {"view", "cart"}
    assert ReadOptions(event_column="event_type").kinds is None
    assert ReadOptions(event_column="event_type").columns() == ["SessionId", "ItemId", "Time", "event_type"]
    with pytest.raises(OptionError, match="--event-column"):
        ReadOptions(event_types="view")
    with pytest.raises(OptionError, match="event kinds separated by commas"):
        ReadOptions(event_column="event_type", event_types="view,,cart")


def test_a_byte_that_is_not_utf8_is_one_bad_row_with_its_file_line_and_column(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes(b"SessionId,ItemId,Time\ns1,a\xff,1\ns1,b,2\ns2,caf\xc3\xa9,3\ns2,d,4\n")
    lines = []
    events = read_events(path, ReadOptions(max_bad_rows="1"), lines.append)
    assert events["ItemId"].tolist() == ["b", "café", "d"] and events.attrs["skipped_rows"] == {
        "not text of the encoding": 1
    }
    assert lines[1] == f"  {path} line 2, column 'ItemId': not text of the encoding (utf-8; --encoding names another)"
    with pytest.raises(DataError, match="1 of 4 rows are bad"):
        read_events(path, ReadOptions(max_bad_rows="0"))


def test_encoding_reads_a_latin1_file(tmp_path):
    path = tmp_path / "e.tsv"
    path.write_bytes("SessionId\tItemId\tTime\ns\tcafé\t1\ns\tthé\t2\n".encode("latin-1"))
    assert read_events(path, ReadOptions(encoding="latin-1"))["ItemId"].tolist() == ["café", "thé"]
    with pytest.raises(DataError, match="2 of 2 rows are bad"):  # negative control: read as UTF-8
        read_events(path)
    with pytest.raises(OptionError, match="a text encoding"):
        ReadOptions(encoding="klingon")


def test_a_folder_of_day_partitions_is_read_and_its_files_listed(tmp_path):
    for day, rows in (("2026-11-29", "s,a,1\ns,b,2\n"), ("2026-11-30", "t,a,3\nt,c,4\n")):
        (tmp_path / "events" / f"dt={day}").mkdir(parents=True)
        write(tmp_path / "events" / f"dt={day}" / "part-0000.csv", "SessionId,ItemId,Time\n" + rows)
    write(tmp_path / "events" / "dt=2026-11-30" / "_SUCCESS", "")
    (tmp_path / "events" / "notes").mkdir()
    write(tmp_path / "events" / "notes" / "old.csv", "SessionId,ItemId,Time\nx,y,1\n")  # not a partition folder
    lines = []
    events = read_events(tmp_path / "events", log=lines.append)
    assert events["SessionId"].tolist() == ["s", "s", "t", "t"]
    assert lines == [f"{tmp_path / 'events'}: 2 files: dt=2026-11-29/part-0000.csv, dt=2026-11-30/part-0000.csv"]


def test_the_same_day_plain_and_compressed_is_refused_by_name(tmp_path):
    write(tmp_path / "day.csv", "SessionId,ItemId,Time\ns,a,1\n")
    with gzip.open(tmp_path / "day.csv.gz", "wt") as handle:
        handle.write("SessionId,ItemId,Time\ns,a,1\n")
    with pytest.raises(DataError, match=r"day\.csv and \S+day\.csv\.gz: the same file twice"):
        read_events(tmp_path)
    (tmp_path / "day.csv").rename(tmp_path / "other-day.csv")  # negative control: two days, both read
    assert len(read_events(tmp_path, log=lambda line: None)) == 2
