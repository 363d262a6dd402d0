"""Batch: score every new sessions file with Batch Transform and the live model.

An EventBridge rule on the data bucket's "Object Created" events for ``sessions/incoming/*.jsonl``
starts the state machine ``gru4rec-<stage>-batch`` with the event as its input:

Name the job -> Sessions file? -> Stagger -> Count running jobs -> Capacity free? (no: Wait for
capacity -> Count running jobs) -> Find live endpoint config -> Find live model -> Read live model (the
endpoint's model and its archive, ``infra.stacks.live_model``) -> Find list file ->
List file? (yes: Attach filters, a Lambda function that packs the list into a copy of the model's
archive) -> Split sessions (the sharder, a Lambda function: the file cut into shards under
``batch-shards/<job>/in/`` and the job's input manifest listing them) -> Create model (the job's own, under
the transform role) -> Transform (CreateTransformJob over the manifest, run to the end: Batch Transform spreads
objects, not lines, across ``transform_instance_count`` instances) -> Join answers (the sharder: the shards'
answers, in the shards' order, into one file) -> Delete model -> Done. Any failure: Notify failure (SNS) -> Failed (a
model left behind is tagged, and ``infra.ops cleanup`` removes it); an execution that times out or is stopped is
reported to the same topic by an EventBridge rule.

``sessions/incoming/<dir>/<name>.jsonl`` is scored into ``sessions/scored/<dir>/<name>.jsonl.out``
(as SageMaker names one object's answers), one output line per input line (blank lines have none), in order. A list file
``<name>.filters.json`` put beside it first (``{"exclude_items": [...], "include_items": [...]}``)
applies to every line that gives no list of its own: the container runs network-isolated, so the
list travels inside the job's model archive (``batch-models/<job>/model.tar.gz``).
"""
from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.config import AppConfig
from infra.instance_storage import uses_volume_key
from infra.layout import (
    BATCH_MANIFESTS_PREFIX,
    BATCH_MODELS_PREFIX,
    BATCH_SHARDS_PREFIX,
    FILTERS_SUFFIX,
    GROUPED_SESSIONS_PREFIX,
    INCOMING_EVENTS_PREFIX,
    INCOMING_SESSIONS_PREFIX,
    MODELS_PREFIX,
    SCORED_SESSIONS_PREFIX,
)
from infra.log_groups import log_group_arn, log_streams_arn
from infra.sagemaker_models import NETWORK_ISOLATION, primary_container
from infra.stacks.attribution import Attribution
from infra.stacks.event_sessions import PIPELINE as EVENTS_PIPELINE
from infra.stacks.event_sessions import EventSessions, table_option_values
from infra.stacks.filter_packager import FilterPackager
from infra.stacks.image import ImageStack, pull_image_statements
from infra.stacks.live_model import WILDCARD_REASON, live_model_arns, read_live_model
from infra.stacks.promotion_access import read_source_statements, source_read_reasons
from infra.stacks.session_sharder import SessionSharder
from infra.stacks.storage import StorageStack
from infra.stacks.workflow import (
    STATE_MACHINE_SERVICE_WILDCARDS,
    acknowledge_wildcards,
    add_capacity_retries,
    failure_topic,
    job_name_expression,
    job_name_prefix,
    notify_abnormal_ends,
    notify_and_fail,
    object_key_check,
    pipeline_state_machine,
    resource_tags,
    sagemaker_arn,
    sync_job_statements,
    sync_job_task,
    volume_key,
    volume_key_statements,
)
from infra.transform_settings import BATCH_STRATEGY, MAX_PAYLOAD_MB, transform_workers

