"""The training stack (in the app as app.py builds it, `synth`): its state machine read as Step Functions
will run it, its roles; cdk-nag for the on-demand variant (the default app is checked in test_app)."""
from __future__ import annotations

import json
import re

import pytest
from cfnlint.api import ManualArgs, lint

from infra.config import AppConfig
from infra.stacks.training import ENDPOINT_MAX_POLLS, gate_metric, hyperparameter_defaults, refits
from infra.stacks.workflow import job_name_expression
from model_code.commands.report import metric_lines
from tests.infra.conftest import GPU_TRAINING_TYPE, synthesize
from tests.infra.test_app import LINT_REGIONS
from tests.infra.test_deploy_rehearsal import rehearse
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
SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
EXECUTION = {"Id": "arn:aws:states:eu-west-1:123456789012:execution:gru4rec-dev-training:run-1",
             "StartTime": "2026-11-29T02:17:10.123Z"}


@pytest.fixture(scope="module")
def without_spot(tmp_path_factory, dummy_model_artifact):
    context = {"initial_model_artifact": str(dummy_model_artifact), "use_spot": False}
    return synthesize(tmp_path_factory.mktemp("training_on_demand"), context)


@pytest.fixture(scope="module")
def states(synth):
    return definition(synth.template_dict("training"))["States"]


@pytest.fixture(scope="module")
def variables(states):
    """The variables "Name the job" assigns, evaluated for EXECUTION and the input {}."""
    assigned = states["Name the job"]["Assign"]
    context = {"context": {"Execution": EXECUTION}}
    return {**assigned, "jobName": evaluate(assigned["jobName"], states=context),
            "window": {key: evaluate(value, states=context) for key, value in assigned["window"].items()},
            "champion": None, "championRecall": None, **_input_variables(states, {})}


def _input_variables(states, execution_input: dict) -> dict:
    """What "Name the job" keeps of the execution input: later states never see it as $states.input."""
    assigned = states["Name the job"]["Assign"]
    return {name: evaluate(assigned[name], states={"input": execution_input})
            for name in ("hyperparameters", "skipTestChannel")}


def test_states_in_order(states):
    assert main_path(states, "Name the job", via={"Endpoint free?": "Update endpoint",
                                                  "Endpoint updated?": "Done"}) == [
        "Name the job", "Read tuned settings", "Find live endpoint config", "Find live model", "Read live model",
        "Train", "Quality gate", "Refit on the whole window",
        "Write evaluation report", "Register model version", "Create model", "Create endpoint config",
        "Is the endpoint free?",
        "Endpoint free?", "Update endpoint", "Wait for endpoint", "Check endpoint", "Endpoint updated?",
        "Done",
    ]
    assert states["Done"]["Type"] == "Succeed"
    assert main_path(states, "Wait for endpoint") == ["Wait for endpoint", "Check endpoint", "Endpoint updated?"]
    assert main_path(states, "Wait for the endpoint to be free") == [
        "Wait for the endpoint to be free", "Is the endpoint free?", "Endpoint free?"]


def test_state_machine_is_standard_traced_and_logs_everything_encrypted(synth):
    template = synth.template_dict("training")
    properties = state_machine(template)
    assert properties["StateMachineType"] == "STANDARD"
    assert properties["TracingConfiguration"] == {"Enabled": True}
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    assert properties["LoggingConfiguration"]["IncludeExecutionData"] is True
    (log_group,) = [group for name, group in resources(template, "AWS::Logs::LogGroup").items()
                    if name.startswith("ExecutionLogs")]
    assert STORAGE_EXPORTS in marker(log_group["Properties"]["KmsKeyId"])
    assert definition(template)["QueryLanguage"] == "JSONata"
    assert "TrainingStateMachineArn" in template["Outputs"]


def test_training_job_runs_the_image_to_the_end(states, synth):
    train = states["Train"]
    assert train["Resource"] == f"arn:{PARTITION}:states:::sagemaker:createTrainingJob.sync"
    arguments = train["Arguments"]
    assert arguments["AlgorithmSpecification"]["TrainingImage"].endswith(":" + _image_tag(synth, "train"))
    assert (
        arguments["RoleArn"]
        == "<" + logical_id(synth.template_dict("training"), "AWS::IAM::Role", "TrainingRole") + ".Arn>"
    )
    assert arguments["ResourceConfig"]["InstanceType"] == synth.config.training_instance_type
    assert arguments["StoppingCondition"]["MaxRuntimeInSeconds"] == synth.config.training_max_runtime_hours * 3600
    assert arguments["OutputDataConfig"]["S3OutputPath"].endswith("/models/")
    assert STORAGE_EXPORTS in arguments["OutputDataConfig"]["KmsKeyId"]
    assert STORAGE_EXPORTS in arguments["ResourceConfig"]["VolumeKmsKeyId"]
    assert arguments["EnableNetworkIsolation"] is True
    assert {"Key": "project", "Value": "gru4rec"} in arguments["Tags"]


