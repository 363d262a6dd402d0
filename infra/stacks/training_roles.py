"""The training pipeline's permissions: the execution role of its training jobs, and what its state machine does
beyond its CallAwsService tasks (which grant their own calls), each wildcard acknowledged with its reason."""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import AppConfig
from infra.instance_storage import uses_volume_key
from infra.layout import CHECKPOINTS_PREFIX, MODELS_PREFIX, one_off_job_prefix, tuning_job_prefix
from infra.log_groups import log_group_arn, log_streams_arn
from infra.rollout import read_rollback_alarms_statement
from infra.stacks.endpoint import EndpointStack, uses_endpoint_volume_key
from infra.stacks.image import ImageStack, pull_image_statements
from infra.stacks.live_model import WILDCARD_REASON, live_model_arns
from infra.stacks.model_versions import versions_arn
from infra.stacks.storage import StorageStack
from infra.stacks.workflow import (
    STATE_MACHINE_SERVICE_WILDCARDS,
    acknowledge_wildcards,
    sagemaker_arn,
    sync_job_statements,
    volume_key_statements,
)

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TRAINING_METRICS_NAMESPACE = "/aws/sagemaker/TrainingJobs"


def training_role(scope: Construct, config: AppConfig, storage: StorageStack, image: ImageStack,
                  job_name_prefix: str) -> iam.Role:
    """The training jobs' execution role: read training data, write models (and checkpoints with Spot)."""
    role = iam.Role(scope, "TrainingRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                    description=f"Execution role of the GRU4Rec {config.stage} training jobs")
    training_data, models = storage.objects_arn("training/"), storage.objects_arn(MODELS_PREFIX)
    checkpoints = storage.objects_arn(CHECKPOINTS_PREFIX)
    log_group = log_group_arn(scope, TRAINING_LOG_GROUP)
    # SageMaker names a job's log streams <job name>/algo-<n>-<time>: the pipeline's and the operator CLI's one-off jobs
    log_streams = log_streams_arn(scope, TRAINING_LOG_GROUP, f"{job_name_prefix}*")
    one_off_streams = log_streams_arn(scope, TRAINING_LOG_GROUP, f"{one_off_job_prefix(config.stage)}-*")
    tuning_streams = log_streams_arn(scope, TRAINING_LOG_GROUP, f"{tuning_job_prefix(config.stage)}*")
    # every channel is an S3Prefix, which SageMaker lists: the training data, and the live model's archive
    # under models/ (the champion channel, once a pipeline's model is live)
    listed_prefixes = ["training/*", f"{MODELS_PREFIX}*"] + ([f"{CHECKPOINTS_PREFIX}*"] if config.use_spot else [])
    statements = [
        iam.PolicyStatement(sid="ListTrainingData", actions=["s3:ListBucket"], resources=[storage.bucket.bucket_arn],
                            conditions={"StringLike": {"s3:prefix": listed_prefixes}}),
        iam.PolicyStatement(sid="ReadTrainingData", actions=["s3:GetObject"], resources=[training_data]),
        iam.PolicyStatement(sid="WriteModels", actions=["s3:PutObject"], resources=[models]),
        # the live model, scored beside the new one (the champion channel)
        iam.PolicyStatement(sid="ReadLiveModels", actions=["s3:GetObject"], resources=[models]),
        iam.PolicyStatement(sid="UseStageKey", actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                            resources=[storage.key.key_arn]),
        *pull_image_statements(image),
        # SageMaker creates the account's shared training log group on the first job of a region
        iam.PolicyStatement(sid="CreateTrainingLogGroup", actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                            resources=[log_group]),
        iam.PolicyStatement(sid="WriteTrainingLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[log_streams, one_off_streams, tuning_streams]),
        iam.PolicyStatement(sid="PublishTrainingMetrics", actions=["cloudwatch:PutMetricData"], resources=["*"],
                            conditions={"StringEquals": {"cloudwatch:namespace": TRAINING_METRICS_NAMESPACE}}),
    ]
    if uses_volume_key(config.training_instance_type):
        statements += volume_key_statements(storage.key)
    if config.use_spot:
        statements.append(iam.PolicyStatement(sid="SyncCheckpoints", actions=["s3:GetObject", "s3:PutObject"],
                                              resources=[checkpoints]))
    policy = iam.Policy(scope, "TrainingPolicy", roles=[role], statements=statements)
    findings = {
        "*": "Only ecr:GetAuthorizationToken (registry-wide tokens) and cloudwatch:PutMetricData (no resource-level "
             f"permissions; limited to the namespace {TRAINING_METRICS_NAMESPACE} by a condition) use '*'.",
        training_data: "Training jobs read every file of the training channels under training/ (train/ and test/).",
        models: "SageMaker writes each job's model.tar.gz under models/<job name>/, and reads the live one "
                "from there as the champion channel: this prefix only.",
        log_group: "log-group:<name>:* is how IAM names the one log group SageMaker writes training logs to "
                   "(CreateLogGroup on a region's first job, DescribeLogStreams).",
        log_streams: "SageMaker names each training job's log streams <job name>/algo-<n>-<time>; "
                     "the grant covers this pipeline's job names only.",
        one_off_streams: "The operator CLI's one-off training jobs (same role) are named <stage prefix>-oneoff-<time>; "
                         "their log streams only.",
        tuning_streams: "The training jobs of the operator CLI's tuning jobs (same role) are named "
                        "tune-<stage>-<time>-<NNN>-<hash>; their log streams only.",
    }
    if config.use_spot:
        findings[checkpoints] = (
            "Managed Spot syncs /opt/ml/checkpoints with checkpoints/<job name>/ to resume an interrupted job."
        )
    acknowledge_wildcards(policy, findings)
    return role


def grant_pipeline(scope: Construct, config: AppConfig, storage: StorageStack, endpoint: EndpointStack,
                   state_machine: sfn.StateMachine, training_role: iam.IRole, job_name_prefix: str) -> None:
    """What the state machine does beyond its CallAwsService tasks (which grant their own calls)."""
    names = f"{job_name_prefix}*"
    models, configs = sagemaker_arn(scope, "model", names), sagemaker_arn(scope, "endpoint-config", names)
    versions = versions_arn(scope, config)
    statements = [
        *sync_job_statements(
            scope, "training-job", job_name_prefix, "StepFunctionsGetEventsForSageMakerTrainingJobsRule"
        ),
        iam.PolicyStatement(
            sid="PassRolesToSageMaker",
            actions=["iam:PassRole"],
            resources=[training_role.role_arn, endpoint.model_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
        # tags given at creation are authorized as AddTags
        iam.PolicyStatement(
            sid="TagModelsAndEndpointConfigs", actions=["sagemaker:AddTags"], resources=[models, configs]
        ),
        read_rollback_alarms_statement(scope, config),
        iam.PolicyStatement(sid="TagModelVersions", actions=["sagemaker:AddTags"], resources=[versions]),
        # the bucket encrypts the evaluation reports with the stage's key
        iam.PolicyStatement(sid="EncryptEvaluationReports", actions=["kms:GenerateDataKey"],
                            resources=[storage.key.key_arn]),
    ]
    # CreateTrainingJob and UpdateEndpoint with a volume key: the caller lets SageMaker grant the key too
    if uses_volume_key(config.training_instance_type) or uses_endpoint_volume_key(config):
        statements += volume_key_statements(storage.key)
    findings = {}
    if config.tune_every_days:
        statements += _tuning_statements(scope, config)
        tuning_jobs = sagemaker_arn(scope, "hyper-parameter-tuning-job", f"{tuning_job_prefix(config.stage)}*")
        findings[tuning_jobs] = ("Tuning jobs tune-<stage>-<UTC minute>: the grant covers this stage's tuning jobs "
                                 "only.")
    for statement in statements:
        state_machine.add_to_role_policy(statement)
    reason = "Names carry the execution's start time and hash: the grant covers this pipeline's names only."
    list_note = ("; sagemaker:ListHyperParameterTuningJobs (the tuning step's earlier jobs) takes no resource-level "
                 "permissions either") if config.tune_every_days else ""
    acknowledge_wildcards(state_machine.role, {
        **findings,
        "*": STATE_MACHINE_SERVICE_WILDCARDS + list_note + ".",
        sagemaker_arn(scope, "training-job", names): f"Training jobs {names}. " + reason,
        models: f"Models {names} (named after their training job). " + reason,
        configs: f"Endpoint configurations {names} (named after their training job). " + reason,
        **dict.fromkeys(live_model_arns(scope), WILDCARD_REASON),
        versions: f"The versions of the stage's model package group {config.model_package_group_name}, numbered by "
                  "SageMaker as they are registered: this group's only.",
        storage.objects_arn(MODELS_PREFIX): "Each model's evaluation report goes beside its archive, "
                                            "models/<job name>/evaluation.json: this prefix only.",
    })


def _tuning_statements(scope: Construct, config: AppConfig) -> list[iam.PolicyStatement]:
    """Run and watch the stage's tuning jobs (``createHyperParameterTuningJob.sync``): the tuning-job form of
    ``sync_job_statements``, whose rule is StepFunctionsGetEventsForSageMakerTuningJobsRule
    (https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html)."""
    jobs = sagemaker_arn(scope, "hyper-parameter-tuning-job", f"{tuning_job_prefix(config.stage)}*")
    rule = cdk.Stack.of(scope).format_arn(service="events", resource="rule",
                           resource_name="StepFunctionsGetEventsForSageMakerTuningJobsRule")
    return [
        iam.PolicyStatement(sid="RunTuningJobs", resources=[jobs], actions=[
            "sagemaker:CreateHyperParameterTuningJob", "sagemaker:DescribeHyperParameterTuningJob",
            "sagemaker:StopHyperParameterTuningJob", "sagemaker:AddTags", "sagemaker:ListTags"]),
        iam.PolicyStatement(sid="WatchTuningJobs", resources=[rule],
                            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"]),
    ]


def parameter_arn(scope: Construct, name: str) -> str:
    """The ARN of SSM parameter ``name`` in the stack's account and region."""
    return cdk.Stack.of(scope).format_arn(service="ssm", resource="parameter", resource_name=name.lstrip("/"))
