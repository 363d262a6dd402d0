"""Settings from the CDK context: conversion of command-line strings, validation naming the key."""
import json
import re

import aws_cdk as cdk
import botocore.session
import pytest

from infra.config import PROJECT_ROOT, WAF_RATE_LIMIT_RANGE, AppConfig, ConfigError
from model_code.data.event_rules import ReadOptions
from tests.infra.conftest import cdk_json_context


@pytest.fixture
def artifact(tmp_path):
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"stand-in")
    return str(path)


def test_cdk_json_context_is_a_valid_configuration(artifact):
    context = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    config = AppConfig.from_mapping({**context, "initial_model_artifact": artifact})
    assert config.stage == "dev"
    assert config.api_auth == "iam"


def test_every_setting_is_in_cdk_json():
    """cdk.json lists each setting (notification_email, optional, aside) so that users see what they can set."""
    context = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    settings = set(AppConfig.__dataclass_fields__) - {"notification_email"}
    assert settings - set(context) == set()


def test_command_line_strings_are_converted(artifact):
    config = AppConfig.from_mapping({
        "stage": "prod", "endpoint_max_instance_count": "4", "recall_threshold": "0.35", "use_spot": "false",
        "api_throttle_rate_limit": "12.5", "initial_model_artifact": artifact,
    })
    assert (config.endpoint_max_instance_count, config.recall_threshold, config.use_spot) == (4, 0.35, False)
    assert config.api_throttle_rate_limit == 12.5


def test_from_context_reads_the_app_context(artifact):
    app = cdk.App(context={"stage": "qa", "data_capture_percent": 0, "initial_model_artifact": artifact})
    config = AppConfig.from_context(app.node)
    assert (config.stage, config.data_capture_percent) == ("qa", 0)
    assert config.endpoint_instance_type == AppConfig().endpoint_instance_type


def test_names_derive_from_the_stage(artifact):
    config = AppConfig.from_mapping({"stage": "prod", "initial_model_artifact": artifact})
    assert config.stack_name("Storage") == "Gru4Rec-Prod-Storage"
    assert config.endpoint_name == "gru4rec-prod"
    assert config.model_package_group_name == "gru4rec-prod"
    assert config.tuned_hyperparameters_parameter_name == "/gru4rec/prod/tuned-hyperparameters"
    assert not [name for name in dir(config) if name.endswith("model_data_parameter_name")], "no live-model pointer"
    assert config.log_group_name("api-access") == "/gru4rec/prod/api-access"