def test_metric_definitions_match_what_training_prints(states):
    definitions = {
        metric["Name"]: metric["Regex"]
        for metric in states["Train"]["Arguments"]["AlgorithmSpecification"]["MetricDefinitions"]
    }
    assert set(definitions) == {"recall@20", "mrr@20", "validation:recall@20", "validation:mrr@20",
                                "champion:validation:recall@20", "champion:validation:mrr@20"}
    printed = "\n".join([metric_lines({"recall@20": 0.51234, "mrr@20": 0.2}, prefix="validation:"),
                         metric_lines({"recall@20": 0.47, "mrr@20": 0.19}, prefix="champion:validation:"),
                         metric_lines({"recall@20": 0.68123, "mrr@20": 0.35951})])
    found = {name: [float(value) for value in re.findall(regex, printed)] for name, regex in definitions.items()}
    assert found == {"recall@20": [0.6812], "mrr@20": [0.3595], "validation:recall@20": [0.5123],
                     "validation:mrr@20": [0.2], "champion:validation:recall@20": [0.47],
                     "champion:validation:mrr@20": [0.19]}, "a pattern must not match the lines of a longer prefix"


def test_job_name_is_unique_per_execution_and_short_enough(variables, synth):
    name = variables["jobName"]
    assert re.fullmatch(r"gru4rec-dev-train-20261129-021710-[0-9a-f]{8}", name)
    other = evaluate(job_name_expression(synth.config, "train"),
                     states={"context": {"Execution": {**EXECUTION, "Id": EXECUTION["Id"] + "x"}}})
    assert other != name
    longest_stage = AppConfig(stage="s" * 16)
    longest = evaluate(job_name_expression(longest_stage, "train"), states={"context": {"Execution": EXECUTION}})
    assert len(longest) <= 63 and SAGEMAKER_NAME.fullmatch(longest)


def test_hyperparameters_are_defaults_overridden_by_the_input_as_strings(states, variables):
    expression = states["Train"]["Arguments"]["HyperParameters"]
    given = evaluate(expression, {**variables, **_input_variables(states, {"hyperparameters": {
        "epochs": 3, "preset": "diginetica", "learning_rate": 0.05}})})
    window = {"window_start": "2026-11-01", "window_end": "2026-11-28"}
    assert given == {"preset": "diginetica", "epochs": "3", "learning_rate": "0.05", "valid_days": "1", **window}
    assert evaluate(expression, variables) == {"preset": "rsc15", "valid_days": "1", **window}
    overridden = evaluate(
        expression, {**variables, **_input_variables(states, {"hyperparameters": {"window_end": "2020-01-01"}})}
    )
    assert overridden["window_end"] == "2026-11-28", "the window is the pipeline's, never the input's"


def test_test_channel_unless_the_input_turns_it_off(states, variables):
    expression = states["Train"]["Arguments"]["InputDataConfig"]

    def channels(execution_input):
        return {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
                for c in as_list(evaluate(expression, {**variables, **_input_variables(states, execution_input)}))}

    both = channels({})
    assert both["train"].endswith("/training/events/") and both["test"].endswith("/training/test/")
    assert channels({"test_channel": True}) == both
    assert set(channels({"test_channel": False})) == {"train"}


def test_spot_training_waits_longer_and_checkpoints_per_job(states, variables, synth):
    arguments = states["Train"]["Arguments"]
    assert arguments["EnableManagedSpotTraining"] is True
    stopping = arguments["StoppingCondition"]
    assert stopping["MaxWaitTimeInSeconds"] > stopping["MaxRuntimeInSeconds"]
    checkpoint = arguments["CheckpointConfig"]
    assert checkpoint["LocalPath"] == "/opt/ml/checkpoints"
    assert evaluate(checkpoint["S3Uri"], variables) == f"s3://{variables['bucket']}/checkpoints/{variables['jobName']}"


def test_on_demand_training_has_no_spot_settings(without_spot):
    assert without_spot.nag_error is None, without_spot.nag_error
    arguments = definition(without_spot.template_dict("training"))["States"]["Train"]["Arguments"]
    assert "EnableManagedSpotTraining" not in arguments and "CheckpointConfig" not in arguments
    assert "MaxWaitTimeInSeconds" not in arguments["StoppingCondition"]
    training_policy = policy_of(without_spot.template_dict("training"), "TrainingPolicy")
    assert not any("/checkpoints/" in marker(r) for s in training_policy for r in as_list(s["Resource"]))


@pytest.mark.parametrize("metrics, expected", [
    ([{"MetricName": "mrr@20", "Value": 0.31}, {"MetricName": "validation:recall@20", "Value": 0.64},
      {"MetricName": "recall@20", "Value": 0.66}], 0.64),
    ([{"MetricName": "recall@20", "Value": 0.66}], None),
    (None, None),
])
def test_gate_reads_the_validation_recall_by_name(states, metrics, expected):
    result = {"ModelArtifacts": {"S3ModelArtifacts": "s3://b/models/j/output/model.tar.gz"}}
    if metrics is not None:
        result["FinalMetricDataList"] = metrics
    assert evaluate(states["Train"]["Assign"]["recall"], states={"result": result}) == expected


