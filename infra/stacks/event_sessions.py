"""Raw click events to scored sessions: Glue table, Athena workgroup and the ``gru4rec-<stage>-events`` pipeline.

A run's event files land in ``events/incoming/<run>/``, then its marker ``_SUCCESS``; the marker's
"Object Created" event starts the state machine:

Name the run -> Run marker? -> Count events (Athena, infra/sql/count_events.sql: rows read, skipped
per reason, sessions) -> Read event counts -> Rows within bound? (more bad rows than
``events_max_bad_rows`` allows, or no session: fail, nothing scored) -> Group sessions (Athena,
infra/sql/group_sessions.sql, UNLOAD to ``sessions/grouped/<run>/``) -> Count grouped files (the UNLOAD's objects,
which the job spreads across its instances) -> Find live endpoint config -> Find live model -> Read live
model (the endpoint's model and its archive) -> Create model
-> Transform (one Batch Transform job over the gzip JSON lines, into ``sessions/scored/<run>/``) ->
Delete model -> Count answers (Athena, infra/sql/count_answers.sql: scored, fallback and error lines)
-> Read answer counts -> Write summary (``sessions/scored/<run>/summary.json``) -> Done. Queries run to
completion (``.sync``). Any failure: Notify failure -> Failed.

The events table reads text files (gzip or not) by position: session, item, time, in that order, with
the context's separator and a header line; the answers table reads the transform's JSON lines with
the Hive JSON SerDe (https://docs.aws.amazon.com/athena/latest/ug/hive-json-serde.html). Athena and
Step Functions (StartQueryExecution ``.sync``, GetQueryResults request-response):
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
from infra.layout import (
    ATHENA_RESULTS_PREFIX,
    CAPTURE_PREFIX,
    CAPTURES_TABLE,
    CHALLENGER_VARIANT,
    EVENTS_RUN_DAYS,
    EVENTS_TABLE,
    GROUPED_SESSIONS_PREFIX,
    INCOMING_EVENTS_PREFIX,
    LIVE_VARIANT,
    RUN_MARKER,
    SCORED_SESSIONS_PREFIX,
    events_database,
)
from infra.sagemaker_models import NETWORK_ISOLATION, primary_container
from infra.session_query import (
    REASON_COLUMNS,
    RUN_PATTERN,
    answers_sql,
    count_sql,
    quote_string,
    select_sql,
    unload_sql,
)
from infra.stacks.live_model import WILDCARD_REASON, live_model_arns, read_live_model
from infra.stacks.storage import StorageStack
from infra.stacks.workflow import (
    STATE_MACHINE_SERVICE_WILDCARDS,
    acknowledge_wildcards,
    add_capacity_retries,
    failure,
    notify_abnormal_ends,
    notify_and_fail,
    object_key_check,
    pipeline_state_machine,
    resource_tags,
    sagemaker_arn,
    sync_job_statements,
    sync_job_task,
)
from model_code.data.event_rules import BadRowBound, ReadOptions

PIPELINE = "events"
TABLE = EVENTS_TABLE
ANSWERS_TABLE = "answers"
ANSWER_COLUMNS = {"session_id": "string", "fallback": "boolean", "error": "string"}
"""What count_answers.sql reads of each output line (inference/contracts.py); the other keys are skipped."""
HIVE_JSON_SERDE = "org.apache.hive.hcatalog.data.JsonSerDe"
OPENX_JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
_CAPTURED_PART = "struct<observedContentType:string,mode:string,data:string,encoding:string>"
CAPTURE_COLUMNS = {
    "captureData": f"struct<endpointInput:{_CAPTURED_PART},endpointOutput:{_CAPTURED_PART}>",
    "eventMetadata": "struct<eventId:string,inferenceTime:string>",
}
"""What infra/sql/attribute_answers.sql reads of each captured line (SageMaker's data capture format)."""
EXECUTION_TIMEOUT = cdk.Duration.days(EVENTS_RUN_DAYS)
LAZY_SIMPLE_SERDE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
RUN_SLOT, BUCKET_SLOT = "{run}", "{bucket}"


def table_option_values(config: AppConfig) -> dict[str, str]:
    """The reading options of the Glue table, as :class:`ReadOptions` takes them: Athena folds column names
    to lower case."""
    return dict(
        session_column=config.events_session_column.lower(),
        item_column=config.events_item_column.lower(),
        time_column=config.events_time_column.lower(),
        separator=config.events_separator,
        time_format=config.events_time_format,
        max_bad_rows=config.events_max_bad_rows,
        session_gap=config.events_session_gap,
        event_column=config.events_event_column.lower(),
        event_types=config.events_event_types,
    )


def table_options(config: AppConfig) -> ReadOptions:
    """The reading options of the Glue table (:func:`table_option_values`)."""
    return ReadOptions(**table_option_values(config))


def query_template(config: AppConfig, database: str) -> str:
    """The UNLOAD statement with ``{run}`` and ``{bucket}`` left for the state machine to fill."""
    select = select_sql(f'"{database}"."{TABLE}"', quote_string(RUN_SLOT), table_options(config))
    return unload_sql(select, f"s3://{BUCKET_SLOT}/{GROUPED_SESSIONS_PREFIX}{RUN_SLOT}/")


def count_template(config: AppConfig, database: str) -> str:
    """The counting query over the run's events, ``{run}`` left for the state machine to fill."""
    return count_sql(f'"{database}"."{TABLE}"', quote_string(RUN_SLOT), table_options(config))


def answers_template(database: str) -> str:
    """The counting query over the run's transform output, ``{run}`` left for the state machine to fill."""
    return answers_sql(f'"{database}"."{ANSWERS_TABLE}"', quote_string(RUN_SLOT))


def allowed_bad_rows(bound: BadRowBound) -> str:
    """JSONata: the bad rows ``bound`` allows among the ``$counts.rows_read`` rows read, as
    :meth:`BadRowBound.limit` counts them (a share rounds down)."""
    return str(bound.count) if bound.count is not None else f"$floor({bound.share!r} * $counts.rows_read)"


SKIPPED_ROWS = "$counts." + " + $counts.".join(REASON_COLUMNS.values())
"""JSONata: the rows the run's count skipped, all reasons."""


class EventSessions(Construct):
    """The table, the workgroup and the state machine; ``transform`` is CreateTransformJob's arguments
    (reading ``$bucket`` and ``$run``), ``transform_role`` the role the job's model runs under."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        config: AppConfig,
        storage: StorageStack,
        serve_image_uri: str,
        transform_role: iam.IRole,
        transform: dict,
        job_name_prefix: str,
        job_name: str,
        topic: sns.ITopic,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.database_name = events_database(config.stage)
        self.workgroup_name = f"{config.resource_prefix}-events"
        self.workgroup_arn = stack.format_arn(service="athena", resource="workgroup", resource_name=self.workgroup_name)
        database = self._database(config)
        self.table = self._events_table(config, storage, database)
        self.answers_table = self._answers_table(storage, database)
        self.captures_table = self._captures_table(config, storage, database)
        self.workgroup = self._workgroup(config, storage)
        on_failure = notify_and_fail(self, config, topic, PIPELINE, {"run": "$run", "job": "$jobName"})
        models = sagemaker_arn(self, "model", f"{job_name_prefix}*")
        group = self._group(config, on_failure).next(self._count_grouped_files(storage, on_failure)).next(
            self._score(config, storage, serve_image_uri, transform_role, transform, models, on_failure))
        definition = (sfn.Chain.start(self._name_the_run(config, storage, job_name))
                      .next(self._check_marker(on_failure, self._count_events(config, on_failure)
                                               .next(self._check_counts(config, on_failure, group)))))
        self.state_machine = pipeline_state_machine(self, config, storage.key, PIPELINE, definition, EXECUTION_TIMEOUT)
        self._grant(storage, transform_role, job_name_prefix, models)
        notify_abnormal_ends(self, self.state_machine, topic, storage.key)
        self.rule = self._trigger(config, storage, dead_letter_queue)

    # --- data catalog and query engine ------------------------------------------------------------

    def _database(self, config: AppConfig) -> glue.CfnDatabase:
        return glue.CfnDatabase(self, "Database", catalog_id=cdk.Stack.of(self).account,
                                database_input=glue.CfnDatabase.DatabaseInputProperty(
                                    name=self.database_name, description=f"GRU4Rec {config.stage}: raw click events"))

    def _events_table(self, config: AppConfig, storage: StorageStack, database: glue.CfnDatabase) -> glue.CfnTable:
        """The run's event files: text, by position, the context's separator, a header line."""
        options = table_options(config)
        separator = options.separator_char
        return self._run_table(
            "Table", TABLE, storage, INCOMING_EVENTS_PREFIX, database, {name: "string" for name in options.columns()},
            glue.CfnTable.SerdeInfoProperty(serialization_library=LAZY_SIMPLE_SERDE, parameters={
                "field.delim": separator, "serialization.format": separator}),
            {"skip.header.line.count": "1"})

    def _answers_table(self, storage: StorageStack, database: glue.CfnDatabase) -> glue.CfnTable:
        """The run's transform output: one JSON line per session, the columns count_answers.sql reads."""
        return self._run_table("AnswersTable", ANSWERS_TABLE, storage, SCORED_SESSIONS_PREFIX, database, ANSWER_COLUMNS,
                               glue.CfnTable.SerdeInfoProperty(serialization_library=HIVE_JSON_SERDE), {})

    def _captures_table(self, config: AppConfig, storage: StorageStack, database: glue.CfnDatabase) -> glue.CfnTable:
        """The endpoint's captured requests and answers, partitioned by projection as SageMaker lays them out
        (``capture/<endpoint>/<variant>/yyyy/mm/dd/hh/``): the variant, the day (within the captures' retention)
        and the hour. The OpenX JSON SerDe matches the capture's camel-case keys to the columns whatever their case
        (https://docs.aws.amazon.com/athena/latest/ug/openx-json-serde.html)."""
        location = f"s3://{storage.bucket.bucket_name}/{CAPTURE_PREFIX}{config.endpoint_name}/"
        parameters = {
            "projection.enabled": "true",
            "projection.variant.type": "enum",
            "projection.variant.values": f"{LIVE_VARIANT},{CHALLENGER_VARIANT}",
            "projection.day.type": "date",
            "projection.day.format": "yyyy/MM/dd",
            "projection.day.range": f"NOW-{config.capture_expiration_days}DAYS,NOW",
            "projection.day.interval": "1",
            "projection.day.interval.unit": "DAYS",
            "projection.hour.type": "integer",
            "projection.hour.range": "0,23",
            "projection.hour.digits": "2",
            "storage.location.template": location + "${variant}/${day}/${hour}/",
        }
        table = glue.CfnTable(
            self, "CapturesTable", catalog_id=cdk.Stack.of(self).account, database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=CAPTURES_TABLE, table_type="EXTERNAL_TABLE", parameters=parameters,
                partition_keys=[glue.CfnTable.ColumnProperty(name=name, type="string")
                                for name in ("variant", "day", "hour")],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    columns=[glue.CfnTable.ColumnProperty(name=column, type=kind)
                             for column, kind in CAPTURE_COLUMNS.items()],
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(serialization_library=OPENX_JSON_SERDE),
                ),
            ),
        )
        table.node.add_dependency(database)
        return table

    def _run_table(self, construct_id: str, name: str, storage: StorageStack, prefix: str, database: glue.CfnDatabase,
                   columns: dict[str, str], serde: glue.CfnTable.SerdeInfoProperty,
                   parameters: dict[str, str]) -> glue.CfnTable:
        """A text table over ``<prefix><run>/`` of every run, partitioned by ``run`` by projection (no crawler,
        no partition to add: a query names its run)."""
        location = f"s3://{storage.bucket.bucket_name}/{prefix}"
        table = glue.CfnTable(
            self,
            construct_id,
            catalog_id=cdk.Stack.of(self).account,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=name,
                table_type="EXTERNAL_TABLE",
                parameters={
                    **parameters,
                    "projection.enabled": "true",
                    "projection.run.type": "injected",
                    "storage.location.template": location + "${run}/",
                },
                partition_keys=[glue.CfnTable.ColumnProperty(name="run", type="string")],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    columns=[glue.CfnTable.ColumnProperty(name=column, type=kind) for column, kind in columns.items()],
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    serde_info=serde,
                ),
            ),
        )
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
        return sfn.Pass.jsonata(
            self,
            "Name the run",
            assign={
                "jobName": job_name,
                "bucket": storage.bucket.bucket_name,
                "bytesScanned": 0,
                "key": f"{{% $type({key}) = 'string' ? {key} : '' %}}",
                "run": f"{{% $type({key}) = 'string' ? "
                f"$substringBefore($substringAfter({key}, '{INCOMING_EVENTS_PREFIX}'), '/') : '' %}}",
            },
        )

    def _check_marker(self, on_failure: sfn.IChainable, then: sfn.IChainable) -> sfn.Choice:
        """Go on only for ``events/incoming/<run>/_SUCCESS`` with a run name the query can hold as a literal."""
        pattern = ("/^" + INCOMING_EVENTS_PREFIX.replace("/", "\\/") + RUN_PATTERN.pattern + "\\/"
                   + RUN_MARKER + "$/")
        return object_key_check(
            self,
            "Run marker?",
            "Not a run marker",
            "Input.NotARunMarker",
            f"{INCOMING_EVENTS_PREFIX}<run>/{RUN_MARKER} (a run: letters, digits, ., _, = or -)",
            pattern,
            then,
            on_failure,
        )

    def _athena_query(self, construct_id: str, comment: str, template: str, query_id: str,
                      on_failure: sfn.IChainable) -> sfn.CustomState:
        """A query of ``template`` (its {run} and {bucket} filled in) run to completion in the workgroup; its id is
        kept in ``$<query_id>`` and its bytes scanned added to ``$bytesScanned``."""
        escaped = template.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        query = f'{{% $replace($replace("{escaped}", "{RUN_SLOT}", $run), "{BUCKET_SLOT}", $bucket) %}}'
        state = sfn.CustomState(
            self,
            construct_id,
            state_json={
                "Type": "Task",
                "Comment": comment,
                "Resource": f"arn:{cdk.Aws.PARTITION}:states:::athena:startQueryExecution.sync",
                "Arguments": {
                    "QueryString": query,
                    "WorkGroup": self.workgroup_name,
                    "QueryExecutionContext": {"Database": self.database_name},
                },
                "Assign": {
                    query_id: "{% $states.result.QueryExecution.QueryExecutionId %}",
                    "bytesScanned": "{% $bytesScanned + $states.result.QueryExecution.Statistics.DataScannedInBytes %}",
                },
            },
        )
        state.add_catch(on_failure)
        return state

    def _query_results(
        self, construct_id: str, query_id: str, variable: str, on_failure: sfn.IChainable
    ) -> sfn.CustomState:
        """The one row of the query ``$<query_id>`` as ``$<variable>``: {column name: number}.

        GetQueryResults gives every value as a string and, for a SELECT, the column names as its first
        row: https://docs.aws.amazon.com/athena/latest/APIReference/API_GetQueryResults.html. The CDK's
        AthenaGetQueryResults task would grant athena:GetQueryResults and s3:GetObject on every resource;
        this state is written out so that the grants stay the workgroup's and its results prefix's.
        """
        result = "$states.result.ResultSet"
        state = sfn.CustomState(self, construct_id, state_json={
            "Type": "Task",
            "Resource": f"arn:{cdk.Aws.PARTITION}:states:::athena:getQueryResults",
            "Arguments": {"QueryExecutionId": f"{{% ${query_id} %}}", "MaxResults": 2},
            "Assign": {variable: f"{{% $merge($map({result}.ResultSetMetadata.ColumnInfo, function($column, $i) "
                                 f"{{ {{$column.Name: $number({result}.Rows[1].Data[$i].VarCharValue)}} }})) %}}"},
        })
        state.add_catch(on_failure)
        return state

    def _count_events(self, config: AppConfig, on_failure: sfn.IChainable) -> sfn.IChainable:
        count = self._athena_query(
            "Count events",
            "Athena: the run's rows read, skipped per reason, and its sessions (infra/sql/count_events.sql)",
            count_template(config, self.database_name),
            "countQueryId",
            on_failure,
        )
        return count.next(self._query_results("Read event counts", "countQueryId", "counts", on_failure))

    def _check_counts(self, config: AppConfig, on_failure: sfn.IChainable, then: sfn.IChainable) -> sfn.Choice:
        """Go on only when the bad rows are within ``events_max_bad_rows`` (the local reader's bound, the same
        rule) and some session remains: else fail, naming the counts, before anything is grouped or scored."""
        allowed = allowed_bad_rows(table_options(config).bad_row_bound)
        reasons = " & ', ' & ".join(
            f"$string($counts.{column}) & ' {reason}'" for reason, column in REASON_COLUMNS.items()
        )
        too_many = failure(
            self, "Too many bad rows", "Events.TooManyBadRows",
            f"'run ' & $run & ': ' & $string({SKIPPED_ROWS}) & ' of ' & $string($counts.rows_read) & ' rows are bad ('"
            f" & {reasons} & '), more than events_max_bad_rows {config.events_max_bad_rows} allows ('"
            f" & $string({allowed}) & '); nothing was grouped or scored. Fix the data, or raise the context "
            "key events_max_bad_rows to skip them'",
        )
        no_sessions = failure(
            self, "No sessions", "Events.NoSessions",
            f"'run ' & $run & ': no events (' & $string($counts.rows_read) & ' rows read, none with a session id, "
            f"an item id and a time) in {INCOMING_EVENTS_PREFIX}' & $run & '/'",
        )
        return (sfn.Choice.jsonata(self, "Rows within bound?")
                .when(sfn.Condition.jsonata(f"{{% {SKIPPED_ROWS} > {allowed} %}}"), too_many.next(on_failure))
                .when(sfn.Condition.jsonata("{% $counts.sessions = 0 %}"), no_sessions.next(on_failure))
                .otherwise(then))

    def _group(self, config: AppConfig, on_failure: sfn.IChainable) -> sfn.CustomState:
        """The grouping query, UNLOAD to an empty destination (``sessions/grouped/<run>/``)."""
        return self._athena_query(
            "Group sessions",
            "Athena: group the run's events into sessions, UNLOAD JSON lines to sessions/grouped/<run>/",
            query_template(config, self.database_name),
            "groupQueryId",
            on_failure,
        )

    def _count_grouped_files(self, storage: StorageStack, on_failure: sfn.IChainable) -> tasks.CallAwsService:
        """The objects the UNLOAD wrote: Athena writes its results "to multiple files in parallel"
        (https://docs.aws.amazon.com/athena/latest/ug/unload.html), as many as its workers made, and the
        transform job spreads them, by key, across its instances; the summary records how many (up to 1000)."""
        count = tasks.CallAwsService.jsonata(
            self, "Count grouped files", service="s3", action="listObjectsV2",
            iam_resources=[storage.bucket_arn], iam_action="s3:ListBucket",
            parameters={"Bucket": "{% $bucket %}", "Prefix": "{% '" + GROUPED_SESSIONS_PREFIX + "' & $run & '/' %}"},
            assign={"groupedFiles": "{% $states.result.KeyCount %}"},
        )
        count.add_catch(on_failure)
        return count

    def _score(self, config: AppConfig, storage: StorageStack, serve_image_uri: str, transform_role: iam.IRole,
               transform: dict, models: str, on_failure: sfn.IChainable) -> sfn.IChainable:
        reads, read_model = read_live_model(self, config)
        create_model = tasks.CallAwsService.jsonata(
            self,
            "Create model",
            service="sagemaker",
            action="createModel",
            iam_resources=[models],
            parameters={
                "ModelName": "{% $jobName %}",
                "ExecutionRoleArn": transform_role.role_arn,
                "PrimaryContainer": primary_container(
                    serve_image_uri, "{% $modelData %}", config.batch_metrics_service
                ),
                "EnableNetworkIsolation": NETWORK_ISOLATION,
                "Tags": resource_tags(config, pipeline=PIPELINE),
            },
        )
        job = sync_job_task(self, "Transform", "createTransformJob", transform,
                            comment="Score the run's sessions with the live model (one output line per session)")
        add_capacity_retries(job)
        delete_model = tasks.CallAwsService.jsonata(
            self, "Delete model", service="sagemaker", action="deleteModel", iam_resources=[models],
            parameters={"ModelName": "{% $jobName %}"}, outputs="{% $states.input %}",
        )
        count_answers = self._athena_query(
            "Count answers", "Athena: the transform's answer lines, scored, fallen back to popular items, refused "
            "(infra/sql/count_answers.sql)", answers_template(self.database_name), "answersQueryId", on_failure)
        read_answers = self._query_results("Read answer counts", "answersQueryId", "answers", on_failure)
        fields = summary_fields(config)
        summary = "{% $string(" + fields + ") %}"
        write_summary = tasks.CallAwsService.jsonata(
            self,
            "Write summary",
            service="s3",
            action="putObject",
            iam_action="s3:PutObject",
            iam_resources=[storage.objects_arn(SCORED_SESSIONS_PREFIX)],
            parameters={
                "Bucket": "{% $bucket %}",
                "Key": "{% '" + SCORED_SESSIONS_PREFIX + "' & $run & '/summary.json' %}",
                "Body": summary,
                "ContentType": "application/json",
            },
        )
        for task in (*reads, create_model, job, delete_model, write_summary):
            task.add_catch(on_failure)
        done = sfn.Succeed.jsonata(self, "Done", outputs="{% " + fields + " %}")
        return (read_model.next(create_model).next(job).next(delete_model).next(count_answers).next(read_answers)
                .next(write_summary).next(done))

    # --- trigger and permissions ------------------------------------------------------------------

    def _trigger(self, config: AppConfig, storage: StorageStack, dead_letter_queue: sqs.IQueue) -> events.Rule:
        rule = events.Rule(
            self,
            "RunMarkerArrived",
            description=f"{INCOMING_EVENTS_PREFIX}<run>/{RUN_MARKER} markers in the GRU4Rec {config.stage} data bucket",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [storage.bucket.bucket_name]},
                    "object": {"key": events.Match.wildcard(f"{INCOMING_EVENTS_PREFIX}*/{RUN_MARKER}")},
                },
            ),
        )
        rule.add_target(targets.SfnStateMachine(self.state_machine, dead_letter_queue=dead_letter_queue,
                                                retry_attempts=8, max_event_age=cdk.Duration.hours(6)))
        return rule

    def _grant(self, storage: StorageStack, transform_role: iam.IRole, job_name_prefix: str, models: str) -> None:
        """Athena runs the queries with the caller's rights: the state machine's role reads the events and the
        answers, writes the grouped lines and the query results, reads the results and the two tables; then it
        runs the transform job."""
        statements = [
            *athena_query_statements(self, self.workgroup_arn, self.database_name, (TABLE, ANSWERS_TABLE), storage),
            iam.PolicyStatement(
                sid="FindQueryFiles",
                actions=["s3:ListBucket"],
                resources=[storage.bucket_arn],
                conditions={
                    "StringLike": {
                        "s3:prefix": [
                            f"{INCOMING_EVENTS_PREFIX}*",
                            f"{GROUPED_SESSIONS_PREFIX}*",
                            f"{ATHENA_RESULTS_PREFIX}*",
                            f"{SCORED_SESSIONS_PREFIX}*",
                        ]
                    }
                },
            ),
            iam.PolicyStatement(
                sid="ReadEventsAndAnswers",
                actions=["s3:GetObject"],
                resources=[storage.objects_arn(INCOMING_EVENTS_PREFIX), storage.objects_arn(SCORED_SESSIONS_PREFIX)],
            ),
            iam.PolicyStatement(
                sid="WriteQueryFiles",
                resources=[storage.objects_arn(GROUPED_SESSIONS_PREFIX), storage.objects_arn(ATHENA_RESULTS_PREFIX)],
                actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
            ),
            *sync_job_statements(
                self, "transform-job", job_name_prefix, "StepFunctionsGetEventsForSageMakerTransformJobsRule"
            ),
            iam.PolicyStatement(
                sid="PassTransformRole",
                actions=["iam:PassRole"],
                resources=[transform_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            iam.PolicyStatement(sid="TagModels", actions=["sagemaker:AddTags"], resources=[models]),
        ]
        for statement in statements:
            self.state_machine.add_to_role_policy(statement)
        reason = "named after the execution's start time and hash: the grant covers this pipeline's names only."
        acknowledge_wildcards(
            self.state_machine.role,
            {
                "*": STATE_MACHINE_SERVICE_WILDCARDS + ".",
                sagemaker_arn(self, "transform-job", f"{job_name_prefix}*"): f"Transform jobs {job_name_prefix}*, "
                + reason,
                models: f"Each transform job's own model {job_name_prefix}*, " + reason,
                **dict.fromkeys(live_model_arns(self), WILDCARD_REASON),
                storage.objects_arn(
                    INCOMING_EVENTS_PREFIX
                ): "Athena reads the run's event files with the caller's rights: get only, this prefix only.",
                storage.objects_arn(GROUPED_SESSIONS_PREFIX): "Athena's UNLOAD writes the run's sessions under "
                "sessions/grouped/<run>/ with the caller's rights: this prefix only.",
                storage.objects_arn(
                    ATHENA_RESULTS_PREFIX
                ): "The workgroup's query results and UNLOAD manifest: this prefix only.",
                storage.objects_arn(
                    SCORED_SESSIONS_PREFIX
                ): "Athena reads the run's answers under sessions/scored/<run>/ "
                "with the caller's rights, and the run puts its summary.json "
                "there: get and put, this prefix only.",
            },
        )



def athena_query_statements(
    scope: Construct, workgroup_arn: str, database: str, tables: tuple[str, ...], storage: StorageStack
) -> list[iam.PolicyStatement]:
    """What a role needs to run Athena queries in ``workgroup_arn`` over ``tables`` of ``database``: Athena reads and
    writes with the caller's rights, so the role also needs the objects the query reads and writes (not given here)."""
    stack = cdk.Stack.of(scope)
    return [
        iam.PolicyStatement(
            sid="RunQueries",
            resources=[workgroup_arn],
            actions=[
                "athena:StartQueryExecution",
                "athena:GetQueryExecution",
                "athena:StopQueryExecution",
                "athena:GetQueryResults",
            ],
        ),
        iam.PolicyStatement(
            sid="ReadTables",
            actions=["glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"],
            resources=[
                stack.format_arn(service="glue", resource="catalog"),
                stack.format_arn(service="glue", resource="database", resource_name=database),
                *(
                    stack.format_arn(service="glue", resource="table", resource_name=f"{database}/{table}")
                    for table in tables
                ),
            ],
        ),
        iam.PolicyStatement(sid="LocateBucket", actions=["s3:GetBucketLocation"], resources=[storage.bucket_arn]),
    ]

def summary_fields(config: AppConfig) -> str:
    """JSONata: what the run read, skipped, grouped and scored, and where, as the summary object and the
    execution's output."""
    bucket = "'s3://' & $bucket & '/"
    skipped = ", ".join(f"'{reason}': $counts.{column}" for reason, column in REASON_COLUMNS.items())
    return (
        "{'run': $run, "
        f"'events': {bucket}{INCOMING_EVENTS_PREFIX}' & $run & '/', "
        f"'grouped': {bucket}{GROUPED_SESSIONS_PREFIX}' & $run & '/', "
        f"'scored': {bucket}{SCORED_SESSIONS_PREFIX}' & $run & '/', "
        f"'rowsRead': $counts.rows_read, 'skippedRows': {{{skipped}}}, "
        f"'maxBadRows': '{config.events_max_bad_rows}', "
        f"'allowedBadRows': {allowed_bad_rows(table_options(config).bad_row_bound)}, "
        "'sessionsGrouped': $counts.sessions, 'groupedFiles': $groupedFiles, 'sessionsScored': "
        "$answers.sessions_scored, "
        "'fallbackSessions': $answers.fallback_sessions, 'errorLines': $answers.error_lines, "
        "'queries': {'countEvents': $countQueryId, 'group': $groupQueryId, 'countAnswers': $answersQueryId}, "
        "'bytesScanned': $bytesScanned, 'job': $jobName, 'modelData': $modelData}"
    )
