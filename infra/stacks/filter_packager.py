"""The Lambda function that packs a batch run's filter list into a copy of the live model's archive.

See ``infra/functions/attach_filters/index.py`` for what it does. It reads the live model's archive
(``models/`` or the first model's object) and the run's list file (``sessions/incoming/``), writes the
copy under ``batch-models/`` (expired by a lifecycle rule once no run can still need it), and logs to
a stage log group under the stage key.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import AppConfig
from infra.layout import BATCH_MODELS_PREFIX, INCOMING_SESSIONS_PREFIX, MODELS_PREFIX
from infra.stacks.promotion_access import read_source_statements, source_read_reasons
from infra.stacks.stage_function import stage_function
from infra.stacks.storage import StorageStack

TIMEOUT = cdk.Duration.minutes(10)
MEMORY_MB = 1024
EPHEMERAL_STORAGE_GIB = 10  # the archive and its copy: a large catalogue's model is a few hundred MB


class FilterPackager(Construct):
    """``function``: model archive + list file -> archive with filters.json, for one batch run."""

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, storage: StorageStack) -> None:
        super().__init__(scope, construct_id)
        models, first_model = storage.objects_arn(MODELS_PREFIX), storage.initial_model.object_arn
        lists, packed = storage.objects_arn(INCOMING_SESSIONS_PREFIX), storage.objects_arn(BATCH_MODELS_PREFIX)
        statements = [
            iam.PolicyStatement(
                sid="ReadModelsAndLists", actions=["s3:GetObject"], resources=[models, first_model, lists]
            ),
            iam.PolicyStatement(sid="WritePackedModels", actions=["s3:PutObject"], resources=[packed]),
            *read_source_statements(config, cdk.Stack.of(self), pull_images=False),
        ]
        self.function = stage_function(
            self, config, storage, code="attach_filters", log_leaf="attach-filters",
            role_description="packs a batch run's filter list into a model archive",
            description="model archive + a batch run's filter list -> archive with filters.json",
            statements=statements, timeout=TIMEOUT, memory_mb=MEMORY_MB,
            ephemeral_storage=cdk.Size.gibibytes(EPHEMERAL_STORAGE_GIB), wildcards={
                **source_read_reasons(config, cdk.Stack.of(self), pull_images=False),
                models: "Training jobs write each model under models/<job>/: read only, this prefix only.",
                lists: "A run's list file lies beside its sessions file under sessions/incoming/: read only, "
                       "this prefix only.",
                packed: "Each run's packed model is written under batch-models/<job>/: put only, this prefix only.",
            })
