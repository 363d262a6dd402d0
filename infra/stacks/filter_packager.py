"""The Lambda function that packs a batch run's filter list into a copy of the live model's archive.

See ``infra/functions/attach_filters/index.py`` for what it does. It reads the live model's archive
(``models/`` or the first model's object) and the run's list file (``sessions/incoming/``), writes the
copy under ``batch-models/`` (expired by a lifecycle rule once no run can still need it), and logs to
a stage log group under the stage key.
"""
from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import AppConfig
from infra.layout import BATCH_MODELS_PREFIX, INCOMING_SESSIONS_PREFIX, MODELS_PREFIX
from infra.log_groups import log_streams_arn, stage_log_group
from infra.stacks.storage import StorageStack
from infra.stacks.workflow import acknowledge_wildcards

CODE = Path(__file__).resolve().parent.parent / "functions" / "attach_filters"
TIMEOUT = cdk.Duration.minutes(10)
MEMORY_MB = 1024
EPHEMERAL_STORAGE_GIB = 10  # the archive and its copy: a large catalogue's model is a few hundred MB


class FilterPackager(Construct):
    """``function``: model archive + list file -> archive with filters.json, for one batch run."""

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, storage: StorageStack) -> None:
        super().__init__(scope, construct_id)
        log_group = stage_log_group(self, "Logs", config, storage.key, "attach-filters")
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"GRU4Rec {config.stage}: packs a batch run's filter list into a model archive")
        models, first_model = storage.objects_arn(MODELS_PREFIX), storage.initial_model.object_arn
        lists, packed = storage.objects_arn(INCOMING_SESSIONS_PREFIX), storage.objects_arn(BATCH_MODELS_PREFIX)
        streams = log_streams_arn(self, log_group.log_group_name, "*")
        policy = iam.Policy(self, "Policy", roles=[role], statements=[
            iam.PolicyStatement(sid="ReadModelsAndLists", actions=["s3:GetObject"], resources=[models, first_model, lists]),
            iam.PolicyStatement(sid="WritePackedModels", actions=["s3:PutObject"], resources=[packed]),
            iam.PolicyStatement(sid="UseStageKey", actions=["kms:Decrypt", "kms:GenerateDataKey"],
                                resources=[storage.key.key_arn]),
            iam.PolicyStatement(sid="WriteLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                resources=[streams]),
        ])
        acknowledge_wildcards(policy, {
            models: "Training jobs write each model under models/<job>/: read only, this prefix only.",
            lists: "A run's list file lies beside its sessions file under sessions/incoming/: read only, this prefix only.",
            packed: "Each run's packed model is written under batch-models/<job>/: put only, this prefix only.",
            streams: "Lambda names its log streams by date and instance; the function's own log group only.",
        })
        self.function = lambda_.Function(
            self, "Function", runtime=lambda_.Runtime.PYTHON_3_14, handler="index.handler",
            code=lambda_.Code.from_asset(str(CODE), exclude=["__pycache__", "__init__.py"]),
            role=role, timeout=TIMEOUT, memory_size=MEMORY_MB,
            ephemeral_storage_size=cdk.Size.gibibytes(EPHEMERAL_STORAGE_GIB), log_group=log_group,
            description=f"GRU4Rec {config.stage}: model archive + a batch run's filter list -> archive with filters.json",
        )
        self.function.node.add_dependency(policy)
