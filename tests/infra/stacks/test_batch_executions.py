"""The batch pipeline executed end to end from the synthesized template (``tests.support.sfn_executor``).

Stand-ins (``tests.support.stand_ins``): DescribeTransformJob of the finished job (what ``.sync`` returns) and
the job's output (the manifest's objects spread over the job's instances, one answer line per input line),
and the Lambda Invoke of the filter packager and the sharder, which runs each function's own handler against
moto's S3. S3, SNS and SageMaker's models, endpoint and job list are moto's (its
endpoint descriptions put right by ``EndpointDescriptions``).
"""
from __future__ import annotations

import io
import json
import tarfile

import boto3
import pytest

from tests.infra.conftest import synthesize, write_dummy_model_artifact
from tests.support.cfn_values import ACCOUNT, REGION
from tests.support.pipeline_runs import assert_well_formed, offline_stage, published
from tests.support.service_model import problems
from tests.support.stand_ins import Functions, TransformJobs

VARIANTS = ["default", "serverless"]
SESSIONS_KEY = "sessions/incoming/shop-a/2026-12-01.jsonl"
FILTERS_KEY = "sessions/incoming/shop-a/2026-12-01.filters.json"
ONE_SESSION = b'{"session_id": "s1", "items": ["1", "2"]}\n'
# a day's file in miniature: 30 sessions of the same size, in an order the answers must keep (not the ids' order)
DAY_ORDER = [(7 * n) % 30 for n in range(30)]
DAY = b"".join(json.dumps({"session_id": f"s{n:04d}", "items": [f"{n:04d}", "2"]}).encode() + b"\n" for n in DAY_ORDER)
INSTANCES = 3
SCORED_KEY = "sessions/scored/shop-a/2026-12-01.jsonl.out"
LIVE_KEY = "models/gru4rec-dev-train-20261201-000000-0a1b2c3d/output/model.tar.gz"


