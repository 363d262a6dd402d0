"""The batch pipeline's filter packager (infra/functions/attach_filters) against S3 in moto, and the model
archive it writes served by the container's app: a job-level list applied to every line of a batch."""
import io
import json
import tarfile

import boto3
import pytest
from moto import mock_aws

from inference.predictor import create_app
from infra.functions.attach_filters import index as attach

BUCKET = "stage-data"
MODEL = f"s3://{BUCKET}/models/job-1/output/model.tar.gz"
FILTERS = f"s3://{BUCKET}/sessions/incoming/run/a.filters.json"
OUTPUT = f"s3://{BUCKET}/batch-models/gru4rec-dev-batch-1/model.tar.gz"


@pytest.fixture
def s3(model_dir):
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:  # as SageMaker training writes it: files at the root
            for path in sorted(model_dir.iterdir()):
                tar.add(path, arcname=path.name)
        client.put_object(Bucket=BUCKET, Key=attach.split(MODEL)[1], Body=archive.getvalue())
        yield client


def put_filters(s3, document) -> None:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    s3.put_object(Bucket=BUCKET, Key=attach.split(FILTERS)[1], Body=body)


def unpack(s3, uri: str, folder):
    body = s3.get_object(Bucket=BUCKET, Key=attach.split(uri)[1])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        names = sorted(tar.getnames())
        tar.extractall(folder, filter="data")
    return names


def test_the_packed_archive_is_the_model_plus_filters_json(s3, model_dir, tmp_path):
    put_filters(s3, {"include_items": ["1", 2], "exclude_items": []})
    result = attach.handler({"modelData": MODEL, "filters": FILTERS, "output": OUTPUT}, s3=s3)
    assert result == {"modelData": OUTPUT, "excludeItems": 0, "includeItems": 2}
    names = unpack(s3, OUTPUT, tmp_path / "model")
    assert names == sorted([path.name for path in model_dir.iterdir()] + [attach.FILTERS_FILE])
    for path in model_dir.iterdir():
        assert (tmp_path / "model" / path.name).read_bytes() == path.read_bytes()
    assert json.loads((tmp_path / "model" / attach.FILTERS_FILE).read_text()) == {"include_items": ["1", "2"],
                                                                                  "exclude_items": []}


def test_a_job_level_list_applies_to_every_line_of_the_batch(s3, tmp_path):
    model = tmp_path / "original"
    unpack(s3, MODEL, model)
    items = json.loads((model / "items.json").read_text())
    in_stock = items[5:25] + ["discontinued-item"]
    put_filters(s3, {"include_items": in_stock, "exclude_items": [items[6]]})
    attach.handler({"modelData": MODEL, "filters": FILTERS, "output": OUTPUT}, s3=s3)
    unpack(s3, OUTPUT, tmp_path / "packed")
    client = create_app(tmp_path / "packed").test_client()
    lines = [{"session_id": n, "items": items[n:n + 3], "k": 10} for n in range(30, 40)]
    lines.append({"session_id": "own list", "items": items[:2], "k": 10, "include_items": items[50:53]})
    response = client.post("/invocations", data="\n".join(map(json.dumps, lines)).encode(),
                           content_type="application/jsonlines")
    assert response.status_code == 200
    answers = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    allowed = set(items[5:25]) - {items[6]}
    for answer in answers[:-1]:
        assert len(answer["recommendations"]) == 10 and answer["unknown_filter_items"] == 1
        assert {r["item_id"] for r in answer["recommendations"]} <= allowed
    assert {r["item_id"] for r in answers[-1]["recommendations"]} == set(items[50:53])


@pytest.mark.parametrize("document, message", [
    (b"not json", "is not a JSON file"),
    ([1, 2], "must be a JSON object"),
    ({}, "must be a JSON object"),
    ({"include": ["a"]}, "unknown field(s) 'include'"),
    ({"include_items": "a"}, "'include_items' in s3://"),
    ({"exclude_items": ["a", None]}, "'exclude_items[1]' in s3://"),
    ({"exclude_items": [True]}, "'exclude_items[0]' in s3://"),
])
def test_a_bad_list_file_fails_naming_the_problem_and_writes_nothing(s3, document, message):
    put_filters(s3, document)
    with pytest.raises(attach.FiltersError) as caught:
        attach.handler({"modelData": MODEL, "filters": FILTERS, "output": OUTPUT}, s3=s3)
    assert message in str(caught.value)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="batch-models/")["KeyCount"] == 0
