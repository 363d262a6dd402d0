"""The batch pipeline's sharder (infra/functions/shard_sessions) against S3 in moto: a sessions file cut into
shards the way the docs say, and the shards' answers joined back into one file in the input's order."""
import json

import boto3
import pytest
from moto import mock_aws

from infra.functions.shard_sessions import index as sharder

BUCKET = "stage-data"
INPUT = f"s3://{BUCKET}/sessions/incoming/shop/day.jsonl"
SHARDS = f"s3://{BUCKET}/batch-shards/job-1/in/"
ANSWERS = f"s3://{BUCKET}/batch-shards/job-1/out/"
MANIFEST = f"s3://{BUCKET}/batch-manifests/job-1.manifest"
OUTPUT = f"s3://{BUCKET}/sessions/scored/shop/day.jsonl.out"


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def session_line(number: int, items: int = 2) -> bytes:
    return json.dumps({"session_id": f"s{number:04d}", "items": [str(i) for i in range(items)]}).encode() + b"\n"


def read(s3, uri: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=sharder.s3_location(uri)[1])["Body"].read()


def split(s3, body: bytes, instances: int = 1, max_bytes: int = 10_000) -> dict:
    s3.put_object(Bucket=BUCKET, Key=sharder.s3_location(INPUT)[1], Body=body)
    return sharder.handler({"action": "split", "input": INPUT, "shards": SHARDS, "manifest": MANIFEST,
                            "instances": instances, "maxShardBytes": max_bytes}, s3=s3)


def shards_of(s3) -> list[bytes]:
    prefix, *names = json.loads(read(s3, MANIFEST))
    assert prefix == {"prefix": SHARDS}
    return [read(s3, SHARDS + name) for name in names]


def answer_every_shard(s3, answer=lambda line: line) -> None:
    """What Batch Transform writes: ``<shard>.out`` per shard, one line per input line (``answer`` of it)."""
    for entry in json.loads(read(s3, SHARDS + "shards.json"))["shards"]:
        lines = read(s3, SHARDS + entry["name"]).splitlines(keepends=True)
        body = b"".join(answer(line) for line in lines)
        s3.put_object(Bucket=BUCKET, Key=sharder.s3_location(ANSWERS)[1] + entry["name"] + ".out", Body=body)


def test_the_file_is_cut_into_one_share_per_instance_in_order(s3):
    lines = [session_line(n) for n in range(30)]
    result = split(s3, b"".join(lines), instances=3)
    shards = shards_of(s3)
    assert result == {"manifest": MANIFEST, "shards": 3, "sessions": 30}
    assert [shard.count(b"\n") for shard in shards] == [10, 10, 10]
    assert b"".join(shards) == b"".join(lines)


def test_no_shard_passes_the_bound_and_a_longer_line_is_a_shard_of_its_own(s3):
    lines = [session_line(n) for n in range(10)]
    long_line = session_line(99, items=200)
    body = b"".join(lines[:5]) + long_line + b"".join(lines[5:])
    bound = 3 * len(lines[0])
    result = split(s3, body, instances=1, max_bytes=bound)
    shards = shards_of(s3)
    assert b"".join(shards) == body
    assert long_line in shards
    assert all(len(shard) <= bound for shard in shards if shard != long_line)
    assert result["shards"] == len(shards) == 5  # 3 + 2, the long line, 3 + 2


def test_blank_lines_are_left_out_and_a_last_line_gets_its_newline(s3):
    body = session_line(1) + b"\n  \r\n" + session_line(2).rstrip(b"\n")
    result = split(s3, body)
    assert result["sessions"] == 2
    assert b"".join(shards_of(s3)) == session_line(1) + session_line(2)


def test_a_file_without_sessions_fails_and_writes_no_manifest(s3):
    with pytest.raises(sharder.ShardsError, match="holds no sessions"):
        split(s3, b"\n\n")
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="batch-manifests/")["KeyCount"] == 0


def test_answers_are_joined_in_the_inputs_order(s3):
    lines = [session_line(n) for n in range(40)]
    split(s3, b"".join(lines), instances=4)
    answer_every_shard(s3, lambda line: line.replace(b'"items"', b'"recommendations"'))
    result = sharder.handler({"action": "join", "shards": SHARDS, "answers": ANSWERS, "output": OUTPUT}, s3=s3)
    assert result == {"output": OUTPUT, "shards": 4, "sessions": 40}
    joined = [json.loads(line) for line in read(s3, OUTPUT).splitlines()]
    assert [answer["session_id"] for answer in joined] == [f"s{n:04d}" for n in range(40)]
    assert all("recommendations" in answer for answer in joined)


def test_answers_larger_than_one_upload_part_are_joined_whole(s3, monkeypatch):
    monkeypatch.setattr(sharder, "UPLOAD_PART_BYTES", 5 * 1024 * 1024)  # S3's smallest part but the last

    def padded(line: bytes) -> bytes:
        return line.rstrip(b"\n") + b" " * 2000 + b"\n"

    lines = [session_line(n) for n in range(3000)]  # ~ 6 MB of answers: two parts
    split(s3, b"".join(lines), instances=2)
    answer_every_shard(s3, padded)
    sharder.handler({"action": "join", "shards": SHARDS, "answers": ANSWERS, "output": OUTPUT}, s3=s3)
    assert read(s3, OUTPUT) == b"".join(padded(line) for line in lines)


@pytest.mark.parametrize("damage", ["a line lost", "a shard unanswered"])
def test_incomplete_answers_fail_the_join_and_write_nothing(s3, damage):
    split(s3, b"".join(session_line(n) for n in range(12)), instances=3)
    answer_every_shard(s3)
    out_prefix = sharder.s3_location(ANSWERS)[1]
    if damage == "a line lost":
        body = read(s3, ANSWERS + "part-00001.jsonl.out")
        s3.put_object(Bucket=BUCKET, Key=out_prefix + "part-00001.jsonl.out", Body=body.split(b"\n", 1)[1])
        expected = "holds 3 answer lines for the 4 sessions of part-00001.jsonl"
    else:
        s3.delete_object(Bucket=BUCKET, Key=out_prefix + "part-00002.jsonl.out")
        expected = "part-00002.jsonl.out is missing"
    with pytest.raises(sharder.ShardsError, match=expected):
        sharder.handler({"action": "join", "shards": SHARDS, "answers": ANSWERS, "output": OUTPUT}, s3=s3)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="sessions/scored/")["KeyCount"] == 0
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_an_unknown_action_is_named(s3):
    with pytest.raises(sharder.ShardsError, match="'action' must be 'split' or 'join', got 'cut'"):
        sharder.handler({"action": "cut"}, s3=s3)
