"""``python -m infra.ops`` as an operator meets it: a light start, and errors that say what to do."""
import json
import os
import shutil
import subprocess
import sys
import tarfile
from types import SimpleNamespace

import pytest

from inference.predictor import create_app
from infra.ops.__main__ import main, make_session
from infra.ops.errors import OpsError
from tests.conftest import REPO_ROOT
from tests.support.ops_stage import BUCKET, IMAGE, run, write_lines

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
    assert "python -m model_code.data.sessions" in done.stderr and f"infra.ops score-events {events}" in done.stderr


def test_make_session_without_any_region_is_an_ops_error(monkeypatch):
    for name, value in no_aws_env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(OpsError, match="AWS_DEFAULT_REGION"):
        make_session(SimpleNamespace(profile=None, region=None))


def test_package_model_makes_the_first_model_answer_with_the_shops_items(model_dir, tmp_path):
    """The archive unpacks to a model the server loads, its items the trained model's, named by the version;
    the model directory itself is left as it was."""
    before = {path.name: path.read_bytes() for path in model_dir.iterdir()}
    archive = tmp_path / "build" / "model.tar.gz"
    done = ops("package-model", str(model_dir), "--out", str(archive), "--version", "shop-1")
    assert done.returncode == 0, done.stderr
    assert "initial_model_version" in done.stderr  # shop-1 is not cdk.json's version: say where to set it
    unpacked = tmp_path / "opt_ml_model"
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == sorted(before)  # the files at the archive's root
        tar.extractall(unpacked, filter="data")
    answer = create_app(unpacked).test_client().post("/invocations", json={"items": [], "k": 3}).get_json()
    popular = json.loads(before["metadata.json"])["popular_items"]
    assert answer["model_version"] == "shop-1"
    assert [r["item_id"] for r in answer["recommendations"]] == popular[:3]
    assert {path.name: path.read_bytes() for path in model_dir.iterdir()} == before
    assert sorted(path.name for path in archive.parent.iterdir()) == ["model.tar.gz"]


@pytest.mark.parametrize("problem", ["missing", "no scorer", "bad version"])
def test_package_model_refuses_what_the_server_could_not_load(model_dir, tmp_path, problem):
    source = tmp_path / "model"
    if problem != "missing":
        shutil.copytree(model_dir, source)
    if problem == "no scorer":
        (source / "scorer.onnx").unlink()
    archive = tmp_path / "out" / "model.tar.gz"
    version = "-bad" if problem == "bad version" else "shop-1"
    done = ops("package-model", str(source), "--out", str(archive), f"--version={version}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert {"missing": "no such model directory", "no scorer": "scorer.onnx", "bad version": "'-bad'"}[problem] \
        in done.stderr
    assert not archive.exists() and not (archive.parent.exists() and any(archive.parent.iterdir()))


def test_an_invalid_stage_name_is_refused(aws, capsys):
    code, _, err = run(capsys, "--stage", "Prod_1", "status")
    assert code == 1 and "'Prod_1' is not a valid stage name" in err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("train", "score", "recommend", "status"))


def test_one_off_options_need_one_off(stage, capsys, tmp_path):
    (tmp_path / "train.tsv.gz").write_bytes(b"x")
    code, _, err = run(capsys, "train", "--image", IMAGE, "--upload-data", str(tmp_path))
    assert code == 1 and "for --one-off jobs only" in err
    assert "Contents" not in stage.session.client("s3").list_objects_v2(Bucket=BUCKET)


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["recommend", "a", "-k", "0"], "the endpoint would refuse this request: 'k' is 0: it must be from 1 to 1000"),
        (["recommend", "a", "-k", "1001"], "'k' is 1001: it must be from 1 to 1000"),
        (
            ["train", "-p", "learnig_rate=0.1"],
            "bad hyperparameter: unknown parameter 'learnig_rate' (did you mean 'learning_rate'?)",
        ),
        (
            ["train", "-p", "epochs=two"],
            "bad hyperparameter: parameter 'epochs': cannot use 'two'; allowed: an integer >= 1",
        ),
        (["train", "-p", "time_format=iso"], "bad hyperparameter: parameter 'time_format': cannot use 'iso'"),
        (["train", "--upload-data", "no-such-folder"], "no-such-folder: no such folder"),
        (["train", "--role", "arn:aws:iam::1:role/x"], "for --one-off jobs only"),
        (["train", "--day", "2026-11-29"], "--day is for --upload-data only"),
        (["score", "nope.jsonl"], "nope.jsonl: no such file"),
        (["status", "--stage", "Prod_1"], "stage 'Prod_1' is not a valid stage name"),
    ],
)
def test_local_problems_are_refused_before_any_aws_call(no_aws, capsys, argv, problem):
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and problem in err and err.count("\n") == 1


def test_a_bad_sessions_file_is_refused_before_any_aws_call(no_aws, capsys, tmp_path):
    sessions = write_lines(tmp_path / "batch.jsonl", ['{"session_id": "s1", "items": ["a"]}', '{"items": "a"}'])
    code, _, err = run(capsys, "score", str(sessions))
    assert code == 1 and f"{sessions} line 2: 'items' must be a list of item ids, not a string" in err


@pytest.mark.parametrize("argv", [["--stage", "qa", "status"], ["status", "--stage", "qa"]])
def test_stage_goes_before_or_after_the_command(stage, capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert "Gru4Rec-Qa-Storage" in err and "'qa'" in err
