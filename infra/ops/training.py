"""Training: start the training state machine, or run a one-off training job, and upload data.

The state machine trains, checks the quality gate and rolls the endpoint. A one-off job only
trains (same image, role, instance, data window and output place as the state machine's job) and
leaves the endpoint alone: for trying hyperparameters.

Uploaded training data goes into one day folder, ``training/events/dt=YYYY-MM-DD/``, by default
yesterday's (UTC). A run's window is the last ``train_window_days`` whole UTC days before its start,
so it never holds the run's own day: yesterday is the last day of the window of a run started
today, and stays in the window of the runs of the next ``train_window_days - 1`` days. The folder's
date is not the events' own: the file is not split by its timestamps (validation takes the last
``valid_days`` by the events' timestamps anyway, and the built-in data's timestamps lie in the past,
outside any window), so a file of any period trains as the day it is filed under.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from infra.instance_types import is_gpu_training_type
from infra.layout import (
    CHECKPOINTS_PREFIX,
    MODELS_PREFIX,
    RUN_MARKER,
    TRAINING_EVENTS_PREFIX,
    TRAINING_TEST_PREFIX,
    one_off_job_prefix,
)
from infra.ops.errors import OpsError
from model_code.gru4rec.hyperparameters import check_hyperparameters
from model_code.gru4rec.params import ParamError

_DAY_NAME = re.compile(r"\d{4}-\d{2}-\d{2}\b")
"""A daily file's name: its day first (``2026-11-29.csv.gz``, ``2026-11-29_events.tsv``)."""
CHANNEL_PREFIXES = {"train": TRAINING_EVENTS_PREFIX, "test": TRAINING_TEST_PREFIX}
FINAL_EXECUTION_STATES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
FINAL_JOB_STATES = ("Completed", "Failed", "Stopped")
CREATE_TRAINING_JOB = "sagemaker:createTrainingJob"


def parse_hyperparameters(pairs: list[str]) -> dict[str, str]:
    """`["epochs=3", "loss=bpr-max"]` -> `{"epochs": "3", "loss": "bpr-max"}` (strings, as
    SageMaker passes them to the container), each name and value checked by the container's own
    checks (model_code.gru4rec.hyperparameters), so a typo fails here rather than in the training job."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        name = name.strip()
        if not equals or not name or not value.strip():
            raise OpsError(f"hyperparameter {pair!r} is not of the form name=value")
        if name in parsed:
            raise OpsError(f"hyperparameter {name!r} is given twice")
        parsed[name] = value.strip()
    try:
        check_hyperparameters(parsed)
    except ParamError as error:
        raise OpsError(f"bad hyperparameter: {error}") from None
    return parsed


def execution_name(now: datetime | None = None) -> str:
    """A readable, unique-enough execution name: `train-20261129-021710`."""
    return (now or datetime.now(UTC)).strftime("train-%Y%m%d-%H%M%S")


def upload_day(text: str | None = None, now: datetime | None = None) -> date:
    """The day folder ``--upload-data`` files into: ``--day`` as given, else yesterday (UTC), the last day of the
    window of a run started now."""
    if text is not None:
        from model_code.data.data_window import parse_day  # pandas: loaded by the commands that need it, not by --help
        from model_code.data.events import DataError

        try:
            return parse_day(text, "--day")
        except DataError as error:
            raise OpsError(str(error)) from None
    return (now or datetime.now(UTC)).astimezone(UTC).date() - timedelta(days=1)


def training_window(days: int, now: datetime | None = None) -> dict[str, str]:
    """The ``window_start``/``window_end`` hyperparameters of a run started ``now``: the last ``days`` whole UTC
    days before it, as the training state machine computes them."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return {"window_start": (today - timedelta(days=days)).isoformat(),
            "window_end": (today - timedelta(days=1)).isoformat()}


def training_input(hyperparameters: dict[str, str], test_channel: bool) -> dict:
    """The training state machine's input document."""
    return {"hyperparameters": hyperparameters, "test_channel": test_channel}


def start_training(
    stepfunctions,
    state_machine_arn: str,
    hyperparameters: dict[str, str],
    test_channel: bool = True,
    name: str | None = None,
) -> str:
    """Start one execution of the training state machine; return its ARN."""
    started = stepfunctions.start_execution(
        stateMachineArn=state_machine_arn,
        name=name or execution_name(),
        input=json.dumps(training_input(hyperparameters, test_channel)),
    )
    return started["executionArn"]


