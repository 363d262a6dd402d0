"""Stand-ins for what moto cannot answer when a pipeline runs offline (``tests.support.sfn_executor``).

Each answers one operation at the service boundary the way AWS does, from the requests captured
before it, with the figures the test chooses:

- :class:`TrainingJobs`: DescribeTrainingJob of a job that ran to its end (``.sync`` reads it):
  its model artifact under the job's output path, the final metrics the test gives per job;
- :class:`TransformJobs`: DescribeTransformJob of a finished transform job (``.sync``); given an ``answer``
  per line, the job's output too: the objects its manifest lists spread over its instances by key, and
  ``<object>.out`` under its output path, one answer line per input line, as Batch Transform writes them;
- :class:`TuningJobs`: DescribeHyperParameterTuningJob of a finished tuning job (``.sync``) with the best settings
  the test gives;
- :class:`Queries`: GetQueryExecution of a finished Athena query (``.sync``) with its bytes scanned,
  and GetQueryResults (a header row, then one row of the figures the test gives for that query);
- :class:`Endpoint`: UpdateEndpoint (moto has none) and DescribeEndpoint, answering the statuses the
  test scripts, call by call;
- :class:`ModelPackages`: DescribeModelPackage, moto's answer corrected where it is not AWS's (it names no
  ``ModelPackageName``, names its statuses by ARN, and its UpdateModelPackage drops the version's metadata);
- :class:`EndpointDescriptions`: DescribeEndpoint, DescribeEndpointConfig and DescribeModel, moto's answers
  without the empty ``DataCaptureConfig`` and ``VpcConfig`` it adds (what the pipelines read the live model by);
- :class:`Functions`: the Lambda Invoke of the app's functions (the filter packager, the sharder), running
  their handlers (``infra/functions/<name>``) in process against moto's S3.
"""
from __future__ import annotations

import importlib.util
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from tests.support.cfn_values import ACCOUNT, REGION
from tests.support.sfn_executor import Boundary, service_error

FINISHED = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
FUNCTIONS_CODE = Path(__file__).resolve().parents[2] / "infra" / "functions"


def _created(boundary: Boundary, service: str, operation: str, key: str, value: str) -> dict:
    """The one captured ``operation`` request whose ``key`` is ``value`` (the job the Describe call asks about)."""
    matching = [params for params in boundary.calls(service, operation) if params.get(key) == value]
    if not matching:
        raise service_error(
            operation.replace("Create", "Describe"), "ValidationException", f"Requested resource not found: {value}"
        )
    return matching[-1]


class TrainingJobs:
    """DescribeTrainingJob of finished jobs; ``metrics[job name suffix or ""]`` are its final metrics
    ({name: value}), ``failed`` the names' suffixes of jobs that end Failed."""

    def __init__(self, boundary: Boundary, metrics: dict[str, dict[str, float]] | None = None,
                 failed: tuple[str, ...] = ()):
        self.boundary, self.metrics, self.failed = boundary, metrics or {}, failed
        boundary.stand_in("sagemaker", "DescribeTrainingJob", self.describe)

    def _pick(self, name: str, table) -> Any:
        suffixes = sorted((suffix for suffix in table if name.endswith(suffix)), key=len, reverse=True)
        return suffixes[0] if suffixes else None

    def describe(self, params: dict) -> dict:
        name = params["TrainingJobName"]
        job = _created(self.boundary, "sagemaker", "CreateTrainingJob", "TrainingJobName", name)
        failed = any(name.endswith(suffix) for suffix in self.failed)
        chosen = self._pick(name, self.metrics)
        metrics = self.metrics[chosen] if chosen is not None else {}
        answer = {
            "TrainingJobName": name,
            "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}",
            "TrainingJobStatus": "Failed" if failed else "Completed",
            "SecondaryStatus": "Failed" if failed else "Completed",
            "ModelArtifacts": {
                "S3ModelArtifacts": f"{job['OutputDataConfig']['S3OutputPath']}{name}/output/model.tar.gz"
            },
            "HyperParameters": job.get("HyperParameters", {}),
            "AlgorithmSpecification": job["AlgorithmSpecification"],
            "RoleArn": job["RoleArn"],
            "InputDataConfig": job["InputDataConfig"],
            "OutputDataConfig": job["OutputDataConfig"],
            "ResourceConfig": job["ResourceConfig"],
            "StoppingCondition": job["StoppingCondition"],
            "CreationTime": FINISHED,
            "TrainingEndTime": FINISHED,
            "FinalMetricDataList": [
                {"MetricName": metric, "Value": value, "Timestamp": FINISHED} for metric, value in metrics.items()
            ],
        }
        if failed:
            answer["FailureReason"] = "AlgorithmError: the stand-in job failed"
        return answer


