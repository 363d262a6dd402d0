"""The Lambda function that cuts a batch run's sessions file into shards and joins the shards' answers.

See ``infra/functions/shard_sessions/index.py`` for what it does. It reads the sessions file
(``sessions/incoming/``), writes the shards and reads their answers under ``batch-shards/`` (expired by a
lifecycle rule once no run can still need them), writes the run's manifest (``batch-manifests/``) and the
joined answers (``sessions/scored/``), and logs to a stage log group under the stage key.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import AppConfig
from infra.layout import BATCH_MANIFESTS_PREFIX, BATCH_SHARDS_PREFIX, INCOMING_SESSIONS_PREFIX, SCORED_SESSIONS_PREFIX
from infra.stacks.stage_function import stage_function
from infra.stacks.storage import StorageStack

# Lambda's longest run: S3 streams at tens of MB/s to a function of this size, several GB in 15 minutes
TIMEOUT = cdk.Duration.minutes(15)
MEMORY_MB = 2048  # one shard (at most transform_shard_mb) in memory, and more network bandwidth


class SessionSharder(Construct):
    """``function``: sessions file -> shards + manifest (``split``); shards' answers -> one scored file (``join``)."""

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, storage: StorageStack) -> None:
        super().__init__(scope, construct_id)
        incoming, shards = storage.objects_arn(INCOMING_SESSIONS_PREFIX), storage.objects_arn(BATCH_SHARDS_PREFIX)
        manifests, scored = storage.objects_arn(BATCH_MANIFESTS_PREFIX), storage.objects_arn(SCORED_SESSIONS_PREFIX)
        statements = [
            iam.PolicyStatement(sid="ReadSessionsAndAnswers", actions=["s3:GetObject"], resources=[incoming, shards]),
            iam.PolicyStatement(sid="WriteShardsManifestsAndScores", actions=["s3:PutObject"],
                                resources=[shards, manifests, scored]),
            # without ListBucket, S3 answers a missing object with AccessDenied, not NoSuchKey: the join names it
            iam.PolicyStatement(sid="ListShards", actions=["s3:ListBucket"], resources=[storage.bucket_arn],
                                conditions={"StringLike": {"s3:prefix": [f"{BATCH_SHARDS_PREFIX}*"]}}),
            iam.PolicyStatement(sid="AbortUnfinishedJoins", actions=["s3:AbortMultipartUpload"], resources=[scored]),
        ]
        self.function = stage_function(
            self, config, storage, code="shard_sessions", log_leaf="shard-sessions",
            role_description="cuts batch sessions files into shards, joins their answers",
            description="a batch run's sessions file -> shards; their answers -> one scored file",
            statements=statements, timeout=TIMEOUT, memory_mb=MEMORY_MB, wildcards={
                incoming: "A run's sessions file lies under sessions/incoming/: read only, this prefix only.",
                shards: "Each run's shards and their answers lie under batch-shards/<job>/: this prefix only.",
                manifests: "Each run's input manifest is written under batch-manifests/: put only, this prefix only.",
                scored: "A run's joined answers are written under sessions/scored/ (a multipart upload, aborted on "
                        "failure): this prefix only.",
            })
