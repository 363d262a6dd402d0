"""Run a synthesized state machine end to end, offline, and see every request it makes.

moto executes Amazon States Language with LocalStack's interpreter once asked to
(``execute_state_machine``). :func:`offline_aws` makes that usable for the pipelines, with the few
changes this module alone owns:

- JSONata: moto leaves its evaluator hook (``moto.stepfunctions.parser.asl.jsonata.jsonata._eval_jsonata``)
  empty and declares ``$hash`` as a placeholder string; jsonata-python is plugged in, with Step
  Functions' ``$hash`` (hex digest);
- Wait states return at once; the seconds each asked for are kept (``Boundary.waits``);
- ``.sync`` tasks of services moto's interpreter only forwards (SageMaker, Athena): the start call is
  made, then the finished job is read with its Describe call (DescribeTrainingJob, DescribeTransformJob,
  DescribeHyperParameterTuningJob, GetQueryExecution), as Step Functions does once the job ends. A job that ends Failed
  or Stopped fails the task with ``States.TaskFailed`` and the Describe response as the cause;
- every AWS call the interpreter makes goes through :class:`Boundary`: recorded (service, operation, API
  parameters, response), then answered by a stand-in the test installed for it, or by moto. Parameters
  are renamed to the API's own member names where they differ only in case (moto's interpreter passes
  the ``states:startExecution`` integration's StateMachineArn/Input/Name on as they are written).

Left as moto has it: a workflow variable holding a string with a double quote breaks the expression
moto composes (it quotes variables' strings without escaping them); Step Functions has no such limit.

:class:`Pipelines` creates the app's state machines in moto from a synthesized template (intrinsics
resolved by ``tests.support.cfn_values``) and runs executions to their end (:class:`Run`).
"""
from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from unittest import mock

import boto3
import jsonata
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.support.cfn_values import ACCOUNT, REGION, Stacks

HOOK_MODULE = "moto.stepfunctions.parser.asl.jsonata.jsonata"
HOOK_NAME = "_eval_jsonata"
FUNCTIONS_MODULE = "moto.stepfunctions.parser.asl.component.intrinsic.jsonata"
FACTORY_MODULE = "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_factory"
UNSUPPORTED_MODULE = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported"
)
WAIT_MODULE = "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function"
PARSER_PACKAGE = "moto.stepfunctions.parser."
TASKS_PACKAGE = "moto.stepfunctions.parser.asl.component.state.exec.state_task"
BOTO_CLIENT_MODULE = "moto.stepfunctions.parser.asl.utils.boto_client"
RESOURCE_MODULE = "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/state-machine"
# an execution that has not ended after this many seconds of real time is a harness fault, not a result
EXECUTION_LIMIT_S = 300

# .sync start operation -> (the Describe operation, its parameter, where the start call's request or response holds it)
SYNC_DESCRIBE = {
    "CreateTrainingJob": ("DescribeTrainingJob", "TrainingJobName", "request"),
    "CreateTransformJob": ("DescribeTransformJob", "TransformJobName", "request"),
    "CreateHyperParameterTuningJob": ("DescribeHyperParameterTuningJob", "HyperParameterTuningJobName", "request"),
    "StartQueryExecution": ("GetQueryExecution", "QueryExecutionId", "response"),
}
FAILED_JOB_STATUSES = {"Failed", "Stopped", "FAILED", "CANCELLED"}


def evaluate_jsonata(expression: str) -> Any:
    """moto's evaluator hook: the whole expression (variables declared inside it) with jsonata-python."""
    compiled = jsonata.Jsonata(expression)
    compiled.register_lambda("hash", _hash)
    return compiled.evaluate(None)


def _hash(value: str, algorithm: str) -> str:
    """Step Functions' ``$hash``: the hex digest of the UTF-8 text (https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html)."""
    names = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
    return hashlib.new(names[algorithm], value.encode()).hexdigest()


@dataclass
class Request:
    service: str
    operation: str
    params: dict
    response: Any = None


StandIn = Callable[[dict], dict]


@dataclass
class Boundary:
    """The AWS calls of the interpreter: ``requests`` in order, ``stand_ins`` by (service, operation)
    (service as boto3 names it: "sagemaker", "athena", "lambda", ...), ``waits`` in seconds."""

    requests: list[Request] = field(default_factory=list)
    stand_ins: dict[tuple[str, str], StandIn] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)

    def stand_in(self, service: str, operation: str, answer: StandIn) -> None:
        self.stand_ins[(service, operation)] = answer

    def calls(self, service: str, operation: str) -> list[dict]:
        return [
            request.params for request in self.requests if (request.service, request.operation) == (service, operation)
        ]

    def operations(self) -> list[str]:
        return [f"{request.service}:{request.operation}" for request in self.requests]

    def client(self, client):
        return _BoundaryClient(client, self)


