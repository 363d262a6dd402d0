"""The batch pipeline executed end to end from the synthesized template (``tests.infra.sfn_executor``).

Stand-ins (``tests.infra.stand_ins``): DescribeTransformJob of the finished job (what ``.sync`` returns),
and the filter packager's Lambda Invoke, which runs the function's own handler against moto's S3.
S3, SSM, SNS and SageMaker's models and job list are moto's.
"""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from tests.infra.cfn_values import ACCOUNT, REGION
from tests.infra.conftest import write_dummy_model_artifact
from tests.infra.pipeline_runs import assert_well_formed, offline_stage, published
from tests.infra.stand_ins import FilterPackager, TransformJobs

VARIANTS = ["default", "serverless"]
SESSIONS_KEY = "sessions/incoming/shop-a/2026-12-01.jsonl"
FILTERS_KEY = "sessions/incoming/shop-a/2026-12-01.filters.json"
LIVE_KEY = "models/gru4rec-dev-train-20261201-000000-0a1b2c3d/output/model.tar.gz"


def _event(bucket: str, key: str) -> dict:
    return {"version": "0", "detail-type": "Object Created", "source": "aws.s3", "time": "2026-12-01T10:00:00Z",
            "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 120}}}


def _packager_arn(stage) -> str:
    (arn,) = [state["Arguments"]["FunctionName"] for state in stage.definition("batch")["States"].values()
              if state.get("Resource", "").endswith(":lambda:invoke")]
    assert arn.startswith(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"), arn
    return arn


def _stage_with_files(stage, tmp_path, filters: dict | None = None) -> str:
    """The live model (an archive in models/) and the sessions file (and its list file) in the bucket."""
    stage.put_object(LIVE_KEY, write_dummy_model_artifact(tmp_path / "live.tar.gz").read_bytes())
    stage.live_model(f"s3://{stage.bucket}/{LIVE_KEY}")
    stage.put_object(SESSIONS_KEY, b'{"session_id": "s1", "items": ["1", "2"]}\n')
    if filters is not None:
        stage.put_object(FILTERS_KEY, json.dumps(filters).encode())
    return f"s3://{stage.bucket}/{LIVE_KEY}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_sessions_file_is_scored_by_its_own_model_and_the_model_deleted(variants, variant, tmp_path):
    with offline_stage(variants[variant]) as stage:
        live = _stage_with_files(stage, tmp_path)
        TransformJobs(stage.boundary)
        FilterPackager(stage.boundary, _packager_arn(stage))
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
        (job,) = run.calls("sagemaker", "CreateTransformJob")
        manifest = json.loads(stage.get_object(f"batch-manifests/{job['TransformJobName']}.manifest"))
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert_well_formed(run)
    assert 0 <= run.waits[0] < 30, "the stagger"
    (model,) = run.calls("sagemaker", "CreateModel")
    assert model["ModelName"] == job["ModelName"] == job["TransformJobName"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == live, "no list file: the live model as it is"
    assert run.calls("lambda", "Invoke") == []
    assert manifest == [{"prefix": f"s3://{stage.bucket}/sessions/incoming/shop-a/"}, "2026-12-01.jsonl"]
    assert job["TransformInput"]["DataSource"]["S3DataSource"] == {
        "S3DataType": "ManifestFile", "S3Uri": f"s3://{stage.bucket}/batch-manifests/{job['TransformJobName']}.manifest"}
    assert job["TransformOutput"]["S3OutputPath"] == f"s3://{stage.bucket}/sessions/scored/shop-a"
    assert run.calls("sagemaker", "DeleteModel") == [{"ModelName": job["ModelName"]}]
    assert run.output == {"job": job["TransformJobName"], "modelData": live,
                          "input": f"s3://{stage.bucket}/{SESSIONS_KEY}", "output": f"s3://{stage.bucket}/sessions/scored/shop-a"}


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
        TransformJobs(stage.boundary)
        FilterPackager(stage.boundary, _packager_arn(stage))
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
        (job,) = run.calls("sagemaker", "CreateTransformJob")
        packed_key = f"batch-models/{job['TransformJobName']}/model.tar.gz"
        with tarfile.open(fileobj=io.BytesIO(stage.get_object(packed_key)), mode="r:gz") as archive:
            packed = {member.name: archive.extractfile(member).read() for member in archive}
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert_well_formed(run)
    (invoke,) = run.calls("lambda", "Invoke")
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
        TransformJobs(stage.boundary)
        FilterPackager(stage.boundary, _packager_arn(stage))
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
    assert run.status == "FAILED" and run.calls("sagemaker", "CreateModel") == []
    (message,) = published(run)
    assert "unknown field(s) 'exclude'" in message["cause"]


def test_a_failed_transform_job_notifies_and_leaves_its_model_for_cleanup(synth, tmp_path):
    with offline_stage(synth) as stage:
        _stage_with_files(stage, tmp_path)
        TransformJobs(stage.boundary, failed=True)
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
    assert run.status == "FAILED" and run.calls("sagemaker", "DeleteModel") == []
    (message,) = published(run)
    assert message["error"] == "States.TaskFailed" and message["file"] == SESSIONS_KEY
    assert run.error == "GRU4Rec.TaskFailed"


# --- negative controls: each stand-in fails a run whose definition is wrong --------------------------------------

def test_a_transform_state_that_does_not_wait_for_the_job_has_no_output_path(synth, tmp_path):
    """Without ``.sync`` the result is CreateTransformJob's answer (an ARN only): Done finds no output path."""
    with offline_stage(synth) as stage:
        _stage_with_files(stage, tmp_path)
        TransformJobs(stage.boundary)
        stage.pipelines.create(stage.machine("batch"), lambda definition: definition["States"]["Transform"].update(
            Resource=definition["States"]["Transform"]["Resource"].removesuffix(".sync")))
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
    assert run.status == "FAILED" and run.calls("sagemaker", "DescribeTransformJob") == []


def test_a_packager_sent_the_sessions_file_as_its_list_fails(synth, tmp_path):
    def sessions_as_list(definition):
        payload = definition["States"]["Attach filters"]["Arguments"]["Payload"]
        payload["filters"] = "{% 's3://' & $bucket & '/' & $key %}"

    with offline_stage(synth) as stage:
        _stage_with_files(stage, tmp_path, {"exclude_items": ["1"]})
        TransformJobs(stage.boundary)
        FilterPackager(stage.boundary, _packager_arn(stage))
        stage.pipelines.create(stage.machine("batch"), sessions_as_list)
        run = stage.run("batch", _event(stage.bucket, SESSIONS_KEY))
    assert run.status == "FAILED" and run.calls("sagemaker", "CreateModel") == []
    (message,) = published(run)
    assert message["error"] == "FiltersError" and f"{SESSIONS_KEY} has unknown field(s)" in message["cause"]