class TuningJobs:
    """DescribeHyperParameterTuningJob of a finished tuning job (``.sync``): the request it was created with, and a best
    training job tuned with ``best`` ({name: value}); ``failed``: every tuning job ends Failed."""

    def __init__(self, boundary: Boundary, best: dict[str, str], objective: float = 0.33, failed: bool = False):
        self.boundary, self.best, self.objective, self.failed = boundary, best, objective, failed
        boundary.stand_in("sagemaker", "DescribeHyperParameterTuningJob", self.describe)

    def describe(self, params: dict) -> dict:
        name = params["HyperParameterTuningJobName"]
        job = _created(self.boundary, "sagemaker", "CreateHyperParameterTuningJob", "HyperParameterTuningJobName", name)
        trial = f"{name}-003-0a1b2c3d"
        config = job["HyperParameterTuningJobConfig"]
        answer = {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hyper-parameter-tuning-job/{name}",
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": job["TrainingJobDefinition"],
            "HyperParameterTuningJobStatus": "Failed" if self.failed else "Completed",
            "CreationTime": FINISHED,
            "TrainingJobStatusCounters": {"Completed": config["ResourceLimits"]["MaxNumberOfTrainingJobs"]},
            "ObjectiveStatusCounters": {"Succeeded": config["ResourceLimits"]["MaxNumberOfTrainingJobs"]},
        }
        if "WarmStartConfig" in job:
            answer["WarmStartConfig"] = job["WarmStartConfig"]
        if self.failed:
            answer["FailureReason"] = "the stand-in tuning job failed"
            return answer
        answer["BestTrainingJob"] = {
            "TrainingJobName": trial, "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{trial}",
            "CreationTime": FINISHED, "TrainingJobStatus": "Completed", "TunedHyperParameters": self.best,
            "FinalHyperParameterTuningJobObjectiveMetric": {
                "Type": "Maximize", "MetricName": config["HyperParameterTuningJobObjective"]["MetricName"],
                "Value": self.objective},
            "ObjectiveStatus": "Succeeded",
        }
        return answer


class TransformJobs:
    """DescribeTransformJob of finished transform jobs (``failed``: every job ends Failed). With ``answer``
    (one input line -> its output line), a completed job has written its output the first time it is described;
    ``spread[job]`` is then the objects each instance took, instance by instance."""

    def __init__(self, boundary: Boundary, failed: bool = False, answer: Callable[[bytes], bytes] | None = None):
        self.boundary, self.failed, self.answer = boundary, failed, answer
        self.spread: dict[str, list[list[str]]] = {}
        boundary.stand_in("sagemaker", "DescribeTransformJob", self.describe)

    def _run(self, job: dict) -> None:
        """Batch Transform's work on a manifest input: its objects mapped to instances by key (round robin over
        the sorted keys), each object's lines answered into ``<S3OutputPath>/<name>.out``, in the object's order."""
        s3 = boto3.client("s3", region_name=REGION)
        source = job["TransformInput"]["DataSource"]["S3DataSource"]
        assert source["S3DataType"] == "ManifestFile", source
        bucket, key = source["S3Uri"].removeprefix("s3://").split("/", 1)
        prefix, *names = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        instances = [[] for _ in range(job["TransformResources"]["InstanceCount"])]
        for index, name in enumerate(sorted(names)):
            instances[index % len(instances)].append(name)
        self.spread[job["TransformJobName"]] = instances
        out_bucket, out_prefix = job["TransformOutput"]["S3OutputPath"].removeprefix("s3://").split("/", 1)
        in_bucket, in_prefix = prefix["prefix"].removeprefix("s3://").split("/", 1)
        for name in (name for taken in instances for name in taken):
            lines = s3.get_object(Bucket=in_bucket, Key=in_prefix + name)["Body"].read().splitlines(keepends=True)
            s3.put_object(Bucket=out_bucket, Key=f"{out_prefix.rstrip('/')}/{name}.out",
                          Body=b"".join(self.answer(line) for line in lines))

    def describe(self, params: dict) -> dict:
        name = params["TransformJobName"]
        job = _created(self.boundary, "sagemaker", "CreateTransformJob", "TransformJobName", name)
        answer = {
            "TransformJobName": name,
            "TransformJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:transform-job/{name}",
            "TransformJobStatus": "Failed" if self.failed else "Completed",
            "ModelName": job["ModelName"],
            "TransformInput": job["TransformInput"],
            "TransformOutput": job["TransformOutput"],
            "TransformResources": job["TransformResources"],
            "CreationTime": FINISHED,
            "TransformEndTime": FINISHED,
        }
        for key in ("BatchStrategy", "MaxPayloadInMB", "MaxConcurrentTransforms", "Environment", "ModelClientConfig"):
            if key in job:
                answer[key] = job[key]
        if self.failed:
            answer["FailureReason"] = "ClientError: the stand-in job failed"
        elif self.answer is not None and name not in self.spread:
            self._run(job)
        return answer