class _BoundaryClient:
    """A boto3 client whose API methods record each call and ask the stand-in for it before moto."""

    def __init__(self, client, boundary: Boundary):
        self._client, self._boundary = client, boundary

    def method_for(self, operation: str) -> Callable:
        """The recording method of API operation ``operation`` (DescribeTrainingJob, ...)."""
        (name,) = [name for name, api in self._client.meta.method_to_api_mapping.items() if api == operation]
        return getattr(self, name)

    def __getattr__(self, name: str):
        method = getattr(self._client, name)
        operation = self._client.meta.method_to_api_mapping.get(name)
        if operation is None:
            return method
        service = self._client.meta.service_model.service_name

        def call(**params):
            request = Request(service, operation, _member_names(self._client, operation, params))
            self._boundary.requests.append(request)
            answer = self._boundary.stand_ins.get((service, operation))
            request.response = answer(request.params) if answer else method(**request.params)
            return _json_dates(request.response)
        return call


def _json_dates(value: Any) -> Any:
    """``value`` with its timestamps as ISO 8601 text, as Step Functions passes an answer on (moto's
    interpreter would keep boto3's datetimes, which moto's own execution output cannot serialise)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _json_dates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_dates(item) for item in value]
    return value


def _member_names(client, operation: str, params: dict) -> dict:
    """``params`` under the API's own member names: an optimised integration's arguments are written
    StateMachineArn, Input, Name, and Step Functions calls StartExecution with stateMachineArn, input, name."""
    shape = client.meta.service_model.operation_model(operation).input_shape
    members = shape.members if shape is not None else {}
    by_lower = {name.lower(): name for name in members}
    return {key if key in members else by_lower.get(key.lower(), key): value for key, value in params.items()}


def service_error(operation: str, code: str, message: str, status: int = 400) -> ClientError:
    """The error a boto3 client raises for a refused call."""
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "stand-in"}}, operation)


@contextmanager
def offline_aws() -> Iterator[Boundary]:
    """moto with state machine execution on and the changes above; yields the :class:`Boundary`."""
    boundary = Boundary()
    with ExitStack() as stack:
        stack.enter_context(mock.patch.dict("os.environ", {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                                                           "AWS_SECRET_ACCESS_KEY": "testing"}))
        stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
        for patch in _interpreter_patches(boundary):
            stack.enter_context(patch)
        yield boundary


def _interpreter_patches(boundary: Boundary) -> list:
    hook = importlib.import_module(HOOK_MODULE)
    if getattr(hook, HOOK_NAME, "missing") is not None:
        raise RuntimeError(f"moto's JSONata hook {HOOK_MODULE}.{HOOK_NAME} is not the empty hook the executor fills: "
                           "update tests/support/sfn_executor.py for this moto")
    declarations = importlib.import_module(FUNCTIONS_MODULE)._DECLARATION_BY_VARIABLE_REFERENCE
    factory = importlib.import_module(FACTORY_MODULE)
    wait = importlib.import_module(WAIT_MODULE)
    patches = [
        mock.patch.object(hook, HOOK_NAME, evaluate_jsonata),
        mock.patch.dict(
            declarations, {name: body for name, body in declarations.items() if name != "$hash"}, clear=True
        ),
        mock.patch.object(
            wait.WaitFunction, "_wait_interval", lambda _self, env, wait_seconds: boundary.waits.append(wait_seconds)
        ),
        mock.patch.object(factory, "StateTaskServiceUnsupported", _sync_jobs_class(boundary)),
    ]
    return patches + [mock.patch.object(module, "boto_client_for", _through(boundary, module.boto_client_for))
                      for module in _client_makers()]


def _client_makers() -> list:
    """The interpreter's modules that make boto3 clients (each imported its own ``boto_client_for``)."""
    package = importlib.import_module(TASKS_PACKAGE)
    for info in pkgutil.walk_packages(package.__path__, TASKS_PACKAGE + "."):
        importlib.import_module(info.name)
    return [module for name, module in list(sys.modules.items())
            if name.startswith(PARSER_PACKAGE) and name != BOTO_CLIENT_MODULE and hasattr(module, "boto_client_for")]


def _through(boundary: Boundary, make_client: Callable) -> Callable:
    return lambda *args, **kwargs: boundary.client(make_client(*args, **kwargs))


def _sync_jobs_class(boundary: Boundary) -> type:
    """The forwarding task class, with ``.sync``: start the job, then its Describe response once it ended."""
    unsupported = importlib.import_module(UNSUPPORTED_MODULE)
    resource = importlib.import_module(RESOURCE_MODULE)

    class SyncJobs(unsupported.StateTaskServiceUnsupported):
        def __init__(self):
            super().__init__()
            # the interpreter gives a .sync task a task token too, as for WaitForTaskToken
            self._supported_integration_patterns.add(resource.ResourceCondition.Sync)

        def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters, state_credentials):
            started = env.stack[-1]
            client = boto3.client(self._get_boto_service_name(), region_name=resource_runtime_part.region)
            api = client.meta.method_to_api_mapping[self._get_boto_service_action()]
            describe, key, source = SYNC_DESCRIBE[api]
            value = (normalised_parameters if source == "request" else started)[key]
            method = boundary.client(client).method_for(describe)

            def finished():
                described = method(**{key: value})
                described.pop("ResponseMetadata", None)
                if _job_status(described) in FAILED_JOB_STATUSES:
                    raise _JobFailed(json.dumps(described, default=str))
                return described
            return finished

        def _from_error(self, env, ex):
            if isinstance(ex, _JobFailed):
                return _task_failed(env, self, str(ex))
            return super()._from_error(env=env, ex=ex)

    return SyncJobs