def wait_until_final(
    describe: Callable[[], dict],
    status_key: str,
    final_states: tuple[str, ...],
    label: str,
    poll_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    report: Callable[[str], None] = print,
) -> dict:
    """Poll `describe()` until its status is final, reporting each change; return the last
    description."""
    last = None
    while True:
        described = describe()
        if described[status_key] != last:
            last = described[status_key]
            report(f"{label}: {last}")
        if last in final_states:
            return described
        sleep(poll_seconds)


def wait_for_execution(stepfunctions, execution_arn: str, poll_seconds: float = 30.0, **kwargs):
    """Wait for a state machine execution to end; return its description."""
    return wait_until_final(
        lambda: stepfunctions.describe_execution(executionArn=execution_arn),
        "status",
        FINAL_EXECUTION_STATES,
        execution_arn.rsplit(":", 1)[-1],
        poll_seconds,
        **kwargs,
    )


def wait_for_training_job(sagemaker, job_name: str, poll_seconds: float = 60.0, **kwargs):
    """Wait for a training job to end; return its description."""
    return wait_until_final(
        lambda: sagemaker.describe_training_job(TrainingJobName=job_name),
        "TrainingJobStatus",
        FINAL_JOB_STATES,
        job_name,
        poll_seconds,
        **kwargs,
    )


def _states(definition: dict) -> Iterator[dict]:
    """Every state of a definition, including those inside Parallel and Map states."""
    for state in definition.get("States", {}).values():
        yield state
        for branch in state.get("Branches", []):
            yield from _states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _states(state[key])


def training_job_template(definition: dict) -> dict:
    """The CreateTrainingJob arguments of the training state machine's definition."""
    for state in _states(definition):
        if CREATE_TRAINING_JOB in str(state.get("Resource", "")):
            return state.get("Arguments") or state.get("Parameters") or {}
    raise OpsError("the training state machine has no CreateTrainingJob task")


def default_hyperparameters(definition: dict) -> dict[str, str]:
    """What the state machine sends with every job (its `defaultHyperparameters` variable)."""
    for state in _states(definition):
        defaults = state.get("Assign", {}).get("defaultHyperparameters")
        if isinstance(defaults, dict):
            return {name: str(value) for name, value in defaults.items()}
    return {}


@dataclass(frozen=True)
class OneOffSettings:
    """What a one-off job copies from the state machine's job (or takes from the command line)."""

    role_arn: str
    image_uri: str
    instance_type: str
    instance_count: int
    volume_size_gb: int
    volume_kms_key: str | None
    output_kms_key: str | None
    network_isolation: bool
    max_runtime_seconds: int
    spot: bool
    max_wait_seconds: int | None
    metric_definitions: list[dict]
    default_hyperparameters: dict[str, str]


def _literal(template: dict, path: str):
    """A literal value at a dotted path of the job template; None when absent or computed at
    run time (a JSONPath `$...` or JSONata `{% ... %}` expression)."""
    node = template
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if not (isinstance(node, str) and node.startswith(("$", "{%"))) else None


def one_off_settings(
    definition: dict,
    role_arn: str | None = None,
    image_uri: str | None = None,
    instance_type: str | None = None,
) -> OneOffSettings:
    """Settings of the state machine's training job, with the given values taking precedence."""
    job = training_job_template(definition)
    chosen = {
        "role": role_arn or _literal(job, "RoleArn"),
        "image": image_uri or _literal(job, "AlgorithmSpecification.TrainingImage"),
        "instance type": instance_type or _literal(job, "ResourceConfig.InstanceType"),
    }
    missing = [what for what, value in chosen.items() if not value]
    if missing:
        raise OpsError(
            f"could not read the {', '.join(missing)} from the training state machine; "
            "pass --role / --image / --instance-type"
        )
    if image_uri is None:
        _check_image_fits(chosen["instance type"], _literal(job, "ResourceConfig.InstanceType"))
    max_wait = _literal(job, "StoppingCondition.MaxWaitTimeInSeconds")
    return OneOffSettings(
        role_arn=chosen["role"],
        image_uri=chosen["image"],
        instance_type=chosen["instance type"],
        instance_count=int(_literal(job, "ResourceConfig.InstanceCount") or 1),
        volume_size_gb=int(_literal(job, "ResourceConfig.VolumeSizeInGB") or 30),
        volume_kms_key=_literal(job, "ResourceConfig.VolumeKmsKeyId"),
        output_kms_key=_literal(job, "OutputDataConfig.KmsKeyId"),
        network_isolation=_literal(job, "EnableNetworkIsolation") is True,
        max_runtime_seconds=int(_literal(job, "StoppingCondition.MaxRuntimeInSeconds") or 86400),
        spot=_literal(job, "EnableManagedSpotTraining") is True and max_wait is not None,
        max_wait_seconds=int(max_wait) if max_wait is not None else None,
        metric_definitions=_literal(job, "AlgorithmSpecification.MetricDefinitions") or [],
        default_hyperparameters=default_hyperparameters(definition),
    )


