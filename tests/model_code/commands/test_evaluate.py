import contextlib
import gzip
import io
import os
import shutil
import subprocess
import sys

import pytest

from model_code import artifacts
from model_code.commands.evaluate import evaluate_model_dir, main
from tests.model_code.conftest import REPO_ROOT_FOR_SUBPROCESS


def run_evaluate(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_evaluate_agrees_with_what_training_wrote(tiny_model, tiny_data):
    model_dir, _ = tiny_model
    written = artifacts.read_metadata(model_dir)["metrics"]
    again = evaluate_model_dir(model_dir, str(tiny_data / "test.tsv.gz"))
    assert again == pytest.approx(written, abs=1e-12)


def test_evaluate_command_prints_the_same_lines_as_training(tiny_model, tiny_data):
    model_dir, train_out = tiny_model
    code, out, err = run_evaluate(["--model-dir", str(model_dir), "--test", str(tiny_data / "test.tsv.gz")])
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.endswith(";")]
    assert len(lines) == 8 and all(line in train_out.splitlines() for line in lines)


def test_tie_modes_order(tiny_model, tiny_data):
    model_dir, _ = tiny_model
    test = str(tiny_data / "test.tsv.gz")
    conservative = evaluate_model_dir(model_dir, test, ties="conservative")
    standard = evaluate_model_dir(model_dir, test, ties="standard")
    assert all(standard[k] >= conservative[k] for k in conservative)


def test_missing_model_directory_is_a_clear_error(tmp_path, tiny_data):
    code, _, err = run_evaluate(["--model-dir", str(tmp_path / "nothing"), "--test", str(tiny_data / "test.tsv.gz")])
    assert code == 2 and err == f"error: model directory not found: {tmp_path / 'nothing'}\n"
    (tmp_path / "empty").mkdir()
    code, _, err = run_evaluate(["--model-dir", str(tmp_path / "empty"), "--test", str(tiny_data / "test.tsv.gz")])
    assert code == 2 and "model directory file missing" in err and "empty" in err


@pytest.mark.parametrize("problem", ["no model directory", "no test file"])
def test_arguments_are_checked_before_tensorflow_is_imported(tmp_path, tiny_model, tiny_data, problem):
    model_dir = tmp_path / "nothing" if problem == "no model directory" else tiny_model[0]
    test = tmp_path / "nope.tsv" if problem == "no test file" else tiny_data / "test.tsv.gz"
    script = ("import sys; from model_code.commands.evaluate import main; "
              f"code = main(['--model-dir', {str(model_dir)!r}, '--test', {str(test)!r}]); "
              "print(code, sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT_FOR_SUBPROCESS, capture_output=True,
                          text=True, timeout=300)
    assert done.stdout.strip() == "2 []", done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1


def test_tensorflow_start_up_lines_are_quiet_by_default(tiny_model, tiny_data):
    done = subprocess.run([sys.executable, "-m", "model_code.commands.evaluate", "--model-dir", str(tiny_model[0]),
                           "--test", str(tiny_data / "test.tsv.gz")], cwd=REPO_ROOT_FOR_SUBPROCESS,
                          capture_output=True, text=True, timeout=300, env=without_tensorflow_settings())
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [line for line in done.stderr.splitlines() if line.startswith("test: ")]


def without_tensorflow_settings() -> dict:
    return {name: value for name, value in os.environ.items() if not name.startswith("TF_")}


def test_test_items_unknown_to_the_model_are_dropped(tiny_model, tmp_path):
    model_dir, _ = tiny_model
    known = artifacts.read_items(model_dir)[:3]
    test = tmp_path / "test.tsv"
    test.write_text("SessionId\tItemId\tTime\n" + "".join(
        f"s\t{item}\t{t}\n" for t, item in enumerate([known[0], "never-seen", known[1], known[2]])))
    code, out, err = run_evaluate(["--model-dir", str(model_dir), "--test", str(test)])
    assert code == 0, err
    assert "1 events with items unknown to the model dropped" in err and "2 next-item cases" in err


def test_evaluate_reads_the_test_events_as_the_model_was_trained_to(tiny_model, tiny_data, tmp_path):
    """A model whose metadata says `sid;iid;ts` reads such a test file without flags, to the same metrics."""
    model_dir, _ = tiny_model
    shop_model = tmp_path / "model"
    shutil.copytree(model_dir, shop_model)
    metadata = artifacts.read_metadata(shop_model)
    metadata["read_options"].update(session_column="sid", item_column="iid", time_column="ts", separator=";")
    artifacts.write_json(shop_model / "metadata.json", metadata)
    rows = gzip.decompress((tiny_data / "test.tsv.gz").read_bytes()).decode().splitlines()
    (tmp_path / "test.txt").write_text("\n".join(["sid;iid;ts"] + [row.replace("\t", ";") for row in rows[1:]]) + "\n")
    code, out, err = run_evaluate(["--model-dir", str(shop_model), "--test", str(tmp_path / "test.txt")])
    assert code == 0, err
    code, reference, err = run_evaluate(["--model-dir", str(model_dir), "--test", str(tiny_data / "test.tsv.gz")])
    assert code == 0 and out == reference
