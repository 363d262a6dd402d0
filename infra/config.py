"""Deployment settings, read once from the CDK context (cdk.json, or ``cdk synth -c key=value``).

Every field is a context key of the same name. Values given on the command line arrive as strings
and are converted; anything invalid raises ConfigError naming the key. Account and region are not
settings: they come from CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION (see ``environment``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from constructs import Node

from infra import layout, tuning
from infra.attribution import MAX_WINDOW_MINUTES
from infra.context_keys import unknown_settings
from infra.instance_types import instance_type_problem, is_gpu_training_type, training_image_problem
from infra.session_query import ATHENA_TIME_FORMS
from model_code.commands.tuning_space import load_space
from model_code.data.event_rules import DEFAULT_MAX_BAD_ROWS, READ_OPTIONS, OptionError
from model_code.gru4rec.hyperparameters import check_hyperparameters
from model_code.gru4rec.params import ParamError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

API_AUTH_MODES = ("iam", "api_key", "cognito")
# A user pool ARN as Cognito writes it: arn:<partition>:cognito-idp:<region>:<account>:userpool/<region>_<id>
_USER_POOL_ARN = re.compile(r"arn:aws[a-z-]*:cognito-idp:[a-z0-9-]+:\d{12}:userpool/[a-z0-9-]+_[0-9A-Za-z]+")
# A browser origin: scheme, host and an optional port, no path ("Origin", https://www.rfc-editor.org/rfc/rfc6454)
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")
# A rate-based rule's request limit per client IP in its evaluation window (RateBasedStatement's Limit)
# https://docs.aws.amazon.com/waf/latest/APIReference/API_RateBasedStatement.html
WAF_RATE_LIMIT_RANGE = (10, 2_000_000_000)
# WAF's logging destination: "Your log group name must start with aws-waf-logs-"
# https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"
ROLLOUT_MODES = ("all_at_once", "canary", "linear")
APPROVAL_MODES = ("auto", "manual")
# the stages whose passing models wait for a person's approval unless ``approval`` says otherwise
MANUAL_APPROVAL_STAGES = ("prod",)
# SageMaker's limits on a blue/green traffic shift (API_TrafficRoutingConfig): a canary is at most 50% of the
# fleet, a linear step 10-50%, the wait between steps 0-3600 s
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_TrafficRoutingConfig.html
ROLLOUT_PERCENT_LIMITS = {"canary": (1, 50), "linear": (10, 50)}
ROLLOUT_WAIT_MINUTES_MAX = 60
ENDPOINT_MODES = ("instance", "serverless")
MAX_SHARD_MB = 512
"""The sharder holds one shard in memory (its function has 2 GB)."""
# SageMaker's limits on a serverless variant (API_ProductionVariantServerlessConfig): memory in 1 GB steps
# from 1024 to 6144 MB, 1-200 concurrent invocations, provisioned concurrency at most the maximum
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProductionVariantServerlessConfig.html
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
SERVERLESS_MAX_CONCURRENCY = 200
QUOTA_PERIODS = ("DAY", "WEEK", "MONTH")
MAX_TRAIN_WINDOW_DAYS = 366
# the retention periods CloudWatch Logs accepts
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                      2192, 2557, 2922, 3288, 3653)

ATHENA_MIN_CUTOFF = 10_000_000
"""BytesScannedCutoffPerQuery's minimum: https://docs.aws.amazon.com/athena/latest/APIReference/API_WorkGroupConfiguration.html"""
_MODEL_DATA = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/models/\S+\.tar\.gz")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ACCOUNT = re.compile(r"\d{12}")
# EventBridge Scheduler's recurring expressions: rate(value unit) or cron(six fields)
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html
# (a value of 1 takes the singular unit, any other the plural)
_SCHEDULE = re.compile(r"rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)|cron\(\S+( \S+){5}\)")


