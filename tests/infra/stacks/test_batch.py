"""The batch stack (in the app as app.py builds it, `synth`): the rule on new sessions files, the state
machine read as Step Functions will run it, IAM."""
from __future__ import annotations

import fnmatch
import re

import pytest

from infra.transform_settings import transform_workers
from tests.support.pipelines import (
    PARTITION,
    actions_on,
    as_list,
    definition,
    evaluate,
    logical_id,
    main_path,
    marker,
    policy_of,
    policy_statements,
    resources,
    state_machine,
)

STORAGE_EXPORTS = "import:Gru4Rec-Dev-Storage"
EXECUTION = {"Id": "arn:aws:states:eu-west-1:123456789012:execution:gru4rec-dev-batch:4f6c",
             "StartTime": "2026-11-29T02:17:10.123Z"}
BUCKET = "gru4rec-dev-data"
MODEL_DATA = f"s3://{BUCKET}/models/gru4rec-dev-train-20261128-101500-0a1b2c3d/output/model.tar.gz"


@pytest.fixture(scope="module")
def template(synth):
    return synth.template_dict("batch")


@pytest.fixture(scope="module")
def states(template):
    return definition(template)["States"]


def variables_for(states, key):
    """The variables "Name the job" assigns for an S3 event about ``key`` (the bucket named BUCKET)."""
    event = {"detail-type": "Object Created", "source": "aws.s3",
             "detail": {"bucket": {"name": BUCKET}, "object": {"key": key}}}
    assigned = states["Name the job"]["Assign"]
    context = {"context": {"Execution": EXECUTION}, "input": event}
    return {"jobName": evaluate(assigned["jobName"], states=context), "key": evaluate(assigned["key"], states=context),
            "bucket": BUCKET, "modelData": MODEL_DATA}


def test_states_in_order(states):
    assert main_path(
        states, "Name the job", via={"Sessions file?": "Stagger", "Capacity free?": "Find live endpoint config"}
    ) == [
        "Name the job",
        "Sessions file?",
        "Stagger",
        "Count running jobs",
        "Capacity free?",
        "Find live endpoint config",
        "Find live model",
        "Read live model",
        "Find list file",
        "List file?",
        "Split sessions",
        "Create model",
        "Transform",
        "Join answers",
        "Delete model",
        "Done",
    ]
    assert main_path(states, "List file?", via={"List file?": "Attach filters"}) == [
        "List file?", "Attach filters", "Split sessions", "Create model", "Transform", "Join answers", "Delete model",
        "Done"]
    assert main_path(states, "Wait for capacity") == ["Wait for capacity", "Count running jobs", "Capacity free?"]
    assert states["Capacity free?"]["Default"] == "Wait for capacity"


def test_rule_matches_new_jsonl_files_under_incoming(template):
    pattern = _rule(template, "SessionsArrived")["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert [marker(name) for name in pattern["detail"]["bucket"]["name"]] == [
        f"<{STORAGE_EXPORTS}:ExportsOutputRefData666C94C774A46B8E>"]
    (key_filter,) = pattern["detail"]["object"]["key"]
    # EventBridge's wildcard: '*' matches any run of characters, '/' included
    wildcard = key_filter["wildcard"]
    assert wildcard == "sessions/incoming/*.jsonl"
    matches = {key: fnmatch.fnmatchcase(key, wildcard) for key in (
        "sessions/incoming/a.jsonl", "sessions/incoming/2026/11/a.jsonl", "sessions/incoming/a.json",
        "sessions/scored/a.jsonl.out", "training/train/a.jsonl")}
    assert [key for key, matched in matches.items() if matched] == [
        "sessions/incoming/a.jsonl",
        "sessions/incoming/2026/11/a.jsonl",
    ]


