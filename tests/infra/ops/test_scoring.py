"""`infra.ops.scoring` against a stage deployed in moto: sessions files submitted to the batch pipeline."""
from __future__ import annotations

import json

import pytest

from infra.ops import scoring
from infra.ops.errors import OpsError
from tests.support.ops_stage import BUCKET, run, write_lines


def test_score_uploads_to_incoming_and_names_the_output(stage, capsys, tmp_path):
    sessions = write_lines(
        tmp_path / "week48.jsonl",
        [json.dumps({"session_id": "s1", "items": ["a", "b"]}),
         json.dumps({"session_id": "s2", "items": ["c"]})],
    )
    code, out, _ = run(capsys, "score", str(sessions))
    assert code == 0
    s3 = stage.session.client("s3")
    body = s3.get_object(Bucket=BUCKET, Key="sessions/incoming/week48.jsonl")
    assert body["Body"].read() == sessions.read_bytes()
    assert f"s3://{BUCKET}/sessions/scored/week48.jsonl.out" in out
    assert "2 sessions" in out


@pytest.mark.parametrize(
    "line, problem",
    [
        ('{"session_id": "s2", "items": ["a"]', "line 2: line 2 is not valid JSON"),
        ('{"session_id": "s2"}', "line 2: 'items' is missing"),
        ('{"session_id": "s2", "items": [1.5]}', "line 2: 'items[0]' must be an item id"),
        ('{"session_id": true, "items": ["a"]}', "line 2: 'session_id' must be a string or an integer"),
        ('{"session_id": "s2", "items": ["a"], "k": 0}', "line 2: 'k' is 0: it must be from 1 to 1000"),
        ('{"session_id": "s2", "itmes": ["a"]}', "line 2: line 2 has unknown field(s) 'itmes'"),
        ('["a", "b"]', "line 2: line 2 must be a JSON object"),
        ("", "line 2: empty line (the container skips blank lines"),
    ],
)
def test_score_names_the_bad_line_and_uploads_nothing(stage, capsys, tmp_path, line, problem):
    sessions = write_lines(tmp_path / "s.jsonl", ['{"session_id": "s1", "items": ["a"]}', line])
    code, _, err = run(capsys, "score", str(sessions))
    assert code == 1 and problem in err and "s.jsonl" in err
    assert "Contents" not in stage.session.client("s3").list_objects_v2(Bucket=BUCKET)


def test_score_refuses_other_names_unless_renamed(stage, capsys, tmp_path):
    sessions = write_lines(tmp_path / "sessions.json", ['{"session_id": "s1", "items": ["a"]}'])
    code, _, err = run(capsys, "score", str(sessions))
    assert code == 1 and "only `<name>.jsonl` files" in err and "--name" in err
    code, out, _ = run(capsys, "score", str(sessions), "--name", "renamed.jsonl")
    assert code == 0 and "sessions/scored/renamed.jsonl.out" in out
    keys = [o["Key"] for o in stage.session.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == ["sessions/incoming/renamed.jsonl"]


def test_score_refuses_an_empty_file(stage, capsys, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    code, _, err = run(capsys, "score", str(tmp_path / "empty.jsonl"))
    assert code == 1 and "holds no sessions" in err


def test_score_with_a_filter_list_uploads_it_beside_the_sessions(stage, capsys, tmp_path):
    sessions = write_lines(tmp_path / "week48.jsonl", [json.dumps({"session_id": "s1", "items": ["a"]})])
    filters = tmp_path / "in_stock.json"
    filters.write_text(json.dumps({"include_items": ["a", "b", 7]}))
    code, _, err = run(capsys, "score", str(sessions), "--filters", str(filters))
    assert code == 0, err
    s3 = stage.session.client("s3")
    body = s3.get_object(Bucket=BUCKET, Key="sessions/incoming/week48.filters.json")["Body"]
    assert json.loads(body.read()) == {"include_items": ["a", "b", 7]}
    assert s3.get_object(Bucket=BUCKET, Key="sessions/incoming/week48.jsonl")["Body"].read() == sessions.read_bytes()


def test_the_filter_list_is_uploaded_before_the_sessions_file_that_starts_the_run(stage, tmp_path):
    sessions = write_lines(tmp_path / "run.jsonl", [json.dumps({"items": ["a"]})])
    (tmp_path / "f.json").write_text(json.dumps({"exclude_items": ["b"]}))
    s3 = stage.session.client("s3")
    keys = []
    upload = s3.upload_file
    s3.upload_file = lambda path, bucket, key, **kwargs: (keys.append(key), upload(path, bucket, key, **kwargs))
    scoring.submit_sessions(s3, BUCKET, sessions, filters=tmp_path / "f.json")
    assert keys == ["sessions/incoming/run.filters.json", "sessions/incoming/run.jsonl"]


@pytest.mark.parametrize("content, problem", [
    ('{"include_items": "a"}', "'include_items' in"),
    ('{"include": ["a"]}', "must be a JSON object with 'exclude_items' and/or 'include_items'"),
    ('{"exclude_items": [null]}', "'exclude_items[0]' must be an item id"),
    ("not json", "is not a JSON file"),
])
def test_score_refuses_a_bad_filter_list_before_uploading_anything(stage, capsys, tmp_path, content, problem):
    sessions = write_lines(tmp_path / "s.jsonl", ['{"session_id": "s1", "items": ["a"]}'])
    (tmp_path / "f.json").write_text(content)
    code, _, err = run(capsys, "score", str(sessions), "--filters", str(tmp_path / "f.json"))
    assert code == 1 and problem in err and "f.json" in err
    assert "Contents" not in stage.session.client("s3").list_objects_v2(Bucket=BUCKET)


def test_wait_for_output_polls_until_the_scored_file_exists(stage):
    s3 = stage.session.client("s3")
    submission = scoring.Submission(BUCKET, "sessions/incoming/x.jsonl",
                                    "sessions/scored/x.jsonl.out", 1)
    polls = []

    def output_appears(seconds):
        polls.append(seconds)
        s3.put_object(Bucket=BUCKET, Key=submission.output_key, Body=b"{}\n")

    found = scoring.wait_for_output(s3, submission, timeout_seconds=60, poll_seconds=5,
                                    sleep=output_appears)
    assert polls == [5] and found["ContentLength"] == 3
    with pytest.raises(OpsError, match="did not appear within 10 s"):
        scoring.wait_for_output(
            s3, scoring.Submission(BUCKET, "a", "never.out", 1), 10, 5, sleep=lambda s: None
        )