class Queries:
    """Finished Athena queries: ``results`` maps a text the query contains to its one row of figures
    ({column: number}); each query scanned ``bytes_scanned``."""

    def __init__(self, boundary: Boundary, results: dict[str, dict[str, int]], bytes_scanned: int = 1000):
        self.boundary, self.results, self.bytes_scanned = boundary, results, bytes_scanned
        boundary.stand_in("athena", "GetQueryExecution", self.describe)
        boundary.stand_in("athena", "GetQueryResults", self.query_results)

    def _started(self, query_id: str) -> dict:
        for request in self.boundary.requests:
            if (request.service, request.operation) == ("athena", "StartQueryExecution") and \
                    (request.response or {}).get("QueryExecutionId") == query_id:
                return request.params
        raise service_error("GetQueryExecution", "InvalidRequestException", f"QueryExecution {query_id} was not found")

    def describe(self, params: dict) -> dict:
        query_id = params["QueryExecutionId"]
        started = self._started(query_id)
        return {
            "QueryExecution": {
                "QueryExecutionId": query_id,
                "Query": started["QueryString"],
                "StatementType": "DML",
                "WorkGroup": started.get("WorkGroup", "primary"),
                "QueryExecutionContext": started.get("QueryExecutionContext", {}),
                "Status": {"State": "SUCCEEDED", "SubmissionDateTime": FINISHED, "CompletionDateTime": FINISHED},
                "Statistics": {"DataScannedInBytes": self.bytes_scanned, "EngineExecutionTimeInMillis": 1200},
            }
        }

    def query_results(self, params: dict) -> dict:
        query = self._started(params["QueryExecutionId"])["QueryString"]
        matching = [row for text, row in self.results.items() if text in query]
        if len(matching) != 1:
            raise AssertionError(f"{len(matching)} stand-in results match the query {query[:120]!r}")
        (row,) = matching
        header = {"Data": [{"VarCharValue": column} for column in row]}
        values = {"Data": [{"VarCharValue": str(value)} for value in row.values()]}
        return {
            "ResultSet": {
                "Rows": [header, values],
                "ResultSetMetadata": {
                    "ColumnInfo": [
                        {
                            "Name": column,
                            "Label": column,
                            "Type": "bigint",
                            "CatalogName": "hive",
                            "SchemaName": "",
                            "TableName": "",
                        }
                        for column in row
                    ]
                },
            },
            "UpdateCount": 0,
        }


