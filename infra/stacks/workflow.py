"""Step Functions building blocks shared by the training and batch pipelines.

Both state machines are written in JSONata: a first state names the SageMaker job and keeps it in
the variable ``$jobName``; every failure (a task's error, a failed quality gate, bad input) reaches
the same two states, a notification on the pipeline's SNS topic and a Fail state that repeats
the error (``States.X`` as ``GRU4Rec.X``) and its cause. Failures arrive there as ``{"Error": ..., "Cause": ...}``: the
error output of a Catch, or the output of a Pass state that describes a failed check.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.config import AppConfig
from infra.instance_storage import uses_volume_key
from infra.nag import wildcard_resource_finding

# UTC time of the execution's start, 15 characters: 20261129-021710
JOB_TIMESTAMP_PICTURE = "[Y0001][M01][D01]-[H01][m01][s01]"
JOB_HASH_LENGTH = 8
# The Fail state repeats the error it was given, but a name in the States Language's reserved prefix
# ("States.", which a Catch hands on, e.g. States.TaskFailed) becomes GRU4Rec.<rest>: the States
# Language lets a state machine report other names only ("Errors", https://states-language.net/spec.html)
RESERVED_ERROR_PREFIX = "States."
FAIL_ERROR = (f"$substring($states.input.Error, 0, {len(RESERVED_ERROR_PREFIX)}) = '{RESERVED_ERROR_PREFIX}' ? "
              f"'GRU4Rec.' & $substring($states.input.Error, {len(RESERVED_ERROR_PREFIX)}) : $states.input.Error")
SAGEMAKER_NAME_LIMIT = 63

# SageMaker reports an exhausted account quota (instances of a type, concurrent jobs) under this name
RESOURCE_LIMIT_ERRORS = ["SageMaker.ResourceLimitExceededException"]
# ... and throttling or other service-side refusals of the call under this one
SERVICE_ERRORS = ["SageMaker.AmazonSageMakerException", "ThrottlingException"]

# how an execution can end without passing through its failure states
ABNORMAL_END_STATUSES = ["TIMED_OUT", "ABORTED"]

STATE_MACHINE_SERVICE_WILDCARDS = (
    "Step Functions delivers logs and X-Ray traces through the CloudWatch Logs log-delivery and X-Ray APIs, "
    "which take only Resource '*' (the statements the CDK writes for logging level ALL and tracing)"
)


def job_name_expression(config: AppConfig, kind: str) -> str:
    """JSONata for a unique SageMaker name: ``gru4rec-<stage>-<kind>-<UTC start time>-<8 hex>``.

    The hex digits are the start of the SHA-256 of the execution's ARN, so executions started in
    the same second get different names, and the name is the same wherever the execution uses it.
    At most 8 + 16 (stage) + 1 + len(kind) + 1 + 15 + 1 + 8 characters: 55 for a 5-letter kind.
    """
    prefix = job_name_prefix(config, kind)
    return ("{% '" + prefix + "' & $fromMillis($toMillis($states.context.Execution.StartTime), '"
            + JOB_TIMESTAMP_PICTURE + "') & '-' & $substring($hash($states.context.Execution.Id, 'SHA-256'), 0, "
            + str(JOB_HASH_LENGTH) + ") %}")


def job_name_prefix(config: AppConfig, kind: str) -> str:
    """The fixed start of the job names of one pipeline (``gru4rec-dev-train-``): IAM scopes its grants to it."""
    prefix = f"{config.resource_prefix}-{kind}-"
    longest = len(prefix) + len("YYYYMMDD-HHMMSS") + 1 + JOB_HASH_LENGTH
    if longest > SAGEMAKER_NAME_LIMIT:
        raise ValueError(
            f"job names {prefix}... would be {longest} characters; SageMaker allows {SAGEMAKER_NAME_LIMIT}"
        )
    return prefix


def sagemaker_arn(scope: Construct, resource_type: str, name: str) -> str:
    """ARN of a SageMaker resource (``training-job``, ``model``, ...) of this account and region; names may end in
    '*'."""
    return cdk.Stack.of(scope).format_arn(service="sagemaker", resource=resource_type, resource_name=name)


def resource_tags(config: AppConfig, **extra: str) -> list[dict[str, str]]:
    """Tags of the resources the pipelines create at run time (the app's stack tags do not reach them)."""
    tags = {"project": "gru4rec", "stage": config.stage, **extra}
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def sync_job_task(scope: Construct, construct_id: str, api: str, arguments: dict, comment: str,
                  assign: dict | None = None) -> sfn.CustomState:
    """A SageMaker ``<api>.sync`` task (run a job, wait for it to end), written as Amazon States Language.

    The CDK's SageMaker job tasks cannot express what the pipelines need (managed Spot training,
    checkpoints, hyperparameters computed at run time; a transform job without an extra IAM role):
    the state is written out here, and the caller grants what it uses (``sync_job_statements``).
    """
    state = {
        "Type": "Task",
        "Comment": comment,
        "Resource": f"arn:{cdk.Aws.PARTITION}:states:::sagemaker:{api}.sync",
        "Arguments": arguments,
    }
    if assign:
        state["Assign"] = assign
    return sfn.CustomState(scope, construct_id, state_json=state)


def sync_job_statements(
    scope: Construct, job_type: str, name_prefix: str, events_rule: str
) -> list[iam.PolicyStatement]:
    """What Step Functions needs to run and watch ``<job_type>`` jobs named ``<name_prefix>...`` (``.sync``).

    Tags are set when the job is created, which SageMaker authorizes as AddTags. Step Functions
    learns that a job ended through its managed EventBridge rule ``events_rule``.
    """
    jobs = sagemaker_arn(scope, job_type, f"{name_prefix}*")
    rule = cdk.Stack.of(scope).format_arn(service="events", resource="rule", resource_name=events_rule)
    verb = job_type.split("-")[0].capitalize()  # training-job -> Training
    return [
        iam.PolicyStatement(sid=f"Run{verb}Jobs", resources=[jobs], actions=[
            f"sagemaker:Create{verb}Job", f"sagemaker:Describe{verb}Job", f"sagemaker:Stop{verb}Job",
            "sagemaker:AddTags", "sagemaker:ListTags",
        ]),
        iam.PolicyStatement(sid=f"Watch{verb}Jobs", resources=[rule],
                            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"]),
    ]


def add_capacity_retries(task: sfn.CustomState) -> None:
    """Retry a job's creation while SageMaker is out of quota (minutes apart), and briefly on service errors."""
    task.add_retry(errors=RESOURCE_LIMIT_ERRORS, interval=cdk.Duration.minutes(1), backoff_rate=1.5,
                   max_delay=cdk.Duration.minutes(10), max_attempts=12, jitter_strategy=sfn.JitterType.FULL)
    task.add_retry(errors=SERVICE_ERRORS, interval=cdk.Duration.seconds(10), backoff_rate=2, max_attempts=3,
                   jitter_strategy=sfn.JitterType.FULL)


def volume_key_statements(key: kms.IKey) -> list[iam.PolicyStatement]:
    """What a role needs when SageMaker encrypts an instance's storage volume with ``key`` on its behalf.

    SageMaker creates a KMS grant for the instance (``kms:CreateGrant``, allowed only for grants to
    AWS resources) and reads the key's metadata (``kms:DescribeKey``). DescribeKey is a statement of
    its own: ``kms:GrantIsForAWSResource`` exists only in grant requests, so under that condition
    DescribeKey would never be allowed. "If using an AWS KMS key for the ML storage volume in the
    resource configuration of your job, the IAM policy must allow kms:CreateGrant":
    https://repost.aws/knowledge-center/sagemaker-s3-accessdenied-training, and CreateEndpoint /
    UpdateEndpoint with a KmsKeyId need kms:CreateGrant:
    https://docs.aws.amazon.com/sagemaker/latest/dg/api-permissions-reference.html
    """
    return [
        iam.PolicyStatement(sid="GrantKeyToSageMakerVolumes", actions=["kms:CreateGrant"], resources=[key.key_arn],
                            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}),
        iam.PolicyStatement(sid="DescribeVolumeKey", actions=["kms:DescribeKey"], resources=[key.key_arn]),
    ]


def volume_key(key: kms.IKey, instance_type: str) -> str | None:
    """The key ARN for an instance's storage volume, or None for a type with local NVMe storage
    (SageMaker rejects a volume key there: ``infra.instance_storage``)."""
    return key.key_arn if uses_volume_key(instance_type) else None


def failure_topic(scope: Construct, config: AppConfig, key: kms.IKey, pipeline: str) -> sns.Topic:
    """The pipeline's failure notifications: SSL only, encrypted with the stage's key, mailed to
    ``notification_email`` when one is set."""
    topic = sns.Topic(scope, "FailureTopic", display_name=f"GRU4Rec {config.stage} {pipeline} pipeline failures",
                      topic_name=config.topic_name(f"{pipeline}-failures"), master_key=key, enforce_ssl=True)
    if config.notification_email:
        topic.add_subscription(subscriptions.EmailSubscription(config.notification_email))
    alarms_may_publish(topic)
    return topic


def alarms_may_publish(topic: sns.Topic) -> None:
    """CloudWatch alarms of this account may publish to ``topic``.

    A topic policy replaces SNS's default policy (which lets the owner account's principals publish), so the
    TLS-only policy the CDK writes leaves no one allowed: CloudWatch's notifications fail with "is not
    authorized to perform: SNS:Publish ... because no resource-based policy allows". The service principal is
    tied to this account's alarms by ``aws:SourceArn`` and ``aws:SourceAccount`` (Amazon SNS, "Allow CloudWatch
    alarms ... to publish to a topic": https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html).
    """
    stack = cdk.Stack.of(topic)
    alarms = stack.format_arn(service="cloudwatch", resource="alarm", resource_name="*",
                              arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
    topic.add_to_resource_policy(iam.PolicyStatement(
        sid="AlarmsPublish", principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions=["sns:Publish"], resources=[topic.topic_arn],
        conditions={"ArnLike": {"aws:SourceArn": alarms}, "StringEquals": {"aws:SourceAccount": stack.account}},
    ))


def notify_and_fail(scope: Construct, config: AppConfig, topic: sns.ITopic, pipeline: str,
                    details: dict[str, str]) -> sfn.TaskStateBase:
    """Publish the failure to ``topic``, then fail the execution with the same error and cause.

    ``details`` are JSONata expressions added to the message (the job name, the input file, ...).
    Returns the first of the two states: the target of every Catch and failed check.
    """
    fields = ", ".join([
        "'pipeline': $states.context.StateMachine.Name",
        "'execution': $states.context.Execution.Id",
        *(f"'{name}': {expression}" for name, expression in details.items()),
        "'error': $states.input.Error",
        "'cause': $states.input.Cause",
    ])
    notify = tasks.SnsPublish.jsonata(
        scope, "Notify failure", topic=topic, subject=f"GRU4Rec {config.stage} {pipeline} pipeline failed",
        message=sfn.TaskInput.from_text("{% $string({" + fields + "}, true) %}"),
        outputs="{% $states.input %}",
    )
    fail = sfn.Fail.jsonata(
        scope, "Failed", error="{% " + FAIL_ERROR + " %}",
        cause="{% $exists($states.input.Cause) ? $states.input.Cause : 'no cause was reported' %}",
    )
    notify.next(fail)
    return notify


def failure(scope: Construct, construct_id: str, error: str, cause_expression: str) -> sfn.Pass:
    """A Pass state that describes a failed check as ``{"Error": error, "Cause": <JSONata>}``."""
    return sfn.Pass.jsonata(scope, construct_id, outputs={"Error": error, "Cause": "{% " + cause_expression + " %}"})


def object_key_check(scope: Construct, choice_id: str, failure_id: str, error: str, expected: str, pattern: str,
                     then: sfn.IChainable, on_failure: sfn.IChainable) -> sfn.Choice:
    """Go on to ``then`` only where the execution's ``$key`` matches the JSONata regex ``pattern``; any other
    key (or none) fails with ``error``, saying what was ``expected`` and what came."""
    not_matching = failure(
        scope, failure_id, error,
        f"'expected an S3 Object Created event for {expected}, got ' & "
        "($key = '' ? 'no object key' : 'the key ' & $key)",
    )
    return (sfn.Choice.jsonata(scope, choice_id)
            .when(sfn.Condition.jsonata(f"{{% $contains($key, {pattern}) %}}"), then)
            .otherwise(not_matching.next(on_failure)))


def publish_statement(key: kms.IKey) -> iam.PolicyStatement:
    """Publishing to a topic encrypted with ``key`` needs a data key from it."""
    return iam.PolicyStatement(sid="PublishToEncryptedTopic", actions=["kms:GenerateDataKey", "kms:Decrypt"],
                               resources=[key.key_arn])


def pipeline_state_machine(scope: Construct, config: AppConfig, key: kms.IKey, pipeline: str,
                           definition: sfn.IChainable, timeout: cdk.Duration) -> sfn.StateMachine:
    """A STANDARD JSONata state machine ``gru4rec-<stage>-<pipeline>`` with X-Ray tracing and every
    event (with execution data) logged to a log group encrypted with the stage's key."""
    name = f"{config.resource_prefix}-{pipeline}"
    log_group = logs.LogGroup(scope, "ExecutionLogs", log_group_name=f"/aws/vendedlogs/states/{name}",
                              encryption_key=key, removal_policy=cdk.RemovalPolicy.DESTROY)
    # RetentionDays has no member lookup by day count; the config has validated the number
    log_group.node.default_child.add_property_override("RetentionInDays", config.log_retention_days)
    machine = sfn.StateMachine(
        scope, "StateMachine", state_machine_name=name, state_machine_type=sfn.StateMachineType.STANDARD,
        query_language=sfn.QueryLanguage.JSONATA, definition_body=sfn.DefinitionBody.from_chainable(definition),
        timeout=timeout, tracing_enabled=True,
        logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
    )
    machine.add_to_role_policy(publish_statement(key))
    return machine


def notify_abnormal_ends(scope: Construct, machine: sfn.StateMachine, topic: sns.ITopic, key: kms.IKey) -> events.Rule:
    """Executions that time out or are stopped never reach a Catch: EventBridge reports those to ``topic``.

    EventBridge publishes with a role of its own, so the topic's key needs no grant to the
    events.amazonaws.com service principal (which a KMS key policy cannot tie to this account: "Adding
    the aws:SourceAccount and aws:SourceArn to a AWS KMS policy is not supported for EventBridge-to-encrypted
    topics", https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html). "The role needs
    sns:Publish on the topic. If the topic is encrypted with a customer managed key, the role also needs
    kms:GenerateDataKey and kms:Decrypt on that key":
    https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-custom-bus-target-sns.html
    """
    rule = events.Rule(scope, "AbnormalEnds", description="Pipeline executions that timed out or were stopped",
                       event_pattern=events.EventPattern(
                           source=["aws.states"], detail_type=["Step Functions Execution Status Change"],
                           detail={"status": ABNORMAL_END_STATUSES, "stateMachineArn": [machine.state_machine_arn]},
                       ))
    role = iam.Role(scope, "AbnormalEndsPublisher", assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
                    description="EventBridge publishes abnormal pipeline ends to the failure topic")
    iam.Policy(scope, "AbnormalEndsPublisherPolicy", roles=[role], statements=[
        iam.PolicyStatement(sid="PublishFailures", actions=["sns:Publish"], resources=[topic.topic_arn]),
        publish_statement(key),
    ])
    # immutable: the target would otherwise add its own kms:GenerateDataKey* grant
    rule.add_target(targets.SnsTopic(topic, role=role.without_policy_updates(), authorize_using_role=True))
    return rule


def acknowledge_wildcards(policy: Construct, findings: dict[str, str]) -> None:
    """Acknowledge cdk-nag's AwsSolutions-IAM5 findings on ``policy``: ARN pattern (or '*') -> reason."""
    cdk.Validations.of(policy).acknowledge(
        *(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]" if pattern == "*" else wildcard_resource_finding(policy, pattern),
                reason=reason,
            )
            for pattern, reason in findings.items()
        )
    )

