import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from model_code import artifacts
from model_code.gru4rec.params import ParamError
from model_code.ranking.metrics import CUTOFFS
from tests.model_code.conftest import TINY_ARGS, run_train

METRIC_KEYS = {f"{name}@{k}" for name in ("recall", "mrr") for k in CUTOFFS}
MODEL_FILES = [
    artifacts.MODEL_FILE, artifacts.SCORER_FILE, artifacts.EMBEDDINGS_FILE, artifacts.BIAS_FILE,
    artifacts.ITEMS_FILE, artifacts.METADATA_FILE, artifacts.PLOT_FILE,
]


def test_writes_every_file_of_the_model_directory(tiny_model):
    model_dir, _ = tiny_model
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(MODEL_FILES)
    assert (model_dir / artifacts.PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(model_dir.parent.glob(".model.tmp-*")), "the staging folder must be gone"


def test_metadata_has_the_contract_keys(tiny_model, tiny_data):
    model_dir, _ = tiny_model
    meta = artifacts.read_metadata(model_dir)
    items = artifacts.read_items(model_dir)
    train = pd.read_csv(tiny_data / "train.tsv.gz", sep="\t", dtype={"ItemId": str, "SessionId": str})
    assert meta["format_version"] == 1
    assert meta["n_items"] == meta["padding_index"] == len(items) == train.ItemId.nunique()
    assert set(meta["metrics"]) == METRIC_KEYS
    assert all(0.0 <= v <= 1.0 for v in meta["metrics"].values())
    assert meta["metrics"]["recall@20"] >= meta["metrics"]["recall@1"]
    training = meta["training"]
    assert {"seconds", "events_per_second", "epochs", "wall_seconds"} <= set(training)
    assert training["epochs"] == 3 and 0 < training["seconds"] <= training["wall_seconds"]
    assert training["events_per_second"] > 0
    assert [r["epoch"] for r in training["history"]] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) for r in training["history"])
    assert not any("validation_metrics" in r or "metrics" in r for r in training["history"]), \
        "without a validation set no per-epoch figures: the test set is scored once"
    assert meta["validation_metrics"] == {} and "validation" not in meta["data"]
    assert meta["parameters"]["layers"] == [24] and meta["parameters"]["epochs"] == 3
    assert meta["data"]["train"]["events"] == len(train)
    assert meta["data"]["test"]["examples"] > 0
    assert {"python", "keras", "numpy"} <= set(meta["versions"])
    counts = train.ItemId.value_counts()
    popular = meta["popular_items"]
    assert len(popular) == len(set(popular)) == min(1000, len(items))
    assert [counts[i] for i in popular] == sorted(counts.values, reverse=True)[: len(popular)]


def test_prints_table_and_one_line_per_metric(tiny_model):
    model_dir, out = tiny_model
    metrics = artifacts.read_metadata(model_dir)["metrics"]
    assert "Recall@20" in out and "MRR@20" in out
    for name, value in metrics.items():
        assert f"{name}={value:.4f};" in out.splitlines()


def test_same_seed_same_model(tiny_model, tiny_data, tmp_path):
    model_dir, _ = tiny_model
    code, _, err = run_train([
        "--train", str(tiny_data / "train.tsv.gz"), "--test", str(tiny_data / "test.tsv.gz"), "--epochs", "3",
        "--model-dir", str(tmp_path / "again"), "--no-export", *TINY_ARGS,
    ])
    assert code == 0, err
    first, second = artifacts.read_metadata(model_dir), artifacts.read_metadata(tmp_path / "again")
    assert second["metrics"] == first["metrics"]
    assert [r["loss"] for r in second["training"]["history"]] == [r["loss"] for r in first["training"]["history"]]
    assert not (tmp_path / "again" / artifacts.SCORER_FILE).exists()