class Endpoint:
    """UpdateEndpoint and DescribeEndpoint of one endpoint. ``statuses`` are DescribeEndpoint's answers once the
    pipeline has made an endpoint configuration, call by call (the last repeats): (status, configuration), where the
    configuration "new" means the one the last UpdateEndpoint asked for. Before that (the pipeline reading the live
    model) DescribeEndpoint is moto's endpoint, the one ``Stage.live_model`` put live."""

    def __init__(self, boundary: Boundary, name: str, statuses: list[tuple[str, str]],
                 failure_reason: str | None = None):
        self.boundary, self.name, self.statuses, self.failure_reason = boundary, name, list(statuses), failure_reason
        self.described = 0
        boundary.stand_in("sagemaker", "UpdateEndpoint", self.update)
        boundary.stand_in("sagemaker", "DescribeEndpoint", self.describe)

    def _check_name(self, operation: str, params: dict) -> None:
        if params["EndpointName"] != self.name:
            raise service_error(
                operation, "ValidationException", f'Could not find endpoint "{params["EndpointName"]}".'
            )

    def update(self, params: dict) -> dict:
        self._check_name("UpdateEndpoint", params)
        return {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{self.name}"}

    def describe(self, params: dict) -> dict:
        self._check_name("DescribeEndpoint", params)
        if not self.boundary.calls("sagemaker", "CreateEndpointConfig"):
            # the pipeline's read of the live model, before it makes a configuration to roll out: moto's endpoint
            return _described_by_moto("describe_endpoint")(params)
        status, config = self.statuses[min(self.described, len(self.statuses) - 1)]
        self.described += 1
        updates = self.boundary.calls("sagemaker", "UpdateEndpoint")
        if config == "new":
            config = updates[-1]["EndpointConfigName"] if updates else "no-update-was-made"
        answer = {
            "EndpointName": self.name,
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{self.name}",
            "EndpointConfigName": config,
            "EndpointStatus": status,
            "CreationTime": FINISHED,
            "LastModifiedTime": FINISHED,
        }
        if self.failure_reason and status != "Updating":
            answer["FailureReason"] = self.failure_reason
        return answer


class Functions:
    """Lambda Invoke of the app's functions, ``{function ARN: folder under infra/functions}``: the function's own
    handler runs here against moto's S3; an exception becomes an Unhandled function error, as Lambda reports it."""

    def __init__(self, boundary: Boundary, functions: dict[str, str]):
        self.handlers = {arn: self._load(folder) for arn, folder in functions.items()}
        boundary.stand_in("lambda", "Invoke", self.invoke)

    @staticmethod
    def _load(folder: str):
        spec = importlib.util.spec_from_file_location(f"{folder}_stand_in", FUNCTIONS_CODE / folder / "index.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.handler

    def invoke(self, params: dict) -> dict:
        if params["FunctionName"] not in self.handlers:
            raise service_error(
                "Invoke", "ResourceNotFoundException", f"Function not found: {params['FunctionName']}", 404
            )
        payload = params.get("Payload") or b"{}"
        event = json.loads(payload.decode() if isinstance(payload, bytes) else payload)
        try:
            result, error = self.handlers[params["FunctionName"]](event), None
        except Exception as raised:  # noqa: BLE001 - Lambda reports any exception of the handler
            result, error = {"errorMessage": str(raised), "errorType": type(raised).__name__}, "Unhandled"
        answer = {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": io.BytesIO(json.dumps(result).encode())}
        if error:
            answer["FunctionError"] = error
        return answer


class ModelPackages:
    """DescribeModelPackage of the registry's versions: moto's answer, with what moto gets wrong put right.

    AWS names a versioned package after its group in ``ModelPackageName`` and in its status items (moto leaves the
    name out and puts the ARN in the items, which the output shape refuses), and keeps a version's
    CustomerMetadataProperties through an UpdateModelPackage that does not name them (moto drops them): the
    metadata comes back from the CreateModelPackage request that registered the version (the group's n-th).
    ``registered``: the CreateModelPackage requests made outside the state machines (the operator CLI's), in order,
    before any of theirs.
    """

    def __init__(self, boundary: Boundary, registered: tuple[dict, ...] = ()):
        self.boundary = boundary
        self.registered = list(registered)
        boundary.stand_in("sagemaker", "DescribeModelPackage", self.describe)

    def describe(self, params: dict) -> dict:
        answer = boto3.client("sagemaker", region_name=REGION).describe_model_package(**params)
        answer.pop("ResponseMetadata", None)
        group = answer["ModelPackageGroupName"]
        answer["ModelPackageName"] = group
        for kind in ("ValidationStatuses", "ImageScanStatuses"):
            for item in answer.get("ModelPackageStatusDetails", {}).get(kind, []):
                item["Name"] = group
        created = [request for request in [*self.registered, *self.boundary.calls("sagemaker", "CreateModelPackage")]
                   if request["ModelPackageGroupName"] == group]
        registered = created[answer["ModelPackageVersion"] - 1] if len(created) >= answer["ModelPackageVersion"] else {}
        if "CustomerMetadataProperties" in registered:
            answer["CustomerMetadataProperties"] = registered["CustomerMetadataProperties"]
        return answer


class EndpointDescriptions:
    """DescribeEndpoint, DescribeEndpointConfig and DescribeModel: moto's answers without the empty
    ``DataCaptureConfig`` and ``VpcConfig`` moto adds where none was configured (AWS leaves them out; their members
    are required, so the output shape refuses them empty). Everything else is moto's."""

    OPERATIONS = {"DescribeEndpoint": "describe_endpoint", "DescribeEndpointConfig": "describe_endpoint_config",
                  "DescribeModel": "describe_model"}

    def __init__(self, boundary: Boundary):
        for operation, method in self.OPERATIONS.items():
            boundary.stand_in("sagemaker", operation, _described_by_moto(method))


def _described_by_moto(method: str) -> Callable[[dict], dict]:
    """Moto's answer to a SageMaker Describe, without the empty configurations it adds (``EndpointDescriptions``)."""
    def answer(params: dict) -> dict:
        described = getattr(boto3.client("sagemaker", region_name=REGION), method)(**params)
        described.pop("ResponseMetadata", None)
        return {key: value for key, value in described.items()
                if key not in ("DataCaptureConfig", "VpcConfig") or value}
    return answer