def test_relative_artifact_path_is_resolved_against_the_project_root(tmp_path):
    inside = PROJECT_ROOT / "build" / f"config-test-{tmp_path.name}.tar.gz"
    inside.parent.mkdir(exist_ok=True)
    inside.write_bytes(b"stand-in")
    try:
        config = AppConfig.from_mapping({"initial_model_artifact": str(inside.relative_to(PROJECT_ROOT))})
        assert config.initial_model_artifact == str(inside)
    finally:
        inside.unlink()


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("stage", "Dev", "lower-case"),
        ("stage", "dev-1", "lower-case"),
        ("stage", "", "non-empty"),
        ("endpoint_instance_type", "m5.large", "not a SageMaker endpoint instance type"),
        ("endpoint_instance_type", "ml.m5.huge", "not a SageMaker endpoint instance type (did you mean 'ml.m5.large'"),
        ("training_instance_type", "ml.c5.large", "not a SageMaker training instance type"),
        ("training_instance_type", "ml.p2.xlarge", "cannot run the training images: its K80 GPUs"),
        ("training_instance_type", "ml.trn1.2xlarge", "cannot run the training images: Trainium needs the Neuron SDK"),
        ("training_instance_type", "ml.p6e-gb200.36xlarge", "cannot run the training images: its Grace hosts are Arm"),
        ("transform_instance_type", "ml.p4d.24xlarge", "not a SageMaker transform instance type"),
        ("endpoint_initial_instance_count", 0, "at least 1"),
        ("endpoint_initial_instance_count", "two", "whole number"),
        ("endpoint_initial_instance_count", True, "whole number"),
        ("endpoint_initial_instance_count", 1.5, "whole number"),
        ("endpoint_max_instance_count", 0, "at least endpoint_initial_instance_count"),
        ("recall_threshold", 1.5, "between 0 and 1"),
        ("recall_threshold", "high", "must be a number"),
        ("data_capture_percent", 101, "between 0 (off) and 100"),
        ("attribution_minutes", 0, "1 to 1440 minutes"),
        ("attribution_minutes", 1441, "1 to 1440 minutes"),
        ("attribution_schedule", "daily", "EventBridge Scheduler expression"),
        ("stale_unknown_percent", 101, "percentage from 0 to 100"),
        ("stale_coverage_percent", -1, "percentage from 0 to 100"),
        ("ab_weights", "90", "two whole numbers"),
        ("ab_weights", "90,0", "two whole numbers"),
        ("ab_weights", "a,b", "two whole numbers"),
        ("ab_test", "models/x/model.tar.gz", "s3://BUCKET/models/KEY.tar.gz"),
        ("ab_test", "s3://bucket/elsewhere/model.tar.gz", "s3://BUCKET/models/KEY.tar.gz"),
        ("use_spot", "yes", "true or false"),
        ("api_auth", "oauth", "one of"),
        (
            "api_user_pool_arn",
            "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_Ab12",
            "exactly when api_auth=cognito",
        ),
        ("api_guest_identities", "yes", "true or false"),
        ("cors_allowed_origins", "*", "'*' is refused"),
        ("cors_allowed_origins", "https://shop.example.com/", "one origin"),
        ("cors_allowed_origins", "https://a.example.com,https://b.example.com", "one origin"),
        ("waf_rate_limit", 9, "from 10 to 2000000000"),
        ("api_quota_period", "YEAR", "one of"),
        ("api_throttle_rate_limit", 0, "above 0"),
        ("log_retention_days", 10, "retention periods"),
        ("image_keep_count", 1001, "at most 1000"),
        ("training_max_runtime_hours", 700, "28 days"),
        ("initial_model_version", "v 1", "letters, digits"),
        ("notification_email", "ops", "e-mail address"),
        ("train_window_days", 1, "more than valid_days (1"),
        ("train_window_days", 367, "at most 366"),
        ("train_window_days", "a month", "whole number"),
        ("gate_tolerance", -0.01, "between 0 and 1"),
        ("refit_after_gate", "on", "true or false"),
        ("retrain_on_new_data", 1, "true or false"),
        ("transform_shard_mb", 0, "must be 1 to 512 (MB per shard"),
        ("transform_shard_mb", 513, "must be 1 to 512 (MB per shard"),
        ("promotion_target_accounts", "21098765432", "12-digit AWS account ids, got '21098765432'"),
        ("promotion_target_accounts", ["210987654321", "prod"], "got 'prod'"),
        ("promotion_target_accounts", {"prod": "210987654321"}, "list of 12-digit"),
        ("promotion_source_account", "arn:aws:iam::109876543210:root", "12-digit AWS account id"),
    ],
)
def test_invalid_values_name_the_context_key(artifact, key, value, fragment):
    with pytest.raises(ConfigError) as raised:
        AppConfig.from_mapping({"initial_model_artifact": artifact, key: value})
    assert raised.value.key == key
    assert f"context key {key!r}" in str(raised.value)
    assert fragment in str(raised.value)


@pytest.mark.parametrize(("values", "key", "fragment"), [
    ({"api_auth": "api_key", "api_guest_identities": True}, "api_guest_identities", "needs api_auth=iam"),
    ({"api_auth": "cognito"}, "api_user_pool_arn", "Cognito user pool ARN exactly when api_auth=cognito"),
    ({"api_auth": "cognito", "api_user_pool_arn": "arn:aws:cognito-idp:eu-west-1:123456789012:pool/x"},
     "api_user_pool_arn", "must be a user pool ARN"),
])
def test_browser_settings_that_contradict_each_other_are_refused(artifact, values, key, fragment):
    with pytest.raises(ConfigError) as raised:
        AppConfig.from_mapping({"initial_model_artifact": artifact, **values})
    assert raised.value.key == key and fragment in str(raised.value)


