"""scripts/build_initial_model.sh: the first model.tar.gz, model files at the archive root, built once."""
import json
import os
import subprocess
import sys
import tarfile

import pytest

from infra.config import PROJECT_ROOT
from model_code.artifacts import ITEMS_FILE, METADATA_FILE, SCORER_FILE

SCRIPT = PROJECT_ROOT / "scripts" / "build_initial_model.sh"


def run_script(out):
    env = {**os.environ, "OUT": str(out), "PY": sys.executable}
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_builds_an_archive_with_the_model_files_at_its_root_and_only_once(tmp_path):
    out = tmp_path / "model.tar.gz"
    first = run_script(out)
    assert first.returncode == 0, first.stderr
    with tarfile.open(out) as archive:
        names = archive.getnames()
        metadata = json.load(archive.extractfile(METADATA_FILE))
    assert {SCORER_FILE, METADATA_FILE, ITEMS_FILE} <= set(names)
    assert all("/" not in name and not name.startswith(".") for name in names), names
    assert metadata["n_items"] > 0 and "recall@20" in metadata["metrics"]
    # every answer of the first model names the version the deployment gives it
    context = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    assert metadata["model_version"] == context["initial_model_version"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tar.gz"], "the work folder is cleaned up"

    built = out.read_bytes()
    second = run_script(out)
    assert second.returncode == 0 and "exists" in second.stdout
    assert out.read_bytes() == built
