"""The training pipeline's states that keep the Model Registry: register each trained model, roll out an approved
version, and the rule that turns an approval into a rollout.

- ``record_version``: the evaluation report written beside the archive, then CreateModelPackage with the gate's
  verdict (``infra.registry``).
- ``rollout_entry``: the pipeline started with ``{"modelPackage": ARN}`` skips training: it reads the version
  (DescribeModelPackage) and goes on to the guarded rollout of its own image and archive, unless the version is not
  Approved (it fails) or its own training run (or the first deploy) rolled it out already (metadata
  ``rolled-out-by``; ``"rollback": true`` deploys it anyway).
- ``rollout_on_approval``: the registry's "SageMaker Model Package State Change" event of an Approved version of the
  stage's group starts the pipeline under the name ``version-<n>``. Step Functions refuses a name used in the last
  90 days, so SageMaker's repeated events of one change, and the event of the pipeline's own Approved registration,
  never roll a version out twice. The event carries the version's group, number, ARN and approval status
  (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html#eventbridge-model-package).
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.config import AppConfig
from infra.layout import MODELS_PREFIX
from infra.registry import (
    APPROVED,
    EVALUATION_CONTENT_TYPE,
    EVALUATION_REPORT,
    METRICS_GROUP,
    ROLLED_OUT_BY,
    inference_specification,
    metadata_value,
)
from infra.stacks.workflow import (
    STATE_MACHINE_SERVICE_WILDCARDS,
    acknowledge_wildcards,
    failure,
    pipeline_state_machine,
    resource_tags,
    sagemaker_arn,
)

# metadata of a version promoted from another stage (``infra.ops.promotion``): the name its model gets here
MODEL_NAME = "model-name"
# the optimized StartExecution integration's error when the name was used in the last 90 days
EXECUTION_EXISTS = "StepFunctions.ExecutionAlreadyExistsException"
APPROVAL_EVENT = "SageMaker Model Package State Change"
# hyperparameters recorded as metadata entries: the API takes 50 in all
MAX_SETTING_ENTRIES = 40


def versions_arn(scope: Construct, config: AppConfig) -> str:
    """The ARNs of the stage group's versions, ``model-package/<group>/<n>``."""
    return sagemaker_arn(scope, "model-package", f"{config.model_package_group_name}/*")


def record_version(
    scope: Construct,
    config: AppConfig,
    models_arn: str,
    images: dict[str, str],
    on_failure: sfn.IChainable,
    label: str,
    status: str,
    verdict: str,
    gate: dict,
) -> sfn.Chain:
    """Write the model's evaluation report beside it, then register it in the stage's group with ``status`` and
    ``verdict`` (JSONata) as its description. ``models_arn``: the bucket's ``models/*`` objects; ``images``: the
    ``training`` and ``serve`` image URIs; ``gate``: the
    gate's settings, written into the report. Both states pass their input on, so a rejection's Error and Cause
    reach the failure notification; a failed write or registration goes there too."""
    report_key = f"'{MODELS_PREFIX}' & $jobName & '/{EVALUATION_REPORT}'"
    write = tasks.CallAwsService.jsonata(
        scope,
        f"Write {label}evaluation report",
        service="s3",
        action="putObject",
        iam_resources=[models_arn],
        parameters={
            "Bucket": "{% $bucket %}",
            "Key": "{% " + report_key + " %}",
            "Body": "{% $string(" + _evaluation_report({**gate, "approval": status}) + ") %}",
            "ContentType": EVALUATION_CONTENT_TYPE,
        },
        outputs="{% $states.input %}",
    )
    group = config.model_package_group_name
    rolled_out_here = status == APPROVED and config.approval_mode == "auto"
    register = tasks.CallAwsService.jsonata(
        scope,
        f"Register {label}model version",
        service="sagemaker",
        action="createModelPackage",
        iam_resources=[sagemaker_arn(scope, "model-package-group", group), versions_arn(scope, config)],
        parameters={
            "ModelPackageGroupName": group,
            "ModelPackageDescription": "{% $substring(" + verdict + ", 0, 1024) %}",
            "ModelApprovalStatus": status,
            "InferenceSpecification": inference_specification(config, images["serve"], "{% $modelData %}"),
            "ModelMetrics": {
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": EVALUATION_CONTENT_TYPE,
                        "S3Uri": "{% 's3://' & $bucket & '/' & " + report_key + " %}",
                    }
                }
            },
            "CustomerMetadataProperties": "{% " + _version_metadata(images, rolled_out_here) + " %}",
            "MetadataProperties": {"GeneratedBy": "{% $states.context.Execution.Id %}"},
            "Tags": resource_tags(config, pipeline="training", **{"training-job": "{% $jobName %}"}),
        },
        assign={"modelPackage": "{% $states.result.ModelPackageArn %}"},
        outputs="{% $states.input %}",
    )
    write.add_catch(on_failure)
    register.add_catch(on_failure)
    return write.next(register)