def test_validation_split_and_gate_metric_follow_valid_days():
    assert (hyperparameter_defaults(AppConfig()), gate_metric(AppConfig())) == (
        {"preset": "rsc15", "valid_days": "1"}, "validation:recall@20")
    assert hyperparameter_defaults(AppConfig(valid_days=2.5))["valid_days"] == "2.5"
    shop = AppConfig(
        training_hyperparameters='{"session_column": "user_id", "session_gap": "30m", "preset": "diginetica"}'
    )
    assert hyperparameter_defaults(shop) == {"preset": "diginetica", "session_column": "user_id", "session_gap": "30m",
                                             "valid_days": "1"}
    assert (hyperparameter_defaults(AppConfig(valid_days=0)), gate_metric(AppConfig(valid_days=0))) == (
        {"preset": "rsc15"}, "recall@20")


@pytest.mark.parametrize("recall, verdict", [
    (None, "No recall metric"), (0.05, "Below threshold"), (0.2, "Refit on the whole window"),
    (0.7, "Refit on the whole window"),
])
def test_quality_gate(states, variables, synth, recall, verdict):
    assert synth.config.recall_threshold == 0.2
    assert _choose(states["Quality gate"], {**variables, "recall": recall}) == verdict


def test_failed_gate_says_why(states, variables):
    missing = states["No recall metric"]["Output"]
    assert missing["Error"] == "QualityGate.MetricMissing"
    assert "reported no validation:recall@20: does the training data span more than valid_days (1) days" in evaluate(
        missing["Cause"], variables)
    below = states["Below threshold"]["Output"]
    cause = evaluate(below["Cause"], {**variables, "recall": 0.1234})
    assert "validation:recall@20 = 0.1234" in cause and "threshold 0.2" in cause
    assert states["No recall metric"]["Next"] == states["Below threshold"]["Next"] == "Write rejected evaluation report"
    assert main_path(states, "Write rejected evaluation report") == [
        "Write rejected evaluation report", "Register rejected model version", "Notify failure", "Failed"]


def test_every_task_and_failed_check_notifies_then_fails(states, synth):
    tasks = [name for name, state in states.items() if state["Type"] == "Task" and name != "Notify failure"]
    assert len(tasks) == 16
    for name in tasks:
        assert states[name]["Catch"] == [{"ErrorEquals": ["States.ALL"], "Next": "Notify failure"}], name
    for name, state in states.items():
        if state["Type"] == "Pass" and name != "Name the job":
            rejected = name in ("No recall metric", "Below threshold", "Below the live model")
            assert set(state["Output"]) == {"Error", "Cause"}, name
            assert state["Next"] == ("Write rejected evaluation report" if rejected else "Notify failure"), name
    notify = states["Notify failure"]
    assert notify["Resource"] == f"arn:{PARTITION}:states:::sns:publish"
    topic = logical_id(synth.template_dict("training"), "AWS::SNS::Topic", "FailureTopic")
    assert notify["Arguments"]["TopicArn"] == f"<{topic}>"
    assert notify["Next"] == "Failed" and states["Failed"]["Type"] == "Fail"
    failure = {"Error": "States.TaskFailed", "Cause": "AlgorithmError: out of memory"}
    assert evaluate(states["Failed"]["Error"], states={"input": failure}) == "GRU4Rec.TaskFailed"
    assert evaluate(states["Failed"]["Error"], states={"input": {"Error": "BelowFloor"}}) == "BelowFloor"
    assert evaluate(states["Failed"]["Cause"], states={"input": failure}) == "AlgorithmError: out of memory"


def test_timed_out_or_stopped_executions_are_reported(synth):
    template = synth.template_dict("training")
    (rule,) = [rule for rule in resources(template, "AWS::Events::Rule").values()
               if rule["Properties"]["EventPattern"]["source"] == ["aws.states"]]
    machine = logical_id(template, "AWS::StepFunctions::StateMachine", "StateMachine")
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["TIMED_OUT", "ABORTED"], "stateMachineArn": [{"Ref": machine}]},
    }
    topic = logical_id(template, "AWS::SNS::Topic", "FailureTopic")
    assert [target["Arn"] for target in rule["Properties"]["Targets"]] == [{"Ref": topic}]


