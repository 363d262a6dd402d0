"""The app's stacks for one stage, wired together; used by app.py and by the tests."""
from __future__ import annotations

import aws_cdk as cdk

from infra.config import AppConfig, environment
from infra.lint_notes import RoleDependsOnNote
from infra.stacks.api import ApiStack
from infra.stacks.batch import BatchStack
from infra.stacks.endpoint import EndpointStack
from infra.stacks.image import ImageStack
from infra.stacks.monitoring import MonitoringStack
from infra.stacks.storage import StorageStack
from infra.stacks.training import TrainingStack


def build_app(app: cdk.App) -> dict[str, cdk.Stack]:
    """Add the stage's stacks (settings from ``app``'s context) to ``app``; the stacks by short key."""
    config = AppConfig.from_context(app.node)
    env = environment()
    storage = StorageStack(app, config.stack_name("Storage"), config, env=env)
    image = ImageStack(app, config.stack_name("Image"), config, env=env)
    endpoint = EndpointStack(app, config.stack_name("Endpoint"), config, storage, image, env=env)
    api = ApiStack(app, config.stack_name("Api"), config, endpoint, storage.key, env=env)
    training = TrainingStack(app, config.stack_name("Training"), config, storage, image, endpoint, env=env)
    batch = BatchStack(app, config.stack_name("Batch"), config, storage, image, env=env)
    monitoring = MonitoringStack(app, config.stack_name("Monitoring"), config, api.api.rest_api_name, env=env)
    for watched in (endpoint, api, training, batch):  # its alarms notify their topics, its dashboard shows them
        monitoring.add_stack_dependency(watched, "the monitoring stack watches this stack's resources by name")
    cdk.Aspects.of(app).add(RoleDependsOnNote())
    cdk.Tags.of(app).add("project", "gru4rec")
    cdk.Tags.of(app).add("stage", config.stage)
    return {"storage": storage, "image": image, "endpoint": endpoint, "api": api, "training": training,
            "batch": batch, "monitoring": monitoring}