class ConfigError(ValueError):
    """A context value that cannot be used; the message names the context key."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"context key {key!r}: {problem}")
        self.key = key


@dataclass(frozen=True)
class AppConfig:
    """What differs between deployments of the app. Field names are the context keys."""

    stage: str = "dev"
    training_instance_type: str = "ml.m5.xlarge"
    training_max_runtime_hours: int = 4
    use_spot: bool = True
    recall_threshold: float = 0.2
    retrain_schedule: str | None = None
    valid_days: float = 1.0
    train_window_days: int = 28
    gate_tolerance: float = 0.005
    refit_after_gate: bool = True
    retrain_on_new_data: bool = False
    training_hyperparameters: str = "{}"
    tune_every_days: int = 0
    tune_space: str = "xe"
    tune_trials: int = 20
    tune_parallel: int = 2
    endpoint_instance_type: str = "ml.m5.large"
    endpoint_initial_instance_count: int = 1
    endpoint_max_instance_count: int = 2
    endpoint_autoscaling: bool = True
    endpoint_invocations_per_instance: int = 1000
    endpoint_mode: str = "instance"
    serverless_memory_mb: int = 2048
    serverless_max_concurrency: int = 5
    serverless_provisioned_concurrency: int = 0
    model_latency_alarm_ms: int = 500
    approval: str | None = None
    rollout: str = "canary"
    rollout_traffic_percent: int = 10
    rollout_wait_minutes: int = 10
    model_keep_count: int = 3
    data_capture_percent: int = 0
    attribution_minutes: int = 30
    attribution_schedule: str | None = None
    stale_unknown_percent: float = 20.0
    stale_coverage_percent: float = 5.0
    ab_test: str | None = None
    ab_weights: str = "90,10"
    transform_instance_type: str = "ml.m5.xlarge"
    transform_instance_count: int = 1
    transform_shard_mb: int = 64
    max_concurrent_transform_jobs: int = 2
    events_session_column: str = "SessionId"
    events_item_column: str = "ItemId"
    events_time_column: str = "Time"
    events_separator: str = "tab"
    events_time_format: str = "auto"
    events_max_bad_rows: str = DEFAULT_MAX_BAD_ROWS
    events_session_gap: str = "off"
    events_event_column: str = "none"
    events_event_types: str = "all"
    athena_bytes_scanned_cutoff: int = 10_000_000_000
    initial_model_artifact: str = "build/model.tar.gz"
    initial_model_version: str = "initial-1"
    api_auth: str = "iam"
    api_throttle_rate_limit: float = 50.0
    api_throttle_burst_limit: int = 100
    api_quota_limit: int = 100_000
    api_quota_period: str = "DAY"
    api_guest_identities: bool = False
    api_user_pool_arn: str | None = None
    cors_allowed_origins: str | None = None
    waf: bool = False
    waf_rate_limit: int = 1000
    image_keep_count: int = 10
    scored_expiration_days: int = 30
    incoming_expiration_days: int = 30
    capture_expiration_days: int = 90
    checkpoint_expiration_days: int = 30
    events_expiration_days: int = 30
    grouped_expiration_days: int = 7
    athena_results_expiration_days: int = 7
    noncurrent_version_expiration_days: int = 30
    access_log_expiration_days: int = 365
    log_retention_days: int = 365
    notification_email: str | None = None
    api_5xx_alarm_threshold: int = 1
    endpoint_4xx_alarm_percent: float = 5.0
    monthly_budget_usd: float | None = None
    budget_actual_percent: float = 80.0
    budget_forecast_percent: float = 100.0
    # cross-account promotion: the accounts this stage's versions may be promoted to (comma-separated account ids,
    # or a JSON list), and the account whose versions this stage may be given
    promotion_target_accounts: str | None = None
    promotion_source_account: str | None = None

    def __post_init__(self) -> None:
        _check(layout.STAGE_PATTERN.fullmatch(self.stage), "stage",
               f"must be 1-16 lower-case letters or digits, starting with a letter, got {self.stage!r}")
        for kind in ("training", "endpoint", "transform"):
            key = f"{kind}_instance_type"
            problem = instance_type_problem(kind, getattr(self, key))
            _check(problem is None, key, problem)
        problem = training_image_problem(self.training_instance_type)
        _check(problem is None, "training_instance_type", problem)
        for key in (
            "training_max_runtime_hours",
            "endpoint_initial_instance_count",
            "endpoint_invocations_per_instance",
            "model_latency_alarm_ms",
            "transform_instance_count",
            "max_concurrent_transform_jobs",
            "api_throttle_burst_limit",
            "api_quota_limit",
            "image_keep_count",
            "scored_expiration_days",
            "incoming_expiration_days",
            "capture_expiration_days",
            "checkpoint_expiration_days",
            "noncurrent_version_expiration_days",
            "access_log_expiration_days",
            "model_keep_count",
            "events_expiration_days",
        ):
            _check(getattr(self, key) >= 1, key, f"must be at least 1, got {getattr(self, key)}")
        _check(self.training_max_runtime_hours <= 28 * 24, "training_max_runtime_hours",
               f"SageMaker allows at most 28 days (672 hours), got {self.training_max_runtime_hours}")
        longest_job_hours = self.training_max_runtime_hours + min(self.training_max_runtime_hours, 24)
        _check(self.checkpoint_expiration_days * 24 >= longest_job_hours, "checkpoint_expiration_days",
               f"must outlast the longest training job with Managed Spot ({longest_job_hours} hours), "
               f"got {self.checkpoint_expiration_days} days")
        _check(self.endpoint_max_instance_count >= self.endpoint_initial_instance_count, "endpoint_max_instance_count",
               f"must be at least endpoint_initial_instance_count ({self.endpoint_initial_instance_count}), "
               f"got {self.endpoint_max_instance_count}")
        _check(0.0 <= self.recall_threshold <= 1.0, "recall_threshold",
               f"must be between 0 and 1, got {self.recall_threshold}")
        _check(self.retrain_schedule is None or _SCHEDULE.fullmatch(self.retrain_schedule), "retrain_schedule",
               "must be an EventBridge Scheduler expression such as 'rate(7 days)' or 'cron(0 3 ? * MON *)', "
               f"or empty (off), got {self.retrain_schedule!r}")
        _check(0.0 <= self.valid_days < float("inf"), "valid_days",
               f"must be a number of days >= 0 (0: the gate reads the test channel's figure), got {self.valid_days}")
        _check(self.valid_days < self.train_window_days <= MAX_TRAIN_WINDOW_DAYS, "train_window_days",
               f"must be more than valid_days ({self.valid_days:g}: the window's last days validate, the days "
               f"before them train) and at most {MAX_TRAIN_WINDOW_DAYS}, got {self.train_window_days}")
        _check(0.0 <= self.gate_tolerance <= 1.0, "gate_tolerance",
               f"must be between 0 and 1 (how far below the live model's Recall@20 a new model may score), "
               f"got {self.gate_tolerance}")
        _check(0 <= self.data_capture_percent <= 100, "data_capture_percent",
               f"must be between 0 (off) and 100, got {self.data_capture_percent}")
        self._check_attribution()
        self._check_ab_test()
        _check(self.api_throttle_rate_limit > 0, "api_throttle_rate_limit",
               f"must be above 0 requests per second, got {self.api_throttle_rate_limit}")
        _check(1 <= self.transform_shard_mb <= MAX_SHARD_MB, "transform_shard_mb",
               f"must be 1 to {MAX_SHARD_MB} (MB per shard of a batch input), got {self.transform_shard_mb}")
        _check(self.image_keep_count <= 1000, "image_keep_count", f"must be at most 1000, got {self.image_keep_count}")
        _check(self.api_auth in API_AUTH_MODES, "api_auth", f"must be one of {API_AUTH_MODES}, got {self.api_auth!r}")
        _check(self.api_quota_period in QUOTA_PERIODS, "api_quota_period",
               f"must be one of {QUOTA_PERIODS}, got {self.api_quota_period!r}")
        _check(
            self.log_retention_days in LOG_RETENTION_DAYS,
            "log_retention_days",
            f"must be one of the CloudWatch Logs retention periods {LOG_RETENTION_DAYS}, got {self.log_retention_days}",
        )
        _check(_VERSION.fullmatch(self.initial_model_version), "initial_model_version",
               "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, "
               f"got {self.initial_model_version!r}")
        self._check_browser_access()
        self._check_rollout()
        _check(self.approval is None or self.approval in APPROVAL_MODES, "approval",
               f"must be one of {APPROVAL_MODES} (or empty: manual on {', '.join(MANUAL_APPROVAL_STAGES)}, auto "
               f"elsewhere), got {self.approval!r}")
        self._check_endpoint_mode()
        self._check_events()
        self._check_training_hyperparameters()
        self._check_tuning()
        self._check_monitoring()
        _check(self.notification_email is None or _EMAIL.fullmatch(self.notification_email), "notification_email",
               f"must be an e-mail address, got {self.notification_email!r}")
        _check(self.promotion_source_account is None or _ACCOUNT.fullmatch(self.promotion_source_account),
               "promotion_source_account", f"must be a 12-digit AWS account id, got {self.promotion_source_account!r}")

    def _check_attribution(self) -> None:
        """The attribution of captured answers: a window, an optional daily schedule and the staleness bounds."""
        _check(1 <= self.attribution_minutes <= MAX_WINDOW_MINUTES, "attribution_minutes",
               f"must be 1 to {MAX_WINDOW_MINUTES} minutes after an answer, got {self.attribution_minutes}")
        schedule = self.attribution_schedule
        _check(schedule is None or _SCHEDULE.fullmatch(schedule), "attribution_schedule",
               "must be an EventBridge Scheduler expression such as 'cron(30 2 * * ? *)' or 'rate(1 day)', "
               f"or empty (off), got {self.attribution_schedule!r}")
        _check(self.attribution_schedule is None or self.data_capture_percent > 0, "attribution_schedule",
               "reads the endpoint's captured answers: needs data_capture_percent above 0")
        for key in ("stale_unknown_percent", "stale_coverage_percent"):
            value = getattr(self, key)
            _check(0.0 <= value <= 100.0, key, f"must be a percentage from 0 to 100, got {value}")

    def _check_ab_test(self) -> None:
        """An A/B test: the challenger's model.tar.gz (the live model is the other variant), a split of the traffic,
        instances (a serverless endpoint captures nothing to compare the two by) and data capture."""
        self.ab_split()
        if self.ab_test is None:
            return
        _check(_MODEL_DATA.fullmatch(self.ab_test), "ab_test",
               f"must be the challenger's model data, a model.tar.gz of the stage's data bucket under models/ (which "
               f"the endpoint's role reads): s3://BUCKET/models/KEY.tar.gz, got {self.ab_test!r}")
        _check(not self.serverless, "ab_test",
               "needs endpoint_mode instance: a serverless endpoint captures no answers to compare the two variants by")
        _check(self.data_capture_percent > 0, "ab_test", "needs data_capture_percent above 0: the report compares the "
                                                         "variants by their captured answers")

    def ab_split(self) -> tuple[int, int]:
        """``ab_weights`` as the live and the challenger variant's weights."""
        parts = self.ab_weights.split(",")
        _check(len(parts) == 2 and all(re.fullmatch(r"\s*[1-9]\d{0,5}\s*", part) for part in parts), "ab_weights",
               f"must be two whole numbers from 1, the live variant's and the challenger's share, e.g. '90,10', "
               f"got {self.ab_weights!r}")
        live, challenger = (int(part) for part in parts)
        return live, challenger

    def _check_browser_access(self) -> None:
        """Guest identities sign with SigV4 (``api_auth=iam``); ``cognito`` needs a user pool; CORS names one origin."""
        _check(not self.api_guest_identities or self.api_auth == "iam", "api_guest_identities",
               f"guests sign their requests with SigV4: needs api_auth=iam, got api_auth={self.api_auth!r}")
        _check((self.api_auth == "cognito") == (self.api_user_pool_arn is not None), "api_user_pool_arn",
               "must be a Cognito user pool ARN exactly when api_auth=cognito "
               f"(api_auth={self.api_auth!r}, api_user_pool_arn={self.api_user_pool_arn!r})")
        _check(
            self.api_user_pool_arn is None or _USER_POOL_ARN.fullmatch(self.api_user_pool_arn),
            "api_user_pool_arn",
            "must be a user pool ARN (arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL_ID), got "
            f"{self.api_user_pool_arn!r}",
        )
        _check(self.cors_allowed_origins != "*", "cors_allowed_origins",
               "'*' is refused: every request to this API carries credentials (SigV4, a token or a key); "
               "name the storefront's origin, e.g. https://shop.example.com")
        _check(
            self.cors_allowed_origins is None or _ORIGIN.fullmatch(self.cors_allowed_origins),
            "cors_allowed_origins",
            "must be one origin (scheme://host[:port], no path, no trailing slash): API Gateway's error "
            f"responses carry a fixed Access-Control-Allow-Origin, got {self.cors_allowed_origins!r}",
        )
        low, high = WAF_RATE_LIMIT_RANGE
        _check(
            low <= self.waf_rate_limit <= high,
            "waf_rate_limit",
            f"must be from {low} to {high} requests per client IP in 5 minutes (WAF's limits), got "
            f"{self.waf_rate_limit}",
        )

    @property
    def browser_callers(self) -> bool:
        """Whether pages call the API (guest identities or a user pool): they hold no API key."""
        return self.api_guest_identities or self.api_auth == "cognito"

    @property
    def training_on_gpu(self) -> bool:
        """Whether training jobs run the GPU image (``train-gpu``): a GPU ``training_instance_type``."""
        return is_gpu_training_type(self.training_instance_type)

    def _check_rollout(self) -> None:
        """The guarded rollout: a mode SageMaker knows, a traffic share and wait it accepts, an instance type it guards.

        SageMaker falls back to all-at-once with no baking period on Inf1 instances ("Exclusions",
        https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html): a canary or
        linear rollout there would not be what it says, so it is refused.
        """
        _check(self.rollout in ROLLOUT_MODES, "rollout", f"must be one of {ROLLOUT_MODES}, got {self.rollout!r}")
        if self.rollout in ROLLOUT_PERCENT_LIMITS:
            low, high = ROLLOUT_PERCENT_LIMITS[self.rollout]
            _check(low <= self.rollout_traffic_percent <= high, "rollout_traffic_percent",
                   f"a {self.rollout} rollout shifts {low}-{high}% of the fleet per step (SageMaker's limits), "
                   f"got {self.rollout_traffic_percent}")
            _check(self.serverless or not self.endpoint_instance_type.startswith("ml.inf1."), "rollout",
                   f"SageMaker runs no {self.rollout} rollout on Inf1 instances ({self.endpoint_instance_type}): "
                   "it falls back to all at once; set rollout to all_at_once or pick another instance type")
        _check(0 <= self.rollout_wait_minutes <= ROLLOUT_WAIT_MINUTES_MAX, "rollout_wait_minutes",
               f"must be from 0 to {ROLLOUT_WAIT_MINUTES_MAX} (SageMaker waits at most 3600 s between steps), "
               f"got {self.rollout_wait_minutes}")

    def _check_endpoint_mode(self) -> None:
        """An instance-backed or a serverless endpoint, the latter with a variant SageMaker accepts.

        Every rollout of this app is blue/green; SageMaker excludes serverless endpoints from rolling
        deployments only ("Exclusions", https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html),
        so the rollout settings stand in both modes. The serverless "feature exclusions" (network isolation,
        data capture, payloads above 4 MB) are dropped by the stacks, not refused here: data_capture_percent
        keeps its meaning for the instance mode.
        """
        _check(self.endpoint_mode in ENDPOINT_MODES, "endpoint_mode",
               f"must be one of {ENDPOINT_MODES}, got {self.endpoint_mode!r}")
        _check(self.serverless_memory_mb in SERVERLESS_MEMORY_MB, "serverless_memory_mb",
               f"SageMaker accepts {', '.join(map(str, SERVERLESS_MEMORY_MB))} MB, got {self.serverless_memory_mb}")
        _check(
            1 <= self.serverless_max_concurrency <= SERVERLESS_MAX_CONCURRENCY,
            "serverless_max_concurrency",
            f"must be from 1 to {SERVERLESS_MAX_CONCURRENCY} (SageMaker's limit), "
            f"got {self.serverless_max_concurrency}",
        )
        _check(0 <= self.serverless_provisioned_concurrency <= self.serverless_max_concurrency,
               "serverless_provisioned_concurrency",
               f"must be from 0 (off) to serverless_max_concurrency ({self.serverless_max_concurrency}), "
               f"got {self.serverless_provisioned_concurrency}")

    @property
    def serverless(self) -> bool:
        """Whether the endpoint is SageMaker Serverless Inference rather than instances."""
        return self.endpoint_mode == "serverless"

    def serverless_config(self) -> dict:
        """``ServerlessConfig`` of the endpoint's variant, as CloudFormation and CreateEndpointConfig both spell it."""
        serverless = {"MemorySizeInMB": self.serverless_memory_mb, "MaxConcurrency": self.serverless_max_concurrency}
        if self.serverless_provisioned_concurrency:
            serverless["ProvisionedConcurrency"] = self.serverless_provisioned_concurrency
        return serverless

    @property
    def training_hyperparameter_values(self) -> dict[str, str]:
        """``training_hyperparameters`` as checked names and values: what every training job of the stage gets."""
        values = json.loads(self.training_hyperparameters)
        if not isinstance(values, dict):
            raise ValueError(f"must be a JSON object of hyperparameters, got {self.training_hyperparameters!r}")
        return check_hyperparameters({name: str(value) for name, value in values.items()})

    def _check_training_hyperparameters(self) -> None:
        """The stage's hyperparameters pass the container's checks; the split is the ``valid_days`` setting's."""
        try:
            values = self.training_hyperparameter_values
        except (ValueError, ParamError) as err:
            raise ConfigError("training_hyperparameters", str(err)) from None
        _check("valid_days" not in values, "training_hyperparameters",
               "valid_days is a setting of its own: set the context key valid_days")

    def _check_tuning(self) -> None:
        """A tuning step: a space SageMaker can search, limits it accepts, and the validation split its objective
        needs."""
        _check(
            self.tune_every_days >= 0,
            "tune_every_days",
            f"must be a number of days >= 0 (0: off), got {self.tune_every_days}",
        )
        if not self.tune_every_days:
            return
        _check(self.valid_days > 0, "tune_every_days",
               f"tuning maximises {tuning.OBJECTIVE_METRIC}, measured on the validation split: needs valid_days > 0")
        try:
            space = load_space(self.tune_space)
        except ParamError as err:
            raise ConfigError("tune_space", str(err)) from None
        try:
            tuning.parameter_ranges(space)
        except tuning.TuningError as err:
            raise ConfigError("tune_space", str(err)) from None
        _check(self.tune_trials >= 1, "tune_trials", f"must be at least 1, got {self.tune_trials}")
        _check(1 <= self.tune_parallel <= self.tune_trials, "tune_parallel",
               f"must be from 1 to tune_trials ({self.tune_trials}), got {self.tune_parallel}")

    def _check_events(self) -> None:
        """The raw event files' table: the reader's options (model_code/data/event_rules.py) that a table can fix."""
        for key in ("events_session_column", "events_item_column", "events_time_column", "events_separator",
                    "events_time_format", "events_max_bad_rows", "events_session_gap", "events_event_column",
                    "events_event_types"):
            name = key.removeprefix("events_")
            option = next(option for option in READ_OPTIONS if option.name == name)
            try:
                value = option.parse(getattr(self, key))
            except OptionError as err:
                raise ConfigError(key, str(err)) from None
            _check(key != "events_separator" or value is not None, key,
                   "a table reads one separator: tab, comma, semicolon, pipe or one character, not auto")
        _check(self.events_event_types.strip().lower() == "all" or self.events_event_column.strip().lower() != "none",
               "events_event_types", "needs events_event_column: the column of the event kinds")
        _check(self.events_time_format.strip().lower() in ATHENA_TIME_FORMS, "events_time_format",
               f"the Athena query reads {ATHENA_TIME_FORMS}, got {self.events_time_format!r}")
        _check(
            self.athena_bytes_scanned_cutoff >= ATHENA_MIN_CUTOFF,
            "athena_bytes_scanned_cutoff",
            f"Athena's smallest cut-off is {ATHENA_MIN_CUTOFF} bytes (10 MB), got {self.athena_bytes_scanned_cutoff}",
        )
        # a run reads its grouped lines and its query results until it ends, at most EVENTS_RUN_DAYS after it starts
        for key in ("grouped_expiration_days", "athena_results_expiration_days"):
            _check(getattr(self, key) > layout.EVENTS_RUN_DAYS, key,
                   f"must outlast an events run ({layout.EVENTS_RUN_DAYS} days at most): at least "
                   f"{layout.EVENTS_RUN_DAYS + 1}, got {getattr(self, key)}")

    def _check_monitoring(self) -> None:
        """The dashboard's alarms and the stage's budget (``monthly_budget_usd`` unset: no budget)."""
        _check(self.api_5xx_alarm_threshold >= 1, "api_5xx_alarm_threshold",
               f"must be at least 1 (5xx answers in 5 minutes), got {self.api_5xx_alarm_threshold}")
        _check(0.0 < self.endpoint_4xx_alarm_percent <= 100.0, "endpoint_4xx_alarm_percent",
               f"must be above 0 and at most 100 (percent of invocations), got {self.endpoint_4xx_alarm_percent}")
        _check(self.monthly_budget_usd is None or 0.0 < self.monthly_budget_usd < float("inf"), "monthly_budget_usd",
               f"must be an amount in US dollars above 0, or empty (no budget), got {self.monthly_budget_usd}")
        for key in ("budget_actual_percent", "budget_forecast_percent"):
            _check(0.0 < getattr(self, key) <= 1000.0, key,
                   f"must be above 0 and at most 1000 (percent of monthly_budget_usd), got {getattr(self, key)}")

    @property
    def batch_metrics_service(self) -> str:
        """The ``Service`` dimension of the request metrics of the batch pipelines' models
        (``gru4rec-<stage>-batch``)."""
        return f"{self.resource_prefix}-batch"

    @classmethod
    def from_context(cls, node: Node) -> AppConfig:
        """The settings in the context of ``node`` (an App's node), defaults for keys not set.

        A key that looks like a setting but is none (``stgae``) is refused, naming the closest setting.
        """
        _check_no_unknown_settings(node.get_all_context(), [field.name for field in dataclasses.fields(cls)])
        values = {}
        for field in dataclasses.fields(cls):
            value = node.try_get_context(field.name)
            if value is not None:
                values[field.name] = value
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AppConfig:
        """Convert and validate raw context values (JSON values, or strings from ``-c key=value``).

        ``initial_model_artifact`` is resolved against the project root and must be an existing file.
        """
        known = {field.name: field for field in dataclasses.fields(cls)}
        converted = {key: _convert(key, known[key].type, raw) for key, raw in values.items() if key in known}
        config = cls(**converted)
        artifact = PROJECT_ROOT / config.initial_model_artifact
        _check(artifact.is_file(), "initial_model_artifact",
               f"no file at {artifact}: build it with `make model-artifact` or point the key at a model.tar.gz")
        return dataclasses.replace(config, initial_model_artifact=str(artifact))

    @property
    def promotion_targets(self) -> list[str]:
        """The accounts this stage's versions may be promoted to (``promotion_target_accounts``)."""
        return self.promotion_target_accounts.split(",") if self.promotion_target_accounts else []

    @property
    def stage_title(self) -> str:
        """The stage as it appears in stack names: ``dev`` -> ``Dev``."""
        return layout.stage_title(self.stage)

    @property
    def resource_prefix(self) -> str:
        """Prefix of the physical names this stage chooses (``gru4rec-dev``)."""
        return f"gru4rec-{self.stage}"

    @property
    def endpoint_name(self) -> str:
        """The SageMaker endpoint's fixed name, so that API, training and batch can address it."""
        return self.resource_prefix

    @property
    def endpoint_log_group_name(self) -> str:
        """The log group SageMaker writes the endpoint's container logs to; the endpoint stack creates and owns it."""
        return f"/aws/sagemaker/Endpoints/{self.endpoint_name}"

    @property
    def waf_log_group_name(self) -> str:
        """``aws-waf-logs-gru4rec-<stage>``: the firewall's log group (the stage key's policy lets Logs use the key for
        it)."""
        return f"{WAF_LOG_GROUP_PREFIX}{self.resource_prefix}"

    @property
    def approval_mode(self) -> str:
        """``auto``: a model that passes the gate is registered Approved and goes live; ``manual``: it waits in the
        registry as PendingManualApproval until a person approves it. ``approval``, else by stage."""
        if self.approval:
            return self.approval
        return "manual" if self.stage in MANUAL_APPROVAL_STAGES else "auto"

    @property
    def model_package_group_name(self) -> str:
        """``gru4rec-<stage>``: the stage's model package group in the SageMaker Model Registry."""
        return self.resource_prefix

    @property
    def tuned_hyperparameters_parameter_name(self) -> str:
        """SSM parameter holding the hyperparameters taken from a tuning job (``infra.ops tune --apply``)."""
        return self.parameter_name(layout.TUNED_HYPERPARAMETERS_PARAMETER)

    def stack_name(self, part: str) -> str:
        """``Gru4Rec-<Stage>-<part>``, e.g. ``Gru4Rec-Dev-Storage``."""
        return layout.stack_name(self.stage, part)

    def parameter_name(self, leaf: str) -> str:
        """``/gru4rec/<stage>/<leaf>``."""
        return layout.parameter_name(self.stage, leaf)

    def topic_name(self, leaf: str) -> str:
        """``gru4rec-<stage>-<leaf>``: the stage's SNS topics, which the key policy lets alarms and rules use by this
        prefix."""
        return f"{self.resource_prefix}-{leaf}"

    def log_group_name(self, leaf: str) -> str:
        """``/gru4rec/<stage>/<leaf>``: log groups under this prefix may use the stage's KMS key."""
        return layout.parameter_name(self.stage, leaf)


