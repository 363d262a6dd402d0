"""Where a stage's resources are: read once from its stacks' CloudFormation outputs."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from infra.layout import (
    PARTS,
    STAGE_PATTERN,
    stack_name,
    stage_title,
)
from infra.ops.errors import OpsError

if TYPE_CHECKING:  # boto3 takes a while to import: the commands that call AWS import it, --help does not
    import boto3


@dataclass(frozen=True)
class Stack:
    """One stack as described: status is None when the stack does not exist."""

    name: str
    status: str | None
    outputs: Mapping[str, str]


@dataclass(frozen=True)
class Deployment:
    """A deployed stage: the names of its resources, taken from its stacks' outputs.

    Each property raises OpsError naming the stack (and output) it needs when that stack is
    not deployed, so a command fails on exactly the part it uses.
    """

    stage: str
    region: str
    stacks: Mapping[str, Stack]

    @property
    def data_bucket(self) -> str:
        return self.output("Storage", "DataBucketName")

    @property
    def repository_uri(self) -> str:
        return self.output("Image", "RepositoryUri")

    @property
    def endpoint_name(self) -> str:
        return self.output("Endpoint", "EndpointName")

    @property
    def api_url(self) -> str:
        """Base URL of the API, ending in `/` (e.g. `https://.../prod/`)."""
        url = self.output("Api", "ApiUrl")
        return url if url.endswith("/") else url + "/"

    @property
    def api_key_id(self) -> str | None:
        """Id of the stage's API key, or None when the API has none."""
        return self.deployed_stack("Api").outputs.get("ApiKeyId")

    @property
    def training_state_machine_arn(self) -> str:
        return self.output("Training", "TrainingStateMachineArn")

    @property
    def train_window_days(self) -> int:
        """How many days before its start a training run reads (context ``train_window_days``)."""
        return int(self.output("Training", "TrainWindowDays"))

    @property
    def batch_state_machine_arn(self) -> str:
        return self.output("Batch", "BatchStateMachineArn")

    @property
    def events_workgroup(self) -> str:
        return self.output("Batch", "EventsWorkGroup")

    @property
    def events_database(self) -> str:
        return self.output("Batch", "EventsDatabase")

    @property
    def event_read_options(self) -> dict[str, str]:
        """How the events table's rows are read, as ``ReadOptions`` takes them."""
        return json.loads(self.output("Batch", "EventReadOptions"))

    @property
    def attribution_minutes(self) -> int:
        return int(self.output("Batch", "AttributionMinutes"))

    def has(self, part: str) -> bool:
        """Whether the stack of `part` exists (in any state)."""
        return self.stacks[part].status is not None

    def deployed_stack(self, part: str) -> Stack:
        """The stack of `part`, or OpsError naming it when it does not exist."""
        stack = self.stacks[part]
        if stack.status is None:
            raise OpsError(
                f"stack {stack.name} does not exist in {self.region}: deploy stage "
                f"{self.stage!r} first (cdk deploy --all -c stage={self.stage}) or pick "
                "another --stage / --region"
            )
        return stack

    def output(self, part: str, key: str) -> str:
        """Value of output `key` of the stack of `part`, or OpsError saying why there is none."""
        stack = self.deployed_stack(part)
        if key not in stack.outputs:
            raise OpsError(
                f"stack {stack.name} ({stack.status}) has no output {key!r}; "
                f"it has: {', '.join(sorted(stack.outputs)) or 'none'}"
            )
        return stack.outputs[key]


def validate_stage(stage: str) -> str:
    if not STAGE_PATTERN.fullmatch(stage):
        raise OpsError(
            f"stage {stage!r} is not a valid stage name: 1-16 lower-case letters or digits, "
            "starting with a letter (e.g. dev, prod)"
        )
    return stage


def describe_stack(cloudformation, name: str) -> Stack:
    """The stack's status and outputs; status None when it does not exist."""
    try:
        found = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in error.response["Error"].get("Message", ""):
            return Stack(name=name, status=None, outputs={})
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    return Stack(name=name, status=found["StackStatus"], outputs=outputs)


def load_deployment(session: boto3.Session, stage: str, allow_none: bool = False) -> Deployment:
    """Describe every stack of the stage once and gather their outputs.

    Raises OpsError when none of the stage's stacks exists (wrong stage, region or account),
    unless `allow_none` (for cleaning up after `cdk destroy`).
    """
    validate_stage(stage)
    cloudformation = session.client("cloudformation")
    stacks = {part: describe_stack(cloudformation, stack_name(stage, part)) for part in PARTS}
    if not allow_none and all(stack.status is None for stack in stacks.values()):
        raise OpsError(
            f"stage {stage!r} is not deployed in {session.region_name}: no stack "
            f"{stack_name(stage, 'Storage')} (nor any other Gru4Rec-{stage_title(stage)}-* "
            "stack) was found; check --stage, --region and the AWS account"
        )
    return Deployment(stage=stage, region=session.region_name, stacks=stacks)