def _check_image_fits(instance_type: str, machine_instance_type: str | None) -> None:
    """The state machine's image is the GPU image exactly when its instance type is a GPU type: another
    --instance-type of the other kind needs the other image, which only --image can name."""
    if machine_instance_type is None or is_gpu_training_type(instance_type) == is_gpu_training_type(
        machine_instance_type
    ):
        return
    wanted, has = (
        ("GPU (train-gpu)", "CPU (train)")
        if is_gpu_training_type(instance_type)
        else ("CPU (train)", "GPU (train-gpu)")
    )
    raise OpsError(
        f"--instance-type {instance_type} needs the {wanted} image, but the state machine trains on "
        f"{machine_instance_type} with the {has} image; pass --image with the Image stack's "
        "TrainGpuImageUri / TrainImageUri output (the GPU image exists where training_instance_type is a GPU type)"
    )


def read_one_off_settings(stepfunctions, state_machine_arn: str, **overrides) -> OneOffSettings:
    described = stepfunctions.describe_state_machine(stateMachineArn=state_machine_arn)
    return one_off_settings(json.loads(described["definition"]), **overrides)


def one_off_job_name(stage: str, now: datetime | None = None) -> str:
    """A one-off job's name: the stage's one-off prefix and the UTC time to the millisecond
    (``gru4rec-dev-oneoff-20261129-021710-123``), at most 63 characters for a stage name of at most 16."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{one_off_job_prefix(stage)}-{moment:%Y%m%d-%H%M%S}-{moment.microsecond // 1000:03d}"


def one_off_request(
    job_name: str,
    stage: str,
    bucket: str,
    settings: OneOffSettings,
    hyperparameters: dict[str, str],
    window_days: int,
    test_channel: bool = True,
) -> dict:
    """The CreateTrainingJob request of a one-off job: the state machine's job settings, its data window, its
    output place, and a Spot job's own checkpoint folder ``checkpoints/<job name>/``."""
    channels = [_s3_channel(channel, f"s3://{bucket}/{prefix}") for channel, prefix in CHANNEL_PREFIXES.items()
                if test_channel or channel == "train"]
    algorithm = {"TrainingImage": settings.image_uri,
                 # the job opens only the window's day folders of training/events/: FastFile downloads nothing else
                 "TrainingInputMode": "FastFile"}
    if settings.metric_definitions:
        algorithm["MetricDefinitions"] = settings.metric_definitions
    resources = {"InstanceType": settings.instance_type, "InstanceCount": settings.instance_count,
                 "VolumeSizeInGB": settings.volume_size_gb}
    output = {"S3OutputPath": f"s3://{bucket}/{MODELS_PREFIX}"}
    stopping = {"MaxRuntimeInSeconds": settings.max_runtime_seconds}
    request = {
        "TrainingJobName": job_name,
        "RoleArn": settings.role_arn,
        "AlgorithmSpecification": algorithm,
        "HyperParameters": {**settings.default_hyperparameters, **hyperparameters, **training_window(window_days)},
        "InputDataConfig": channels,
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "EnableNetworkIsolation": settings.network_isolation,
        "Tags": [{"Key": "project", "Value": "gru4rec"}, {"Key": "stage", "Value": stage},
                 {"Key": "pipeline", "Value": "one-off"}],
    }
    if settings.volume_kms_key:
        resources["VolumeKmsKeyId"] = settings.volume_kms_key
    if settings.output_kms_key:
        output["KmsKeyId"] = settings.output_kms_key
    if settings.spot:  # a Spot job resumes from its own checkpoints after an interruption
        request["EnableManagedSpotTraining"] = True
        stopping["MaxWaitTimeInSeconds"] = settings.max_wait_seconds
        request["CheckpointConfig"] = {"S3Uri": f"s3://{bucket}/{CHECKPOINTS_PREFIX}{job_name}/"}
    return request