@pytest.mark.parametrize(("values", "key", "fragment"), [
    ({"tune_every_days": -1}, "tune_every_days", "days >= 0"),
    ({"tune_every_days": 7, "valid_days": 0}, "tune_every_days", "needs valid_days > 0"),
    ({"tune_every_days": 7, "tune_space": "nope"}, "tune_space", "not a built-in space"),
    ({"tune_every_days": 7, "tune_parallel": 21}, "tune_parallel", "from 1 to tune_trials (20)"),
    ({"tune_every_days": 7, "tune_trials": 0, "tune_parallel": 0}, "tune_trials", "at least 1"),
])
def test_a_tuning_step_sagemaker_would_refuse_is_refused_at_synth(artifact, values, key, fragment):
    with pytest.raises(ConfigError) as raised:
        AppConfig.from_mapping({"initial_model_artifact": artifact, **values})
    assert raised.value.key == key and fragment in str(raised.value)


def test_tuning_settings_are_only_checked_when_tuning_is_on(artifact):
    config = AppConfig.from_mapping({"initial_model_artifact": artifact, "tune_space": "nope", "tune_every_days": "0"})
    assert config.tune_every_days == 0


def test_browser_settings_read_from_strings(artifact):
    pool = "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_Ab12cD"
    config = AppConfig.from_mapping(
        {
            "initial_model_artifact": artifact,
            "api_auth": "cognito",
            "api_user_pool_arn": pool,
            "cors_allowed_origins": "https://shop.example.com:8443",
            "waf": "true",
            "waf_rate_limit": "500",
        }
    )
    assert (config.api_user_pool_arn, config.cors_allowed_origins, config.waf, config.waf_rate_limit) == (
        pool, "https://shop.example.com:8443", True, 500)
    assert config.browser_callers


def test_missing_model_artifact_says_how_to_build_it(tmp_path):
    with pytest.raises(ConfigError, match="initial_model_artifact.*make model-artifact"):
        AppConfig.from_mapping({"initial_model_artifact": str(tmp_path / "absent.tar.gz")})


def test_the_cdks_own_context_keys_are_left_alone(artifact):
    """Feature flags, keys the CDK CLI injects, cached look-ups and the CLI's notes are not settings."""
    app = cdk.App(context={
        "initial_model_artifact": artifact, "@aws-cdk/core:checkSecretUsage": True,
        "aws:cdk:enable-path-metadata": True, "aws:cdk:version-reporting": False,
        "availability-zones:account=123456789012:region=us-east-1": ["us-east-1a"],
        "acknowledged-issue-numbers": [34892],
    })
    assert AppConfig.from_context(app.node).stage == "dev"


@pytest.mark.parametrize(("key", "closest"), [
    ("stgae", "stage"), ("endpoint_instanse_type", "endpoint_instance_type"), ("use_spots", "use_spot"),
    ("recal_threshold", "recall_threshold"), ("colour", None),
])
def test_a_key_that_looks_like_a_setting_but_is_none_is_refused(artifact, key, closest):
    app = cdk.App(context={"initial_model_artifact": artifact, key: "prod"})
    with pytest.raises(ConfigError) as raised:
        AppConfig.from_context(app.node)
    assert raised.value.key == key
    message = str(raised.value)
    assert message.startswith(f"context key {key!r}: is not a setting of this app; ")
    assert (f"did you mean {closest!r}?" in message) == (closest is not None)
    assert "the settings are stage, training_instance_type," in message


def test_instance_types_accepted_per_kind(artifact):
    config = AppConfig.from_mapping({"initial_model_artifact": artifact, "endpoint_instance_type": "ml.c5.large",
                                     "training_instance_type": "ml.p4d.24xlarge",
                                     "transform_instance_type": "ml.inf2.xlarge"})
    assert (config.endpoint_instance_type, config.training_instance_type) == ("ml.c5.large", "ml.p4d.24xlarge")


