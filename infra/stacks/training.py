"""Training: the pipeline that trains GRU4Rec on SageMaker, gates it on Recall@20 and rolls the endpoint.

State machine ``gru4rec-<stage>-training``; input (both keys optional)::

    {"hyperparameters": {"epochs": "5", "loss": "bpr-max"}, "test_channel": true}

Name the job -> Read tuned settings (what ``infra.ops tune --apply`` or an earlier tuning step recorded) -> [with
``tune_every_days``: Find earlier tuning jobs -> Tuning due? -> Tune (a SageMaker tuning job, warm-started from
the stage's last ones) -> Record tuned settings] -> Train (CreateTrainingJob, run to the end) -> Quality gate (Recall@20
from the job's final metrics, by name: on the validation split, the last ``valid_days`` days of the training data,
unless that context key is 0; the test channel, optional, is scored once at the end and never selects) -> Create model
-> Create endpoint config -> Is the endpoint free? (waits while another rollout or a ``cdk deploy`` updates it;
SageMaker runs one update at a time) -> Update endpoint (a guarded blue/green rollout, ``infra.rollout``) -> Wait /
Check endpoint (until the endpoint serves the new configuration, or SageMaker has rolled it back on an alarm) -> Done:
the model is live, the model the endpoint serves. With ``valid_days``, Find live endpoint config -> Find live model ->
Read live model (the champion: the archive of the model the endpoint serves) come before Train. Any failure: Notify
failure (SNS) -> Failed, and the endpoint keeps serving the old model; an execution that times out or is stopped is
reported to the same topic by an EventBridge rule.
"""
from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.config import AppConfig
from infra.layout import (
    CHECKPOINTS_PREFIX,
    DAY_FOLDER_PREFIX,
    MODELS_PREFIX,
    RUN_MARKER,
    TRAINING_EVENTS_PREFIX,
    TRAINING_TEST_PREFIX,
    tuning_job_prefix,
)
from infra.registry import REJECTED, approval_on_pass
from infra.rollout import MAX_EXECUTION_TIMEOUT_SECONDS, RETAINED_VARIANT_PROPERTIES, deployment_config
from infra.sagemaker_models import NETWORK_ISOLATION, endpoint_network_isolation, primary_container
from infra.stacks.endpoint import EndpointStack, endpoint_config_settings, production_variant
from infra.stacks.image import ImageStack
from infra.stacks.live_model import MODEL_DATA_URL, read_live_model
from infra.stacks.model_versions import passed_verdict, record_version, rollout_entry, rollout_on_approval
from infra.stacks.storage import StorageStack
from infra.stacks.training_roles import grant_pipeline, parameter_arn, training_role
from infra.stacks.workflow import (
    STATE_MACHINE_SERVICE_WILDCARDS,
    acknowledge_wildcards,
    add_capacity_retries,
    failure,
    failure_topic,
    job_name_expression,
    job_name_prefix,
    notify_abnormal_ends,
    notify_and_fail,
    pipeline_state_machine,
    resource_tags,
    sagemaker_arn,
    sync_job_task,
    volume_key,
)
from infra.tuning import MAX_RUNTIME_SECONDS, MAX_WARM_START_PARENTS, WARM_START_TYPE, tuning_job_config
from model_code.commands.report import CHAMPION_PREFIX, VALIDATION_PREFIX
from model_code.commands.tuning_space import load_space

JOB_KIND = "train"
# Sent with every job; the execution input's "hyperparameters" override them key by key
HYPERPARAMETER_DEFAULTS = {"preset": "rsc15"}
REPORTED_METRICS = ("recall@20", "mrr@20")
# The training command prints one "name=value;" line per metric (model_code.commands.report.metric_lines), the
# validation figures as "validation:name=value;" and the live model's as "champion:validation:name=value;":
# a pattern must not match the lines of a longer prefix
METRIC_DEFINITIONS = [
    *({"Name": prefix + name, "Regex": f"(?:^|[^:\\w]){prefix}{name}=([0-9.]+);"}
      for prefix in ("", VALIDATION_PREFIX) for name in REPORTED_METRICS),
    *({"Name": CHAMPION_PREFIX + name, "Regex": f"{CHAMPION_PREFIX}{name}=([0-9.]+);"} for name in REPORTED_METRICS),
]
DAY_MILLIS = 86_400_000
DAY_PICTURE = "[Y0001]-[M01]-[D01]"
# a tuning job's name: tune-<stage>-YYMMDDHHMM, as the operator CLI names its own (infra.tuning.tuning_job_name)
TUNING_NAME_PICTURE = "[Y01][M01][D01][H01][m01]"
REFIT_SUFFIX = "-refit"
# the optimized StartExecution integration's error when the name was used in the last 90 days
EXECUTION_EXISTS = "StepFunctions.ExecutionAlreadyExistsException"


def hyperparameter_defaults(config: AppConfig) -> dict[str, str]:
    """What every job gets unless the execution input says otherwise: the preset, the stage's
    ``training_hyperparameters`` (a shop's reading options, tuned settings) and the validation split."""
    split = {"valid_days": f"{config.valid_days:g}"} if config.valid_days else {}
    return {**HYPERPARAMETER_DEFAULTS, **config.training_hyperparameter_values, **split}


