"""Cut one sessions file into shards for a Batch Transform job, and join the job's answers back in order.

Batch Transform spreads the objects of its input across its instances, never the lines of one object
(https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform.html: it "partitions the Amazon S3
objects in the input by key and maps Amazon S3 objects to instances"), so a large file is cut into
several objects before the job and its answers (one ``<shard>.out`` per shard) are joined after it.

``{"action": "split", "input": "s3://b/sessions/incoming/x.jsonl", "shards": "s3://b/batch-shards/<job>/in/",
"manifest": "s3://b/batch-manifests/<job>.manifest", "instances": N, "maxShardBytes": M}``: the lines of
``input``, in order, blank lines left out (the container answers none), go into ``part-00000.jsonl``,
``part-00001.jsonl``, ... under ``shards``. A shard closes once it holds ``size / instances`` bytes (so every
instance gets work), and before a line would take it past ``maxShardBytes``; a line longer than that is a
shard of its own. The manifest (the job's input) lists the shards in order; ``shards.json`` beside them
records each shard's number of sessions. Result: ``{"manifest": ..., "shards": n, "sessions": n}``.

``{"action": "join", "shards": ..., "answers": "s3://b/batch-shards/<job>/out/", "output": "s3://b/sessions/scored/x.jsonl.out"}``:
the answers of the shards, in the shards' order, become the one object ``output`` (a multipart upload,
completed only once every shard's answers are there, one line per session; otherwise aborted, so nothing
half-written appears). Result: ``{"output": ..., "shards": n, "sessions": n}``.

Only the Python standard library and boto3 (in the Lambda runtime) are used.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator
from urllib.parse import urlparse

import boto3

SHARD_NAME = "part-{:05d}.jsonl"
SHARDS_FILE = "shards.json"
ANSWER_SUFFIX = ".out"  # Batch Transform's name for the answers to one input object
READ_CHUNK_BYTES = 8 * 1024 * 1024
UPLOAD_PART_BYTES = 16 * 1024 * 1024  # S3 multipart: every part but the last at least 5 MiB


class ShardsError(Exception):
    """The file cannot be cut, or the job's answers cannot be joined: the message says why (the run fails with it)."""


def handler(event: dict, _context=None, s3=None) -> dict:
    s3 = s3 or boto3.client("s3")
    if event.get("action") == "split":
        return split_sessions(s3, event["input"], event["shards"], event["manifest"],
                              int(event["instances"]), int(event["maxShardBytes"]))
    if event.get("action") == "join":
        return join_answers(s3, event["shards"], event["answers"], event["output"])
    raise ShardsError(f"'action' must be 'split' or 'join', got {event.get('action')!r}")


def s3_location(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    parts = urlparse(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ShardsError(f"not an s3://bucket/key URI: {uri!r}")
    return parts.netloc, parts.path.lstrip("/")


def shard_target(size: int, instances: int, max_shard_bytes: int) -> int:
    """Bytes after which a shard closes: an equal share of the file per instance, at most ``max_shard_bytes``."""
    if instances < 1 or max_shard_bytes < 1:
        raise ShardsError(f"instances and maxShardBytes must be at least 1, got {instances} and {max_shard_bytes}")
    return max(1, min(max_shard_bytes, math.ceil(size / instances)))


def lines_of(body) -> Iterator[bytes]:
    """The lines of a streamed S3 body, each ending in a newline (one is added to a last line without it)."""
    rest = b""
    while chunk := body.read(READ_CHUNK_BYTES):
        *complete, rest = (rest + chunk).split(b"\n")
        for line in complete:
            yield line + b"\n"
    if rest:
        yield rest + b"\n"


def split_sessions(
    s3, input_uri: str, shards_uri: str, manifest_uri: str, instances: int, max_shard_bytes: int
) -> dict:
    bucket, key = s3_location(input_uri)
    shards_bucket, shards_prefix = s3_location(shards_uri)
    source = s3.get_object(Bucket=bucket, Key=key)
    target = shard_target(source["ContentLength"], instances, max_shard_bytes)
    written: list[dict] = []
    shard, size = [], 0

    def close() -> None:
        name = SHARD_NAME.format(len(written))
        s3.put_object(Bucket=shards_bucket, Key=shards_prefix + name, Body=b"".join(shard),
                      ContentType="application/jsonlines")
        written.append({"name": name, "sessions": len(shard)})

    for line in lines_of(source["Body"]):
        if not line.strip():
            continue
        if shard and size + len(line) > max_shard_bytes:
            close()
            shard, size = [], 0
        shard.append(line)
        size += len(line)
        if size >= target:
            close()
            shard, size = [], 0
    if shard:
        close()
    if not written:
        raise ShardsError(f"{input_uri} holds no sessions")
    put_json(s3, shards_bucket, shards_prefix + SHARDS_FILE, {"input": input_uri, "shards": written})
    manifest_bucket, manifest_key = s3_location(manifest_uri)
    put_json(s3, manifest_bucket, manifest_key, [{"prefix": shards_uri}, *(entry["name"] for entry in written)])
    return {"manifest": manifest_uri, "shards": len(written), "sessions": sum(entry["sessions"] for entry in written)}


def put_json(s3, bucket: str, key: str, document) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode(), ContentType="application/json")


def join_answers(s3, shards_uri: str, answers_uri: str, output_uri: str) -> dict:
    shards_bucket, shards_prefix = s3_location(shards_uri)
    answers_bucket, answers_prefix = s3_location(answers_uri)
    listed = json.loads(s3.get_object(Bucket=shards_bucket, Key=shards_prefix + SHARDS_FILE)["Body"].read())["shards"]
    bucket, key = s3_location(output_uri)
    upload = MultipartUpload(s3, bucket, key)
    try:
        for entry in listed:
            answers_key = answers_prefix + entry["name"] + ANSWER_SUFFIX
            lines = 0
            for line in lines_of(answer_body(s3, answers_bucket, answers_key)):
                lines += 1
                upload.write(line)
            if lines != entry["sessions"]:
                raise ShardsError(f"s3://{answers_bucket}/{answers_key} holds {lines} answer lines for the "
                                  f"{entry['sessions']} sessions of {entry['name']}: the job's answers are incomplete")
        upload.complete()
    except BaseException:
        upload.abort()
        raise
    return {"output": output_uri, "shards": len(listed), "sessions": sum(entry["sessions"] for entry in listed)}


def answer_body(s3, bucket: str, key: str):
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"]
    except s3.exceptions.NoSuchKey:
        raise ShardsError(f"s3://{bucket}/{key} is missing: the job wrote no answers for this shard") from None


class MultipartUpload:
    """One object written in parts of ``UPLOAD_PART_BYTES``; it appears only on :meth:`complete`."""

    def __init__(self, s3, bucket: str, key: str):
        self.s3, self.bucket, self.key = s3, bucket, key
        self.upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/jsonlines")[
            "UploadId"
        ]
        self.parts: list[dict] = []
        self.pending: list[bytes] = []
        self.pending_bytes = 0

    def write(self, data: bytes) -> None:
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes >= UPLOAD_PART_BYTES:
            self._send()

    def _send(self) -> None:
        number = len(self.parts) + 1
        answer = self.s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number,
                                     Body=b"".join(self.pending))
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self.pending, self.pending_bytes = [], 0

    def complete(self) -> None:
        if self.pending or not self.parts:
            self._send()
        self.s3.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                          MultipartUpload={"Parts": self.parts})

    def abort(self) -> None:
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
