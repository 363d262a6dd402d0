"""The daily attribution (``attribution_schedule``, off by default): yesterday's captured answers joined to
what their sessions did next, written as a summary object and published as metrics.

State machine ``gru4rec-<stage>-attribution``, started by EventBridge Scheduler (or by hand, with
``{"day": "YYYY-MM-DD"}``): Name the day (the input's, else the day before the start, UTC) -> List runs
(the folders of ``events/incoming/``) -> Marker times (each run's ``_SUCCESS``) -> Any run? (only runs whose
marker arrived from the day on, with a name the query can hold as a literal; none: Nothing to attribute)
-> Attribute answers (Athena, infra/sql/attribute_answers.sql, run to completion) -> Read attribution ->
Write summary (``reports/attribution/<day>.json``) -> Publish metrics (``GRU4Rec/Attribution``: hit rate,
coverage and unknown share per variant, which the monitoring stack's staleness alarms watch) -> Done.
Any failure: Notify failure -> Failed.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.attribution import attribution_template
from infra.config import AppConfig
from infra.layout import (
    ATHENA_RESULTS_PREFIX,
    CAPTURE_PREFIX,
    CAPTURES_TABLE,
    EVENTS_TABLE,
    INCOMING_EVENTS_PREFIX,
    REPORTS_PREFIX,
    RUN_MARKER,
)
from infra.session_query import RUN_PATTERN
from infra.stacks.event_sessions import EventSessions, athena_query_statements, table_options
from infra.stacks.storage import StorageStack
from infra.stacks.workflow import (
    STATE_MACHINE_SERVICE_WILDCARDS,
    acknowledge_wildcards,
    notify_abnormal_ends,
    notify_and_fail,
    pipeline_state_machine,
)

PIPELINE = "attribution"
METRICS_NAMESPACE = "GRU4Rec/Attribution"
METRICS = {"HitRate": "hitRate", "Coverage": "coverage", "UnknownShare": "unknownShare"}
"""The metrics published per variant (dimensions Stage, Variant), from the summary's rates of the day."""
RUNS_SLOT, DAY_SLOT, START_SLOT = "{runs}", "{day}", "{start}"
COUNT_FIELDS = (
    "answers",
    "attributable",
    "followed",
    "hits",
    "rank_sum",
    "reciprocal_rank_sum",
    "clicks",
    "sessions",
    "requested_items",
    "unknown_items",
    "recommended_items",
    "catalogue_items",
)
DAY_MILLIS = 86_400_000


def query_template(config: AppConfig, database: str) -> str:
    """The attribution of one day, its runs, day and start left as slots for the state machine."""
    return attribution_template(
        f'"{database}"."{CAPTURES_TABLE}"',
        f'"{database}"."{EVENTS_TABLE}"',
        RUNS_SLOT,
        f"'{DAY_SLOT}'",
        f"'{DAY_SLOT}'",
        f"CAST({START_SLOT} AS DOUBLE)",
        f"(CAST({START_SLOT} AS DOUBLE) + 86400E0)",
        config.attribution_minutes,
        table_options(config),
    )


def _row() -> str:
    """JSONata, in the context of one of the query's rows (text values): the row with its counts as numbers."""
    counts = ", ".join(f"'{field}': $number({field})" for field in COUNT_FIELDS)
    return "{'variant': variant, 'modelVersion': model_version, " + counts + "}"


def _rates(name: str) -> str:
    def ratio(numerator: str, denominator: str) -> str:
        return f"({name}.{denominator} > 0 ? {name}.{numerator} / {name}.{denominator} : null)"

    return (
        "{'hitRate': "
        + ratio("hits", "followed")
        + ", 'meanRank': "
        + ratio("rank_sum", "hits")
        + ", 'mrr': "
        + ratio("reciprocal_rank_sum", "followed")
        + ", 'clicksPerAnswer': "
        + ratio("clicks", "followed")
        + ", 'coverage': "
        + ratio("recommended_items", "catalogue_items")
        + ", 'unknownShare': "
        + ratio("unknown_items", "requested_items")
        + "}"
    )