def test_without_test_set_no_metrics(tiny_data, tmp_path):
    code, out, err = run_train([
        "--train", str(tiny_data / "train.tsv.gz"), "--epochs", "1", "--model-dir", str(tmp_path / "m"),
        "--no-export", *TINY_ARGS,
    ])
    assert code == 0, err
    meta = artifacts.read_metadata(tmp_path / "m")
    assert meta["metrics"] == {} and meta["training"]["epochs"] == 1
    assert "recall@20=" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--param", "dropout_hiden=0.1"], "did you mean 'dropout_hidden'"),
        (["--param", "loss=top1"], "parameter 'loss': cannot use 'top1'; allowed: cross-entropy | bpr-max"),
        (["--param", "layers"], "not of the form name=value"),
        (["--epochs", "0"], "parameter 'epochs'"),
    ],
)
def test_bad_parameters_exit_2_with_a_clear_error_and_no_model(tiny_data, tmp_path, args, message):
    code, _, err = run_train(["--train", str(tiny_data / "train.tsv.gz"), "--model-dir", str(tmp_path / "m"), *args])
    assert code == 2 and message in err
    assert not (tmp_path / "m").exists()


def test_bad_data_exits_2_naming_the_file(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("SessionId\tItemId\tTime\n1\ta\tnot-a-time\n")
    code, _, err = run_train(["--train", str(bad), "--model-dir", str(tmp_path / "m")])
    assert code == 2 and str(bad) in err and "Time" in err
    assert not (tmp_path / "m").exists()


def test_failed_run_leaves_no_model_directory(tiny_data, tmp_path, monkeypatch):
    import model_code.export.scorer

    def broken_export(model_dir):
        (model_dir / artifacts.SCORER_FILE).write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(model_code.export.scorer, "export_in_tensorflow", broken_export)
    with pytest.raises(RuntimeError, match="disk full"):
        run_train(["--train", str(tiny_data / "train.tsv.gz"), "--epochs", "1",
                   "--model-dir", str(tmp_path / "m"), *TINY_ARGS])
    assert list(tmp_path.iterdir()) == []


def test_failed_run_keeps_the_previous_model(tiny_model, tiny_data, tmp_path, monkeypatch):
    import shutil

    import model_code.commands.plots

    previous = tmp_path / "m"
    shutil.copytree(tiny_model[0], previous)
    before = {p.name: p.read_bytes() for p in previous.iterdir()}
    monkeypatch.setattr(
        model_code.commands.plots, "plot_training", lambda *a, **k: (_ for _ in ()).throw(OSError("no space"))
    )
    with pytest.raises(OSError, match="no space"):
        run_train(["--train", str(tiny_data / "train.tsv.gz"), "--epochs", "1", "--model-dir", str(previous),
                   "--no-export", *TINY_ARGS])
    assert {p.name: p.read_bytes() for p in previous.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_replaces_an_existing_model_directory(tiny_model, tiny_data, tmp_path):
    existing = tmp_path / "m"
    existing.mkdir()
    (existing / artifacts.METADATA_FILE).write_text(json.dumps({"old": True}))
    code, _, err = run_train(["--train", str(tiny_data / "train.tsv.gz"), "--epochs", "1",
                              "--model-dir", str(existing), "--no-export", *TINY_ARGS])
    assert code == 0, err
    assert "old" not in artifacts.read_metadata(existing)
    assert (existing / artifacts.MODEL_FILE).is_file()


def test_hyperparameters_become_options_and_params():
    from model_code.commands.train import build_parser
    from model_code.gru4rec.hyperparameters import hyperparameters_argv

    argv = hyperparameters_argv({"preset": "diginetica", "epochs": "3", "seed": "5", "eval-every": "0",
                                 "layers": "100,100", "dropout_hidden": "0.1", "session-column": "user_session",
                                 "Time_Format": "%d/%m/%Y %H:%M", "separator": ";", "max_bad_rows": "2%"})
    args = build_parser().parse_args(["--train", "t", *argv])
    assert (args.preset, args.epochs, args.seed, args.eval_every) == ("diginetica", None, 5, 0)
    assert args.param == ["epochs=3", "layers=100,100", "dropout_hidden=0.1"]
    assert (args.session_column, args.time_format, args.separator, args.max_bad_rows) == (
        "user_session", "%d/%m/%Y %H:%M", ";", "2%")


def test_the_tuning_job_of_applied_settings_is_named_in_the_metadata(tiny_data, tmp_path):
    from model_code.gru4rec.hyperparameters import hyperparameters_argv

    argv = hyperparameters_argv({"tuning_job": "tune-dev-2612071345", "epochs": "1"})
    assert argv[0] == "--tuning-job=tune-dev-2612071345"
    code, _, err = run_train(["--train", str(tiny_data / "train.tsv.gz"), "--model-dir", str(tmp_path / "m"),
                              "--no-export", *TINY_ARGS, *argv])
    assert code == 0, err
    assert artifacts.read_metadata(tmp_path / "m")["tuning"] == {"sagemaker_tuning_job": "tune-dev-2612071345"}
    with pytest.raises(SystemExit) as refused:  # argparse's refusal, before anything is read
        run_train(
            ["--train", str(tiny_data / "train.tsv.gz"), "--model-dir", str(tmp_path / "n"), "--tuning-job", "tune dev"]
        )
    assert refused.value.code == 2 and not (tmp_path / "n").exists()


def test_bad_hyperparameter_is_named(tiny_data, tmp_path):
    from model_code.gru4rec.hyperparameters import hyperparameters_argv

    with pytest.raises(ParamError, match=r"parameter 'learning_rate': cannot use 'fast'; allowed: a number > 0"):
        hyperparameters_argv({"learning_rate": "fast"})
    code, _, err = run_train(["--train", str(tiny_data / "train.tsv.gz"), "--model-dir", str(tmp_path / "m"),
                              "--param", "learning_rate=fast"])
    assert code == 2 and "parameter 'learning_rate': cannot use 'fast'; allowed: a number > 0" in err


@pytest.mark.parametrize(
    "hyperparameters, message",
    [
        ({"epochs": "two"}, "parameter 'epochs': cannot use 'two'; allowed: an integer >= 1"),
        ({"seed": "-1"}, "parameter 'seed': cannot use '-1'; allowed: an integer >= 0"),
        (
            {"preset": "movielens"},
            "parameter 'preset': cannot use 'movielens'; allowed: rsc15 | yoochoose | retailrocket | diginetica",
        ),
        (
            {"separator": "::"},
            "parameter 'separator': cannot use '::'; allowed: auto, tab, comma, semicolon, pipe, or one character",
        ),
        (
            {"time_format": "iso"},
            "parameter 'time_format': cannot use 'iso'; allowed: auto, epoch_s, epoch_ms, datetime, or a pattern",
        ),
        ({"max_bad_rows": "lots"}, "parameter 'max_bad_rows': cannot use 'lots'; allowed: a count"),
        ({"session_column": " "}, "parameter 'session_column': cannot use ' '; allowed: a column name"),
        ({"learnig_rate": "0.1"}, "unknown parameter 'learnig_rate' (did you mean 'learning_rate'?)"),
        ({"time_fromat": "auto"}, "unknown parameter 'time_fromat' (did you mean 'time_format'?)"),
    ],
)
def test_every_bad_hyperparameter_reads_the_same_way(hyperparameters, message):
    from model_code.gru4rec.hyperparameters import check_hyperparameters

    with pytest.raises(ParamError) as raised:
        check_hyperparameters(hyperparameters)
    assert str(raised.value).startswith(message)


def test_help_lists_parameters(capsys):
    from model_code.commands.train import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "--checkpoint-dir" in text and re.search(r"dropout_hidden", text)


DAY = 86_400


def _dated_events(seed: int, new_items: bool) -> pd.DataFrame:
    """400 sessions over five days and items 0-29; with ``new_items`` the last day also views "new-a" / "new-b"."""
    rng = np.random.default_rng(seed)
    rows = []
    for session in range(400):
        start = 1_600_000_000 + rng.uniform(0, 5 * DAY)
        items = [str(i) for i in rng.integers(0, 30, rng.integers(2, 7))]
        if new_items and start >= 1_600_000_000 + 4 * DAY and session % 3 == 0:
            items.append("new-a" if session % 2 else "new-b")
        rows += [(f"s{seed}-{session}", item, start + 60 * k) for k, item in enumerate(items)]
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


@pytest.fixture(scope="module")
def dated_data(tmp_path_factory):
    """(training events file, its frame, {"a": path, "b": path} of two other event files over the same items)."""
    folder = tmp_path_factory.mktemp("dated")
    frame = _dated_events(5, new_items=True)
    frame.to_csv(folder / "dated.tsv.gz", sep="\t", index=False)
    others = {}
    for name, seed in (("a", 6), ("b", 7)):
        others[name] = folder / f"other_{name}.tsv.gz"
        _dated_events(seed, new_items=False).to_csv(others[name], sep="\t", index=False)
    return folder / "dated.tsv.gz", frame, others


def test_valid_days_sets_the_last_days_apart_before_the_index(dated_data, tmp_path):
    path, frame, others = dated_data
    model_dir = tmp_path / "m"
    code, out, err = run_train(["--train", str(path), "--valid-days", "1", "--test", str(others["a"]),
                                "--epochs", "2", "--model-dir", str(model_dir), "--no-export", *TINY_ARGS[:-1]])
    assert code == 0, err
    starts = frame.groupby("SessionId").Time.transform("min")
    last_day = starts >= frame.Time.max() - DAY
    earlier, held_out = frame[~last_day], frame[last_day]
    meta = artifacts.read_metadata(model_dir)
    assert meta["n_items"] == earlier.ItemId.nunique() == 30
    assert meta["data"]["train"]["events"] == len(earlier)
    validation = meta["data"]["validation"]
    assert validation["unknown_items"] == 2 and "new-a" in set(held_out.ItemId) and "new-b" in set(held_out.ItemId)
    assert validation["dropped_unknown_items"] == int(held_out.ItemId.isin(["new-a", "new-b"]).sum())
    assert validation["sessions"] == held_out.SessionId.nunique()
    assert "2 items seen only there (unknown to the model)" in err
    history = meta["training"]["history"]
    assert all(set(r["validation_metrics"]) == METRIC_KEYS for r in history)
    assert history[-1]["validation_metrics"] == meta["validation_metrics"]
    assert set(meta["metrics"]) == METRIC_KEYS and meta["metrics"] != meta["validation_metrics"]
    lines = out.splitlines()
    for name in METRIC_KEYS:
        assert f"validation:{name}={meta['validation_metrics'][name]:.4f};" in lines
        assert f"{name}={meta['metrics'][name]:.4f};" in lines


def test_test_set_is_scored_once_on_the_final_model(dated_data, tmp_path):
    from model_code.commands.evaluate import evaluate_model_dir

    path, _, others = dated_data
    valid, test = others["a"], others["b"]
    code, _, err = run_train(["--train", str(path), "--valid", str(valid), "--test", str(test), "--epochs", "2",
                              "--model-dir", str(tmp_path / "m"), "--no-export", *TINY_ARGS[:-1]])
    assert code == 0, err
    meta = artifacts.read_metadata(tmp_path / "m")
    assert meta["data"]["validation"]["source"] == str(valid) and meta["data"]["test"]["source"] == str(test)
    assert meta["metrics"] == pytest.approx(evaluate_model_dir(tmp_path / "m", str(test)), abs=1e-12)
    assert meta["validation_metrics"] == pytest.approx(evaluate_model_dir(tmp_path / "m", str(valid)), abs=1e-12)
    assert err.count("validation recall@20") == 2


@pytest.mark.parametrize("args, message", [
    (["--valid-days", "0"], "argument --valid-days: cannot use '0'; allowed: a number of days > 0"),
    (["--valid-days", "x"], "argument --valid-days: cannot use 'x'"),
    (["--valid-days", "1", "--valid", "v.tsv"], "not allowed with argument"),
])
def test_bad_validation_options_are_refused(tiny_data, tmp_path, capsys, args, message):
    from model_code.commands.train import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--train", str(tiny_data / "train.tsv.gz"), "--model-dir", str(tmp_path / "m"), *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_valid_days_that_leave_no_training_session_are_refused(dated_data, tmp_path):
    path, _, _ = dated_data
    code, _, err = run_train(["--train", str(path), "--valid-days", "30", "--model-dir", str(tmp_path / "m")])
    assert code == 2 and "--valid-days 30" in err and "no training session" in err
    assert not (tmp_path / "m").exists()


def test_a_champion_is_scored_on_the_same_validation_sessions(tiny_data, tiny_model, tmp_path):
    """The live model's figures come from the sessions this run set apart, measured as evaluate measures them."""
    from model_code.commands.evaluate import evaluate_model_dir
    from model_code.data.event_table import read_events
    from model_code.data.events import write_events
    from model_code.data.preprocess import split_by_time

    champion, _ = tiny_model
    code, out, err = run_train(["--train", str(tiny_data / "train.tsv.gz"), "--valid-days", "1", "--epochs", "1",
                                "--champion-dir", str(champion), "--model-dir", str(tmp_path / "m"), *TINY_ARGS])
    assert code == 0, err
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    _, held_out = split_by_time(read_events(tiny_data / "train.tsv.gz", log=lambda message: None), 1)
    write_events(tmp_path / "held_out.tsv", held_out)
    expected = evaluate_model_dir(champion, str(tmp_path / "held_out.tsv"))
    assert meta["champion_validation_metrics"] == pytest.approx(expected, abs=1e-12)
    assert meta["champion_validation_metrics"] != meta["validation_metrics"]
    for name, value in expected.items():
        assert f"champion:validation:{name}={value:.4f};" in out.splitlines()


@pytest.mark.parametrize("extra, problem", [
    ([], "--champion-dir: the champion is scored on the validation sessions: give --valid or --valid-days"),
    (["--valid-days", "1"], "model directory not found"),
])
def test_a_champion_needs_validation_and_a_model_directory(tiny_data, tmp_path, extra, problem):
    code, _, err = run_train(["--train", str(tiny_data / "train.tsv.gz"), "--champion-dir", str(tmp_path / "none"),
                              "--model-dir", str(tmp_path / "m"), *extra])
    assert code == 2 and problem in err


def test_help_gives_each_parameters_meaning_default_and_range():
    """`--help` as run from a shell: a block per parameter of the table that checks them, rsc15's defaults."""
    import subprocess
    import sys

    from model_code.gru4rec.params import _SPECS, PARAMETER_NAMES
    from tests.conftest import REPO_ROOT

    done = subprocess.run(
        [sys.executable, "-m", "model_code.commands.train", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name in PARAMETER_NAMES:
        heading = next(i for i, line in enumerate(lines) if line.startswith(f"  {name}="))
        assert lines[heading + 1].strip().endswith(f"allowed: {_SPECS[name].allowed}")
        assert _SPECS[name].meaning and _SPECS[name].meaning in lines[heading + 1]
    for default in ("layers=100", "loss=cross-entropy", "batch_size=32", "dropout_hidden=0.4", "learning_rate=0.2",
                    "n_sample=2048", "embedding_size=none", "epochs=10", "block_steps=200"):
        assert f"  {default}" in lines


@pytest.mark.parametrize("flag, meant", [("--model_dir", "--model-dir"), ("--epohcs=3", "--epochs"),
                                         ("--vlaid-days", "--valid-days")])
def test_a_misspelt_flag_gets_did_you_mean(capsys, flag, meant):
    from model_code.commands.train import main

    with pytest.raises(SystemExit) as exit_code:
        main(["--train", "x", flag] + ([] if "=" in flag else ["1"]))
    assert exit_code.value.code == 2
    assert f"did you mean {meant}?" in capsys.readouterr().err


def test_the_first_epoch_says_compiling_until_its_first_block_is_done(tiny_data, tmp_path):
    args = [arg for arg in TINY_ARGS if arg != "--quiet"]
    code, _, err = run_train(["--train", str(tiny_data / "train.tsv.gz"), "--epochs", "2",
                              "--model-dir", str(tmp_path / "model"), "--no-export", *args])
    assert code == 0, err
    assert err.count("compiling the training step") >= 1
    epoch_two = err[err.index("epoch 2/2"):]
    assert "compiling" not in epoch_two


def _visitor_log(path, days: int = 6) -> None:
    """A shop's visitor log: no session id, epoch milliseconds, event kinds; each visitor comes back daily."""
    rng = np.random.default_rng(3)
    rows, start = [], 1_709_251_200_000  # 2024-03-01T00:00:00Z in milliseconds
    for visitor in range(40):
        for day in range(days):
            clock = start + day * 86_400_000 + int(rng.integers(0, 40_000_000))
            for _ in range(int(rng.integers(2, 6))):
                item = int(rng.integers(0, 12))
                for kind in ("view", "cart")[:int(rng.integers(1, 3))]:
                    rows.append(f"{clock},{kind},p{item},u{visitor}")
                    clock += int(rng.integers(1_000, 120_000))
            rows.append(f"{clock},purchase,p0,u{visitor}")
    path.write_text("event_time,event_type,product_id,user_id\n" + "\n".join(rows) + "\n", encoding="utf-8")


VISITOR_FLAGS = ["--session-column", "user_id", "--item-column", "product_id", "--time-column", "event_time",
                 *[arg for arg in TINY_ARGS if arg != "--quiet"], "--no-progress"]  # the data summary is logged


def test_a_visitor_log_trains_on_visits_split_by_inactivity(tmp_path):
    _visitor_log(tmp_path / "clicks.csv")
    code, _, err = run_train(["--train", str(tmp_path / "clicks.csv"), "--valid-days", "1", "--epochs", "1",
                              "--model-dir", str(tmp_path / "m"), *VISITOR_FLAGS, "--session-gap", "30m",
                              "--event-column", "event_type", "--event-types", "view,cart"])
    assert code == 0, err
    assert "times 2024-03-01" in err and "UTC (5." in err  # milliseconds read as such: six days of March
    assert "rows of other event kinds left out" in err and "consecutive repeats of an item collapsed" in err
    assert "sessions added by the session gap" in err and "days on average" not in err
    meta = artifacts.read_metadata(tmp_path / "m")
    assert meta["read_options"]["session_gap"] == "30m"
    train = meta["data"]["train"]
    assert train["other_kinds"] == 40 * 6 and train["sessions_split"] == 40 * 5 and train["repeats_collapsed"] > 0


def test_a_visitor_log_without_a_gap_is_pointed_at_the_option(tmp_path):
    _visitor_log(tmp_path / "clicks.csv")
    code, _, err = run_train(["--train", str(tmp_path / "clicks.csv"), "--valid-days", "1", "--epochs", "1",
                              "--model-dir", str(tmp_path / "m"), *VISITOR_FLAGS])
    assert code == 2, err  # a visitor's whole week is one "session": the last day leaves no validation session
    assert "no validation session (times 2024-03-01" in err and "--time-format auto" in err
    code, _, err = run_train(["--train", str(tmp_path / "clicks.csv"), "--epochs", "1",
                              "--model-dir", str(tmp_path / "m"), *VISITOR_FLAGS])
    assert code == 0, err
    assert "sessions span 5." in err and "days on average" in err and "--session-gap 30m" in err