def rollout_entry(
    scope: Construct,
    config: AppConfig,
    on_failure: sfn.IChainable,
    rollout: sfn.IChainable,
    train: sfn.IChainable,
    fresh_name: str,
) -> sfn.Choice:
    """The pipeline's first state: ``{"modelPackage": ARN}`` rolls that version out, anything else trains.
    ``fresh_name``: JSONata (no braces) for a new model name, what a rollback (``"rollback": true``) names its model
    and endpoint config."""
    metadata = "$states.result.CustomerMetadataProperties"
    read = tasks.CallAwsService.jsonata(
        scope,
        "Read model version",
        service="sagemaker",
        action="describeModelPackage",
        iam_resources=[versions_arn(scope, config)],
        parameters={"ModelPackageName": "{% $states.input.modelPackage %}"},
        assign={
            # a promoted version's model is named under this pipeline's names (``model-name``), not its source's job
            # a rollback puts an earlier version live again under a name of its own (its first model and endpoint
            # config exist, or were cleaned up)
            "jobName": "{% $states.input.rollback = true ? " + fresh_name + " : "
            + _value_or_null(f"({metadata}.'{MODEL_NAME}' ? {metadata}.'{MODEL_NAME}' : {metadata}.'training-job')")
            + " %}",
            "image": "{% $states.result.InferenceSpecification.Containers[0].Image %}",
            "gatedJob": _or_null(metadata + ".'gated-job'"),
            "modelData": "{% $states.result.InferenceSpecification.Containers[0].ModelDataUrl %}",
            "modelPackage": "{% $states.result.ModelPackageArn %}",
            "window": {
                "window_start": _or_null(metadata + ".'window-start'"),
                "window_end": _or_null(metadata + ".'window-end'"),
            },
            "recall": "{% null %}",
            "champion": "{% null %}",
            "championRecall": "{% null %}",
            "polls": 0,
            "busyPolls": 0,
            "rollback": "{% $states.input.rollback = true %}",
        },
    )
    read.add_catch(on_failure)
    not_approved = failure(
        scope,
        "Version not approved",
        "Rollout.NotApproved",
        "'model version ' & $states.input.ModelPackageArn & ' is ' & $states.input.ModelApprovalStatus & "
        "': only an Approved version is rolled out (python -m infra.ops approve VERSION)'",
    )
    already = sfn.Succeed.jsonata(
        scope,
        "Rolled out when registered",
        outputs={
            "modelPackage": "{% $modelPackage %}",
            "rolledOutBy": "{% $states.input.CustomerMetadataProperties.'" + ROLLED_OUT_BY + "' %}",
        },
    )
    check = (
        sfn.Choice.jsonata(scope, "Version to roll out?")
        .when(
            sfn.Condition.jsonata(f"{{% $states.input.ModelApprovalStatus != '{APPROVED}' %}}"),
            not_approved.next(on_failure),
        )
        .when(
            sfn.Condition.jsonata(
                "{% $exists($states.input.CustomerMetadataProperties.'" + ROLLED_OUT_BY + "') and $not($rollback) %}"
            ),
            already,
        )
        .otherwise(rollout)
    )
    return (
        sfn.Choice.jsonata(scope, "Roll out a version?")
        .when(sfn.Condition.jsonata("{% $exists($states.input.modelPackage) %}"), read.next(check))
        .otherwise(train)
    )


