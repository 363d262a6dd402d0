import contextlib
import io

import pytest

from model_code import artifacts
from model_code.evaluate import evaluate_model_dir, main


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
    assert code == 2 and "model directory file missing" in err and "nothing" in err


def test_test_items_unknown_to_the_model_are_dropped(tiny_model, tmp_path):
    model_dir, _ = tiny_model
    known = artifacts.read_items(model_dir)[:3]
    test = tmp_path / "test.tsv"
    test.write_text("SessionId\tItemId\tTime\n" + "".join(
        f"s\t{item}\t{t}\n" for t, item in enumerate([known[0], "never-seen", known[1], known[2]])))
    code, out, err = run_evaluate(["--model-dir", str(model_dir), "--test", str(test)])
    assert code == 0, err
    assert "1 events with items unknown to the model dropped" in err and "2 next-item cases" in err
