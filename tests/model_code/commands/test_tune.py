"""python -m model_code.commands.tune on the tiny synthetic data: a study of a few tiny trials, continued after a kill,
a bad setting pruned, the best settings' file trained by model_code.commands.train --params, the test set read only at
the end."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from model_code import artifacts
from model_code.commands import training_data
from model_code.commands.tune import STUDY_FILE, main, parse_duration
from model_code.gru4rec.params import ParamError, read_params_file
from tests.model_code.conftest import run_train

TINY_FIXED = {"layers": "24", "batch_size": 16, "n_sample": 24, "block_steps": 16, "eval_batch_size": 64}
GOOD_RATES, BAD_RATE = (0.2, 0.15), 1e-6


def run_tune(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _rate_file(folder: Path, name: str, rate: float) -> str:
    path = folder / name
    path.write_text(json.dumps({"learning_rate": rate}))
    return str(path)


@pytest.fixture(scope="module")
def study(tiny_data, tmp_path_factory):
    """Two trials of good learning rates; a killed run's unfinished trial; a rerun adding a bad rate and --test.

    Every read of an event file is recorded as (run, path), run 1 or 2.
    """
    folder = tmp_path_factory.mktemp("tune")
    space = folder / "space.json"
    space.write_text(json.dumps({"base": "rsc15", "fixed": TINY_FIXED,
                                 "search": {"learning_rate": {"low": 1e-6, "high": 0.3, "log": True}}}))
    train, test = str(tiny_data / "train.tsv.gz"), str(tiny_data / "test.tsv.gz")
    common = ["--train", train, "--valid-days", "1", "--space", str(space), "--epochs", "2", "--prune-after", "2",
              "--study-dir", str(folder / "study"), "--seed", "7"]
    reads, original = [], training_data.read_events
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training_data, "read_events", lambda source, *a, **k: (reads.append((run, str(source))),
                                                                            original(source, *a, **k))[1])
        run = 1
        first = run_tune([*common, "--trials", "2", "--start-from", _rate_file(folder, "a.json", GOOD_RATES[0]),
                          "--start-from", _rate_file(folder, "b.json", GOOD_RATES[1])])
        storage = f"sqlite:///{folder / 'study' / STUDY_FILE}"
        optuna.load_study(study_name="gru4rec", storage=storage).ask()  # what a run killed mid-trial leaves
        run = 2
        second = run_tune([*common, "--trials", "3", "--start-from", _rate_file(folder, "c.json", BAD_RATE),
                           "--test", test, "--no-export"])
    return {"folder": folder, "first": first, "second": second, "reads": reads, "test": test,
            "trials": optuna.load_study(study_name="gru4rec", storage=storage).get_trials()}


def test_runs_end_with_the_best_settings_file(study):
    for code, out, err in (study["first"], study["second"]):
        assert code == 0, err
        assert f"best_params={study['folder'] / 'study' / 'best_params.json'}" in out.splitlines()


def test_rerun_continues_the_study_and_fails_the_killed_trial(study):
    trials = study["trials"]
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED]
    assert [t.params["learning_rate"] for t in trials[:2]] == list(GOOD_RATES), "the first run's trials are kept"
    assert "trial 3 was left unfinished by an earlier run: marked failed" in study["second"][2]
    table = (study["folder"] / "study" / "trials.csv").read_text().splitlines()
    assert table[0].startswith("number,state,value") and len(table) == 5
    assert [row.split(",")[1] for row in table[1:]] == ["COMPLETE", "COMPLETE", "FAIL", "PRUNED"]


def test_a_bad_setting_is_pruned_after_its_first_epoch(study):
    good, bad = study["trials"][:2], study["trials"][3]
    assert bad.params["learning_rate"] == BAD_RATE and bad.state == TrialState.PRUNED
    assert list(bad.intermediate_values) == [1], "pruned after epoch 1 of 2"
    assert [list(t.intermediate_values) for t in good] == [[1, 2], [1, 2]]
    median = np.median([t.intermediate_values[1] for t in good])
    assert bad.intermediate_values[1] < median


def test_one_progress_line_per_trial(study):
    first = [line for line in study["first"][2].splitlines() if line.startswith("trial ")]
    assert len(first) == 2 and first[0].startswith("trial 1/2: recall@20 ") and "[complete]" in first[0]
    assert "best " in first[1] and "ETA " in first[1] and f"learning_rate={GOOD_RATES[1]}" in first[1]
    second = [line for line in study["second"][2].splitlines() if line.startswith("trial 3/3:")]
    assert len(second) == 1 and "[pruned after epoch 1]" in second[0]


def test_test_set_is_read_only_by_the_final_run(study):
    reads, test = study["reads"], study["test"]
    assert [source for run, source in reads if run == 1 and source == test] == []
    assert reads[-1] == (2, test) and [r for r in reads if r[1] == test] == [(2, test)]
    assert all("test" not in t.user_attrs.get("data", {}) for t in study["trials"])
    final = artifacts.read_metadata(study["folder"] / "study" / "model")
    assert final["metrics"]["recall@20"] > 0 and final["data"]["test"]["source"] == test
    assert "validation" not in final["data"], "the final model trains on train+valid"


def test_best_settings_file_carries_provenance_and_trains(study, tmp_path):
    best_file = study["folder"] / "study" / "best_params.json"
    params, origin = read_params_file(best_file)
    best = max((t for t in study["trials"] if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert params.learning_rate == best.params["learning_rate"] and params.layers == (24,) and params.epochs == 2
    assert origin["metric"] == "recall@20" and origin["validation_value"] == best.value
    assert origin["study"]["best_trial"] == best.number + 1 and origin["window"]["valid_days"] == 1
    assert origin["code_version"].startswith(("git:", "sha256:"))
    train = origin["data"]["train"]["source"]
    code, _, err = run_train(["--train", train, "--params", str(best_file), "--epochs", "1", "--no-export",
                              "--model-dir", str(tmp_path / "m"), "--quiet"])
    assert code == 0, err
    metadata = artifacts.read_metadata(tmp_path / "m")
    assert metadata["parameters"] == {**params.to_dict(), "epochs": 1}
    assert metadata["tuning"] == origin


def test_a_rerun_with_another_metric_is_refused(study):
    folder = study["folder"]
    code, _, err = run_tune(["--train", origin_train(study), "--valid-days", "1", "--space", str(folder / "space.json"),
                             "--epochs", "2", "--study-dir", str(folder / "study"), "--metric", "mrr@20"])
    assert code == 2 and "metric 'recall@20' -> 'mrr@20'" in err and "another --study-dir" in err


def origin_train(study) -> str:
    return read_params_file(study["folder"] / "study" / "best_params.json")[1]["data"]["train"]["source"]


@pytest.mark.parametrize("space, message", [
    ({"search": {"learning_rat": {"low": 0.1, "high": 0.2}}}, "unknown parameter 'learning_rat'"),
    ({"search": {"momentum": {"low": 0.5, "high": 1.5}}}, "parameter 'momentum': cannot use '1.5'"),
    ({"search": {"layers": {"low": 1, "high": 5}}}, "a range needs a numeric parameter"),
    ({"search": {}}, "non-empty 'search'"),
])
def test_a_bad_space_is_refused_before_any_trial(tmp_path, space, message):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space))
    code, _, err = run_tune(["--train", "unused.tsv", "--valid-days", "1", "--space", str(path),
                             "--study-dir", str(tmp_path / "s")])
    assert code == 2 and message in err
    assert not (tmp_path / "s").exists()


def test_a_bad_params_file_is_refused_by_train(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"parameters": {"batch_size": 0}}))
    code, _, err = run_train(["--train", "unused.tsv", "--params", str(path)])
    assert code == 2 and f"parameter file {path}: parameter 'batch_size': cannot use 0" in err


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("45m", 2700), ("2h", 7200), ("1.5h", 5400)])
def test_time_budget_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_final_training_with_a_valid_file_reads_both_files(tiny_data, tmp_path):
    from model_code.commands.tune import build_parser, train_and_valid
    from model_code.data.event_table import read_events

    train, valid = tiny_data / "train.tsv.gz", tiny_data / "test.tsv.gz"
    args = build_parser().parse_args(["--train", str(train), "--valid", str(valid), "--study-dir", str(tmp_path)])
    both = read_events(train_and_valid(args), log=lambda line: None)
    alone = [read_events(path, log=lambda line: None) for path in (train, valid)]
    assert len(both) == sum(map(len, alone))
    assert set(both["ItemId"]) == set(alone[0]["ItemId"]) | set(alone[1]["ItemId"])
    args.train = str(tiny_data)
    with pytest.raises(ParamError, match="give local files, or use --valid-days"):
        train_and_valid(args)