def test_rule_starts_the_state_machine_with_retries_and_a_dead_letter_queue(template):
    (target,) = _rule(template, "SessionsArrived")["Properties"]["Targets"]
    machine = next(iter(resources(template, "AWS::StepFunctions::StateMachine")))
    assert target["Arn"] == {"Ref": machine}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1 and target["RetryPolicy"]["MaximumEventAgeInSeconds"] > 0
    (queue_name, queue), = resources(template, "AWS::SQS::Queue").items()
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [queue_name, "Arn"]}
    # SQS-managed encryption: EventBridge needs no grant on the stage key for its dead letters
    assert queue["Properties"]["SqsManagedSseEnabled"] is True and "KmsMasterKeyId" not in queue["Properties"]
    role = target["RoleArn"]["Fn::GetAtt"][0]
    (start,) = [s for s in policy_statements(template) if marker(s["Resource"]) == f"<{machine}>"]
    assert start["Action"] == "states:StartExecution"
    assert any(p["Properties"]["Roles"] == [{"Ref": role}] for p in resources(template, "AWS::IAM::Policy").values()
               if p["Properties"]["PolicyDocument"]["Statement"] == [start])
    (alarm,) = resources(template, "AWS::CloudWatch::Alarm").values()
    assert alarm["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [queue_name, "QueueName"]}


def test_timed_out_or_stopped_executions_are_reported(template):
    rule = _rule(template, "AbnormalEnds")["Properties"]
    machine = next(iter(resources(template, "AWS::StepFunctions::StateMachine")))
    assert rule["EventPattern"]["detail"] == {"status": ["TIMED_OUT", "ABORTED"], "stateMachineArn": [{"Ref": machine}]}
    topic = next(iter(resources(template, "AWS::SNS::Topic")))
    assert [target["Arn"] for target in rule["Targets"]] == [{"Ref": topic}]


def test_state_machine_is_standard_traced_and_logs_everything(template):
    properties = state_machine(template)
    assert properties["StateMachineType"] == "STANDARD" and properties["TracingConfiguration"] == {"Enabled": True}
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    log_groups = resources(template, "AWS::Logs::LogGroup")
    assert len(log_groups) == 4  # the two state machines' and the filter packager's and sharder's
    for log_group in log_groups.values():
        assert STORAGE_EXPORTS in marker(log_group["Properties"]["KmsKeyId"])
    assert "BatchStateMachineArn" in template["Outputs"]


@pytest.mark.parametrize("key, accepted", [
    ("sessions/incoming/a.jsonl", True), ("sessions/incoming/2026/11/a.jsonl", True),
    ("sessions/incoming/.jsonl", False), ("sessions/incoming/a.csv", False), ("other/a.jsonl", False), (None, False),
])
def test_only_sessions_files_are_scored(states, key, accepted):
    variables = variables_for(states, key)
    (rule,) = states["Sessions file?"]["Choices"]
    assert evaluate(rule["Condition"], variables) is accepted
    if not accepted:
        cause = evaluate(states["Not a sessions file"]["Output"]["Cause"], variables)
        assert cause.endswith(f"the key {key}" if key else "no object key")


def test_job_name(states):
    name = variables_for(states, "sessions/incoming/a.jsonl")["jobName"]
    assert re.fullmatch(r"gru4rec-dev-batch-20261129-021710-[0-9a-f]{8}", name)


def test_concurrency_is_bounded_by_the_stages_running_jobs(states, synth):
    count = states["Count running jobs"]
    assert count["Resource"] == f"arn:{PARTITION}:states:::aws-sdk:sagemaker:listTransformJobs"
    assert count["Arguments"] == {"StatusEquals": "InProgress", "NameContains": "gru4rec-dev-batch-", "MaxResults": 100}
    running = evaluate(count["Assign"]["running"], states={"result": {"TransformJobSummaries": [{"x": 1}, {"x": 2}]}})
    assert running == 2
    assert evaluate(count["Assign"]["running"], states={"result": {"TransformJobSummaries": []}}) == 0
    (rule,) = states["Capacity free?"]["Choices"]
    limit = synth.config.max_concurrent_transform_jobs
    assert [evaluate(rule["Condition"], {"running": n}) for n in range(limit + 2)] == [True] * limit + [False, False]


def test_waits_are_jittered(states):
    waits = [evaluate(states["Wait for capacity"]["Seconds"], seed=seed) for seed in range(20)]
    assert all(60 <= wait < 90 for wait in waits) and len(set(waits)) > 1
    staggers = [evaluate(states["Stagger"]["Seconds"], seed=seed) for seed in range(20)]
    assert all(0 <= wait < 30 for wait in staggers) and len(set(staggers)) > 1


def test_live_model_is_the_endpoints_read_right_before_the_job(states):
    endpoint, config, model = (states[name] for name in ("Find live endpoint config", "Find live model",
                                                         "Read live model"))
    assert endpoint["Resource"] == f"arn:{PARTITION}:states:::aws-sdk:sagemaker:describeEndpoint"
    assert endpoint["Arguments"] == {"EndpointName": "gru4rec-dev"}
    assert evaluate(endpoint["Assign"]["liveConfig"], states={"result": {"EndpointConfigName": "c1"}}) == "c1"
    assert config["Resource"] == f"arn:{PARTITION}:states:::aws-sdk:sagemaker:describeEndpointConfig"
    assert evaluate(config["Arguments"]["EndpointConfigName"], {"liveConfig": "c1"}) == "c1"
    # during an A/B test the live model is AllTraffic's, whichever variant comes first
    variants = {"ProductionVariants": [{"VariantName": "Challenger", "ModelName": "challenger"},
                                       {"VariantName": "AllTraffic", "ModelName": "live"}]}
    assert evaluate(config["Assign"]["liveModel"], states={"result": variants}) == "live"
    assert model["Resource"] == f"arn:{PARTITION}:states:::aws-sdk:sagemaker:describeModel"
    assert evaluate(model["Arguments"]["ModelName"], {"liveModel": "live"}) == "live"
    described = {"ModelName": "live", "PrimaryContainer": {"Image": "i", "ModelDataUrl": MODEL_DATA}}
    assert evaluate(model["Assign"]["modelData"], states={"result": described}) == MODEL_DATA
    assert model["Next"] == "Find list file"


@pytest.mark.parametrize(
    "key, listed, list_key",
    [
        (
            "sessions/incoming/run/a.jsonl",
            ["sessions/incoming/run/a.filters.json"],
            "sessions/incoming/run/a.filters.json",
        ),
        ("sessions/incoming/run/a.jsonl", [], ""),
        ("sessions/incoming/run/a.jsonl", ["sessions/incoming/run/a.filters.json.bak"], ""),
        (
            "sessions/incoming/x.jsonl.jsonl",
            ["sessions/incoming/x.jsonl.filters.json"],
            "sessions/incoming/x.jsonl.filters.json",
        ),
    ],
)
def test_a_list_file_beside_the_sessions_file_is_found(states, key, listed, list_key):
    find = states["Find list file"]
    assert find["Resource"] == f"arn:{PARTITION}:states:::aws-sdk:s3:listObjectsV2"
    variables = variables_for(states, key)
    assert evaluate(find["Arguments"]["Prefix"], variables) == key.removesuffix(".jsonl") + ".filters.json"
    assert evaluate(find["Arguments"]["Bucket"], variables) == BUCKET
    result = {"KeyCount": len(listed), **({"Contents": [{"Key": name} for name in listed]} if listed else {})}
    assert evaluate(find["Assign"]["listKey"], variables, states={"result": result}) == list_key
    choice = states["List file?"]
    (rule,) = choice["Choices"]
    assert evaluate(rule["Condition"], {"listKey": list_key}) is bool(list_key)
    assert (rule["Next"], choice["Default"]) == ("Attach filters", "Split sessions")


def test_the_list_travels_in_a_copy_of_the_models_archive(states, template):
    attach = states["Attach filters"]
    assert attach["Resource"] == f"arn:{PARTITION}:states:::lambda:invoke"
    variables = {
        **variables_for(states, "sessions/incoming/run/a.jsonl"),
        "listKey": "sessions/incoming/run/a.filters.json",
    }
    payload = {name: evaluate(value, variables) for name, value in attach["Arguments"]["Payload"].items()}
    assert payload == {"modelData": MODEL_DATA, "filters": f"s3://{BUCKET}/sessions/incoming/run/a.filters.json",
                       "output": f"s3://{BUCKET}/batch-models/{variables['jobName']}/model.tar.gz"}
    packed = payload["output"]
    assert evaluate(attach["Assign"]["modelData"], states={"result": {"Payload": {"modelData": packed}}}) == packed
    assert attach["Next"] == "Split sessions"
    assert logical_id(template, "AWS::Lambda::Function", "FilterPackager") in attach["Arguments"]["FunctionName"]


def test_the_packager_reads_models_and_lists_and_writes_packed_models_only(template):
    statements = policy_of(template, "FilterPackagerPolicy")
    assert actions_on(statements, "/models/*") == {"s3:GetObject"}
    assert actions_on(statements, "/sessions/incoming/*") == {"s3:GetObject"}
    assert actions_on(statements, "/batch-models/*") == {"s3:PutObject"}
    assert not actions_on(statements, "/sessions/scored/*")
    function = resources(template, "AWS::Lambda::Function")
    (packager,) = [body for name, body in function.items() if name.startswith("FilterPackager")]
    assert packager["Properties"]["LoggingConfig"]["LogGroup"]
    assert packager["Properties"]["EphemeralStorage"]["Size"] >= 4096


def test_the_sharder_reads_sessions_and_answers_and_writes_shards_manifests_and_scores_only(template, states):
    statements = policy_of(template, "SessionSharderPolicy")
    assert actions_on(statements, "/sessions/incoming/*") == {"s3:GetObject"}
    assert actions_on(statements, "/batch-shards/*") == {"s3:GetObject", "s3:PutObject"}
    assert actions_on(statements, "/batch-manifests/*") == {"s3:PutObject"}
    assert actions_on(statements, "/sessions/scored/*") == {"s3:PutObject", "s3:AbortMultipartUpload"}
    assert not actions_on(statements, "/models/*")
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["batch-shards/*"]}}, "a missing answer: NoSuchKey"
    function = logical_id(template, "AWS::Lambda::Function", "SessionSharder")
    assert function in states["Split sessions"]["Arguments"]["FunctionName"]
    assert function in states["Join answers"]["Arguments"]["FunctionName"]
    assert resources(template, "AWS::Lambda::Function")[function]["Properties"]["Timeout"] == 900