def rollout_on_approval(
    scope: Construct, config: AppConfig, key: kms.IKey, pipeline: sfn.IStateMachine
) -> sfn.StateMachine:
    """The rule on the stage group's Approved versions and the one-state machine it starts, which starts
    ``pipeline`` with ``{"modelPackage": ARN, "trigger": "approval"}`` as ``version-<n>``."""
    construct = Construct(scope, "ApprovalTrigger")
    start = tasks.StepFunctionsStartExecution.jsonata(
        construct,
        "Start rollout",
        state_machine=pipeline,
        name="{% 'version-' & $string($states.input.detail.ModelPackageVersion) %}",
        input=sfn.TaskInput.from_object(
            {"modelPackage": "{% $states.input.detail.ModelPackageArn %}", "trigger": "approval"}
        ),
    )
    start.add_catch(sfn.Succeed.jsonata(construct, "Already rolled out"), errors=[EXECUTION_EXISTS])
    machine = pipeline_state_machine(construct, config, key, "rollout-trigger", start, cdk.Duration.minutes(5))
    acknowledge_wildcards(machine.role, {"*": STATE_MACHINE_SERVICE_WILDCARDS + "."})
    rule = events.Rule(
        construct,
        "VersionApproved",
        description=f"Approved versions of the model package group {config.model_package_group_name}",
        event_pattern=events.EventPattern(
            source=["aws.sagemaker"],
            detail_type=[APPROVAL_EVENT],
            detail={"ModelPackageGroupName": [config.model_package_group_name], "ModelApprovalStatus": [APPROVED]},
        ),
    )
    rule.add_target(targets.SfnStateMachine(machine, retry_attempts=8, max_event_age=cdk.Duration.hours(6)))
    return machine


def _or_null(expression: str) -> str:
    """JSONata: ``expression``, or null where it finds nothing (a version registered at the first deploy names no
    training job)."""
    return "{% " + _value_or_null(expression) + " %}"


def _value_or_null(expression: str) -> str:
    return "($value := " + expression + "; $exists($value) ? $value : null)"


def passed_verdict(metric: str, threshold: float) -> str:
    """JSONata: the description of a version that passed the gate, with the figures it passed on."""
    return (
        f"'passed the quality gate: {metric} = ' & $string($recall) & ', floor {float(threshold)!r}' & "
        "($championRecall != null ? ', live model ' & $string($championRecall) & ' on the same sessions' : "
        "', no live model to compare with')"
    )


def _evaluation_report(gate: dict) -> str:
    """JSONata: the version's evaluation report, every final metric of the gated job (validation, the live model's on
    the same days, test when given) as ``{name: {"value": v}}``, and the gate that judged it."""
    metrics = "$merge($append([{}], $each($metrics, function($value, $name) {{$name: {'value': $value}}})))"
    return (
        "{'"
        + METRICS_GROUP
        + "': "
        + metrics
        + ", 'quality_gate': $merge(["
        + json.dumps(gate)
        + ", {'champion': $champion, 'gated_job': $gatedJob}])}"
    )


def _version_metadata(images: dict[str, str], rolled_out_here: bool) -> str:
    """JSONata: a version's CustomerMetadataProperties: the training job (also the ``model_version`` every answer
    names), the gated job it was refit from, the data window, preset or tuned settings, the images (the code
    version), each hyperparameter as ``hp:<name>``, and ``rolled-out-by`` where this run rolls it out itself."""
    settings = (
        "$sift($merge([$defaultHyperparameters, $tuned, $hyperparameters]), function($v, $k) {$k != 'tuning_job'})"
    )
    fixed = {
        "training-job": "$jobName",
        "model-version": "$jobName",
        "gated-job": "$gatedJob",
        "window-start": "$window.window_start",
        "window-end": "$window.window_end",
        "settings": "($exists($tuned.tuning_job) ? 'tuned' : 'preset')",
        "tuning-job": "$tuned.tuning_job",
        "training-image": json.dumps(images["training"]),
        "serve-image": json.dumps(images["serve"]),
    }
    if rolled_out_here:
        fixed[ROLLED_OUT_BY] = "$states.context.Execution.Name"
    entries = ", ".join(f"'{key}': {metadata_value(value)}" for key, value in fixed.items())
    per_setting = "$each(" + settings + ", function($v, $k) {{'hp:' & $k: " + metadata_value("$v") + "}})"
    return f"$merge($append([{{{entries}}}], $append([], {per_setting})[[0..{MAX_SETTING_ENTRIES - 1}]]))"
