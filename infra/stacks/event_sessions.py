"""Raw click events to scored sessions: Glue table, Athena workgroup and the ``gru4rec-<stage>-events`` pipeline.

A run's event files land in ``events/incoming/<run>/``, then its marker ``_SUCCESS``; the marker's
"Object Created" event starts the state machine:

Name the run -> Run marker? -> Group sessions (Athena, infra/sql/group_sessions.sql, UNLOAD to
``sessions/grouped/<run>/``, run to completion) -> Read live model -> Create model -> Transform (one
Batch Transform job over the gzip JSON lines, into ``sessions/scored/<run>/``) -> Delete model ->
Write summary (``sessions/scored/<run>/summary.json``) -> Done. Any failure: Notify failure -> Failed.

The table reads text files (gzip or not) by position: session, item, time, in that order, with the
context's separator and a header line. Athena and Step Functions:
https://docs.aws.amazon.com/step-functions/latest/dg/connect-athena.html
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_athena as athena
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.config import AppConfig
from infra.layout import (ATHENA_RESULTS_PREFIX, GROUPED_SESSIONS_PREFIX, INCOMING_EVENTS_PREFIX, RUN_MARKER,
                          SCORED_SESSIONS_PREFIX)
from infra.sagemaker_models import NETWORK_ISOLATION, primary_container
from infra.session_query import RUN_PATTERN, quote_string, select_sql, unload_sql
from infra.stacks.storage import StorageStack
from infra.stacks.workflow import (
    STATE_MACHINE_SERVICE_WILDCARDS, acknowledge_wildcards, add_capacity_retries, failure, notify_abnormal_ends, notify_and_fail, pipeline_state_machine, resource_tags,
    sagemaker_arn, sync_job_statements, sync_job_task,
)
from model_code.event_rules import ReadOptions

PIPELINE = "events"
TABLE = "events"
EXECUTION_TIMEOUT = cdk.Duration.days(2)
LAZY_SIMPLE_SERDE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
RUN_SLOT, BUCKET_SLOT = "{run}", "{bucket}"


def table_options(config: AppConfig) -> ReadOptions:
    """The reading options of the Glue table: Athena folds column names to lower case."""
    return ReadOptions(session_column=config.events_session_column.lower(), item_column=config.events_item_column.lower(),
                       time_column=config.events_time_column.lower(), separator=config.events_separator,
                       time_format=config.events_time_format)


def query_template(config: AppConfig, database: str) -> str:
    """The UNLOAD statement with ``{run}`` and ``{bucket}`` left for the state machine to fill."""
    select = select_sql(f'"{database}"."{TABLE}"', quote_string(RUN_SLOT), table_options(config))
    return unload_sql(select, f"s3://{BUCKET_SLOT}/{GROUPED_SESSIONS_PREFIX}{RUN_SLOT}/")


class EventSessions(Construct):
    """The table, the workgroup and the state machine; ``transform`` is CreateTransformJob's arguments
    (reading ``$bucket`` and ``$run``), ``transform_role`` the role the job's model runs under."""

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, storage: StorageStack, serve_image_uri: str,
                 transform_role: iam.IRole, transform: dict, job_name_prefix: str, job_name: str, topic: sns.ITopic,
                 dead_letter_queue: sqs.IQueue) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.database_name = f"{config.resource_prefix.replace('-', '_')}_events"
        self.workgroup_name = f"{config.resource_prefix}-events"
        self.workgroup_arn = stack.format_arn(service="athena", resource="workgroup", resource_name=self.workgroup_name)
        self.table = self._table(config, storage)
        self.workgroup = self._workgroup(config, storage)
        on_failure = notify_and_fail(self, config, topic, PIPELINE, {"run": "$run", "job": "$jobName"})
        models = sagemaker_arn(self, "model", f"{job_name_prefix}*")
        definition = (sfn.Chain.start(self._name_the_run(config, storage, job_name))
                      .next(self._check_marker(on_failure, self._group(config, on_failure)
                                               .next(self._score(config, storage, serve_image_uri, transform_role, transform,
                                                                 models, on_failure)))))
        self.state_machine = pipeline_state_machine(self, config, storage.key, PIPELINE, definition, EXECUTION_TIMEOUT)
        self._grant(storage, transform_role, job_name_prefix, models)
        notify_abnormal_ends(self, self.state_machine, topic, storage.key)
        self.rule = self._trigger(config, storage, dead_letter_queue)

    # --- data catalog and query engine ------------------------------------------------------------

    def _table(self, config: AppConfig, storage: StorageStack) -> glue.CfnTable:
        """One text table over every run, partitioned by ``run`` by projection (no crawler, no partition to add)."""
        account = cdk.Stack.of(self).account
        database = glue.CfnDatabase(self, "Database", catalog_id=account, database_input=glue.CfnDatabase.DatabaseInputProperty(
            name=self.database_name, description=f"GRU4Rec {config.stage}: raw click events"))
        options = table_options(config)
        separator = options.separator_char
        location = f"s3://{storage.bucket.bucket_name}/{INCOMING_EVENTS_PREFIX}"
        table = glue.CfnTable(self, "Table", catalog_id=account, database_name=self.database_name,
                              table_input=glue.CfnTable.TableInputProperty(
            name=TABLE, table_type="EXTERNAL_TABLE",
            parameters={"skip.header.line.count": "1", "projection.enabled": "true", "projection.run.type": "injected",
                        "storage.location.template": location + "${run}/"},
            partition_keys=[glue.CfnTable.ColumnProperty(name="run", type="string")],
            storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                location=location,
                columns=[glue.CfnTable.ColumnProperty(name=name, type="string") for name in options.columns()],
                input_format="org.apache.hadoop.mapred.TextInputFormat",
                output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                serde_info=glue.CfnTable.SerdeInfoProperty(serialization_library=LAZY_SIMPLE_SERDE, parameters={
                    "field.delim": separator, "serialization.format": separator}),
            ),
        ))
        table.node.add_dependency(database)
        return table

    def _workgroup(self, config: AppConfig, storage: StorageStack) -> athena.CfnWorkGroup:
        """Results in the data bucket under the stage key; the settings bind every query; a bytes-scanned cut-off."""
        return athena.CfnWorkGroup(
            self, "WorkGroup", name=self.workgroup_name, recursive_delete_option=True, state="ENABLED",
            description=f"GRU4Rec {config.stage}: grouping raw events into sessions",
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True, publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=config.athena_bytes_scanned_cutoff,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{storage.bucket.bucket_name}/{ATHENA_RESULTS_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=storage.key.key_arn)),
            ))

    # --- states -----------------------------------------------------------------------------------

    def _name_the_run(self, config: AppConfig, storage: StorageStack, job_name: str) -> sfn.Pass:
        key = "$states.input.detail.object.key"
        return sfn.Pass.jsonata(self, "Name the run", assign={
            "jobName": job_name,
            "bucket": storage.bucket.bucket_name,
            "key": f"{{% $type({key}) = 'string' ? {key} : '' %}}",
            "run": f"{{% $type({key}) = 'string' ? $substringBefore($substringAfter({key}, '{INCOMING_EVENTS_PREFIX}'), '/') : '' %}}",
        })

    def _check_marker(self, on_failure: sfn.IChainable, then: sfn.IChainable) -> sfn.Choice:
        """Go on only for ``events/incoming/<run>/_SUCCESS`` with a run name the query can hold as a literal."""
        pattern = ("/^" + INCOMING_EVENTS_PREFIX.replace("/", "\\/") + RUN_PATTERN.pattern + "\\/"
                   + RUN_MARKER + "$/")
        not_marker = failure(
            self, "Not a run marker", "Input.NotARunMarker",
            f"'expected an S3 Object Created event for {INCOMING_EVENTS_PREFIX}<run>/{RUN_MARKER} "
            "(a run: letters, digits, ., _, = or -), got ' & ($key = '' ? 'no object key' : 'the key ' & $key)",
        )
        return (sfn.Choice.jsonata(self, "Run marker?")
                .when(sfn.Condition.jsonata(f"{{% $contains($key, {pattern}) %}}"), then)
                .otherwise(not_marker.next(on_failure)))

    def _group(self, config: AppConfig, on_failure: sfn.IChainable) -> sfn.CustomState:
        """The grouping query, its {run} and {bucket} filled in, run to completion (UNLOAD needs an empty destination)."""
        template = (query_template(config, self.database_name)
                    .replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
        query = (f'{{% $replace($replace("{template}", "{RUN_SLOT}", $run), "{BUCKET_SLOT}", $bucket) %}}')
        state = sfn.CustomState(self, "Group sessions", state_json={
            "Type": "Task",
            "Comment": "Athena: group the run's events into sessions, UNLOAD JSON lines to sessions/grouped/<run>/",
            "Resource": f"arn:{cdk.Aws.PARTITION}:states:::athena:startQueryExecution.sync",
            "Arguments": {"QueryString": query, "WorkGroup": self.workgroup_name,
                          "QueryExecutionContext": {"Database": self.database_name}},
            "Assign": {"queryId": "{% $states.result.QueryExecution.QueryExecutionId %}",
                       "bytesScanned": "{% $states.result.QueryExecution.Statistics.DataScannedInBytes %}"},
        })
        state.add_catch(on_failure)
        return state

    def _score(self, config: AppConfig, storage: StorageStack, serve_image_uri: str, transform_role: iam.IRole,
               transform: dict, models: str, on_failure: sfn.IChainable) -> sfn.IChainable:
        read_model = tasks.CallAwsService.jsonata(
            self, "Read live model", service="ssm", action="getParameter",
            iam_resources=[cdk.Stack.of(self).format_arn(service="ssm", resource="parameter",
                                                         resource_name=config.model_data_parameter_name.lstrip("/"))],
            parameters={"Name": config.model_data_parameter_name},
            assign={"modelData": "{% $states.result.Parameter.Value %}"},
        )
        create_model = tasks.CallAwsService.jsonata(
            self, "Create model", service="sagemaker", action="createModel", iam_resources=[models],
            parameters={"ModelName": "{% $jobName %}", "ExecutionRoleArn": transform_role.role_arn,
                        "PrimaryContainer": primary_container(serve_image_uri, "{% $modelData %}", config.batch_metrics_service),
                        "EnableNetworkIsolation": NETWORK_ISOLATION, "Tags": resource_tags(config, pipeline=PIPELINE)},
        )
        job = sync_job_task(self, "Transform", "createTransformJob", transform,
                            comment="Score the run's sessions with the live model (one output line per session)")
        add_capacity_retries(job)
        delete_model = tasks.CallAwsService.jsonata(
            self, "Delete model", service="sagemaker", action="deleteModel", iam_resources=[models],
            parameters={"ModelName": "{% $jobName %}"}, outputs="{% $states.input %}",
        )
        summary = "{% $string(" + SUMMARY_FIELDS + ") %}"
        write_summary = tasks.CallAwsService.jsonata(
            self, "Write summary", service="s3", action="putObject", iam_action="s3:PutObject",
            iam_resources=[storage.objects_arn(SCORED_SESSIONS_PREFIX)],
            parameters={"Bucket": "{% $bucket %}", "Key": "{% '" + SCORED_SESSIONS_PREFIX + "' & $run & '/summary.json' %}",
                        "Body": summary, "ContentType": "application/json"},
        )
        for task in (read_model, create_model, job, delete_model, write_summary):
            task.add_catch(on_failure)
        done = sfn.Succeed.jsonata(self, "Done", outputs="{% " + SUMMARY_FIELDS + " %}")
        return read_model.next(create_model).next(job).next(delete_model).next(write_summary).next(done)

    # --- trigger and permissions ------------------------------------------------------------------

    def _trigger(self, config: AppConfig, storage: StorageStack, dead_letter_queue: sqs.IQueue) -> events.Rule:
        rule = events.Rule(self, "RunMarkerArrived", description=f"{INCOMING_EVENTS_PREFIX}<run>/{RUN_MARKER} markers "
                                                                 f"in the GRU4Rec {config.stage} data bucket",
                           event_pattern=events.EventPattern(
                               source=["aws.s3"], detail_type=["Object Created"],
                               detail={"bucket": {"name": [storage.bucket.bucket_name]},
                                       "object": {"key": events.Match.wildcard(f"{INCOMING_EVENTS_PREFIX}*/{RUN_MARKER}")}}))
        rule.add_target(targets.SfnStateMachine(self.state_machine, dead_letter_queue=dead_letter_queue,
                                                retry_attempts=8, max_event_age=cdk.Duration.hours(6)))
        return rule

    def _grant(self, storage: StorageStack, transform_role: iam.IRole, job_name_prefix: str, models: str) -> None:
        """Athena runs the query with the caller's rights: the state machine's role reads the events, writes the
        grouped lines and the query results, and reads the table; then it runs the transform job."""
        stack = cdk.Stack.of(self)
        glue_resources = [stack.format_arn(service="glue", resource="catalog"),
                          stack.format_arn(service="glue", resource="database", resource_name=self.database_name),
                          stack.format_arn(service="glue", resource="table", resource_name=f"{self.database_name}/{TABLE}")]
        statements = [
            iam.PolicyStatement(sid="RunQueries", resources=[self.workgroup_arn], actions=[
                "athena:StartQueryExecution", "athena:GetQueryExecution", "athena:StopQueryExecution"]),
            iam.PolicyStatement(sid="ReadEventTable", resources=glue_resources,
                                actions=["glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"]),
            iam.PolicyStatement(sid="LocateBucket", actions=["s3:GetBucketLocation"], resources=[storage.bucket_arn]),
            iam.PolicyStatement(sid="FindQueryFiles", actions=["s3:ListBucket"],
                                resources=[storage.bucket_arn], conditions={"StringLike": {"s3:prefix": [
                                    f"{INCOMING_EVENTS_PREFIX}*", f"{GROUPED_SESSIONS_PREFIX}*", f"{ATHENA_RESULTS_PREFIX}*"]}}),
            iam.PolicyStatement(sid="ReadEvents", actions=["s3:GetObject"],
                                resources=[storage.objects_arn(INCOMING_EVENTS_PREFIX)]),
            iam.PolicyStatement(sid="WriteQueryFiles", resources=[
                storage.objects_arn(GROUPED_SESSIONS_PREFIX), storage.objects_arn(ATHENA_RESULTS_PREFIX)],
                actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]),
            *sync_job_statements(self, "transform-job", job_name_prefix, "StepFunctionsGetEventsForSageMakerTransformJobsRule"),
            iam.PolicyStatement(sid="PassTransformRole", actions=["iam:PassRole"], resources=[transform_role.role_arn],
                                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}),
            iam.PolicyStatement(sid="TagModels", actions=["sagemaker:AddTags"], resources=[models]),
        ]
        for statement in statements:
            self.state_machine.add_to_role_policy(statement)
        reason = "named after the execution's start time and hash: the grant covers this pipeline's names only."
        acknowledge_wildcards(self.state_machine.role, {
            "*": STATE_MACHINE_SERVICE_WILDCARDS + ".",
            sagemaker_arn(self, "transform-job", f"{job_name_prefix}*"): f"Transform jobs {job_name_prefix}*, " + reason,
            models: f"Each transform job's own model {job_name_prefix}*, " + reason,
            storage.objects_arn(INCOMING_EVENTS_PREFIX): "Athena reads the run's event files with the caller's rights: "
                                                         "get only, this prefix only.",
            storage.objects_arn(GROUPED_SESSIONS_PREFIX): "Athena's UNLOAD writes the run's sessions under "
                                                          "sessions/grouped/<run>/ with the caller's rights: this prefix only.",
            storage.objects_arn(ATHENA_RESULTS_PREFIX): "The workgroup's query results and UNLOAD manifest: this prefix only.",
            storage.objects_arn(SCORED_SESSIONS_PREFIX): "The run's summary object sessions/scored/<run>/summary.json: "
                                                         "put only, this prefix only.",
        })


SUMMARY_FIELDS = ("{'run': $run, 'events': 's3://' & $bucket & '/" + INCOMING_EVENTS_PREFIX + "' & $run & '/', "
                  "'grouped': 's3://' & $bucket & '/" + GROUPED_SESSIONS_PREFIX + "' & $run & '/', "
                  "'scored': 's3://' & $bucket & '/" + SCORED_SESSIONS_PREFIX + "' & $run & '/', "
                  "'query': $queryId, 'bytesScanned': $bytesScanned, 'job': $jobName, 'modelData': $modelData}")
"""JSONata: what the run read and wrote, as the summary object and the execution's output."""