@pytest.mark.parametrize(("instance_type", "gpu"), [
    ("ml.m5.xlarge", False), ("ml.c5.2xlarge", False), ("ml.r5.large", False), ("ml.g4dn.xlarge", True),
    ("ml.g5.2xlarge", True), ("ml.g6.xlarge", True), ("ml.p3.2xlarge", True), ("ml.p4d.24xlarge", True),
    ("ml.p5.48xlarge", True),
])
def test_a_gpu_training_type_selects_the_gpu_image(artifact, instance_type, gpu):
    config = AppConfig.from_mapping({"initial_model_artifact": artifact, "training_instance_type": instance_type})
    assert config.training_on_gpu is gpu


def test_empty_notification_email_means_none(artifact):
    assert (
        AppConfig.from_mapping({"initial_model_artifact": artifact, "notification_email": ""}).notification_email
        is None
    )


@pytest.mark.parametrize("values", [
    {"checkpoint_expiration_days": 1, "training_max_runtime_hours": 20},  # Spot may take 40 hours
    {"capture_expiration_days": 0},
    {"incoming_expiration_days": "-3"},
    {"events_expiration_days": 0},
    {"grouped_expiration_days": 2},  # a run may read them 2 days after it wrote them
    {"athena_results_expiration_days": 2},
])
def test_expirations_that_would_lose_data_in_use_are_refused(artifact, values):
    key = next(k for k in values if k.endswith("_expiration_days"))
    with pytest.raises(ConfigError, match=key):
        AppConfig.from_mapping({**values, "initial_model_artifact": artifact})


def test_checkpoints_may_expire_once_the_longest_spot_job_is_over(artifact):
    config = AppConfig.from_mapping({"checkpoint_expiration_days": 2, "training_max_runtime_hours": 24,
                                     "initial_model_artifact": artifact})
    assert config.checkpoint_expiration_days * 24 == 24 + 24


@pytest.mark.parametrize(("values", "key", "fragment"), [
    ({"rollout": "blue_green"}, "rollout", "must be one of ('all_at_once', 'canary', 'linear')"),
    ({"rollout": "canary", "rollout_traffic_percent": 51}, "rollout_traffic_percent", "canary rollout shifts 1-50%"),
    ({"rollout": "linear", "rollout_traffic_percent": 5}, "rollout_traffic_percent", "linear rollout shifts 10-50%"),
    ({"rollout_wait_minutes": 61}, "rollout_wait_minutes", "from 0 to 60"),
    ({"rollout": "canary", "endpoint_instance_type": "ml.inf1.xlarge"}, "rollout", "falls back to all at once"),
    ({"model_keep_count": 0}, "model_keep_count", "at least 1"),
])
def test_rollouts_sagemaker_refuses_are_refused(artifact, values, key, fragment):
    with pytest.raises(ConfigError) as raised:
        AppConfig.from_mapping({**values, "initial_model_artifact": artifact})
    assert raised.value.key == key and fragment in str(raised.value)


@pytest.mark.parametrize("values", [
    {"rollout": "all_at_once", "rollout_traffic_percent": 100, "endpoint_instance_type": "ml.inf1.xlarge"},
    {"rollout": "linear", "rollout_traffic_percent": 50, "rollout_wait_minutes": 0},
    {"rollout": "canary", "rollout_traffic_percent": 1, "rollout_wait_minutes": 60},
])
def test_rollouts_within_sagemakers_limits_are_accepted(artifact, values):
    config = AppConfig.from_mapping({**values, "initial_model_artifact": artifact})
    assert config.rollout == values["rollout"]


@pytest.mark.parametrize("values, key, fragment", [
    ({"endpoint_mode": "lambda"}, "endpoint_mode", "must be one of ('instance', 'serverless')"),
    ({"serverless_memory_mb": 1500}, "serverless_memory_mb", "1024, 2048, 3072, 4096, 5120, 6144 MB"),
    ({"serverless_memory_mb": 7168}, "serverless_memory_mb", "got 7168"),
    ({"serverless_max_concurrency": 0}, "serverless_max_concurrency", "from 1 to 200"),
    ({"serverless_max_concurrency": 201}, "serverless_max_concurrency", "from 1 to 200"),
    ({"serverless_max_concurrency": 4, "serverless_provisioned_concurrency": 5},
     "serverless_provisioned_concurrency", "to serverless_max_concurrency (4)"),
    ({"serverless_provisioned_concurrency": -1}, "serverless_provisioned_concurrency", "from 0 (off)"),
])
def test_serverless_settings_sagemaker_refuses_are_refused(artifact, values, key, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)) as caught:
        AppConfig.from_mapping({"initial_model_artifact": str(artifact), "endpoint_mode": "serverless", **values})
    assert caught.value.key == key