def _job_status(described: dict) -> str | None:
    return (described.get("TrainingJobStatus") or described.get("TransformJobStatus")
            or described.get("HyperParameterTuningJobStatus")
            or described.get("QueryExecution", {}).get("Status", {}).get("State"))


def _task_failed(env, task, cause: str):
    """The interpreter's failure event for a task that failed with ``States.TaskFailed``."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    error = StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed)
    return FailureEvent(env=env, error_name=error, event_type=HistoryEventType.TaskFailed, event_details=EventDetails(
        taskFailedEventDetails=TaskFailedEventDetails(error=error.error_name, cause=cause,
                                                      resource=task._get_sfn_resource(),
                                                      resourceType=task._get_sfn_resource_type())))


class _JobFailed(Exception):
    """A .sync job that ended Failed or Stopped: the message is its Describe response."""


@dataclass
class Run:
    """One execution, ended: its status, output (parsed), error and cause, history events, and the
    boundary's requests and waits made during it."""

    status: str
    output: Any
    error: str | None
    cause: str | None
    history: list[dict]
    requests: list[Request]
    waits: list[float]

    def states_entered(self) -> list[str]:
        return [
            event["stateEnteredEventDetails"]["name"] for event in self.history if "stateEnteredEventDetails" in event
        ]

    def calls(self, service: str, operation: str) -> list[dict]:
        return [
            request.params for request in self.requests if (request.service, request.operation) == (service, operation)
        ]


class Pipelines:
    """The app's state machines (from ``templates``, stack name -> template) created in moto on demand."""

    def __init__(self, templates: dict[str, dict], boundary: Boundary):
        self.stacks, self.boundary = Stacks(templates), boundary
        self.client = boto3.client("stepfunctions", region_name=REGION)
        self._arns: dict[str, str] = {}
        self._started = 0

    def machines(self) -> dict[str, tuple[str, dict]]:
        """State machine name -> (stack name, resource properties)."""
        found = {}
        for stack, template in self.stacks.templates.items():
            for resource in template["Resources"].values():
                if resource["Type"] == "AWS::StepFunctions::StateMachine":
                    properties = resource["Properties"]
                    found[properties["StateMachineName"]] = (stack, properties)
        return found

    def definition(self, name: str) -> dict:
        """The definition of the state machine ``name`` as deployed (references resolved)."""
        stack, properties = self.machines()[name]
        raw = self.stacks.resolve(stack, properties["DefinitionString"])
        substitutions = self.stacks.resolve(stack, properties.get("DefinitionSubstitutions", {}))
        for key, value in substitutions.items():
            raw = raw.replace("${" + key + "}", str(value))
        return json.loads(raw)

    def create(self, name: str, edit: Callable[[dict], None] | None = None) -> str:
        """Create ``name`` in moto (``edit`` may change its definition first); returns its ARN."""
        definition = self.definition(name)
        if edit:
            edit(definition)
        arn = self.client.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE_ARN,
                                               type="STANDARD")["stateMachineArn"]
        self._arns[name] = arn
        return arn

    def create_once(self, name: str) -> str:
        """The ARN of ``name`` in moto, created as synthesized unless it was created before."""
        return self._arns.get(name) or self.create(name)

    def run(self, name: str, execution_input: Any = None, execution_name: str | None = None) -> Run:
        """Start an execution of ``name`` (created first if it is not yet) and wait for its end."""
        arn = self.create_once(name)
        first_request, first_wait = len(self.boundary.requests), len(self.boundary.waits)
        self._started += 1
        started = self.client.start_execution(stateMachineArn=arn, input=json.dumps(execution_input or {}),
                                              name=execution_name or f"run-{self._started}")
        return self.wait_for(started["executionArn"], first_request, first_wait)

    def wait_for(self, execution_arn: str, first_request: int = 0, first_wait: int = 0) -> Run:
        deadline = time.monotonic() + EXECUTION_LIMIT_S
        while (described := self.client.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{execution_arn} still running after {EXECUTION_LIMIT_S} s")
            time.sleep(0.02)
        history = self.client.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        output = described.get("output")
        return Run(status=described["status"], output=json.loads(output) if output else None,
                   error=described.get("error"), cause=described.get("cause"), history=history,
                   requests=self.boundary.requests[first_request:], waits=self.boundary.waits[first_wait:])