def test_failure_topic_is_encrypted_and_mailed(synth):
    template = synth.template_dict("training")
    (topic,) = resources(template, "AWS::SNS::Topic").values()
    assert STORAGE_EXPORTS in marker(topic["Properties"]["KmsMasterKeyId"])
    (subscription,) = resources(template, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == synth.config.notification_email


def test_model_and_endpoint_config_from_the_job(states, synth):
    model = states["Create model"]
    assert model["Resource"] == f"arn:{PARTITION}:states:::aws-sdk:sagemaker:createModel"
    assert model["Arguments"]["ModelName"] == "{% $jobName %}"
    assert model["Arguments"]["PrimaryContainer"]["ModelDataUrl"] == "{% $modelData %}"
    assert "ModelDataSource" not in model["Arguments"]["PrimaryContainer"]
    assert model["Arguments"]["EnableNetworkIsolation"] is True
    # the model runs $image: the serve image on a training run, a registered version's own image on its rollout
    assert model["Arguments"]["PrimaryContainer"]["Image"] == "{% $image %}"
    assert states["Name the job"]["Assign"]["image"].endswith(":" + _image_tag(synth, "serve"))
    assert states["Read model version"]["Assign"]["image"] == (
        "{% $states.result.InferenceSpecification.Containers[0].Image %}")
    assert "ModelRole" in model["Arguments"]["ExecutionRoleArn"]
    assert {"Key": "training-job", "Value": "{% $jobName %}"} in model["Arguments"]["Tags"]
    config = states["Create endpoint config"]["Arguments"]
    (variant,) = config["ProductionVariants"]
    assert variant == {"VariantName": "AllTraffic", "ModelName": "{% $jobName %}", "InitialVariantWeight": 1,
                       "InstanceType": synth.config.endpoint_instance_type,
                       "InitialInstanceCount": synth.config.endpoint_initial_instance_count}
    assert STORAGE_EXPORTS in config["KmsKeyId"] and config["Tags"]


def test_data_capture_is_the_endpoint_stacks(states, synth):
    (endpoint_config,) = resources(synth.template_dict("endpoint"), "AWS::SageMaker::EndpointConfig").values()
    reference = endpoint_config["Properties"]["DataCaptureConfig"]
    ours = states["Create endpoint config"]["Arguments"]["DataCaptureConfig"]
    assert _markers(ours) == _markers(reference)


def test_update_endpoint_keeps_the_fleet_size_and_is_a_guarded_rollout(states, synth):
    update = states["Update endpoint"]
    assert update["Resource"] == f"arn:{PARTITION}:states:::aws-sdk:sagemaker:updateEndpoint"
    arguments = dict(update["Arguments"])
    guardrails = arguments.pop("DeploymentConfig")
    assert arguments == {"EndpointName": synth.stacks["endpoint"].endpoint_name,
                         "EndpointConfigName": "{% $jobName %}", "RetainAllVariantProperties": True,
                         "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DataCaptureConfig"}]}
    # canary, 10%, rollout_wait_minutes between the steps and as the baking period, per cdk.json
    assert synth.config.rollout == "canary"
    policy = guardrails["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
        "WaitIntervalInSeconds": synth.config.rollout_wait_minutes * 60}
    assert policy["TerminationWaitInSeconds"] == synth.config.rollout_wait_minutes * 60
    assert 600 <= policy["MaximumExecutionTimeoutInSeconds"] <= 14400
    assert guardrails["AutoRollbackConfiguration"] == {"Alarms": [
        {"AlarmName": "gru4rec-dev-5xx"}, {"AlarmName": "gru4rec-dev-model-latency"},
        {"AlarmName": "gru4rec-dev-model-errors"}]}