def refits(config: AppConfig) -> bool:
    """Whether a model that passed the gate is trained again on the whole window before it ships: with
    ``refit_after_gate``, and only where validation days were held out (without them the gated model has
    seen the whole window already)."""
    return config.refit_after_gate and bool(config.valid_days)


def gate_metric(config: AppConfig) -> str:
    """The metric the quality gate reads: Recall@20 on the validation split, or on the test channel without one."""
    return (VALIDATION_PREFIX if config.valid_days else "") + REPORTED_METRICS[0]
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
TRAINING_VOLUME_GB = 30
# Managed Spot may wait for capacity as long again as the run may take, at most this much more
SPOT_EXTRA_WAIT_LIMIT = cdk.Duration.hours(24)
ENDPOINT_POLL_INTERVAL = cdk.Duration.minutes(1)
# A guarded rollout may take SageMaker's whole deployment timeout, plus the time to start the fleet
ENDPOINT_MAX_POLLS = MAX_EXECUTION_TIMEOUT_SECONDS // 60 + 30
# After training: waiting for another rollout, this rollout (ENDPOINT_MAX_POLLS polls each) and the records
DEPLOYMENT_ALLOWANCE = cdk.Duration.hours(9)


class TrainingStack(cdk.Stack):
    """The training pipeline (:class:`TrainingPipeline`), the SageMaker execution role of its training jobs
    (``infra.stacks.training_roles``), its failure topic and what starts it on a schedule or on new data.

    ``state_machine`` and ``topic`` are for other stacks; the CloudFormation output
    ``TrainingStateMachineArn`` is for the operator CLI.
    """

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, storage: StorageStack,
                 image: ImageStack, endpoint: EndpointStack, **kwargs) -> None:
        super().__init__(
            scope, construct_id, description=f"GRU4Rec {config.stage}: training pipeline with quality gate", **kwargs
        )
        self.job_name_prefix = job_name_prefix(config, JOB_KIND)
        self.training_role = training_role(self, config, storage, image, self.job_name_prefix)
        self.topic = failure_topic(self, config, storage.key, "training")
        # CDK leaves the id "Default" out of logical ids: the pipeline's resources keep the ids they had as the
        # stack's own children, so a deploy updates them in place (custom-named ones could not be replaced)
        pipeline = TrainingPipeline(self, "Default", config, storage, image, endpoint, self.training_role, self.topic,
                                    self.job_name_prefix)
        self.state_machine = pipeline.state_machine
        self.approval_trigger = rollout_on_approval(self, config, storage.key, self.state_machine)
        grant_pipeline(self, config, storage, endpoint, self.state_machine, self.training_role, self.job_name_prefix)
        notify_abnormal_ends(self, self.state_machine, self.topic, storage.key)
        if config.retrain_schedule:
            self._retrain_on_schedule(config, storage)
        if config.retrain_on_new_data:
            self._retrain_on_new_data(config, storage)
        cdk.CfnOutput(self, "TrainingStateMachineArn", value=self.state_machine.state_machine_arn,
                      description="Training pipeline: train, quality gate, roll the endpoint")
        cdk.CfnOutput(self, "ModelKeepCount", value=str(config.model_keep_count),
                      description="Models before the live one that the operator CLI's cleanup keeps")
        cdk.CfnOutput(self, "TrainWindowDays", value=str(config.train_window_days),
                      description="Whole UTC days before its start that a training run (and a one-off job) reads")

    def _retrain_on_schedule(self, config: AppConfig, storage: StorageStack) -> scheduler.Schedule:
        """An EventBridge Scheduler schedule that starts the pipeline with its defaults on ``retrain_schedule``.

        The target's role (made by the L2 target) may start this state machine only; the schedule is
        encrypted with the stage's key. A start that fails is retried by Scheduler, then dropped: the
        next run comes on the next tick.
        """
        return scheduler.Schedule(
            self, "RetrainSchedule", schedule_name=f"{config.resource_prefix}-retrain",
            description=f"Retrain GRU4Rec {config.stage} on {config.retrain_schedule}",
            schedule=scheduler.ScheduleExpression.expression(config.retrain_schedule), key=storage.key,
            target=scheduler_targets.StepFunctionsStartExecution(
                self.state_machine, input=scheduler.ScheduleTargetInput.from_object({"trigger": "schedule"}),
                retry_attempts=2, max_event_age=cdk.Duration.hours(1)),
        )

    def _retrain_on_new_data(self, config: AppConfig, storage: StorageStack) -> sfn.StateMachine:
        """A day's ``_SUCCESS`` marker under ``training/events/dt=YYYY-MM-DD/`` starts the pipeline, at most once a day.

        EventBridge cannot name the execution it starts, so the rule starts a one-state machine that starts
        the pipeline under the name ``new-data-<UTC day of the event>``: Step Functions refuses a name a
        standard workflow has used in the last 90 days (ExecutionAlreadyExists,
        https://docs.aws.amazon.com/step-functions/latest/dg/express-at-least-once-execution.html), which
        ends that day's later markers here, as a success.
        """
        scope = Construct(self, "NewDataTrigger")
        start = tasks.StepFunctionsStartExecution.jsonata(
            scope, "Start training", state_machine=self.state_machine,
            name="{% 'new-data-' & $fromMillis($toMillis($states.input.time), '" + DAY_PICTURE + "') %}",
            input=sfn.TaskInput.from_object({"trigger": "new-data", "marker": "{% $states.input.detail.object.key %}"}),
        )
        start.add_catch(sfn.Succeed.jsonata(scope, "Already started today"), errors=[EXECUTION_EXISTS])
        machine = pipeline_state_machine(scope, config, storage.key, "training-trigger", start, cdk.Duration.minutes(5))
        acknowledge_wildcards(machine.role, {"*": STATE_MACHINE_SERVICE_WILDCARDS + "."})
        rule = events.Rule(
            scope,
            "DayComplete",
            description=f"{TRAINING_EVENTS_PREFIX}{DAY_FOLDER_PREFIX}YYYY-MM-DD/"
            f"{RUN_MARKER} markers in the GRU4Rec {config.stage} data bucket",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [storage.bucket.bucket_name]},
                    "object": {
                        "key": events.Match.wildcard(f"{TRAINING_EVENTS_PREFIX}{DAY_FOLDER_PREFIX}*/{RUN_MARKER}")
                    },
                },
            ),
        )
        rule.add_target(targets.SfnStateMachine(machine, retry_attempts=8, max_event_age=cdk.Duration.hours(6)))
        return machine


