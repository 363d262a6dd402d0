"""`infra.ops.deployment` against a stage deployed in moto: every name read from the stacks' outputs."""
from __future__ import annotations

from infra.ops.deployment import load_deployment
from tests.support.ops_stage import BUCKET, IMAGE, outputs_stack, run, write_lines


def test_deployment_is_read_from_the_stack_outputs(stage):
    deployment = load_deployment(stage.session, "dev")
    assert deployment.data_bucket == BUCKET
    assert deployment.endpoint_name == "gru4rec-dev"
    assert deployment.api_url == stage.api_url
    assert deployment.api_key_id == stage.api_key["id"]
    assert deployment.training_state_machine_arn == stage.training_arn
    assert deployment.batch_state_machine_arn == stage.batch_arn
    assert deployment.repository_uri == IMAGE.split(":")[0]


def test_unknown_stage_names_the_missing_stack(stage, capsys):
    code, out, err = run(capsys, "--stage", "qa", "status")
    assert code == 1 and out == ""
    assert "Gru4Rec-Qa-Storage" in err and "'qa'" in err


def test_a_missing_part_names_its_stack(stage, capsys):
    stage.session.client("cloudformation").delete_stack(StackName="Gru4Rec-Dev-Api")
    code, _, err = run(capsys, "recommend", "a")
    assert code == 1
    assert "stack Gru4Rec-Dev-Api does not exist" in err


def test_a_missing_output_is_named(aws, capsys, tmp_path):
    outputs_stack(aws.client("cloudformation"), "Gru4Rec-Dev-Storage", {"Other": "x"})
    sessions = write_lines(tmp_path / "whatever.jsonl", ['{"session_id": "s1", "items": ["a"]}'])
    code, _, err = run(capsys, "score", str(sessions))
    assert code == 1
    assert "Gru4Rec-Dev-Storage" in err and "'DataBucketName'" in err