def _event(bucket: str, key: str) -> dict:
    return {"version": "0", "detail-type": "Object Created", "source": "aws.s3", "time": "2026-12-01T10:00:00Z",
            "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 120}}}


def _function_arn(stage, state: str) -> str:
    arn = stage.definition("batch")["States"][state]["Arguments"]["FunctionName"]
    assert arn.startswith(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"), arn
    return arn


def _functions(stage) -> Functions:
    """The filter packager and the sharder, each running its own handler."""
    return Functions(stage.boundary, {_function_arn(stage, "Attach filters"): "attach_filters",
                                      _function_arn(stage, "Split sessions"): "shard_sessions"})


def _answer(line: bytes) -> bytes:
    """The container's answer to one JSON line, in shape: the session id and its recommendations."""
    session = json.loads(line)
    return (
        json.dumps({"session_id": session["session_id"], "recommendations": [{"item_id": "1", "score": 1.0}]}).encode()
        + b"\n"
    )


def _scored_keys(stage) -> list[str]:
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=stage.bucket, Prefix="sessions/scored/")
    return [entry["Key"] for entry in listed.get("Contents", [])]


def _stage_with_files(stage, tmp_path, filters: dict | None = None, sessions: bytes = ONE_SESSION) -> str:
    """The live model (an archive in models/) and the sessions file (and its list file) in the bucket."""
    stage.put_object(LIVE_KEY, write_dummy_model_artifact(tmp_path / "live.tar.gz").read_bytes())
    stage.live_model(f"s3://{stage.bucket}/{LIVE_KEY}")
    stage.put_object(SESSIONS_KEY, sessions)
    if filters is not None:
        stage.put_object(FILTERS_KEY, json.dumps(filters).encode())
    return f"s3://{stage.bucket}/{LIVE_KEY}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_sessions_file_is_scored_by_its_own_model_and_the_model_deleted(variants, variant, tmp_path):
    with offline_stage(variants[variant]) as stage:
        live = _stage_with_files(stage, tmp_path)
        TransformJobs(stage.boundary, answer=_answer)
        _functions(stage)
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
        (job,) = run.calls("sagemaker", "CreateTransformJob")
        manifest = json.loads(stage.get_object(f"batch-manifests/{job['TransformJobName']}.manifest"))
        scored = stage.get_object(SCORED_KEY)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert_well_formed(run)
    assert 0 <= run.waits[0] < 30, "the stagger"
    (model,) = run.calls("sagemaker", "CreateModel")
    assert model["ModelName"] == job["ModelName"] == job["TransformJobName"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == live, "no list file: the live model as it is"
    invoked = [json.loads(call["Payload"])["action"] for call in run.calls("lambda", "Invoke")]
    assert invoked == ["split", "join"], "no list file: the packager is not called"
    shards = f"s3://{stage.bucket}/batch-shards/{job['TransformJobName']}"
    assert manifest == [{"prefix": f"{shards}/in/"}, "part-00000.jsonl"], "one instance, a small file: one shard"
    assert job["TransformInput"]["DataSource"]["S3DataSource"] == {
        "S3DataType": "ManifestFile", "S3Uri": f"s3://{stage.bucket}/batch-manifests/{job['TransformJobName']}.manifest"}
    assert job["TransformOutput"]["S3OutputPath"] == f"{shards}/out"
    assert [json.loads(line)["session_id"] for line in scored.splitlines()] == ["s1"]
    assert run.calls("sagemaker", "DeleteModel") == [{"ModelName": job["ModelName"]}]
    assert run.output == {"job": job["TransformJobName"], "modelData": live, "input": f"s3://{stage.bucket}/{SESSIONS_KEY}",
                          "output": f"s3://{stage.bucket}/{SCORED_KEY}", "shards": 1, "sessions": 1}


def test_the_live_model_is_the_one_the_endpoint_serves_not_a_pointer_beside_it(synth, tmp_path):
    with offline_stage(synth) as stage:
        live = _stage_with_files(stage, tmp_path)
        # an A/B test's configuration: the challenger listed first, AllTraffic's model is the live one
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        sagemaker.create_model(ModelName="challenger", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/model",
                               PrimaryContainer={"Image": "image", "ModelDataUrl": f"s3://{stage.bucket}/other.tar.gz"})
        endpoint = sagemaker.describe_endpoint(EndpointName=synth.config.endpoint_name)
        (variant,) = sagemaker.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"])["ProductionVariants"]
        sagemaker.create_endpoint_config(EndpointConfigName="ab", ProductionVariants=[
            {"VariantName": "Challenger", "ModelName": "challenger", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"},
            {"VariantName": "AllTraffic", "ModelName": variant["ModelName"], "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"}])
        sagemaker.delete_endpoint(EndpointName=synth.config.endpoint_name)
        sagemaker.create_endpoint(EndpointName=synth.config.endpoint_name, EndpointConfigName="ab")
        TransformJobs(stage.boundary, answer=_answer)
        _functions(stage)
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert_well_formed(run)
    (model,) = run.calls("sagemaker", "CreateModel")
    assert model["PrimaryContainer"]["ModelDataUrl"] == live
    assert [request.operation for request in run.requests if request.service == "ssm"] == []


def test_moto_endpoint_answers_fail_the_shape_check_without_their_stand_in(synth, tmp_path):
    """Negative control of ``EndpointDescriptions``: moto's own DescribeEndpointConfig and DescribeModel answers
    are refused by the output shape, the stand-in's are not."""
    with offline_stage(synth) as stage:
        stage.live_model(f"s3://{stage.bucket}/{LIVE_KEY}")
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        config = sagemaker.describe_endpoint(EndpointName=synth.config.endpoint_name)["EndpointConfigName"]
        raw = {"DescribeEndpointConfig": sagemaker.describe_endpoint_config(EndpointConfigName=config),
               "DescribeModel": sagemaker.describe_model(ModelName=config)}
        stood_in = {operation: stage.boundary.stand_ins[("sagemaker", operation)](
            {"EndpointConfigName": config} if operation == "DescribeEndpointConfig" else {"ModelName": config})
            for operation in raw}
    for operation, answer in raw.items():
        answer.pop("ResponseMetadata")
        assert problems("sagemaker", operation, answer, output=True), operation
        assert problems("sagemaker", operation, stood_in[operation], output=True) == [], operation
        assert {key: value for key, value in answer.items() if value != {}} == stood_in[operation]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, dummy_model_artifact):
    """The app with three transform instances."""
    return synthesize(tmp_path_factory.mktemp("cdk_out_sharded"), {"initial_model_artifact": str(dummy_model_artifact),
                                                                   "transform_instance_count": INSTANCES})


def test_a_file_is_scored_in_shards_across_the_instances_and_joined_in_its_order(sharded, tmp_path):
    with offline_stage(sharded) as stage:
        _stage_with_files(stage, tmp_path, sessions=DAY)
        jobs = TransformJobs(stage.boundary, answer=_answer)
        _functions(stage)
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
        (job,) = run.calls("sagemaker", "CreateTransformJob")
        name = job["TransformJobName"]
        manifest = json.loads(stage.get_object(f"batch-manifests/{name}.manifest"))
        shards = [stage.get_object(f"batch-shards/{name}/in/{shard}") for shard in manifest[1:]]
        scored, scored_keys = stage.get_object(SCORED_KEY), _scored_keys(stage)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert_well_formed(run)
    assert job["TransformResources"]["InstanceCount"] == INSTANCES
    assert manifest[1:] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    assert [shard.count(b"\n") for shard in shards] == [10, 10, 10] and b"".join(shards) == DAY
    assert jobs.spread[name] == [[shard] for shard in manifest[1:]], "each instance takes one shard"
    answers = [json.loads(line) for line in scored.splitlines()]
    assert [answer["session_id"] for answer in answers] == [f"s{n:04d}" for n in DAY_ORDER], "every session, in order"
    assert all(answer["recommendations"] for answer in answers)
    assert scored_keys == [SCORED_KEY], "the shards' answers stay under batch-shards/"
    assert (run.output["shards"], run.output["sessions"]) == (3, 30)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("execution_input", [{}, {"detail": {"object": {"key": "sessions/incoming/shop-a/notes.txt"}}}])
def test_an_input_without_a_sessions_key_fails_before_anything_runs(variants, variant, execution_input):
    with offline_stage(variants[variant]) as stage:
        run = stage.run("batch", execution_input)
    assert (run.status, run.error) == ("FAILED", "Input.NotASessionsFile")
    assert_well_formed(run)
    assert [request.operation for request in run.requests] == ["Publish"]
    (message,) = published(run)
    expected = "no object key" if not execution_input else "the key sessions/incoming/shop-a/notes.txt"
    assert expected in message["cause"] and message["error"] == "Input.NotASessionsFile"


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_list_file_beside_the_sessions_is_packed_into_the_jobs_model(variants, variant, tmp_path):
    with offline_stage(variants[variant]) as stage:
        live = _stage_with_files(stage, tmp_path, {"exclude_items": [7, "8"], "include_items": ["1"]})
        TransformJobs(stage.boundary, answer=_answer)
        _functions(stage)
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
        (job,) = run.calls("sagemaker", "CreateTransformJob")
        packed_key = f"batch-models/{job['TransformJobName']}/model.tar.gz"
        with tarfile.open(fileobj=io.BytesIO(stage.get_object(packed_key)), mode="r:gz") as archive:
            packed = {member.name: archive.extractfile(member).read() for member in archive}
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert_well_formed(run)
    (invoke,) = [call for call in run.calls("lambda", "Invoke") if "action" not in json.loads(call["Payload"])]
    assert json.loads(invoke["Payload"]) == {"modelData": live, "filters": f"s3://{stage.bucket}/{FILTERS_KEY}",
                                             "output": f"s3://{stage.bucket}/{packed_key}"}
    assert json.loads(packed["filters.json"]) == {"exclude_items": ["7", "8"], "include_items": ["1"]}
    assert "metadata.json" in packed, "the live model's files are kept"
    (model,) = run.calls("sagemaker", "CreateModel")
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{stage.bucket}/{packed_key}"
    assert run.output["modelData"] == f"s3://{stage.bucket}/{packed_key}"


def test_a_bad_list_file_fails_the_run_before_any_model_is_made(synth, tmp_path):
    with offline_stage(synth) as stage:
        _stage_with_files(stage, tmp_path, {"exclude": ["1"]})
        TransformJobs(stage.boundary, answer=_answer)
        _functions(stage)
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
    assert run.status == "FAILED" and run.calls("sagemaker", "CreateModel") == []
    (message,) = published(run)
    assert "unknown field(s) 'exclude'" in message["cause"]


def test_a_failed_transform_job_notifies_and_leaves_its_model_for_cleanup(synth, tmp_path):
    with offline_stage(synth) as stage:
        _stage_with_files(stage, tmp_path)
        TransformJobs(stage.boundary, failed=True)
        _functions(stage)
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
    assert run.status == "FAILED" and run.calls("sagemaker", "DeleteModel") == []
    (message,) = published(run)
    assert message["error"] == "States.TaskFailed" and message["file"] == SESSIONS_KEY
    assert run.error == "GRU4Rec.TaskFailed"


# --- negative controls: each stand-in fails a run whose definition is wrong --------------------------------------

def test_a_transform_state_that_does_not_wait_for_the_job_finds_no_answers_to_join(synth, tmp_path):
    """Without ``.sync`` the job is only started: its answers are not there when the join reads them."""
    with offline_stage(synth) as stage:
        _stage_with_files(stage, tmp_path)
        TransformJobs(stage.boundary, answer=_answer)
        _functions(stage)
        stage.pipelines.create(stage.machine("batch"), lambda definition: definition["States"]["Transform"].update(
            Resource=definition["States"]["Transform"]["Resource"].removesuffix(".sync")))
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
    assert run.status == "FAILED" and run.calls("sagemaker", "DescribeTransformJob") == []
    (message,) = published(run)
    assert message["error"] == "ShardsError" and "part-00000.jsonl.out is missing" in message["cause"]


def test_a_job_that_loses_answers_fails_the_join_and_writes_no_scored_file(sharded, tmp_path):
    """The stand-in job answering no line for one session: the join names the shard, nothing is half-written."""
    def losing_one(line: bytes) -> bytes:
        return b"" if json.loads(line)["session_id"] == "s0013" else _answer(line)

    with offline_stage(sharded) as stage:
        _stage_with_files(stage, tmp_path, sessions=DAY)
        TransformJobs(stage.boundary, answer=losing_one)
        _functions(stage)
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
        scored = _scored_keys(stage)
    assert run.status == "FAILED" and scored == []
    (message,) = published(run)
    assert message["error"] == "ShardsError"
    assert "holds 9 answer lines for the 10 sessions of part-00001.jsonl" in message["cause"]


def test_a_packager_sent_the_sessions_file_as_its_list_fails(synth, tmp_path):
    def sessions_as_list(definition):
        payload = definition["States"]["Attach filters"]["Arguments"]["Payload"]
        payload["filters"] = "{% 's3://' & $bucket & '/' & $key %}"

    with offline_stage(synth) as stage:
        _stage_with_files(stage, tmp_path, {"exclude_items": ["1"]})
        TransformJobs(stage.boundary, answer=_answer)
        _functions(stage)
        stage.pipelines.create(stage.machine("batch"), sessions_as_list)
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
    assert run.status == "FAILED" and run.calls("sagemaker", "CreateModel") == []
    (message,) = published(run)
    assert message["error"] == "FiltersError" and f"{SESSIONS_KEY} has unknown field(s)" in message["cause"]