class TrainingPipeline(Construct):
    """The states of the training pipeline and its state machine (``state_machine``); failures go to ``topic``.

    Its training jobs run as ``training_role``, under names starting with ``job_name_prefix``.
    """

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, storage: StorageStack, image: ImageStack,
                 endpoint: EndpointStack, training_role: iam.IRole, topic: sns.ITopic, job_name_prefix: str) -> None:
        super().__init__(scope, construct_id)
        self.training_role, self.job_name_prefix = training_role, job_name_prefix
        on_failure = notify_and_fail(self, config, topic, "training", {"job": "$jobName"})
        rollout = self._deploy(config, storage, image, endpoint, on_failure)
        # a manual stage's model waits in the registry until a person approves it (its approval's event rolls it out)
        after_registration = (rollout if config.approval_mode == "auto"
                              else sfn.Succeed.jsonata(self, "Awaiting approval", outputs=self._outputs(config)))
        verdict = passed_verdict(gate_metric(config), config.recall_threshold)
        ship = self._record_version(config, storage, image, on_failure, "", approval_on_pass(config), verdict)
        ship = ship.next(after_registration)
        if refits(config):
            ship = self._refit(config, storage, image, on_failure).next(ship)
        training = sfn.Chain.start(self._name_the_job(config, storage, image)).next(
            self._read_tuned_settings(config, on_failure)
        )
        if config.valid_days:
            training = training.next(self._read_live_model(config, on_failure))
        train = self._train(config, storage, image, on_failure)
        reject = self._record_version(config, storage, image, on_failure, "rejected ", REJECTED, "$states.input.Cause")
        reject.next(on_failure)
        train.next(self._quality_gate(config, reject, ship))
        training.next(self._tuning(config, storage, image, on_failure, train) if config.tune_every_days else train)
        fresh_name = job_name_expression(config, JOB_KIND).removeprefix("{% ").removesuffix(" %}")
        definition = rollout_entry(self, config, on_failure, rollout, training, fresh_name)
        self.state_machine = pipeline_state_machine(self, config, storage.key, "training", definition, _timeout(config))

    def _name_the_job(self, config: AppConfig, storage: StorageStack, image: ImageStack) -> sfn.Pass:
        """Variables for the whole execution: the job name (also the model's and endpoint config's), the image its
        model runs (a registered version's own when the run rolls one out), the channels,
        and what the execution input asks for. A Task's output is its result (``$states.result``), so no later
        state sees the execution input as ``$states.input``: Train and Refit read these variables."""
        bucket = storage.bucket.bucket_name
        return sfn.Pass.jsonata(self, "Name the job", assign={
            "jobName": job_name_expression(config, JOB_KIND),
            "image": image.serve_image_uri,
            "bucket": bucket,
            "defaultHyperparameters": hyperparameter_defaults(config),
            "hyperparameters": "{% $exists($states.input.hyperparameters) ? $states.input.hyperparameters : {} %}",
            # the test channel is left out only when the input says "test_channel": false
            "skipTestChannel": "{% $states.input.test_channel = false %}",
            # the last train_window_days whole UTC days before the execution's start
            "window": {"window_start": _day_before_start(config.train_window_days),
                       "window_end": _day_before_start(1)},
            "trainChannel": _channel("train", f"s3://{bucket}/{TRAINING_EVENTS_PREFIX}", "FastFile"),
            "testChannel": _channel("test", f"s3://{bucket}/{TRAINING_TEST_PREFIX}"),
            "champion": "{% null %}",
            "championRecall": "{% null %}",
            "metrics": {},
            "modelPackage": "{% null %}",
            "polls": 0,
            "busyPolls": 0,
        })

    def _read_tuned_settings(self, config: AppConfig, on_failure: sfn.IChainable) -> sfn.IChainable:
        """``$tuned``: the hyperparameters ``infra.ops tune --apply`` wrote (the tuning job's best, ``tuning_job``
        naming it), read at run time so an apply needs no deploy; ``{}`` until the first apply. GetParameters lists
        a name that does not exist under InvalidParameters instead of failing."""
        name = config.tuned_hyperparameters_parameter_name
        read = tasks.CallAwsService.jsonata(
            self,
            "Read tuned settings",
            service="ssm",
            action="getParameters",
            iam_resources=[parameter_arn(self, name)],
            parameters={"Names": [name]},
            assign={
                "tuned": "{% $count($states.result.Parameters) > 0 ? $parse($states.result.Parameters[0].Value) : {} %}"
            },
        )
        read.add_catch(on_failure)
        return read

    def _read_live_model(self, config: AppConfig, on_failure: sfn.IChainable) -> sfn.IChainable:
        """The champion: the live model's archive when a pipeline trained it (``models/``), else null.

        The first model (a deploy-time asset) and a rollback to it have no champion: the gate uses the floor only.
        """
        reads, read = read_live_model(self, config, assign={
            "champion": "{% ($live := " + MODEL_DATA_URL + "; $models := 's3://' & $bucket & '/" + MODELS_PREFIX
            + "'; $substring($live, 0, $length($models)) = $models ? $live : null) %}"
        })
        for state in reads:
            state.add_catch(on_failure)
        return read

    def _train(self, config: AppConfig, storage: StorageStack, image: ImageStack,
               on_failure: sfn.IChainable) -> sfn.CustomState:
        """CreateTrainingJob on the window, run to the end; keeps the model's S3 URI and the gate metrics (null
        when not reported): the new model's and the live model's on the same validation sessions."""
        hyperparameters = "$merge([$defaultHyperparameters, $tuned, $hyperparameters, $window])"
        channels = ("$append($skipTestChannel ? [$trainChannel] : [$trainChannel, $testChannel], "
                    "$champion ? [" + _CHAMPION_CHANNEL + "] : [])")
        train = sync_job_task(self, "Train", "createTrainingJob",
                              self._job_arguments(config, storage, image, "$jobName", hyperparameters, channels),
                              comment="Train GRU4Rec with the repository's image (SageMaker runs `train`)",
                              assign={
                                  "gatedJob": "{% $jobName %}",
                                  "modelData": "{% $states.result.ModelArtifacts.S3ModelArtifacts %}",
                                  "recall": _final_metric(gate_metric(config)),
                                  "championRecall": _final_metric(CHAMPION_PREFIX + REPORTED_METRICS[0]),
                                  "metrics": "{% $merge($append([{}], "
                                             "$states.result.FinalMetricDataList.{MetricName: Value})) %}",
                              })
        add_capacity_retries(train)
        train.add_catch(on_failure)
        return train

    def _tuning(self, config: AppConfig, storage: StorageStack, image: ImageStack, on_failure: sfn.IChainable,
                train: sfn.IChainable) -> sfn.IChainable:
        """Every ``tune_every_days``: a SageMaker tuning job before the gated training, its best settings then used by
        this run and recorded for later ones (as ``infra.ops tune --apply`` does).

        The stage's last completed tuning jobs (at most five, SageMaker's limit on parents) warm-start it with
        ``TransferLearning``, since the data window has moved since they ran. Not due (the last completed one is
        younger than ``tune_every_days``): straight to Train.
        """
        prefix = tuning_job_prefix(config.stage)
        find = tasks.CallAwsService.jsonata(
            self,
            "Find earlier tuning jobs",
            service="sagemaker",
            action="listHyperParameterTuningJobs",
            # List calls take no resource-level permissions
            iam_resources=["*"],
            parameters={
                "NameContains": prefix,
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "StatusEquals": "Completed",
                "MaxResults": MAX_WARM_START_PARENTS,
            },
            assign={
                "parents": "{% $append([], $states.result.HyperParameterTuningJobSummaries[$substring("
                f"HyperParameterTuningJobName, 0, {len(prefix)}) = '{prefix}'].HyperParameterTuningJobName) %}}",
                "lastTuned": "{% ($first := $states.result.HyperParameterTuningJobSummaries[$substring("
                f"HyperParameterTuningJobName, 0, {len(prefix)}) = '{prefix}'][0]; "
                "$exists($first) ? $toMillis($first.CreationTime) : 0) %}",
                "tuningJob": "{% '"
                + prefix
                + "' & $fromMillis($toMillis($states.context.Execution.StartTime), '"
                + TUNING_NAME_PICTURE
                + "') %}",
            },
        )
        find.add_catch(on_failure)
        tune = sync_job_task(self, "Tune", "createHyperParameterTuningJob",
                             self._tuning_request(config, storage, image),
                             comment="Search the tuning space with SageMaker Automatic Model Tuning",
                             assign={"tuned": "{% $merge([$tuned, " + _jsonata_object(self._space_static(config))
                                              + ", $states.result.BestTrainingJob.TunedHyperParameters, "
                                              "{'tuning_job': $tuningJob}]) %}"})
        add_capacity_retries(tune)
        tune.add_catch(on_failure)
        record = tasks.CallAwsService.jsonata(
            self, "Record tuned settings", service="ssm", action="putParameter",
            iam_resources=[parameter_arn(self, config.tuned_hyperparameters_parameter_name)],
            parameters={"Name": config.tuned_hyperparameters_parameter_name, "Value": "{% $string($tuned) %}",
                        "Type": "String", "Overwrite": True},
        )
        record.add_catch(on_failure)
        due = (f"$count($parents) = 0 or $toMillis($states.context.Execution.StartTime) - $lastTuned >= "
               f"{config.tune_every_days * DAY_MILLIS}")
        choice = (sfn.Choice.jsonata(self, "Tuning due?")
                  .when(sfn.Condition.jsonata("{% " + due + " %}"), tune.next(record).next(train))
                  .otherwise(train))
        return sfn.Chain.custom(find, [train], find.next(choice))

    def _space_static(self, config: AppConfig) -> dict[str, str]:
        space = load_space(config.tune_space)
        return {"preset": space.preset, **space.fixed}

    def _tuning_request(self, config: AppConfig, storage: StorageStack, image: ImageStack) -> str:
        """CreateHyperParameterTuningJob's arguments as one JSONata expression: the parents' WarmStartConfig is
        there only when there are parents (SageMaker refuses an empty list)."""
        space = load_space(config.tune_space)
        searched = [dimension.name for dimension in space.dimensions]
        trial_hours = config.training_max_runtime_hours
        job = self._job_arguments(config, storage, image, "$tuningJob", "{}", "[$trainChannel]")
        rounds = -(-config.tune_trials // config.tune_parallel)
        request = {
            "HyperParameterTuningJobConfig": tuning_job_config(
                space,
                config.tune_trials,
                config.tune_parallel,
                min(rounds * trial_hours * 3600, MAX_RUNTIME_SECONDS[1]),
            ),
            "TrainingJobDefinition": {
                "AlgorithmSpecification": {**job["AlgorithmSpecification"], "TrainingInputMode": "FastFile"},
                "RoleArn": job["RoleArn"],
                "OutputDataConfig": job["OutputDataConfig"],
                "ResourceConfig": job["ResourceConfig"],
                "StoppingCondition": {"MaxRuntimeInSeconds": job["StoppingCondition"]["MaxRuntimeInSeconds"]},
                "EnableNetworkIsolation": job["EnableNetworkIsolation"],
            },
            "Tags": resource_tags(config, pipeline="tuning"),
        }
        static = ("$sift($merge([$defaultHyperparameters, $tuned, " + _jsonata_object(self._space_static(config))
                  + ", $window]), function($value, $name) {$not($name in " + json.dumps(searched)
                  + ") and $name != 'tuning_job'})")
        dynamic = ("{'HyperParameterTuningJobName': $tuningJob, 'TrainingJobDefinition': $merge([" + "$definition, "
                   "{'StaticHyperParameters': $merge($each(" + static + ", function($value, $name) {{$name: "
                   "$string($value)}})), 'InputDataConfig': [$trainChannel]}])}")
        warm = ("$count($parents) > 0 ? {'WarmStartConfig': {'WarmStartType': '" + WARM_START_TYPE + "', "
                "'ParentHyperParameterTuningJobs': $append([], $map($parents, function($parent) "
                "{{'HyperParameterTuningJobName': $parent}}))}} : {}")
        return ("{% ($request := " + _jsonata_object(request) + "; $definition := $request.TrainingJobDefinition; "
                "$merge([$request, " + dynamic + ", " + warm + "])) %}")

    def _refit(self, config: AppConfig, storage: StorageStack, image: ImageStack,
               on_failure: sfn.IChainable) -> sfn.CustomState:
        """The passing settings trained again on the whole window, validation days included: the model that ships
        (items new in the last days are then known to it). Named ``<gated job>-refit``."""
        hyperparameters = ("$sift($merge([$defaultHyperparameters, $tuned, $hyperparameters, $window]), "
                           "function($value, $name) {$name != 'valid_days'})")
        channels = "$skipTestChannel ? [$trainChannel] : [$trainChannel, $testChannel]"
        name = f"$gatedJob & '{REFIT_SUFFIX}'"
        refit = sync_job_task(self, "Refit on the whole window", "createTrainingJob",
                              self._job_arguments(config, storage, image, name, hyperparameters, channels),
                              comment="Retrain the gated settings on the whole window; this model ships",
                              assign={"jobName": "{% " + name + " %}",
                                      "modelData": "{% $states.result.ModelArtifacts.S3ModelArtifacts %}"})
        add_capacity_retries(refit)
        refit.add_catch(on_failure)
        return refit

    def _job_arguments(self, config: AppConfig, storage: StorageStack, image: ImageStack, name: str,
                       hyperparameters: str, channels: str) -> dict:
        """CreateTrainingJob's arguments: ``name``, ``hyperparameters`` and ``channels`` are JSONata expressions."""
        runtime = cdk.Duration.hours(config.training_max_runtime_hours)
        arguments = {
            "TrainingJobName": "{% " + name + " %}",
            "RoleArn": self.training_role.role_arn,
            "AlgorithmSpecification": {
                "TrainingImage": image.training_image_uri,
                "TrainingInputMode": "File",
                "MetricDefinitions": METRIC_DEFINITIONS,
            },
            # every value a string, as SageMaker requires
            "HyperParameters": "{% $merge($each("
            + hyperparameters
            + ", function($value, $name) {{$name: $string($value)}})) %}",
            "InputDataConfig": "{% " + channels + " %}",
            "OutputDataConfig": {
                "S3OutputPath": f"s3://{storage.bucket.bucket_name}/{MODELS_PREFIX}",
                "KmsKeyId": storage.key.key_arn,
            },
            "ResourceConfig": {
                "InstanceType": config.training_instance_type,
                "InstanceCount": 1,
                "VolumeSizeInGB": TRAINING_VOLUME_GB,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": int(runtime.to_seconds())},
            # the container reads its channels and writes /opt/ml; SageMaker moves data, checkpoints and the model
            "EnableNetworkIsolation": NETWORK_ISOLATION,
            "Tags": resource_tags(config, pipeline="training"),
        }
        volume = volume_key(storage.key, config.training_instance_type)
        if volume:
            arguments["ResourceConfig"]["VolumeKmsKeyId"] = volume
        if config.use_spot:
            arguments["EnableManagedSpotTraining"] = True
            arguments["StoppingCondition"]["MaxWaitTimeInSeconds"] = int(_spot_max_wait(config).to_seconds())
            arguments["CheckpointConfig"] = {
                "S3Uri": "{% 's3://' & $bucket & '/" + CHECKPOINTS_PREFIX + "' & " + name + " %}",
                "LocalPath": CHECKPOINT_LOCAL_PATH,
            }
        return arguments

    def _quality_gate(self, config: AppConfig, reject: sfn.IChainable, deploy: sfn.IChainable) -> sfn.Choice:
        """Deploy only a model whose Recall@20 (validation, else test) is at least ``recall_threshold``; a model that
        fails is registered as Rejected (``reject``) with the failure's cause, then the execution fails with it."""
        threshold = repr(float(config.recall_threshold))
        metric = gate_metric(config)
        hint = (f"does the training data span more than valid_days ({config.valid_days:g}) days, and do its last days "
                "hold sessions of items seen before?" if config.valid_days else
                f"was a test channel given? Start the pipeline with test data under {TRAINING_TEST_PREFIX} and "
                "test_channel left true")
        no_metric = failure(
            self, "No recall metric", "QualityGate.MetricMissing",
            f"'training job ' & $jobName & ' reported no {metric}: {hint}'",
        )
        below = failure(
            self, "Below threshold", "QualityGate.BelowThreshold",
            f"'training job ' & $jobName & ' reached {metric} = ' & $string($recall) & "
            f"', below the quality gate threshold {threshold}: the endpoint keeps its current model'",
        )
        tolerance = repr(float(config.gate_tolerance))
        below_champion = failure(
            self, "Below the live model", "QualityGate.BelowLiveModel",
            f"'training job ' & $jobName & ' reached {metric} = ' & $string($recall) & ', the live model ' & "
            f"$string($championRecall) & ' on the same validation sessions: more than gate_tolerance {tolerance} "
            "below it; the endpoint keeps its current model'",
        )
        return (sfn.Choice.jsonata(self, "Quality gate")
                .when(sfn.Condition.jsonata("{% $recall = null %}"), no_metric.next(reject))
                .when(sfn.Condition.jsonata("{% $recall < " + threshold + " %}"), below.next(reject))
                .when(sfn.Condition.jsonata(
                    "{% $championRecall != null and $recall < $championRecall - " + tolerance + " %}"),
                      below_champion.next(reject))
                .otherwise(deploy))

    def _deploy(self, config: AppConfig, storage: StorageStack, image: ImageStack, endpoint: EndpointStack,
                on_failure: sfn.IChainable) -> sfn.IChainable:
        """Model -> endpoint config -> endpoint update -> wait until it serves the model (then the model is live)."""
        names = f"{self.job_name_prefix}*"
        tags = resource_tags(config, pipeline="training", **{"training-job": "{% $jobName %}",
                                                              "model-package": "{% $modelPackage %}"})
        create_model = tasks.CallAwsService.jsonata(
            self, "Create model", service="sagemaker", action="createModel",
            iam_resources=[sagemaker_arn(self, "model", names)],
            parameters={
                "ModelName": "{% $jobName %}", "ExecutionRoleArn": endpoint.model_role.role_arn,
                "PrimaryContainer": primary_container("{% $image %}", "{% $modelData %}", endpoint.endpoint_name,
                                                      config.serverless),
                "EnableNetworkIsolation": endpoint_network_isolation(config.serverless),
                "Tags": tags,
            },
        )
        endpoint_config = {
            "EndpointConfigName": "{% $jobName %}",
            "ProductionVariants": [production_variant(config, "{% $jobName %}")],
            **endpoint_config_settings(config, storage),
            "Tags": tags,
        }
        create_config = tasks.CallAwsService.jsonata(
            self, "Create endpoint config", service="sagemaker", action="createEndpointConfig",
            iam_resources=[sagemaker_arn(self, "endpoint-config", names)], parameters=endpoint_config,
        )
        # keep the instance count autoscaling has reached (and the variant weight) while the fleet is replaced
        update = tasks.CallAwsService.jsonata(
            self, "Update endpoint", service="sagemaker", action="updateEndpoint",
            iam_resources=[sagemaker_arn(self, "endpoint", endpoint.endpoint_name),
                           sagemaker_arn(self, "endpoint-config", names)],
            parameters={"EndpointName": endpoint.endpoint_name, "EndpointConfigName": "{% $jobName %}",
                        **RETAINED_VARIANT_PROPERTIES, "DeploymentConfig": deployment_config(config)},
        )
        record = sfn.Succeed.jsonata(self, "Done", outputs=self._outputs(config))
        for task in (create_model, create_config, update):
            task.add_catch(on_failure)
        return (create_model.next(create_config)
                .next(self._await_free_endpoint(endpoint, on_failure, update))
                .next(self._await_endpoint(endpoint, on_failure, record)))

    def _await_free_endpoint(
        self, endpoint: EndpointStack, on_failure: sfn.IChainable, then: sfn.TaskStateBase
    ) -> sfn.IChainable:
        """Start the rollout only while the endpoint is InService: SageMaker updates an endpoint one rollout at a
        time, so an execution waits here for another execution's rollout or a ``cdk deploy`` to end, and
        gives up with ``Deployment.EndpointBusy`` after ENDPOINT_MAX_POLLS checks. (Two executions that both
        see it free: SageMaker refuses the second UpdateEndpoint, and that execution fails saying so.)"""
        check = tasks.CallAwsService.jsonata(
            self, "Is the endpoint free?", service="sagemaker", action="describeEndpoint",
            iam_resources=[sagemaker_arn(self, "endpoint", endpoint.endpoint_name)],
            parameters={"EndpointName": endpoint.endpoint_name},
            assign={"busyPolls": "{% $busyPolls + 1 %}"},
        )
        check.add_catch(on_failure)
        wait = sfn.Wait.jsonata(
            self, "Wait for the endpoint to be free", time=sfn.WaitTime.duration(ENDPOINT_POLL_INTERVAL)
        )
        busy = failure(
            self, "Endpoint busy", "Deployment.EndpointBusy",
            f"'endpoint {endpoint.endpoint_name} is still ' & $states.input.EndpointStatus & ' after "
            f"{ENDPOINT_MAX_POLLS} checks {int(ENDPOINT_POLL_INTERVAL.to_seconds())} s apart (another rollout or a "
            "cdk deploy is updating it): model ' & $jobName & ' was not deployed; start the pipeline again, or "
            "run python -m infra.ops rollback --to-version ' & $modelPackage & ' once it is InService'",
        )
        free = (sfn.Choice.jsonata(self, "Endpoint free?")
                .when(sfn.Condition.jsonata("{% $states.input.EndpointStatus = 'InService' %}"), then)
                .when(sfn.Condition.jsonata(f"{{% $busyPolls >= {ENDPOINT_MAX_POLLS} %}}"), busy.next(on_failure))
                .otherwise(wait))
        wait.next(check)
        return sfn.Chain.custom(check, [then], check.next(free))

    def _await_endpoint(
        self, endpoint: EndpointStack, on_failure: sfn.IChainable, then: sfn.IChainable
    ) -> sfn.IChainable:
        """Poll DescribeEndpoint until it is InService with the new configuration.

        InService with another configuration means SageMaker rolled the rollout back (an alarm fired, or
        the new fleet did not come up): ``Deployment.RolledBack``. Failed or UpdateRollbackFailed end it
        too; so does running out of polls. None of them records the new model.
        """
        wait = sfn.Wait.jsonata(self, "Wait for endpoint", time=sfn.WaitTime.duration(ENDPOINT_POLL_INTERVAL))
        check = tasks.CallAwsService.jsonata(
            self, "Check endpoint", service="sagemaker", action="describeEndpoint",
            iam_resources=[sagemaker_arn(self, "endpoint", endpoint.endpoint_name)],
            parameters={"EndpointName": endpoint.endpoint_name},
            assign={"polls": "{% $polls + 1 %}"},
        )
        check.add_catch(on_failure)
        status, config_name = "$states.input.EndpointStatus", "$states.input.EndpointConfigName"
        rolled_back = failure(
            self,
            "Rollout rolled back",
            "Deployment.RolledBack",
            f"'endpoint {endpoint.endpoint_name} went back to configuration ' & {config_name} & ' instead of ' & "
            "$jobName & ' (an alarm fired during the rollout, or the new fleet failed): the live model is unchanged. ' "
            "& "
            "($exists($states.input.FailureReason) ? $states.input.FailureReason : 'SageMaker gave no reason')",
        )
        update_failed = failure(
            self, "Endpoint update failed", "Deployment.EndpointUpdateFailed",
            f"'endpoint {endpoint.endpoint_name} is ' & {status} & ' with configuration ' & {config_name} & "
            "', not ' & $jobName & ': ' & ($exists($states.input.FailureReason) ? $states.input.FailureReason : "
            "'SageMaker gave no reason')",
        )
        timed_out = failure(
            self, "Endpoint update too slow", "Deployment.Timeout",
            f"'endpoint {endpoint.endpoint_name} still ' & {status} & ' after {ENDPOINT_MAX_POLLS} checks "
            f"{int(ENDPOINT_POLL_INTERVAL.to_seconds())} s apart; the update may still finish: check the endpoint'",
        )
        ready = (sfn.Choice.jsonata(self, "Endpoint updated?")
                 .when(sfn.Condition.jsonata(f"{{% {status} = 'InService' and {config_name} = $jobName %}}"), then)
                 .when(sfn.Condition.jsonata(f"{{% {status} = 'InService' and {config_name} != $jobName %}}"),
                       rolled_back.next(on_failure))
                 .when(sfn.Condition.jsonata(f"{{% {status} in ['Failed', 'UpdateRollbackFailed'] %}}"),
                       update_failed.next(on_failure))
                 .when(sfn.Condition.jsonata(f"{{% $polls >= {ENDPOINT_MAX_POLLS} %}}"), timed_out.next(on_failure))
                 .otherwise(wait))
        return wait.next(check).next(ready)

    def _outputs(self, config: AppConfig) -> dict:
        """What an execution that registered a model ends with: the model, its registry version, the gate's figures."""
        return {
            "model": "{% $jobName %}", "modelData": "{% $modelData %}", gate_metric(config): "{% $recall %}",
            "modelPackage": "{% $modelPackage %}",
            "gated": {"job": "{% $gatedJob %}", gate_metric(config): "{% $recall %}",
                      "champion": "{% $champion %}", CHAMPION_PREFIX + REPORTED_METRICS[0]: "{% $championRecall %}"},
            "shipped": {"job": "{% $jobName %}", "modelData": "{% $modelData %}",
                        "refit": "{% $jobName != $gatedJob %}"},
            "window": "{% $window %}",
        }

    def _record_version(self, config: AppConfig, storage: StorageStack, image: ImageStack, on_failure: sfn.IChainable,
                        label: str, status: str, verdict: str) -> sfn.Chain:
        """Register the model the run holds (``$jobName``, ``$modelData``) with ``status`` (``model_versions``)."""
        gate = {"metric": gate_metric(config), "floor": float(config.recall_threshold),
                "tolerance": float(config.gate_tolerance)}
        images = {"training": image.training_image_uri, "serve": image.serve_image_uri}
        return record_version(self, config, storage.objects_arn(MODELS_PREFIX), images, on_failure, label, status,
                              verdict, gate)


def _channel(name: str, s3_uri: str, mode: str = "File") -> dict:
    """A channel of every object under ``s3_uri``. FastFile streams the files the job opens (the window's days)
    and downloads nothing else: https://docs.aws.amazon.com/AWSJavaSDK/latest/javadoc/com/amazonaws/services/sagemaker/model/TrainingInputMode.html"""
    return {"ChannelName": name, "InputMode": mode, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": s3_uri, "S3DataDistributionType": "FullyReplicated"}}}


# the live model's archive, one object, unpacked by the container
_CHAMPION_CHANNEL = ('{"ChannelName": "champion", "InputMode": "File", "DataSource": {"S3DataSource": {'
                     '"S3DataType": "S3Prefix", "S3Uri": $champion, "S3DataDistributionType": "FullyReplicated"}}}')


def _day_before_start(days: int) -> str:
    """JSONata: the UTC day ``days`` days before the execution's start, as YYYY-MM-DD."""
    return ("{% $fromMillis($toMillis($states.context.Execution.StartTime) - " + str(days * DAY_MILLIS)
            + ", '" + DAY_PICTURE + "') %}")


def _final_metric(name: str) -> str:
    """JSONata: a training job's final value of metric ``name``, or null when it reported none."""
    return ("{% ($value := $states.result.FinalMetricDataList[MetricName = '" + name
            + "'][0].Value; $type($value) = 'number' ? $value : null) %}")


def _jsonata_object(value) -> str:
    """A JSON value as a JSONata literal (JSON is one); CDK tokens inside its strings resolve in place."""
    return json.dumps(value)


def _spot_max_wait(config: AppConfig) -> cdk.Duration:
    hours = config.training_max_runtime_hours
    return cdk.Duration.hours(hours + min(hours, int(SPOT_EXTRA_WAIT_LIMIT.to_hours())))


def _timeout(config: AppConfig) -> cdk.Duration:
    training = _spot_max_wait(config) if config.use_spot else cdk.Duration.hours(config.training_max_runtime_hours)
    return cdk.Duration.hours(int(training.to_hours() + _tuning_hours(config) + DEPLOYMENT_ALLOWANCE.to_hours()))


def _tuning_hours(config: AppConfig) -> int:
    """The longest a tuning step takes: its rounds of parallel trials, each at most a training job's runtime."""
    if not config.tune_every_days:
        return 0
    return -(-config.tune_trials // config.tune_parallel) * config.training_max_runtime_hours