def test_each_job_gets_its_own_model_under_the_transform_role(states, template, synth):
    create = states["Create model"]
    assert create["Resource"] == f"arn:{PARTITION}:states:::aws-sdk:sagemaker:createModel"
    variables = variables_for(states, "sessions/incoming/a.jsonl")
    arguments = create["Arguments"]
    assert evaluate(arguments["ModelName"], variables) == variables["jobName"]
    assert arguments["ExecutionRoleArn"] == f"<{logical_id(template, 'AWS::IAM::Role', 'TransformRole')}.Arn>"
    container = arguments["PrimaryContainer"]
    assert container["Image"].endswith(
        ":" + marker(synth.stacks["image"].resolve(synth.stacks["image"].serve_image_uri)).rsplit(":", 1)[1]
    )
    assert "ModelDataSource" not in container, "Batch Transform refuses ModelDataSource"
    assert evaluate(container["ModelDataUrl"], variables) == MODEL_DATA
    assert arguments["EnableNetworkIsolation"] is True
    assert create["Next"] == "Transform" and states["Transform"]["Next"] == "Join answers"
    delete = states["Delete model"]
    assert delete["Resource"] == f"arn:{PARTITION}:states:::aws-sdk:sagemaker:deleteModel"
    assert evaluate(delete["Arguments"]["ModelName"], variables) == variables["jobName"]
    assert delete["Next"] == "Done"