JOB_KIND = "batch"
# JSONata: the run's input manifest, its shards and their answers (URIs)
MANIFEST_KEY = f"'{BATCH_MANIFESTS_PREFIX}' & $jobName & '.manifest'"
SHARDS_URI = f"'s3://' & $bucket & '/{BATCH_SHARDS_PREFIX}' & $jobName & '/in/'"
ANSWERS_URI = f"'s3://' & $bucket & '/{BATCH_SHARDS_PREFIX}' & $jobName & '/out'"
# ... and the run's one scored file: its key's folders and name below sessions/incoming/, under sessions/scored/
SCORED_URI = (f"'s3://' & $bucket & '/{SCORED_SESSIONS_PREFIX}' & $substringAfter($key, '{INCOMING_SESSIONS_PREFIX}') "
              "& '.out'")
MB = 1024 * 1024
TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"
SESSIONS_SUFFIX = ".jsonl"
CONTENT_TYPE = "application/jsonlines"
# seconds one 6 MB invocation may take in the container (gunicorn; nginx waits 10 s more)
INVOCATION_TIMEOUT_S = 900
# ListTransformJobs returns at most this many jobs per call
LIST_PAGE_LIMIT = 100
# Executions started together (many files at once) spread their first count over this many seconds
STAGGER_SECONDS = 30
CAPACITY_POLL_SECONDS = 60
CAPACITY_POLL_JITTER_SECONDS = 30
EXECUTION_TIMEOUT = cdk.Duration.days(2)
# EventBridge keeps trying to start an execution this long (with this many retries), then parks the event in the DLQ
EVENT_MAX_AGE = cdk.Duration.hours(6)
EVENT_RETRY_ATTEMPTS = 8