class Attribution(Construct):
    """The state machine and its schedule; ``state_machine``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        config: AppConfig,
        storage: StorageStack,
        events: EventSessions,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config, self.events, self.storage = config, events, storage
        on_failure = notify_and_fail(self, config, topic, PIPELINE, {"day": "$day"})
        attribute = self._attribute(on_failure)
        definition = (
            sfn.Chain.start(self._name_the_day(storage))
            .next(self._list_runs(on_failure))
            .next(self._marker_times(on_failure))
            .next(
                sfn.Choice.jsonata(self, "Any run?")
                .when(
                    sfn.Condition.jsonata("{% $count($runs) = 0 %}"),
                    sfn.Succeed.jsonata(self, "Nothing to attribute", outputs="{% {'day': $day, 'runs': []} %}"),
                )
                .otherwise(attribute)
            )
        )
        self.state_machine = pipeline_state_machine(
            self, config, storage.key, PIPELINE, definition, cdk.Duration.hours(6)
        )
        self._grant(storage)
        notify_abnormal_ends(self, self.state_machine, topic, storage.key)
        scheduler.Schedule(
            self,
            "Schedule",
            schedule_name=f"{config.resource_prefix}-attribution",
            description=f"Attribute GRU4Rec {config.stage}'s captured answers of the day before, "
            f"on {config.attribution_schedule}",
            schedule=scheduler.ScheduleExpression.expression(config.attribution_schedule),
            key=storage.key,
            target=scheduler_targets.StepFunctionsStartExecution(
                self.state_machine,
                input=scheduler.ScheduleTargetInput.from_object({"trigger": "schedule"}),
                retry_attempts=2,
                max_event_age=cdk.Duration.hours(1),
            ),
        )

    def _name_the_day(self, storage: StorageStack) -> sfn.Pass:
        given = "$states.input.day"
        yesterday = f"$fromMillis($toMillis($states.context.Execution.StartTime) - {DAY_MILLIS}, '[Y0001]-[M01]-[D01]')"
        is_day = f"$contains({given}, /^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$/)"
        day = f"($type({given}) = 'string' and {is_day} ? {given} : {yesterday})"
        return sfn.Pass.jsonata(
            self,
            "Name the day",
            assign={
                "bucket": storage.bucket.bucket_name,
                "day": "{% " + day + " %}",
                "dayStart": "{% $toMillis(" + day + " & 'T00:00:00Z') %}",
            },
        )

    def _list_runs(self, on_failure: sfn.IChainable) -> tasks.CallAwsService:
        task = tasks.CallAwsService.jsonata(
            self,
            "List runs",
            service="s3",
            action="listObjectsV2",
            iam_action="s3:ListBucket",
            iam_resources=[self.storage.bucket_arn],
            parameters={"Bucket": "{% $bucket %}", "Prefix": INCOMING_EVENTS_PREFIX, "Delimiter": "/"},
            assign={"folders": "{% [$states.result.CommonPrefixes.Prefix] %}"},
        )
        task.add_catch(on_failure)
        return task

    def _marker_times(self, on_failure: sfn.IChainable) -> sfn.Map:
        """Each run's marker: the runs whose marker arrived from the day's start on, and whose name is a literal."""
        look = tasks.CallAwsService.jsonata(
            self,
            "Read marker",
            service="s3",
            action="listObjectsV2",
            iam_action="s3:ListBucket",
            iam_resources=[self.storage.bucket_arn],
            parameters={
                "Bucket": "{% $states.input.bucket %}",
                "Prefix": "{% $states.input.folder & '" + RUN_MARKER + "' %}",
                "MaxKeys": 1,
            },
            outputs="{% {'folder': $states.input.folder, 'at': $states.result.Contents[0].LastModified} %}",
        )
        pattern = "/^" + INCOMING_EVENTS_PREFIX.replace("/", "\\/") + RUN_PATTERN.pattern + "\\/$/"
        fresh = (
            "$states.result[$exists(at) and $toMillis(at) >= $dayStart and $contains(folder, " + pattern + ")]"
            ".$substringBefore($substringAfter(folder, '" + INCOMING_EVENTS_PREFIX + "'), '/')"
        )
        marker_times = sfn.Map.jsonata(
            self,
            "Marker times",
            items=sfn.ProvideItems.jsonata("{% $folders %}"),
            item_selector={"bucket": "{% $bucket %}", "folder": "{% $states.context.Map.Item.Value %}"},
            max_concurrency=5,
            assign={"runs": "{% [" + fresh + "] %}"},
        )
        marker_times.item_processor(look)
        marker_times.add_catch(on_failure)
        return marker_times

    def _attribute(self, on_failure: sfn.IChainable) -> sfn.IChainable:
        template = query_template(self.config, self.events.database_name)
        escaped = template.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        runs = "$join($map($runs, function($r) { \"'\" & $r & \"'\" }), ', ')"
        query = (
            f'{{% $replace($replace($replace("{escaped}", "{RUNS_SLOT}", {runs}), "{DAY_SLOT}", '
            f'$replace($day, "-", "/")), "{START_SLOT}", $string($dayStart / 1000)) %}}'
        )
        attribute = sfn.CustomState(
            self,
            "Attribute answers",
            state_json={
                "Type": "Task",
                "Comment": "Athena: the day's captured answers joined to their sessions' later events "
                "(infra/sql/attribute_answers.sql)",
                "Resource": f"arn:{cdk.Aws.PARTITION}:states:::athena:startQueryExecution.sync",
                "Arguments": {
                    "QueryString": query,
                    "WorkGroup": self.events.workgroup_name,
                    "QueryExecutionContext": {"Database": self.events.database_name},
                },
                "Assign": {
                    "queryId": "{% $states.result.QueryExecution.QueryExecutionId %}",
                    "bytesScanned": "{% $states.result.QueryExecution.Statistics.DataScannedInBytes %}",
                },
            },
        )
        result = "$states.result.ResultSet"
        read = sfn.CustomState(
            self,
            "Read attribution",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{cdk.Aws.PARTITION}:states:::athena:getQueryResults",
                "Arguments": {"QueryExecutionId": "{% $queryId %}", "MaxResults": 1000},
                "Assign": {
                    "rows": f"{{% [$map({result}.Rows[[1..999]], function($r) {{ $merge($map({result}.ResultSetMetadata"
                    f".ColumnInfo, function($c, $i) {{ {{$c.Name: $r.Data[$i].VarCharValue}} }})) }})"
                    f"[$not($exists(day))].{_row()}] %}}"
                },
            },
        )
        rows = "$map($rows, function($x) { $merge([$x, " + _rates("$x") + "]) })"
        summary = (
            "{'day': $day, 'runs': $runs, 'windowMinutes': "
            + str(self.config.attribution_minutes)
            + ", 'variants': "
            + rows
            + ", 'query': $queryId, 'bytesScanned': $bytesScanned}"
        )
        write = tasks.CallAwsService.jsonata(
            self,
            "Write summary",
            service="s3",
            action="putObject",
            iam_action="s3:PutObject",
            iam_resources=[self.storage.objects_arn(REPORTS_PREFIX)],
            parameters={
                "Bucket": "{% $bucket %}",
                "Key": "{% '" + REPORTS_PREFIX + "attribution/' & $day & '.json' %}",
                "Body": "{% $string(" + summary + ") %}",
                "ContentType": "application/json",
            },
        )
        publish = tasks.CallAwsService.jsonata(
            self,
            "Publish metrics",
            service="cloudwatch",
            action="putMetricData",
            iam_action="cloudwatch:PutMetricData",
            iam_resources=["*"],
            parameters={"Namespace": METRICS_NAMESPACE, "MetricData": "{% " + self._metric_data(rows) + " %}"},
        )
        for task in (attribute, read, write, publish):
            task.add_catch(on_failure)
        done = sfn.Succeed.jsonata(self, "Done", outputs="{% " + summary + " %}")
        return attribute.next(read).next(write).next(publish).next(done)

    def _metric_data(self, rows: str) -> str:
        """JSONata: each variant's rates of the day (those it has) as CloudWatch datums at the day's start."""
        entries = ", ".join(f"{{'n': '{metric}', 'v': $x.{field}}}" for metric, field in METRICS.items())
        return (
            "[$map(" + rows + ", function($x) { [" + entries + "][$exists(v) and $type(v) = 'number'].{"
            "'MetricName': n, 'Value': v, 'Unit': 'None', 'Timestamp': $fromMillis($dayStart), "
            "'Dimensions': [{'Name': 'Stage', 'Value': '" + self.config.stage + "'}, "
            "{'Name': 'Variant', 'Value': $x.variant}]} })] ~> $reduce(function($a, $b) { $append($a, $b) }, [])"
        )

    def _grant(self, storage: StorageStack) -> None:
        """Athena reads with the caller's rights: the captures and the events, the query results."""
        statements = [
            *athena_query_statements(
                self, self.events.workgroup_arn, self.events.database_name, (EVENTS_TABLE, CAPTURES_TABLE), storage
            ),
            iam.PolicyStatement(
                sid="FindFiles",
                actions=["s3:ListBucket"],
                resources=[storage.bucket_arn],
                conditions={
                    "StringLike": {
                        "s3:prefix": [f"{INCOMING_EVENTS_PREFIX}*", f"{CAPTURE_PREFIX}*", f"{ATHENA_RESULTS_PREFIX}*"]
                    }
                },
            ),
            iam.PolicyStatement(
                sid="ReadCapturesAndEvents",
                actions=["s3:GetObject"],
                resources=[storage.objects_arn(CAPTURE_PREFIX), storage.objects_arn(INCOMING_EVENTS_PREFIX)],
            ),
            iam.PolicyStatement(
                sid="WriteQueryResults",
                resources=[storage.objects_arn(ATHENA_RESULTS_PREFIX)],
                actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            ),
        ]
        for statement in statements:
            self.state_machine.add_to_role_policy(statement)
        acknowledge_wildcards(
            self.state_machine.role,
            {
                "*": STATE_MACHINE_SERVICE_WILDCARDS + "; cloudwatch:PutMetricData has no resource-level permissions.",
                storage.objects_arn(
                    CAPTURE_PREFIX
                ): "Athena reads the endpoint's captured answers with the caller's rights: get only, this prefix only.",
                storage.objects_arn(
                    INCOMING_EVENTS_PREFIX
                ): "Athena reads the runs' event files with the caller's rights: get only, this prefix only.",
                storage.objects_arn(ATHENA_RESULTS_PREFIX): "The workgroup's query results: this prefix only.",
                storage.objects_arn(
                    REPORTS_PREFIX
                ): "The day's summary under reports/attribution/: put only, this prefix only.",
            },
        )