def test_transform_role_reads_models_and_shards_and_writes_answers(template):
    statements = policy_of(template, "TransformPolicy")
    assert actions_on(statements, "/models/*") == {"s3:GetObject"}
    assert actions_on(statements, "/batch-models/*") == {"s3:GetObject"}
    assert actions_on(statements, "/sessions/incoming/*") == set(), "the sharder reads the file, the job its shards"
    assert actions_on(statements, "/batch-shards/*") == {"s3:GetObject", "s3:PutObject"}
    assert actions_on(statements, "/sessions/grouped/*") == {"s3:GetObject"}
    assert actions_on(statements, "/batch-manifests/*") == {"s3:GetObject"}
    assert actions_on(statements, "/sessions/scored/*") == {"s3:PutObject"}
    assert actions_on(statements, "/capture/") == set()
    assert actions_on(statements, "/events/") == set()
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["batch-shards/*", "sessions/grouped/*"]}}
    assert actions_on(statements, "log-group:/aws/sagemaker/TransformJobs:log-stream:gru4rec-dev-batch-*") == {
        "logs:CreateLogStream", "logs:PutLogEvents"}
    assert actions_on(statements, "log-group:/aws/sagemaker/TransformJobs:*") >= {"logs:CreateLogGroup"}
    key_statements = [s for s in statements if {"kms:CreateGrant", "kms:DescribeKey"} & set(as_list(s["Action"]))]
    assert sorted((as_list(s["Action"]), s.get("Condition")) for s in key_statements) == [
        (["kms:CreateGrant"], {"Bool": {"kms:GrantIsForAWSResource": "true"}}), (["kms:DescribeKey"], None)]