class BatchStack(cdk.Stack):
    """Rule on new sessions files -> batch state machine -> Batch Transform; failure topic and DLQ.

    ``state_machine`` and ``topic`` are for other stacks; the CloudFormation output
    ``BatchStateMachineArn`` is for the operator CLI.
    """

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, storage: StorageStack,
                 image: ImageStack, **kwargs) -> None:
        super().__init__(
            scope, construct_id, description=f"GRU4Rec {config.stage}: batch scoring of new sessions files", **kwargs
        )
        self.job_name_prefix = job_name_prefix(config, JOB_KIND)
        self.events_job_name_prefix = job_name_prefix(config, EVENTS_PIPELINE)
        self.transform_role = self._transform_role(config, storage, image)
        self.packager = FilterPackager(self, "FilterPackager", config, storage)
        self.sharder = SessionSharder(self, "SessionSharder", config, storage)
        self.topic = failure_topic(self, config, storage.key, "batch")
        on_failure = notify_and_fail(self, config, self.topic, "batch", {"job": "$jobName", "file": "$key"})
        transform = self._transform(config, storage, image, on_failure)
        definition = (sfn.Chain.start(self._name_the_job(config, storage))
                      .next(self._check_input(on_failure, self._bounded_concurrency(config, on_failure, transform))))
        self.state_machine = pipeline_state_machine(self, config, storage.key, "batch", definition, EXECUTION_TIMEOUT)
        self._grant_pipeline(config, storage)
        notify_abnormal_ends(self, self.state_machine, self.topic, storage.key)
        self.rule, self.dead_letter_queue = self._trigger(config, storage)
        self.event_sessions = self._event_sessions(config, storage, image)
        # off by default: it reads the endpoint's captured answers, which costs
        self.attribution = (Attribution(self, "Attribution", config, storage, self.event_sessions, self.topic)
                            if config.attribution_schedule else None)
        cdk.CfnOutput(self, "BatchStateMachineArn", value=self.state_machine.state_machine_arn,
                      description="Batch pipeline: scores each new sessions/incoming/*.jsonl file")

    def _event_sessions(self, config: AppConfig, storage: StorageStack, image: ImageStack) -> EventSessions:
        """Raw event runs grouped by Athena and scored by one transform job of the pipeline ``events``."""
        run_prefix = "{% 's3://' & $bucket & '/"
        pipeline = EventSessions(
            self,
            "EventSessions",
            config,
            storage,
            image.serve_image_uri,
            self.transform_role,
            transform_arguments(
                config,
                storage,
                input_uri=f"{run_prefix}{GROUPED_SESSIONS_PREFIX}' & $run & '/' %}}",
                output_uri=f"{run_prefix}{SCORED_SESSIONS_PREFIX}' & $run %}}",
                compression="Gzip",
                pipeline=EVENTS_PIPELINE,
            ),
            self.events_job_name_prefix,
            job_name_expression(config, EVENTS_PIPELINE),
            self.topic,
            self.dead_letter_queue,
        )
        if uses_volume_key(config.transform_instance_type):
            for statement in volume_key_statements(storage.key):
                pipeline.state_machine.add_to_role_policy(statement)
        cdk.CfnOutput(self, "EventsStateMachineArn", value=pipeline.state_machine.state_machine_arn,
                      description=f"Events pipeline: groups and scores each run of {INCOMING_EVENTS_PREFIX}<run>/")
        # what `infra.ops report` needs to attribute the captured answers as the stage reads its events
        cdk.CfnOutput(self, "EventsWorkGroup", value=pipeline.workgroup_name,
                      description="Athena workgroup of the events")
        cdk.CfnOutput(self, "EventsDatabase", value=pipeline.database_name,
                      description="Glue database of the events, the answers and the captures")
        cdk.CfnOutput(self, "EventReadOptions", value=json.dumps(table_option_values(config), sort_keys=True),
                      description="How the events table's rows are read (model_code.data.event_rules.ReadOptions)")
        cdk.CfnOutput(self, "AttributionMinutes", value=str(config.attribution_minutes),
                      description="How long after an answer its session's events count for it")
        return pipeline

    # --- states -----------------------------------------------------------------------------------

    def _name_the_job(self, config: AppConfig, storage: StorageStack) -> sfn.Pass:
        """The job name, the bucket and the new object's key ('' when the input is not an S3 event)."""
        key = "$states.input.detail.object.key"
        return sfn.Pass.jsonata(self, "Name the job", assign={
            "jobName": job_name_expression(config, JOB_KIND),
            "bucket": storage.bucket.bucket_name,
            "key": f"{{% $type({key}) = 'string' ? {key} : '' %}}",
        })

    def _check_input(self, on_failure: sfn.IChainable, then: sfn.IChainable) -> sfn.Choice:
        """Go on only for a key ``sessions/incoming/...<name>.jsonl`` (the rule sends no other; a manual start
        might)."""
        pattern = "/^" + INCOMING_SESSIONS_PREFIX.replace("/", "\\/") + ".+\\" + SESSIONS_SUFFIX + "$/"
        return object_key_check(self, "Sessions file?", "Not a sessions file", "Input.NotASessionsFile",
                                f"{INCOMING_SESSIONS_PREFIX}<name>{SESSIONS_SUFFIX}", pattern, then, on_failure)

    def _bounded_concurrency(
        self, config: AppConfig, on_failure: sfn.IChainable, then: sfn.IChainable
    ) -> sfn.IChainable:
        """Start a transform job only while fewer than ``max_concurrent_transform_jobs`` of this stage run.

        Counting and starting are two steps, so executions that count at the same moment could
        both start: the random stagger and the jittered waits make that unlikely, and SageMaker's
        own quota (ResourceLimitExceeded, retried with backoff) is the hard limit.
        """
        limit = min(config.max_concurrent_transform_jobs, LIST_PAGE_LIMIT)
        stagger = sfn.Wait.jsonata(self, "Stagger", time=sfn.WaitTime.seconds(
            f"{{% $floor($random() * {STAGGER_SECONDS}) %}}"))
        count = tasks.CallAwsService.jsonata(
            self,
            "Count running jobs",
            service="sagemaker",
            action="listTransformJobs",
            iam_resources=["*"],
            parameters={
                "StatusEquals": "InProgress",
                "NameContains": self.job_name_prefix,
                "MaxResults": LIST_PAGE_LIMIT,
            },
            assign={"running": "{% $count($states.result.TransformJobSummaries) %}"},
        )
        count.add_catch(on_failure)
        wait = sfn.Wait.jsonata(self, "Wait for capacity", time=sfn.WaitTime.seconds(
            f"{{% {CAPACITY_POLL_SECONDS} + $floor($random() * {CAPACITY_POLL_JITTER_SECONDS}) %}}"))
        capacity = (sfn.Choice.jsonata(self, "Capacity free?")
                    .when(sfn.Condition.jsonata(f"{{% $running < {limit} %}}"), then)
                    .otherwise(wait.next(count)))
        return stagger.next(count).next(capacity)

    def _transform(self, config: AppConfig, storage: StorageStack, image: ImageStack,
                   on_failure: sfn.IChainable) -> sfn.IChainable:
        """Read the live model's data (the endpoint's model), cut the new file into shards, make this job's own
        model (the transform role, no network), run one transform job over the shards, join their answers, then
        delete the model."""
        reads, read_model = read_live_model(self, config)
        filters = self._job_filters(storage, on_failure)
        models = [sagemaker_arn(self, "model", f"{self.job_name_prefix}*")]
        create_model = tasks.CallAwsService.jsonata(
            self,
            "Create model",
            service="sagemaker",
            action="createModel",
            iam_resources=models,
            parameters={
                "ModelName": "{% $jobName %}",
                "ExecutionRoleArn": self.transform_role.role_arn,
                "PrimaryContainer": primary_container(
                    image.serve_image_uri, "{% $modelData %}", config.batch_metrics_service
                ),
                "EnableNetworkIsolation": NETWORK_ISOLATION,
                "Tags": resource_tags(config, pipeline="batch"),
            },
        )
        delete_model = tasks.CallAwsService.jsonata(
            self, "Delete model", service="sagemaker", action="deleteModel", iam_resources=models,
            parameters={"ModelName": "{% $jobName %}"}, outputs="{% $states.input %}",
        )
        split, join = self._split(config), self._join()
        for task in (*reads, create_model, split, join, delete_model):
            task.add_catch(on_failure)
        transform = sync_job_task(self, "Transform", "createTransformJob", transform_arguments(
            config, storage, data_type="ManifestFile", input_uri=f"{{% 's3://' & $bucket & '/' & {MANIFEST_KEY} %}}",
            output_uri=f"{{% {ANSWERS_URI} %}}", compression="None",
        ), comment="Score the shards with the live model (one <shard>.out per shard, one output line per input line)")
        add_capacity_retries(transform)
        transform.add_catch(on_failure)
        done = sfn.Succeed.jsonata(self, "Done", outputs={
            "job": "{% $jobName %}", "modelData": "{% $modelData %}", "input": "{% 's3://' & $bucket & '/' & $key %}",
            "output": f"{{% {SCORED_URI} %}}", "shards": "{% $shards %}", "sessions": "{% $sessions %}",
        })
        return read_model.next(
            filters(split.next(create_model).next(transform).next(join).next(delete_model).next(done))
        )

    def _split(self, config: AppConfig) -> tasks.LambdaInvoke:
        """The new file cut into shards and the job's input manifest naming them, in order. A manifest lists
        objects relative to its ``prefix``, where an ``S3Prefix`` would read every key starting with it
        (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_TransformS3DataSource.html)."""
        return tasks.LambdaInvoke.jsonata(
            self,
            "Split sessions",
            lambda_function=self.sharder.function,
            comment="Cut the sessions file into shards, one share per instance at most transform_shard_mb each",
            payload=sfn.TaskInput.from_object(
                {
                    "action": "split",
                    "input": "{% 's3://' & $bucket & '/' & $key %}",
                    "shards": f"{{% {SHARDS_URI} %}}",
                    "manifest": f"{{% 's3://' & $bucket & '/' & {MANIFEST_KEY} %}}",
                    "instances": config.transform_instance_count,
                    "maxShardBytes": config.transform_shard_mb * MB,
                }
            ),
            assign={
                "shards": "{% $states.result.Payload.shards %}",
                "sessions": "{% $states.result.Payload.sessions %}",
            },
        )

    def _join(self) -> tasks.LambdaInvoke:
        """The shards' answers, in the shards' order, written as the run's one scored file."""
        return tasks.LambdaInvoke.jsonata(
            self, "Join answers", lambda_function=self.sharder.function,
            comment="Join the shards' answers in the input's order into sessions/scored/<name>.jsonl.out",
            payload=sfn.TaskInput.from_object({
                "action": "join", "shards": f"{{% {SHARDS_URI} %}}", "answers": f"{{% {ANSWERS_URI} & '/' %}}",
                "output": f"{{% {SCORED_URI} %}}",
            }),
        )

    def _job_filters(self, storage: StorageStack, on_failure: sfn.IChainable):
        """States that swap ``$modelData`` for a copy of the live model's archive holding the run's list file,
        where ``<name>.filters.json`` lies beside the sessions file; ``then`` follows either way."""
        list_key = f"$replace($key, /\\{SESSIONS_SUFFIX}$/, '{FILTERS_SUFFIX}')"
        find = tasks.CallAwsService.jsonata(
            self, "Find list file", service="s3", action="listObjectsV2",
            iam_resources=[storage.bucket_arn], iam_action="s3:ListBucket",
            parameters={"Bucket": "{% $bucket %}", "Prefix": f"{{% {list_key} %}}", "MaxKeys": 1},
            assign={"listKey": f"{{% $count($states.result.Contents[Key = {list_key}]) > 0 ? {list_key} : '' %}}"},
        )
        attach = tasks.LambdaInvoke.jsonata(
            self, "Attach filters", lambda_function=self.packager.function,
            comment="Pack the list file into a copy of the live model's archive, read by this job's model",
            payload=sfn.TaskInput.from_object({
                "modelData": "{% $modelData %}",
                "filters": "{% 's3://' & $bucket & '/' & $listKey %}",
                "output": "{% 's3://' & $bucket & '/" + BATCH_MODELS_PREFIX + "' & $jobName & '/model.tar.gz' %}",
            }),
            assign={"modelData": "{% $states.result.Payload.modelData %}"},
        )
        for task in (find, attach):
            task.add_catch(on_failure)

        def then(rest: sfn.IChainable) -> sfn.IChainable:
            return find.next(sfn.Choice.jsonata(self, "List file?")
                             .when(sfn.Condition.jsonata("{% $listKey != '' %}"), attach.next(rest))
                             .otherwise(rest))
        return then

    # --- trigger and permissions ------------------------------------------------------------------

    def _trigger(self, config: AppConfig, storage: StorageStack) -> tuple[events.Rule, sqs.Queue]:
        """New ``sessions/incoming/*.jsonl`` objects start the state machine; events it cannot start go to a DLQ."""
        rule = events.Rule(
            self,
            "SessionsArrived",
            description=f"New {INCOMING_SESSIONS_PREFIX}*{SESSIONS_SUFFIX} "
            f"files in the GRU4Rec {config.stage} data bucket",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [storage.bucket.bucket_name]},
                    "object": {"key": events.Match.wildcard(f"{INCOMING_SESSIONS_PREFIX}*{SESSIONS_SUFFIX}")},
                },
            ),
        )
        # SQS-managed encryption: EventBridge needs no grant on the stage key to deliver here, so the key
        # policy lets events.amazonaws.com use the key for the stage's topics only
        queue = sqs.Queue(self, "UnstartedEvents", encryption=sqs.QueueEncryption.SQS_MANAGED,
                          enforce_ssl=True, retention_period=cdk.Duration.days(14))
        cdk.Validations.of(queue).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is the dead-letter queue of the EventBridge target: it holds the events whose "
                       "execution could not start.",
            )
        )
        rule.add_target(targets.SfnStateMachine(self.state_machine, dead_letter_queue=queue,
                                                retry_attempts=EVENT_RETRY_ATTEMPTS, max_event_age=EVENT_MAX_AGE))
        alarm = queue.metric_approximate_number_of_messages_visible(period=cdk.Duration.minutes(5)).create_alarm(
            self,
            "UnstartedEventsAlarm",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Sessions files arrived whose batch scoring could not be started: see the dead-letter "
                              "queue",
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
        return rule, queue

    def _grant_pipeline(self, config: AppConfig, storage: StorageStack) -> None:
        """What the state machine does beyond its CallAwsService tasks (which grant their own calls)."""
        models = sagemaker_arn(self, "model", f"{self.job_name_prefix}*")
        statements = [
            *sync_job_statements(
                self, "transform-job", self.job_name_prefix, "StepFunctionsGetEventsForSageMakerTransformJobsRule"
            ),
            iam.PolicyStatement(
                sid="PassTransformRole",
                actions=["iam:PassRole"],
                resources=[self.transform_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            # tags given at creation are authorized as AddTags
            iam.PolicyStatement(sid="TagModels", actions=["sagemaker:AddTags"], resources=[models]),
        ]
        if uses_volume_key(config.transform_instance_type):
            statements += volume_key_statements(storage.key)
        for statement in statements:
            self.state_machine.add_to_role_policy(statement)
        reason = "named after the execution's start time and hash: the grant covers this pipeline's names only."
        acknowledge_wildcards(
            self.state_machine.role,
            {
                "*": STATE_MACHINE_SERVICE_WILDCARDS
                + "; so does sagemaker:ListTransformJobs, which counts the running jobs.",
                sagemaker_arn(
                    self, "transform-job", f"{self.job_name_prefix}*"
                ): f"Transform jobs {self.job_name_prefix}*, " + reason,
                models: f"Each transform job's own model {self.job_name_prefix}*, " + reason,
                **dict.fromkeys(live_model_arns(self), WILDCARD_REASON),
                f"{self.packager.function.function_arn}:*": "Step Functions' Lambda task grants the filter packager "
                "and its versions: this one function only.",
                f"{self.sharder.function.function_arn}:*": "Step Functions' Lambda task grants the sharder "
                "and its versions: this one function only.",
            },
        )

    def _transform_role(self, config: AppConfig, storage: StorageStack, image: ImageStack) -> iam.Role:
        """The transform jobs' models: read model artifacts and the sessions (a batch run's shards, an events run's
        grouped files), write the answers (a batch run's under batch-shards/, an events run's under
        sessions/scored/)."""
        role = iam.Role(self, "TransformRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                        description=f"Execution role of the GRU4Rec {config.stage} Batch Transform models")
        models, shards = storage.objects_arn(MODELS_PREFIX), storage.objects_arn(BATCH_SHARDS_PREFIX)
        grouped = storage.objects_arn(GROUPED_SESSIONS_PREFIX)
        scored, packed = storage.objects_arn(SCORED_SESSIONS_PREFIX), storage.objects_arn(BATCH_MODELS_PREFIX)
        manifests = storage.objects_arn(BATCH_MANIFESTS_PREFIX)
        first_model = storage.initial_model.object_arn
        log_group = log_group_arn(self, TRANSFORM_LOG_GROUP)
        # SageMaker names a transform job's log streams <job name>/<instance id>
        log_streams = log_streams_arn(self, TRANSFORM_LOG_GROUP, f"{self.job_name_prefix}*")
        event_log_streams = log_streams_arn(self, TRANSFORM_LOG_GROUP, f"{self.events_job_name_prefix}*")
        statements = [
            iam.PolicyStatement(
                sid="ReadModelArtifacts", actions=["s3:GetObject"], resources=[models, first_model, packed]
            ),
            iam.PolicyStatement(
                sid="ListSessions",
                actions=["s3:ListBucket"],
                resources=[storage.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{BATCH_SHARDS_PREFIX}*", f"{GROUPED_SESSIONS_PREFIX}*"]}},
            ),
            iam.PolicyStatement(sid="ReadSessions", actions=["s3:GetObject"], resources=[shards, grouped, manifests]),
            iam.PolicyStatement(sid="WriteAnswers", actions=["s3:PutObject"], resources=[scored, shards]),
            iam.PolicyStatement(
                sid="UseStageKey",
                resources=[storage.key.key_arn],
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            ),
            *pull_image_statements(image),
            # SageMaker creates the account's shared transform log group on the first job of a region
            iam.PolicyStatement(
                sid="CreateTransformLogGroup",
                actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                resources=[log_group],
            ),
            iam.PolicyStatement(
                sid="WriteTransformLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_streams, event_log_streams],
            ),
        ]
        if uses_volume_key(config.transform_instance_type):
            statements += volume_key_statements(storage.key)
        statements += read_source_statements(config, self, pull_images=False)
        policy = iam.Policy(self, "TransformPolicy", roles=[role], statements=statements)
        acknowledge_wildcards(
            policy,
            {
                **source_read_reasons(config, self, pull_images=False),
                "*": "Only ecr:GetAuthorizationToken uses '*': it has no resource-level permissions.",
                models: "Training jobs write each new model under models/<job>/: the role reads model artifacts of "
                        "this prefix only.",
                packed: "A run with a filter list reads its own packed model under batch-models/<job>/: get only, this "
                        "prefix only.",
                shards: "Batch Transform reads a batch run's shards and writes their answers under "
                        "batch-shards/<job>/: "
                "get and put only, this prefix only.",
                manifests: "Batch Transform reads each run's input manifest under batch-manifests/: get only, this "
                           "prefix only.",
                grouped: "Batch Transform reads a run's sessions grouped by Athena under sessions/grouped/: get only, "
                         "this prefix only.",
                event_log_streams: "SageMaker names the log streams <job>/<instance>; only this stage's events jobs' "
                                   "streams.",
                scored: "Batch Transform writes <file>.out under sessions/scored/: put only, this prefix only.",
                log_group: "log-group:<name>:* is how IAM names the one log group SageMaker writes transform logs to "
                "(CreateLogGroup on a region's first job, DescribeLogStreams).",
                log_streams: "SageMaker names the log streams <job>/<instance>; only this stage's batch jobs' streams.",
            },
        )
        return role


def transform_arguments(config: AppConfig, storage: StorageStack, input_uri: str, output_uri: str,
                        compression: str, data_type: str = "S3Prefix", pipeline: str = JOB_KIND) -> dict:
    """CreateTransformJob's arguments for the job ``$jobName`` (also its model's name): JSON lines in
    (``input_uri``, an S3 prefix ending in '/' or a manifest, as ``data_type`` says; ``compression`` None or Gzip),
    one answer line per line out; the job is tagged with its ``pipeline``."""
    workers = transform_workers(config.transform_instance_type)
    return {
        "TransformJobName": "{% $jobName %}",
        "ModelName": "{% $jobName %}",
        "BatchStrategy": BATCH_STRATEGY,
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "MaxConcurrentTransforms": workers,
        # one request per worker: the container runs this many workers whatever the instance's cores
        # a 6 MB payload of a large catalogue's sessions can take minutes to score: the container's and
        # SageMaker's timeouts for one invocation are raised together
        "Environment": {"MODEL_SERVER_WORKERS": str(workers), "MODEL_SERVER_TIMEOUT": str(INVOCATION_TIMEOUT_S)},
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": INVOCATION_TIMEOUT_S + 60, "InvocationsMaxRetries": 1},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": input_uri}},
            "ContentType": CONTENT_TYPE, "SplitType": "Line", "CompressionType": compression,
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": CONTENT_TYPE, "AssembleWith": "Line",
                            "KmsKeyId": storage.key.key_arn},
        "TransformResources": _transform_resources(config, storage),
        "Tags": resource_tags(config, pipeline=pipeline),
    }


def _transform_resources(config: AppConfig, storage: StorageStack) -> dict:
    """Instances of a transform job; their volume uses the stage key unless the type has local NVMe storage."""
    resources = {"InstanceType": config.transform_instance_type, "InstanceCount": config.transform_instance_count}
    volume = volume_key(storage.key, config.transform_instance_type)
    if volume:
        resources["VolumeKmsKeyId"] = volume
    return resources
