"""`infra.ops.event_runs` against a stage deployed in moto: raw event files submitted as a run."""
from __future__ import annotations

import gzip

from tests.support.ops_stage import BUCKET, run


def _event_files(folder):
    from tests.support.session_events import write_run

    return write_run(folder)


def test_score_events_uploads_a_run_then_its_marker(stage, capsys, tmp_path):
    folder = _event_files(tmp_path / "clicks")
    code, out, err = run(capsys, "score-events", str(folder), "--run", "2026-11-29")
    assert code == 0, err
    s3 = stage.session.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="events/incoming/")["Contents"])
    assert keys == ["events/incoming/2026-11-29/_SUCCESS", "events/incoming/2026-11-29/part-0001.tsv",
                    "events/incoming/2026-11-29/part-0002.tsv.gz"]
    body = s3.get_object(Bucket=BUCKET, Key="events/incoming/2026-11-29/part-0002.tsv.gz")["Body"].read()
    assert body == (folder / "part-0002.tsv.gz").read_bytes()
    assert f"s3://{BUCKET}/sessions/scored/2026-11-29/" in out and "summary.json" in out


def test_score_events_puts_the_marker_last_and_copies_s3_sources(stage, tmp_path):
    from infra.ops.event_runs import submit_events

    s3 = stage.session.client("s3")
    for path in sorted(_event_files(tmp_path / "clicks").iterdir()):
        s3.upload_file(str(path), BUCKET, f"exports/day1/{path.name}")
    s3.put_object(Bucket=BUCKET, Key="exports/day1/_SUCCESS", Body=b"")  # the exporter's own marker: not copied
    calls = []

    class Recording:
        def __getattr__(self, name):
            method = getattr(s3, name)

            def call(*args, **kwargs):
                calls.append(name)
                return method(*args, **kwargs)
            return call

    done = submit_events(Recording(), BUCKET, f"s3://{BUCKET}/exports/day1/", "r1")
    assert done.files == ("part-0001.tsv", "part-0002.tsv.gz")
    writes = [name for name in calls if name in ("copy", "put_object", "upload_file")]
    assert writes == ["copy", "copy", "put_object"]
    assert s3.head_object(Bucket=BUCKET, Key="events/incoming/r1/_SUCCESS")["ContentLength"] == 0


def test_score_events_refuses_a_run_that_exists_or_a_bad_name(stage, capsys, tmp_path):
    folder = _event_files(tmp_path / "clicks")
    assert run(capsys, "score-events", str(folder), "--run", "r1")[0] == 0
    code, _, err = run(capsys, "score-events", str(folder), "--run", "r1")
    assert code == 1 and "already holds objects" in err
    code, _, err = run(capsys, "score-events", str(folder), "--run", "a'b")
    assert code == 1 and "run \"a'b\"" in err


def test_score_events_refuses_files_the_table_cannot_read_before_any_call(capsys, tmp_path):
    (tmp_path / "e.json").write_bytes(b"{}")
    code, _, err = run(capsys, "score-events", str(tmp_path / "e.json"))
    assert code == 1 and "e.json" in err and ".tsv" in err and ".parquet" in err


def _events_table(stage, columns, separator="\t"):
    """The stage's Glue table over events/incoming/, as the Batch stack declares it."""
    glue = stage.session.client("glue")
    glue.create_database(DatabaseInput={"Name": "gru4rec_dev_events"})
    glue.create_table(DatabaseName="gru4rec_dev_events", TableInput={
        "Name": "events", "StorageDescriptor": {
            "Columns": [{"Name": name, "Type": "string"} for name in columns],
            "SerdeInfo": {"Parameters": {"field.delim": separator}}}})


def test_score_events_takes_the_tables_columns_by_header_name_from_csv_and_parquet(stage, capsys, tmp_path):
    import pandas as pd

    _events_table(stage, ["user_session", "product_id", "event_time", "event_type"])
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "2019-10-01.csv").write_text("event_time,event_type,product_id,price,user_session\n"
                                           "2019-10-01 00:00:00 UTC,view,p1,1.5,s1\n"
                                           "2019-10-01 00:00:05 UTC,cart,p2,,s1\n", encoding="utf-8")
    pd.DataFrame({"USER_SESSION": ["s2"], "Product_Id": [7], "event_time": [1569888010000],
                  "event_type": ["view"]}).to_parquet(folder / "2019-10-02.parquet")
    code, out, err = run(capsys, "score-events", str(folder), "--run", "r1")
    assert code == 0, err
    s3 = stage.session.client("s3")

    def read(key):
        return gzip.decompress(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).decode()

    assert read("events/incoming/r1/2019-10-01.txt.gz") == (
        "user_session\tproduct_id\tevent_time\tevent_type\n"
        "s1\tp1\t2019-10-01 00:00:00 UTC\tview\n"
        "s1\tp2\t2019-10-01 00:00:05 UTC\tcart\n")
    assert read("events/incoming/r1/2019-10-02.txt.gz").splitlines()[1] == "s2\t7\t1569888010000\tview"
    assert "run r1: 2 event files" in out


def test_score_events_refuses_a_missing_column_or_a_value_the_table_cannot_split(stage, capsys, tmp_path):
    _events_table(stage, ["sessionid", "itemid", "time"], separator=",")
    (tmp_path / "a.tsv").write_text("SessionId\tItemId\tTime\ns\ta,b\t1\n", encoding="utf-8")
    code, _, err = run(capsys, "score-events", str(tmp_path / "a.tsv"), "--run", "r1")
    assert code == 1 and "a.tsv line 2, column 'itemid'" in err
    (tmp_path / "b.tsv").write_text("SessionId\tItem\tTime\ns\ta\t1\n", encoding="utf-8")
    code, _, err = run(capsys, "score-events", str(tmp_path / "b.tsv"), "--run", "r2")
    assert code == 1 and "no column 'itemid'" in err and "'Item'" in err
    assert "Contents" not in stage.session.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="events/")