def test_the_pipeline_and_cloudformation_roll_out_alike(states, synth):
    """The same guardrails and retained properties as the Endpoint stack's own updates, on alarms that stack has."""
    (endpoint,) = resources(synth.template_dict("endpoint"), "AWS::SageMaker::Endpoint").values()
    arguments = states["Update endpoint"]["Arguments"]
    for key in ("DeploymentConfig", "RetainAllVariantProperties", "ExcludeRetainedVariantProperties"):
        assert endpoint["Properties"][key] == arguments[key], key
    alarms = {
        a["Properties"]["AlarmName"]
        for a in resources(synth.template_dict("endpoint"), "AWS::CloudWatch::Alarm").values()
    }
    assert {a["AlarmName"] for a in arguments["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]} == alarms


@pytest.mark.parametrize("status, busy_polls, verdict", [
    ("InService", 1, "Update endpoint"),
    ("Updating", 1, "Wait for the endpoint to be free"),
    ("RollingBack", 3, "Wait for the endpoint to be free"),
    ("Updating", ENDPOINT_MAX_POLLS, "Endpoint busy"),
])
def test_a_rollout_waits_while_another_update_runs(states, variables, status, busy_polls, verdict):
    check = states["Is the endpoint free?"]
    assert check["Resource"] == f"arn:{PARTITION}:states:::aws-sdk:sagemaker:describeEndpoint"
    assert evaluate(check["Assign"]["busyPolls"], {"busyPolls": busy_polls - 1}) == busy_polls
    assert (
        _choose(states["Endpoint free?"], {**variables, "busyPolls": busy_polls}, {"EndpointStatus": status}) == verdict
    )


def test_a_busy_endpoint_fails_saying_what_to_do(states, variables):
    busy = states["Endpoint busy"]["Output"]
    assert busy["Error"] == "Deployment.EndpointBusy"
    version = "arn:aws:sagemaker:us-east-1:123456789012:model-package/gru4rec-dev/7"
    cause = evaluate(busy["Cause"], {**variables, "modelPackage": version}, {"input": {"EndpointStatus": "Updating"}})
    assert "is still Updating" in cause and "was not deployed" in cause
    assert f"rollback --to-version {version} once" in cause
    assert states["Endpoint busy"]["Next"] == "Notify failure"


@pytest.mark.parametrize("described, polls, verdict", [
    ({"EndpointStatus": "Updating", "EndpointConfigName": "old"}, 1, "Wait for endpoint"),
    ({"EndpointStatus": "InService", "EndpointConfigName": "JOB"}, 5, "Done"),
    ({"EndpointStatus": "InService", "EndpointConfigName": "old", "FailureReason": "alarm"}, 5, "Rollout rolled back"),
    ({"EndpointStatus": "Failed", "EndpointConfigName": "JOB"}, 5, "Endpoint update failed"),
    ({"EndpointStatus": "UpdateRollbackFailed", "EndpointConfigName": "JOB"}, 5, "Endpoint update failed"),
    ({"EndpointStatus": "Updating", "EndpointConfigName": "old"}, ENDPOINT_MAX_POLLS, "Endpoint update too slow"),
])
def test_endpoint_wait_loop(states, variables, described, polls, verdict):
    described = {
        **described,
        "EndpointConfigName": described["EndpointConfigName"].replace("JOB", variables["jobName"]),
    }
    assert states["Wait for endpoint"]["Next"] == "Check endpoint"
    assert states["Check endpoint"]["Resource"] == f"arn:{PARTITION}:states:::aws-sdk:sagemaker:describeEndpoint"
    assert evaluate(states["Check endpoint"]["Assign"]["polls"], {"polls": polls - 1}) == polls
    assert _choose(states["Endpoint updated?"], {**variables, "polls": polls}, described) == verdict


def test_rolled_back_rollout_is_a_failure_that_names_the_reason(states, variables):
    described = {"EndpointStatus": "InService", "EndpointConfigName": "old",
                 "FailureReason": "alarm gru4rec-dev-5xx fired"}
    rolled_back = states["Rollout rolled back"]
    assert rolled_back["Output"]["Error"] == "Deployment.RolledBack" and rolled_back["Next"] == "Notify failure"
    cause = evaluate(rolled_back["Output"]["Cause"], variables, {"input": described})
    assert "went back to configuration old instead of " + variables["jobName"] in cause
    assert "alarm gru4rec-dev-5xx fired" in cause and "the live model is unchanged" in cause
    failed = {"EndpointStatus": "Failed", "EndpointConfigName": "old"}
    cause = evaluate(states["Endpoint update failed"]["Output"]["Cause"], variables, {"input": failed})
    assert (
        "is Failed with configuration old, not " + variables["jobName"] in cause and "SageMaker gave no reason" in cause
    )


def test_a_rollout_ends_once_the_endpoint_serves_the_model_and_records_no_pointer(states):
    """The endpoint is the record of the live model: no state writes (or reads) a live-model parameter."""
    assert states["Endpoint updated?"]["Choices"][0]["Next"] == "Done"
    ssm_states = {name: state["Resource"] for name, state in states.items() if ":ssm:" in state.get("Resource", "")}
    assert set(ssm_states) == {"Read tuned settings"}, "only the tuned settings are read from SSM"
    assert ssm_states["Read tuned settings"].endswith(":ssm:getParameters")


def test_no_action_wildcards(synth):
    for statement in policy_statements(synth.template_dict("training")):
        assert statement["Effect"] == "Allow"
        assert not any("*" in action for action in as_list(statement["Action"])), statement


def test_only_service_apis_without_resource_permissions_use_star(synth):
    allowed = {
        "ecr:GetAuthorizationToken",
        "cloudwatch:PutMetricData",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
    for statement in policy_statements(synth.template_dict("training")):
        if statement["Resource"] == "*":
            assert set(as_list(statement["Action"])) <= allowed, statement
            if "cloudwatch:PutMetricData" in as_list(statement["Action"]):
                assert statement["Condition"] == {
                    "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}
                }


def test_pass_role_only_for_the_two_sagemaker_roles(synth):
    template = synth.template_dict("training")
    passing = [s for s in policy_statements(template) if "iam:PassRole" in as_list(s["Action"])]
    assert len(passing) == 1
    (statement,) = passing
    assert as_list(statement["Action"]) == ["iam:PassRole"]
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    roles = {marker(r) for r in statement["Resource"]}
    training_role = f"<{logical_id(template, 'AWS::IAM::Role', 'TrainingRole')}.Arn>"
    assert training_role in roles and len(roles) == 2
    (model_role,) = roles - {training_role}
    assert model_role.startswith("<import:Gru4Rec-Dev-Endpoint:") and "ModelRole" in model_role


def test_state_machine_runs_only_its_own_jobs(synth):
    statements = policy_statements(synth.template_dict("training"))
    assert actions_on(statements, ":training-job/gru4rec-dev-train-*") == {
        "sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
        "sagemaker:AddTags", "sagemaker:ListTags"}
    assert actions_on(statements, ":rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule") == {
        "events:PutTargets", "events:PutRule", "events:DescribeRule"}
    assert actions_on(statements, ":endpoint/gru4rec-dev") >= {"sagemaker:updateEndpoint", "sagemaker:describeEndpoint"}
    assert actions_on(statements, ":parameter/gru4rec/dev/current-model-name") == set()
    assert actions_on(statements, ":parameter/gru4rec/dev/current-model-data") == set()
    ssm = {a for s in statements for a in as_list(s["Action"]) if a.startswith("ssm:")}
    assert ssm <= {"ssm:getParameters", "ssm:putParameter"}, "only the tuned settings"
    assert actions_on(statements, ":endpoint-config/*") == {"sagemaker:describeEndpointConfig"}
    assert actions_on(statements, ":model/*") == {"sagemaker:describeModel"}
    # the settings infra.ops tune --apply wrote: read only
    assert actions_on(statements, ":parameter/gru4rec/dev/tuned-hyperparameters") == {"ssm:getParameters"}
    # UpdateEndpoint names the rollback alarms: its caller reads them (deployment-guardrails-configuration)
    for alarm in ("gru4rec-dev-5xx", "gru4rec-dev-model-latency", "gru4rec-dev-model-errors"):
        assert actions_on(statements, f":alarm:{alarm}") == {"cloudwatch:DescribeAlarms"}


def test_training_role_reads_training_data_and_writes_models(synth):
    statements = policy_of(synth.template_dict("training"), "TrainingPolicy")
    assert actions_on(statements, "/training/*") == {"s3:GetObject"}
    assert actions_on(statements, "/models/*") == {"s3:PutObject", "s3:GetObject"}, "writes models, reads the live one"
    assert actions_on(statements, "/checkpoints/*") == {"s3:GetObject", "s3:PutObject"}
    # every channel is an S3Prefix SageMaker lists: the training data, and the live model under models/ (champion)
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["training/*", "models/*", "checkpoints/*"]}}
    repository = actions_on(statements, "import:Gru4Rec-Dev-Image")
    assert repository == {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"}
    assert actions_on(statements, "log-group:/aws/sagemaker/TrainingJobs:log-stream:gru4rec-dev-train-*") == {
        "logs:CreateLogStream", "logs:PutLogEvents"}
    # the operator CLI's one-off jobs run under the same role
    assert actions_on(statements, "log-group:/aws/sagemaker/TrainingJobs:log-stream:gru4rec-dev-oneoff-*") == {
        "logs:CreateLogStream", "logs:PutLogEvents"}
    group = [s for s in statements if any(marker(r).endswith("log-group:/aws/sagemaker/TrainingJobs:*")
                                          for r in as_list(s["Resource"]))]
    assert [set(as_list(s["Action"])) for s in group] == [{"logs:CreateLogGroup", "logs:DescribeLogStreams"}]


@pytest.mark.parametrize("policy_prefix", ["TrainingPolicy", "StateMachineRoleDefaultPolicy"])
def test_training_and_its_caller_may_let_sagemaker_grant_the_volume_key(synth, policy_prefix):
    """CreateGrant only for grants to AWS resources; DescribeKey in a statement of its own, unconditioned."""
    statements = policy_of(synth.template_dict("training"), policy_prefix)
    key_statements = [s for s in statements if {"kms:CreateGrant", "kms:DescribeKey"} & set(as_list(s["Action"]))]
    assert sorted((as_list(s["Action"]), s.get("Condition")) for s in key_statements) == [
        (["kms:CreateGrant"], {"Bool": {"kms:GrantIsForAWSResource": "true"}}), (["kms:DescribeKey"], None)]


def _choose(choice: dict, variables: dict, state_input: dict | None = None) -> str:
    """The state a JSONata Choice goes to."""
    for rule in choice["Choices"]:
        if evaluate(rule["Condition"], variables, {"input": state_input or {}}) is True:
            return rule["Next"]
    return choice["Default"]


def _image_tag(synth, target: str) -> str:
    image = synth.stacks["image"]
    uri = image.resolve(image.image_uri if target == "train" else image.serve_image_uri)
    return marker(uri).rsplit(":", 1)[1]


def _markers(value):
    """``value`` with every CloudFormation reference in marker form (two stacks' imports of one export compare
    equal)."""
    if isinstance(value, dict) and value and next(iter(value)).startswith(("Fn::", "Ref")):
        return marker(value)
    if isinstance(value, dict):
        return {key: _markers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_markers(item) for item in value]
    return value


def _asset_hash(synth, target: str) -> str:
    """The image asset's hash for a Dockerfile target, from the assembly's asset manifest."""
    manifest = json.loads((synth.outdir / f"{synth.stacks['image'].stack_name}.assets.json").read_text())[
        "dockerImages"
    ]
    (asset_hash,) = [key for key, entry in manifest.items() if entry["source"]["dockerBuildTarget"] == target]
    return asset_hash


def _training_image(synth) -> str:
    train = definition(synth.template_dict("training"))["States"]["Train"]
    return marker(train["Arguments"]["AlgorithmSpecification"]["TrainingImage"])


def test_a_cpu_training_type_runs_the_tensorflow_image(synth):
    assert not synth.config.training_on_gpu
    assert _training_image(synth).endswith(f":train-{_asset_hash(synth, 'train')}")


def test_a_gpu_training_type_runs_the_gpu_image(gpu_synth):
    assert gpu_synth.config.training_instance_type == GPU_TRAINING_TYPE and gpu_synth.config.training_on_gpu
    assert _training_image(gpu_synth).endswith(f":gpu-train-{_asset_hash(gpu_synth, 'train-gpu')}")
    assert gpu_synth.nag_error is None


BUCKET_MODELS = "s3://<bucket>/models/"


@pytest.mark.parametrize("recall, champion, verdict", [
    (0.30, None, "Refit on the whole window"),       # first deploy: the floor only
    (0.30, 0.304, "Refit on the whole window"),      # within gate_tolerance 0.005 of the live model
    (0.30, 0.306, "Below the live model"),
    (0.15, None, "Below threshold"),                  # the floor holds whatever the live model scores
    (0.15, 0.10, "Below threshold"),
])
def test_the_gate_with_and_without_a_champion(states, variables, synth, recall, champion, verdict):
    assert synth.config.gate_tolerance == 0.005
    assert _choose(states["Quality gate"], {**variables, "recall": recall, "championRecall": champion}) == verdict


def test_below_the_live_model_says_both_figures(states, variables):
    cause = evaluate(states["Below the live model"]["Output"]["Cause"],
                     {**variables, "recall": 0.25, "championRecall": 0.3})
    assert "validation:recall@20 = 0.25, the live model 0.3" in cause and "gate_tolerance 0.005" in cause
    assert states["Below the live model"]["Next"] == "Write rejected evaluation report"


@pytest.mark.parametrize("live, champion", [
    ("s3://<bucket>/models/gru4rec-dev-train-20261101-000000-0a1b2c3d/output/model.tar.gz",
     "s3://<bucket>/models/gru4rec-dev-train-20261101-000000-0a1b2c3d/output/model.tar.gz"),
    ("s3://cdk-hnb659fds-assets-123456789012-eu-west-1/abc.tar.gz", None),  # the first model: no champion
])
def test_the_live_model_is_the_champion_once_a_pipeline_trained_it(states, variables, live, champion):
    read = states["Read live model"]
    assert read["Resource"] == f"arn:{PARTITION}:states:::aws-sdk:sagemaker:describeModel"
    assert read["Arguments"] == {"ModelName": "{% $liveModel %}"}
    bucket_variables = {**variables, "bucket": "<bucket>"}
    described = {"ModelName": "live", "PrimaryContainer": {"Image": "image", "ModelDataUrl": live}}
    assert evaluate(read["Assign"]["champion"], bucket_variables, states={"result": described}) == champion
    channels = as_list(evaluate(states["Train"]["Arguments"]["InputDataConfig"], {**variables, "champion": champion}))
    names = [c["ChannelName"] for c in channels]
    assert names == (["train", "test", "champion"] if champion else ["train", "test"])
    if champion:
        assert channels[-1]["DataSource"]["S3DataSource"]["S3Uri"] == champion


def test_the_window_is_the_last_whole_days_before_the_start_in_fast_file_mode(states, variables):
    assert variables["window"] == {"window_start": "2026-11-01", "window_end": "2026-11-28"}  # 28 days, started 11-29
    train = variables["trainChannel"]
    assert train["InputMode"] == "FastFile" and train["DataSource"]["S3DataSource"]["S3Uri"].endswith(
        "/training/events/"
    )
    new_year = {"context": {"Execution": {**EXECUTION, "StartTime": "2027-01-01T00:00:00.000Z"}}}
    window = states["Name the job"]["Assign"]["window"]
    assert evaluate(window["window_end"], states=new_year) == "2026-12-31"
    assert evaluate(window["window_start"], states=new_year) == "2026-12-04"


def test_refit_trains_the_gated_settings_on_the_whole_window_and_ships(states, variables):
    refit = states["Refit on the whole window"]
    arguments = refit["Arguments"]
    gated = {**variables, "gatedJob": variables["jobName"]}
    assert evaluate(arguments["TrainingJobName"], gated) == variables["jobName"] + "-refit"
    hyperparameters = evaluate(
        arguments["HyperParameters"], {**gated, **_input_variables(states, {"hyperparameters": {"epochs": 4}})}
    )
    assert hyperparameters == {"preset": "rsc15", "epochs": "4", **variables["window"]}, "no validation split"
    channels = [c["ChannelName"] for c in as_list(evaluate(arguments["InputDataConfig"], gated))]
    assert channels == ["train", "test"]
    assert evaluate(refit["Assign"]["jobName"], gated) == variables["jobName"] + "-refit"
    assert refit["Next"] == "Write evaluation report" and refit["Catch"][0]["Next"] == "Notify failure"
    assert evaluate(arguments["CheckpointConfig"]["S3Uri"], gated).endswith(
        "/checkpoints/" + variables["jobName"] + "-refit"
    )
    longest = evaluate(
        job_name_expression(AppConfig(stage="s" * 16), "train"), states={"context": {"Execution": EXECUTION}}
    )
    assert len(longest + "-refit") <= 63


def test_the_record_says_which_model_was_gated_and_which_shipped(states, variables):
    done = states["Done"]["Output"]
    record = {**variables, "gatedJob": "j1", "jobName": "j1-refit", "modelData": "s3://b/models/j1-refit/output/model.tar.gz",
              "recall": 0.31, "championRecall": 0.3, "champion": "s3://b/models/j0/output/model.tar.gz"}
    assert {key: evaluate(value, record) for key, value in done["shipped"].items()} == {
        "job": "j1-refit", "modelData": "s3://b/models/j1-refit/output/model.tar.gz", "refit": True}
    assert {key: evaluate(value, record) for key, value in done["gated"].items()} == {
        "job": "j1", "validation:recall@20": 0.31, "champion": "s3://b/models/j0/output/model.tar.gz",
        "champion:validation:recall@20": 0.3}


def test_refit_only_where_validation_days_were_held_out():
    assert [refits(AppConfig(refit_after_gate=refit, valid_days=days)) for refit, days in
            ((True, 1), (True, 0), (False, 1), (False, 0))] == [True, False, False, False]


def test_without_refit_the_gated_model_ships(refit_off_new_data_on):
    assert refit_off_new_data_on.nag_error is None, refit_off_new_data_on.nag_error
    states = definition(refit_off_new_data_on.template_dict("training"))["States"]
    assert "Refit on the whole window" not in states
    assert states["Quality gate"]["Default"] == "Write evaluation report"
    assert states["Register model version"]["Next"] == "Create model"


def test_the_default_app_has_no_new_data_trigger(synth):
    assert not [m for m in resources(synth.template_dict("training"), "AWS::StepFunctions::StateMachine").values()
                if m["Properties"]["StateMachineName"].endswith("-training-trigger")]


def test_a_days_marker_starts_training_at_most_once_a_day(refit_off_new_data_on):
    template = refit_off_new_data_on.template_dict("training")
    rules = [r["Properties"] for r in resources(template, "AWS::Events::Rule").values()
             if r["Properties"]["EventPattern"].get("source") == ["aws.s3"]]
    (rule,) = rules
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    assert rule["EventPattern"]["detail"]["object"] == {"key": [{"wildcard": "training/events/dt=*/_SUCCESS"}]}
    trigger = definition(template, "training-trigger")
    assert marker(rule["Targets"][0]["Arn"]).startswith("<NewDataTrigger")
    start = trigger["States"]["Start training"]
    assert start["Resource"] == f"arn:{PARTITION}:states:::states:startExecution"
    event = {"time": "2026-12-01T23:59:59Z", "detail": {"object": {"key": "training/events/dt=2026-12-01/_SUCCESS"}}}
    later = {"time": "2026-12-01T00:00:01Z", "detail": {"object": {"key": "training/events/dt=2026-11-30/_SUCCESS"}}}
    assert evaluate(start["Arguments"]["Name"], states={"input": event}) == "new-data-2026-12-01"
    assert evaluate(start["Arguments"]["Name"], states={"input": later}) == "new-data-2026-12-01", "one name per day"
    assert start["Catch"] == [{"ErrorEquals": ["StepFunctions.ExecutionAlreadyExistsException"],
                               "Next": "Already started today"}]
    assert trigger["States"]["Already started today"]["Type"] == "Succeed"


def test_the_window_length_is_an_output_for_one_off_jobs(synth):
    outputs = synth.template_dict("training")["Outputs"]
    assert outputs["TrainWindowDays"]["Value"] == str(synth.config.train_window_days) == "28"


@pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
def test_a_stage_that_retrains_on_new_data_passes_cdk_nag_and_cfn_lint_and_deploys(refit_off_new_data_on):
    """The trigger's rule and state machine (and the pipeline without the refit state) deploy like the rest."""
    assert refit_off_new_data_on.nag_error is None, refit_off_new_data_on.nag_error
    findings = [f"{name}: {match}" for name, template in refit_off_new_data_on.templates.items()
                for match in lint(json.dumps(template), config=ManualArgs(regions=LINT_REGIONS))]
    assert findings == []
    with rehearse(refit_off_new_data_on) as record:
        statuses = {name: status for name, (status, _events) in record["stacks"].items()}
        machines = record["session"].client("stepfunctions").list_state_machines()["stateMachines"]
    assert set(statuses.values()) == {"CREATE_COMPLETE"}, statuses
    assert [m["name"] for m in machines if m["name"].endswith("-training-trigger")] == ["gru4rec-dev-training-trigger"]