def test_transform_job_follows_the_serving_contract(states, synth):
    transform = states["Transform"]
    assert transform["Resource"] == f"arn:{PARTITION}:states:::sagemaker:createTransformJob.sync"
    arguments = transform["Arguments"]
    assert (arguments["BatchStrategy"], arguments["MaxPayloadInMB"]) == ("MultiRecord", 6)
    assert arguments["TransformInput"]["ContentType"] == "application/jsonlines"
    assert arguments["TransformInput"]["SplitType"] == "Line"
    assert arguments["TransformInput"]["DataSource"]["S3DataSource"]["S3DataType"] == "ManifestFile"
    assert arguments["TransformOutput"]["AssembleWith"] == "Line"
    assert arguments["TransformOutput"]["Accept"] == "application/jsonlines"
    workers = arguments["MaxConcurrentTransforms"]
    assert workers == 4  # ml.m5.xlarge: 4 vCPUs
    assert arguments["Environment"] == {"MODEL_SERVER_WORKERS": str(workers), "MODEL_SERVER_TIMEOUT": "900"}
    # SageMaker waits longer for an invocation than the container's own timeout lets it run
    assert arguments["ModelClientConfig"]["InvocationsTimeoutInSeconds"] > 900 + 10
    assert workers * arguments["MaxPayloadInMB"] <= 100
    assert arguments["TransformResources"]["InstanceType"] == synth.config.transform_instance_type
    assert arguments["TransformResources"]["InstanceCount"] == synth.config.transform_instance_count
    assert STORAGE_EXPORTS in arguments["TransformResources"]["VolumeKmsKeyId"]
    assert STORAGE_EXPORTS in arguments["TransformOutput"]["KmsKeyId"]
    assert {"Key": "project", "Value": "gru4rec"} in arguments["Tags"]


@pytest.mark.parametrize("key, scored", [
    ("sessions/incoming/a.jsonl", "s3://gru4rec-dev-data/sessions/scored/a.jsonl.out"),
    ("sessions/incoming/2026/11/b.jsonl", "s3://gru4rec-dev-data/sessions/scored/2026/11/b.jsonl.out"),
])
def test_input_and_output_locations(states, key, scored, synth):
    """The sharder cuts the new object (and no x.jsonl.bak beside it) into the run's shards and writes the manifest
    the job reads; the job answers under the run's folder; the join writes the one scored file (the output keeps
    the folders below sessions/incoming/)."""
    variables = variables_for(states, key)
    job, arguments = variables["jobName"], states["Transform"]["Arguments"]

    def payload(state: dict) -> dict:
        return {name: evaluate(value, variables) if isinstance(value, str) and value.startswith("{%") else value
                for name, value in state["Arguments"]["Payload"].items()}

    split, join = states["Split sessions"], states["Join answers"]
    assert split["Resource"] == join["Resource"] == f"arn:{PARTITION}:states:::lambda:invoke"
    assert payload(split) == {
        "action": "split",
        "input": f"s3://{BUCKET}/{key}",
        "shards": f"s3://{BUCKET}/batch-shards/{job}/in/",
        "manifest": f"s3://{BUCKET}/batch-manifests/{job}.manifest",
        "instances": synth.config.transform_instance_count,
        "maxShardBytes": synth.config.transform_shard_mb * 1024 * 1024,
    }
    assert split["Next"] == "Create model"
    source = arguments["TransformInput"]["DataSource"]["S3DataSource"]
    assert source == {
        "S3DataType": "ManifestFile",
        "S3Uri": "{% 's3://' & $bucket & '/' & 'batch-manifests/' & $jobName & '.manifest' %}",
    }
    assert evaluate(source["S3Uri"], variables) == f"s3://{BUCKET}/batch-manifests/{job}.manifest"
    assert evaluate(arguments["TransformOutput"]["S3OutputPath"], variables) == f"s3://{BUCKET}/batch-shards/{job}/out"
    assert payload(join) == {
        "action": "join", "shards": f"s3://{BUCKET}/batch-shards/{job}/in/",
        "answers": f"s3://{BUCKET}/batch-shards/{job}/out/", "output": scored}
    assert join["Next"] == "Delete model"
    assert evaluate(arguments["TransformJobName"], variables) == job
    assert evaluate(arguments["ModelName"], variables) == job