def environment() -> cdk.Environment:
    """Account and region the CDK CLI resolved (CDK_DEFAULT_*); unset means an environment-agnostic synth."""
    return cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))


def _check_no_unknown_settings(context: Mapping[str, Any], settings: list[str]) -> None:
    for key, closest in unknown_settings(context, settings):
        hint = f"did you mean {closest!r}? " if closest else ""
        raise ConfigError(key, f"is not a setting of this app; {hint}the settings are {', '.join(settings)}")


def _check(condition: object, key: str, problem: str) -> None:
    if not condition:
        raise ConfigError(key, problem)


def _convert(key: str, kind: str, raw: Any) -> Any:
    """One context value as the field's type (annotations are strings here: 'int', 'str | None', ...)."""
    if key == "training_hyperparameters":
        return _to_hyperparameters(key, raw)
    if key == "promotion_target_accounts":
        return _to_accounts(key, raw)
    converters: dict[str, Callable[[str, Any], Any]] = {
        "str": _to_str, "str | None": _to_optional_str, "int": _to_int, "float": _to_float, "bool": _to_bool,
        "float | None": _to_optional_float,
    }
    return converters[kind](key, raw)


def _to_hyperparameters(key: str, raw: Any) -> str:
    """A JSON object of hyperparameters (from cdk.json, or its text from ``-c``), as canonical JSON text."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "{}")
        except ValueError:
            raise ConfigError(key, f"must be a JSON object of hyperparameters, got {raw!r}") from None
    _check(isinstance(raw, Mapping), key, f"must be a JSON object of hyperparameters, got {raw!r}")
    return json.dumps({str(name): str(value) for name, value in raw.items()}, sort_keys=True)


def _to_accounts(key: str, raw: Any) -> str | None:
    """AWS account ids (a JSON list, or text separated by commas) as sorted comma-separated text; None for none."""
    if raw in ("", None, []):
        return None
    accounts = raw.split(",") if isinstance(raw, str) else raw
    _check(isinstance(accounts, list), key, f"must be a list of 12-digit AWS account ids, got {raw!r}")
    accounts = [str(account).strip() for account in accounts]
    bad = [account for account in accounts if not _ACCOUNT.fullmatch(account)]
    _check(not bad, key, f"must be 12-digit AWS account ids, got {', '.join(map(repr, bad))}")
    return ",".join(sorted(set(accounts)))


def _to_str(key: str, raw: Any) -> str:
    _check(isinstance(raw, str) and raw, key, f"must be a non-empty string, got {raw!r}")
    return raw


def _to_optional_str(key: str, raw: Any) -> str | None:
    return None if raw in ("", None) else _to_str(key, raw)


def _to_int(key: str, raw: Any) -> int:
    if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
        return int(raw)
    _check(isinstance(raw, int) and not isinstance(raw, bool), key, f"must be a whole number, got {raw!r}")
    return raw


def _to_float(key: str, raw: Any) -> float:
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(key, f"must be a number, got {raw!r}") from None
    _check(isinstance(raw, (int, float)) and not isinstance(raw, bool), key, f"must be a number, got {raw!r}")
    return float(raw)


def _to_optional_float(key: str, raw: Any) -> float | None:
    return None if raw in ("", None) else _to_float(key, raw)


def _to_bool(key: str, raw: Any) -> bool:
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    _check(isinstance(raw, bool), key, f"must be true or false, got {raw!r}")
    return raw
