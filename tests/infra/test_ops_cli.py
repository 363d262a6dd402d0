"""``python -m infra.ops`` as an operator meets it: a light start, and errors that say what to do."""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from infra.ops.__main__ import make_session
from infra.ops.errors import OpsError
from tests.conftest import REPO_ROOT

HEAVY = {"aws_cdk", "constructs", "jsii", "pandas", "onnxruntime", "flask", "tensorflow", "keras"}
PROGRAM = f"""
import json, sys
import infra.ops.__main__
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set({sorted(HEAVY)!r}))))
"""


def no_aws_env(**changes: str) -> dict[str, str]:
    """This environment without any AWS setting (and no config file to read a region from), plus ``changes``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    return {**env, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, **changes}


def ops(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.ops", *argv], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=env or no_aws_env(), timeout=120)


def test_the_operator_cli_imports_neither_the_cdk_nor_pandas_nor_the_model_stack():
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_help_prints_only_the_help():
    done = ops("--help")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: python -m infra.ops")


def test_no_region_names_the_variable_boto3_reads():
    done = ops("status", env=no_aws_env(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"))
    assert done.returncode == 1
    assert "AWS_DEFAULT_REGION" in done.stderr and "--region" in done.stderr


@pytest.mark.parametrize("variables, region", [
    ({"AWS_REGION": "eu-west-3"}, "eu-west-3"),
    ({"AWS_DEFAULT_REGION": "us-east-2"}, "us-east-2"),
    ({"AWS_DEFAULT_REGION": "us-east-2", "AWS_REGION": "eu-west-3"}, "us-east-2"),
])
def test_the_region_comes_from_aws_default_region_else_aws_region(monkeypatch, variables, region):
    for name, value in no_aws_env(**variables).items():
        monkeypatch.setenv(name, value)
    for name in {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"} - set(variables):
        monkeypatch.delenv(name, raising=False)
    assert make_session(SimpleNamespace(profile=None, region=None)).region_name == region
    assert make_session(SimpleNamespace(profile=None, region="ap-south-1")).region_name == "ap-south-1"


@pytest.mark.parametrize("name", ["clicks.csv", "clicks.tsv.gz", "clicks.parquet"])
def test_score_given_events_points_at_sessions_and_score_events(tmp_path, name):
    events = tmp_path / name
    events.write_text("SessionId,ItemId,Time\ns1,a,1\n")
    done = ops("score", str(events), env=no_aws_env(AWS_DEFAULT_REGION="eu-west-1"))
    assert done.returncode == 1
    assert "python -m model_code.sessions" in done.stderr and f"infra.ops score-events {events}" in done.stderr


def test_make_session_without_any_region_is_an_ops_error(monkeypatch):
    for name, value in no_aws_env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(OpsError, match="AWS_DEFAULT_REGION"):
        make_session(SimpleNamespace(profile=None, region=None))