def _s3_channel(name: str, s3_uri: str) -> dict:
    """A channel of every object under ``s3_uri``, read in the job's input mode."""
    return {"ChannelName": name, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": s3_uri, "S3DataDistributionType": "FullyReplicated"}}}


def start_one_off_training(
    sagemaker,
    stage: str,
    bucket: str,
    settings: OneOffSettings,
    hyperparameters: dict[str, str],
    window_days: int,
    test_channel: bool = True,
) -> str:
    """Start a one-off training job (:func:`one_off_request`) with boto3's SageMaker client; return its name.

    Its model goes to `s3://<bucket>/models/`, like the state machine's (with the same default
    hyperparameters, Spot setting and metrics), and it reads the same data: the day folders of
    `training/events/` of the last `window_days` UTC days before now (FastFile). The endpoint and
    the model registry are not touched.
    """
    job_name = one_off_job_name(stage)
    sagemaker.create_training_job(**one_off_request(job_name, stage, bucket, settings, hyperparameters, window_days,
                                                    test_channel))
    return job_name


def data_files(folder: Path) -> dict[str, Path]:
    """`train.*` and `test.*` files of a folder (as written by model_code.data.synthetic), by channel; without a
    `train.*` file the folder must hold days instead (:func:`day_files`)."""
    if not folder.is_dir():
        raise OpsError(f"{folder}: no such folder")
    found: dict[str, Path] = {}
    for channel in ("train", "test"):
        matches = sorted(p for p in folder.glob(f"{channel}.*") if p.is_file())
        if len(matches) > 1:
            names = ", ".join(path.name for path in matches)
            raise OpsError(f"{folder}: more than one {channel} file ({names})")
        if matches:
            found[channel] = matches[0]
    days = day_files(folder)
    if "train" in found and days:
        raise OpsError(f"{folder}: holds both a train.* file and days ({', '.join(map(str, days))}): keep one layout")
    if "train" not in found and not days:
        raise OpsError(f"{folder}: no train.* file (e.g. train.tsv.gz), no day folder (dt=YYYY-MM-DD/) and no daily "
                       f"file (YYYY-MM-DD.csv.gz)")
    return found


def day_files(folder: Path) -> dict[date, list[Path]]:
    """A folder's days: the event files of each day folder ``dt=YYYY-MM-DD/``, and each event file whose name starts
    with its day (``2026-11-29.csv.gz``), by day."""
    from model_code.data.data_window import DAY_FOLDER_PREFIX
    from model_code.data.events import is_event_file

    days: dict[date, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and entry.name.startswith(DAY_FOLDER_PREFIX):
            files = [p for p in sorted(entry.iterdir()) if p.is_file() and is_event_file(p.name)
                     and not p.name.startswith(".")]
            day = _day_of(entry.name.removeprefix(DAY_FOLDER_PREFIX), entry)
        elif entry.is_file() and _DAY_NAME.match(entry.name) and is_event_file(entry.name):
            files, day = [entry], _day_of(entry.name[:10], entry)
        else:
            continue
        days.setdefault(day, []).extend(files)
    return {day: files for day, files in days.items() if files}


def _day_of(text: str, path: Path) -> date:
    from model_code.data.data_window import parse_day
    from model_code.data.events import DataError

    try:
        return parse_day(text, str(path))
    except DataError as error:
        raise OpsError(str(error)) from None


def upload_training_data(s3, bucket: str, folder: Path, day: date | None) -> list[str]:
    """Upload the training events into their day folders `training/events/dt=<day>/`, then each day's `_SUCCESS`
    marker, and `test.*` to `training/test/`.

    The events are `train.*`, filed under ``day``, or the folder's own days (:func:`day_files`). Each day
    uploaded replaces that day's events, and the folder replaces the test channel, as a whole: other objects
    in those prefixes are deleted after the upload (the versioned bucket keeps them as old versions); other
    days stay. The markers go last, once every day is complete (with `retrain_on_new_data` a marker starts a
    run itself). Returns the S3 URIs of the uploaded files and markers.
    """
    from model_code.data.data_window import day_folder  # pandas: loaded by the commands that need it, not by --help

    files = data_files(folder)
    days = day_files(folder) if "train" not in files else {day: [files["train"]]}
    prefixes = {f"{TRAINING_EVENTS_PREFIX}{day_folder(each)}/": paths for each, paths in days.items()}
    if "test" in files:
        prefixes[TRAINING_TEST_PREFIX] = [files["test"]]
    uploaded = []
    for prefix, paths in prefixes.items():
        keys = [prefix + path.name for path in paths]
        for path, key in zip(paths, keys):
            s3.upload_file(str(path), bucket, key)
        uploaded += keys
        _remove_others(s3, bucket, prefix, keep=set(keys))
    if "test" not in files:
        _remove_others(s3, bucket, TRAINING_TEST_PREFIX, keep=set())
    markers = [prefix + RUN_MARKER for prefix in prefixes if prefix != TRAINING_TEST_PREFIX]
    for marker in markers:
        s3.put_object(Bucket=bucket, Key=marker, Body=b"")
    return [f"s3://{bucket}/{key}" for key in (*uploaded, *markers)]


def _remove_others(s3, bucket: str, prefix: str, keep: set[str]) -> None:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    stale = [o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"] not in keep]
    for start in range(0, len(stale), 1000):
        batch = [{"Key": key} for key in stale[start : start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