def test_transform_retries_when_sagemaker_is_out_of_capacity(states):
    (capacity, service) = states["Transform"]["Retry"]
    assert capacity["ErrorEquals"] == ["SageMaker.ResourceLimitExceededException"]
    assert capacity["BackoffRate"] > 1 and capacity["MaxAttempts"] >= 5 and capacity["JitterStrategy"] == "FULL"
    assert "SageMaker.AmazonSageMakerException" in service["ErrorEquals"]


def test_every_task_and_failed_check_notifies_then_fails(states):
    tasks = [name for name, state in states.items() if state["Type"] == "Task" and name != "Notify failure"]
    assert sorted(tasks) == ["Attach filters", "Count running jobs", "Create model", "Delete model", "Find list file",
                            "Find live endpoint config", "Find live model", "Join answers", "Read live model",
                            "Split sessions", "Transform"]
    for name in tasks:
        assert states[name]["Catch"] == [{"ErrorEquals": ["States.ALL"], "Next": "Notify failure"}], name
    assert states["Not a sessions file"]["Next"] == "Notify failure"
    assert states["Notify failure"]["Resource"] == f"arn:{PARTITION}:states:::sns:publish"
    assert states["Notify failure"]["Next"] == "Failed"
    variables = variables_for(states, "sessions/incoming/a.jsonl")
    failure = {"Error": "States.TaskFailed", "Cause": "ClientError: model not found"}
    message = evaluate(
        states["Notify failure"]["Arguments"]["Message"],
        variables,
        {"input": failure, "context": {"Execution": EXECUTION, "StateMachine": {"Name": "gru4rec-dev-batch"}}},
    )
    assert all(part in message for part in ("sessions/incoming/a.jsonl", variables["jobName"], "model not found"))


def test_iam_least_privilege(template):
    statements = policy_statements(template)
    for statement in statements:
        assert not any("*" in action for action in as_list(statement["Action"])), statement
        if "iam:PassRole" in as_list(statement["Action"]):
            assert as_list(statement["Action"]) == ["iam:PassRole"]
            assert marker(statement["Resource"]).startswith("<TransformRole")
            assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    machine = policy_of(template, "StateMachineRoleDefaultPolicy")
    star = {a for s in machine if s["Resource"] == "*" for a in as_list(s["Action"])}
    assert {a for a in star if not a.startswith(("logs:", "xray:"))} == {"sagemaker:listTransformJobs"}
    assert actions_on(statements, ":transform-job/gru4rec-dev-batch-*") == {
        "sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob",
        "sagemaker:AddTags", "sagemaker:ListTags"}
    assert actions_on(statements, ":rule/StepFunctionsGetEventsForSageMakerTransformJobsRule") == {
        "events:PutTargets", "events:PutRule", "events:DescribeRule"}
    assert actions_on(statements, ":endpoint/gru4rec-dev") == {"sagemaker:describeEndpoint"}
    assert actions_on(statements, ":endpoint-config/*") == {"sagemaker:describeEndpointConfig"}
    assert actions_on(statements, ":model/*") == {"sagemaker:describeModel"}
    assert not any(":parameter/" in str(statement["Resource"]) for statement in statements), "no SSM pointer"
    assert actions_on(statements, ":model/gru4rec-dev-batch-*") == {
        "sagemaker:createModel", "sagemaker:deleteModel", "sagemaker:AddTags"}


@pytest.mark.parametrize("instance_type, workers", [
    ("ml.t2.medium", 1), ("ml.m5.large", 2), ("ml.m5.xlarge", 4), ("ml.c5.2xlarge", 8), ("ml.m5.4xlarge", 16),
    ("ml.m5.12xlarge", 16),
])
def test_workers_per_instance(instance_type, workers):
    assert transform_workers(instance_type) == workers


def test_workers_of_an_unknown_size():
    with pytest.raises(ValueError, match="ml.p4d.metal"):
        transform_workers("ml.p4d.metal")


def _rule(template: dict, prefix: str) -> dict:
    (rule,) = [body for name, body in resources(template, "AWS::Events::Rule").items() if name.startswith(prefix)]
    return rule