def test_serverless_variant_settings_as_sagemaker_spells_them(artifact):
    base = {"initial_model_artifact": str(artifact), "endpoint_mode": "serverless", "serverless_memory_mb": "6144",
            "serverless_max_concurrency": "200"}
    config = AppConfig.from_mapping(base)
    assert config.serverless and config.serverless_config() == {"MemorySizeInMB": 6144, "MaxConcurrency": 200}
    provisioned = AppConfig.from_mapping({**base, "serverless_provisioned_concurrency": "200"})
    assert provisioned.serverless_config()["ProvisionedConcurrency"] == 200
    assert not AppConfig.from_mapping({"initial_model_artifact": str(artifact)}).serverless


def test_a_serverless_endpoint_keeps_its_blue_green_rollout_whatever_the_unused_instance_type(artifact):
    """SageMaker excludes serverless endpoints from rolling deployments only; the Inf1 rule is about instances."""
    config = AppConfig.from_mapping({"initial_model_artifact": str(artifact), "endpoint_mode": "serverless",
                                     "rollout": "canary", "endpoint_instance_type": "ml.inf1.xlarge"})
    assert config.rollout == "canary"


@pytest.mark.parametrize("key, value, words", [
    ("events_separator", "auto", "not auto"),
    ("events_separator", "ab", "one character"),
    ("events_time_column", "", "not empty"),
    ("events_time_format", "%d/%m/%Y", "Athena query reads"),
    ("events_time_format", "%Q", "allowed"),
    ("athena_bytes_scanned_cutoff", 9_999_999, "10 MB"),
    ("events_max_bad_rows", "150%", "a share of the rows read"),
    ("events_max_bad_rows", "-1", "a count"),
    ("events_session_gap", "0", "a duration > 0"),
    ("events_session_gap", "30 minutes", "a duration > 0"),
    ("events_event_types", "view,,cart", "event kinds separated by commas"),
    ("events_event_types", "view", "needs events_event_column"),
])
def test_event_table_settings_are_checked_by_name(key, value, words):
    with pytest.raises(ConfigError, match=key) as caught:
        AppConfig(**{key: value})
    assert words in str(caught.value)


def test_the_bad_row_bound_is_the_local_readers_by_default(artifact):
    config = AppConfig.from_mapping({"initial_model_artifact": artifact})
    assert config.events_max_bad_rows == ReadOptions().max_bad_rows == "1%"
    assert (
        AppConfig.from_mapping({"initial_model_artifact": artifact, "events_max_bad_rows": "0"}).events_max_bad_rows
        == "0"
    )


def test_the_gap_and_the_kinds_reach_the_tables_reading_options():
    from infra.stacks.event_sessions import table_options

    options = table_options(AppConfig(events_session_gap="30m", events_event_column="Event_Type",
                                      events_event_types="view,cart"))
    assert (options.gap_seconds, options.kind_column, options.kinds) == (1800.0, "event_type", {"view", "cart"})
    assert options.columns() == ["sessionid", "itemid", "time", "event_type"]
    plain = table_options(AppConfig())
    assert (plain.gap_seconds, plain.kind_column, plain.kinds, len(plain.columns())) == (None, None, None, 3)


def test_event_table_settings_take_the_readers_names():
    config = AppConfig(events_separator="comma", events_time_format="epoch_ms", events_session_column="user")
    assert (config.events_separator, config.events_time_format, config.events_session_column) == (
        "comma",
        "epoch_ms",
        "user",
    )


def test_the_data_window_and_gate_defaults(artifact):
    config = AppConfig.from_mapping({"initial_model_artifact": artifact})
    assert (config.train_window_days, config.gate_tolerance, config.refit_after_gate, config.retrain_on_new_data) == (
        28, 0.005, True, False)
    converted = AppConfig.from_mapping(
        {
            "initial_model_artifact": artifact,
            "train_window_days": "2",
            "valid_days": "1.5",
            "gate_tolerance": "0",
            "refit_after_gate": "false",
            "retrain_on_new_data": "true",
        }
    )
    assert (converted.train_window_days, converted.gate_tolerance, converted.refit_after_gate,
            converted.retrain_on_new_data) == (2, 0.0, False, True)


def test_the_waf_rate_limit_range_is_wafs():
    """WAF_RATE_LIMIT_RANGE against botocore's service model of RateBasedStatement's Limit."""
    limit = botocore.session.get_session().get_service_model("wafv2").shape_for("RateBasedStatement").members["Limit"]
    assert WAF_RATE_LIMIT_RANGE == (limit.metadata["min"], limit.metadata["max"])


def test_training_hyperparameters_are_the_stages_and_checked_by_name(artifact):
    shop = {"session_column": "user_id", "item_column": "product_id", "time_column": "event_time",
            "session_gap": "30m", "event_column": "event_type", "event_types": "view,cart", "epochs": 3}
    from_json = AppConfig.from_mapping({"initial_model_artifact": artifact, "training_hyperparameters": shop})
    from_text = AppConfig.from_mapping(
        {"initial_model_artifact": artifact, "training_hyperparameters": json.dumps(shop)}
    )
    assert from_json == from_text
    assert from_json.training_hyperparameter_values == {**shop, "epochs": "3"}
    assert AppConfig().training_hyperparameter_values == {}


@pytest.mark.parametrize("value, words", [
    ({"session_gap": "soon"}, "parameter 'session_gap': cannot use 'soon'"),
    ({"learnig_rate": "0.1"}, "did you mean 'learning_rate'"),
    ({"valid_days": "2"}, "set the context key valid_days"),
    ("[1, 2]", "a JSON object of hyperparameters"),
    ("{not json", "a JSON object of hyperparameters"),
])
def test_bad_training_hyperparameters_are_refused_by_name(artifact, value, words):
    with pytest.raises(ConfigError, match="training_hyperparameters") as caught:
        AppConfig.from_mapping({"initial_model_artifact": artifact, "training_hyperparameters": value})
    assert words in str(caught.value)


def test_capture_and_its_attribution_are_off_unless_asked(artifact):
    """Capture reads visitors' requests and costs storage: off by default, and the daily attribution, which
    reads it, needs it on."""
    assert AppConfig().data_capture_percent == 0 and AppConfig().attribution_schedule is None
    assert cdk_json_context()["data_capture_percent"] == 0 and cdk_json_context()["attribution_schedule"] == ""
    with pytest.raises(ConfigError, match="attribution_schedule.*needs data_capture_percent"):
        AppConfig(initial_model_artifact=artifact, attribution_schedule="rate(1 day)")
    config = AppConfig(initial_model_artifact=artifact, attribution_schedule="rate(1 day)", data_capture_percent=5)
    assert config.attribution_schedule == "rate(1 day)"


def test_an_ab_test_needs_instances_and_capture(artifact):
    challenger = "s3://bucket/models/job-2/output/model.tar.gz"
    with pytest.raises(ConfigError, match="needs data_capture_percent"):
        AppConfig(initial_model_artifact=artifact, ab_test=challenger)
    with pytest.raises(ConfigError, match="needs endpoint_mode instance"):
        AppConfig(initial_model_artifact=artifact, ab_test=challenger, data_capture_percent=10,
                  endpoint_mode="serverless")
    config = AppConfig(initial_model_artifact=artifact, ab_test=challenger, data_capture_percent=10,
                       ab_weights="80, 20")
    assert config.ab_split() == (80, 20)


def test_approval_is_manual_on_prod_and_auto_elsewhere_unless_set():
    assert [AppConfig(stage=stage).approval_mode for stage in ("dev", "prod", "staging")] == ["auto", "manual", "auto"]
    assert AppConfig(stage="prod", approval="auto").approval_mode == "auto"
    assert AppConfig(stage="dev", approval="manual").approval_mode == "manual"
    assert AppConfig(stage="prod").model_package_group_name == "gru4rec-prod"


def test_an_unknown_approval_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="context key 'approval': must be one of \\('auto', 'manual'\\)"):
        AppConfig(approval="sometimes")
