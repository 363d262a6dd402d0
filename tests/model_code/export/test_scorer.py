"""The ONNX scorer of a model trained on JAX and exported by a TensorFlow child process: contract names,
agreement with the Keras model, padding, other embeddings, the stand-in table."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_code import artifacts
from model_code.commands.evaluate import load_model
from model_code.export.scorer import (
    ExportError,
    _rename_output,
    check_scorer,
    export_available,
    export_in_tensorflow,
    main,
    sample_sessions,
    tensorflow_installed,
)


@pytest.fixture(scope="module")
def exported(tiny_model):
    model_dir, _ = tiny_model
    model, _ = load_model(model_dir)
    session = ort.InferenceSession(str(model_dir / artifacts.SCORER_FILE), providers=["CPUExecutionProvider"])
    table, bias = artifacts.read_output_layer(model_dir)
    return model, session, table, bias


def test_graph_has_the_contract_names_and_dynamic_dims(tiny_model):
    model_dir, _ = tiny_model
    graph = onnx.load(str(model_dir / artifacts.SCORER_FILE)).graph
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert inputs == {"items": ["batch", "time"], "lengths": ["batch"]}
    assert [i.type.tensor_type.elem_type for i in graph.input] == [onnx.TensorProto.INT32] * 2
    assert [o.name for o in graph.output] == [artifacts.SCORER_OUTPUT]
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_output_layer_arrays_are_the_models_weights(tiny_model, exported):
    model, _, table, bias = exported
    meta = artifacts.read_metadata(tiny_model[0])
    assert table.shape == (meta["n_items"], 24) and bias.shape == (meta["n_items"],)
    assert np.array_equal(table, np.asarray(model.item_table)) and np.array_equal(bias, np.asarray(model.item_bias))


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), n_sessions=st.integers(1, 40), max_length=st.integers(1, 30))
def test_onnx_and_keras_give_the_same_top20(exported, seed, n_sessions, max_length):
    model, session, table, bias = exported
    items, lengths = sample_sessions(model.n_items, n_sessions, max_length, np.random.default_rng(seed))
    hidden_onnx = session.run([artifacts.SCORER_OUTPUT], {"items": items, "lengths": lengths})[0]
    hidden_keras = np.asarray(model((items, lengths), training=False))
    np.testing.assert_allclose(hidden_onnx, hidden_keras, rtol=1e-4, atol=1e-5)
    scores_onnx = hidden_onnx @ table.T + bias
    scores_keras = np.asarray(model.scores(hidden_keras))
    top_onnx = np.argsort(-scores_onnx, axis=1, kind="stable")[:, :20]
    top_keras = np.argsort(-scores_keras, axis=1, kind="stable")[:, :20]
    agree = (top_onnx == top_keras).all(axis=1)
    for row in np.flatnonzero(~agree):  # only a near-tie may swap places
        gap = np.abs(scores_keras[row, top_onnx[row]] - scores_keras[row, top_keras[row]])
        assert gap.max() < 1e-4, f"session {row}: top-20 differ beyond a near-tie"


def test_padding_after_the_length_is_ignored(exported):
    model, session, _, _ = exported
    items, lengths = sample_sessions(model.n_items, 6, 5, np.random.default_rng(1))
    longer = np.concatenate([items, np.full((6, 4), model.n_items, np.int32)], axis=1)
    garbage = longer.copy()
    garbage[:, 5:] = np.random.default_rng(2).integers(0, model.n_items, size=(6, 4))

    def run(x):
        return session.run(None, {"items": x, "lengths": lengths})[0]

    np.testing.assert_allclose(run(items), run(longer), atol=1e-6)
    np.testing.assert_allclose(run(items), run(garbage), atol=1e-6)


def test_check_scorer_rejects_a_graph_that_disagrees(exported, tmp_path, tiny_model):
    model, _, _, _ = exported
    other, _ = load_model(tiny_model[0])
    other.item_table.assign(np.asarray(other.item_table) + 1.0)
    with pytest.raises(ExportError, match="disagrees with the Keras model"):
        check_scorer(other, tiny_model[0] / artifacts.SCORER_FILE)


def test_rename_output_rewires_consumers():
    node = onnx.helper.make_node("Relu", ["x"], ["Identity:0"])
    graph = onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("Identity:0", onnx.TensorProto.FLOAT, [1])],
    )
    _rename_output(graph, "hidden")
    assert graph.output[0].name == "hidden" and list(graph.node[0].output) == ["hidden"]


def test_export_in_this_process_needs_the_tensorflow_backend():
    available, reason = export_available()  # this process trains: Keras on JAX
    assert not available and "TensorFlow backend" in reason and "jax" in reason


def test_training_without_tensorflow_says_how_to_export_later(tiny_data, tmp_path, monkeypatch):
    import model_code.export.scorer
    from tests.model_code.conftest import TINY_ARGS, run_train

    monkeypatch.setattr(model_code.export.scorer, "tensorflow_installed",
                        lambda: (False, "tensorflow not installed here; write scorer.onnx later with "
                                        "`python -m model_code.export.scorer --model-dir DIR`"))
    code, _, err = run_train(["--train", str(tiny_data / "train.tsv.gz"), "--epochs", "1",
                              "--model-dir", str(tmp_path / "m"), *TINY_ARGS[:-1]])
    assert code == 0, err
    assert ("skipping the ONNX scorer export: ONNX export needs the TensorFlow backend (this run uses 'jax'); "
            "tensorflow not installed here") in err
    assert "python -m model_code.export.scorer --model-dir DIR" in err
    assert not (tmp_path / "m" / artifacts.SCORER_FILE).exists()
    assert (tmp_path / "m" / artifacts.MODEL_FILE).exists()


def test_tensorflow_is_found_where_it_is_installed():
    assert tensorflow_installed() == (True, "")


def test_export_command_names_a_directory_without_model_keras(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--model-dir", str(tmp_path)])
    assert exited.value.code == 2
    assert f"--model-dir: no {artifacts.MODEL_FILE} in {tmp_path}" in capsys.readouterr().err


def _export(model, folder):
    """Export ``model`` as training does on JAX: saved as model.keras, converted by a TensorFlow child process."""
    model.save(folder / artifacts.MODEL_FILE)
    export_in_tensorflow(folder)


@pytest.mark.parametrize("embedding, layers, size", [("separate", (8, 6), 5), ("none", (7,), None)])
def test_export_of_other_embeddings_and_stacked_layers(tmp_path, embedding, layers, size):
    from model_code.gru4rec.model import GRU4Rec

    model = GRU4Rec(30, layers=layers, embedding=embedding, embedding_size=size, seed=4)
    _export(model, tmp_path)  # the child checks names and hidden states against Keras on TensorFlow
    session = ort.InferenceSession(str(tmp_path / artifacts.SCORER_FILE), providers=["CPUExecutionProvider"])
    items, lengths = sample_sessions(30, 12, 9, np.random.default_rng(0))
    hidden = session.run(None, {"items": items, "lengths": lengths})[0]
    assert hidden.shape == (12, layers[-1])
    np.testing.assert_allclose(hidden, np.asarray(model((items, lengths))), rtol=1e-4, atol=1e-5)
    table, bias = artifacts.read_output_layer(tmp_path)
    assert table.shape == (30, layers[-1]) and bias.shape == (30,)


@pytest.mark.parametrize("embedding, size", [("shared", None), ("separate", 6)])
def test_a_large_catalogue_is_exported_through_the_stand_in(tmp_path, embedding, size):
    """The graph ends up holding the model's own input table once, and the stand-in's nowhere."""
    from onnx import numpy_helper

    from model_code.export.export_stand_in import STAND_IN_ITEMS
    from model_code.gru4rec.model import GRU4Rec

    n_items = STAND_IN_ITEMS * 2 + 17
    model = GRU4Rec(n_items, layers=(8,), embedding=embedding, embedding_size=size, seed=6)
    _export(model, tmp_path)  # the child checks the hidden states against Keras on items across the catalogue
    values = [numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / artifacts.SCORER_FILE)).graph.initializer]
    table = np.asarray(model.input_weights())
    assert sum(v.shape == table.shape and np.array_equal(v, table) for v in values) == 1
    assert not any(v.shape[:1] == (STAND_IN_ITEMS,) for v in values)
    session = ort.InferenceSession(str(tmp_path / artifacts.SCORER_FILE), providers=["CPUExecutionProvider"])
    items = np.array([[n_items - 1, 5, n_items], [STAND_IN_ITEMS + 3, n_items, n_items]], np.int32)
    lengths = np.array([2, 1], np.int32)
    np.testing.assert_allclose(session.run(None, {"items": items, "lengths": lengths})[0],
                               np.asarray(model((items, lengths))), rtol=1e-4, atol=1e-5)


def mapped_into_this_process(path) -> bool:
    return any(line.rstrip().endswith(str(path.resolve())) for line in open("/proc/self/maps"))


def test_a_large_item_table_goes_to_a_weights_file_that_onnx_runtime_maps(tmp_path):
    """The graph keeps its small weights; the input table goes to scorer.onnx.data, mapped, not copied."""
    from model_code.export.scorer import EXTERNAL_WEIGHTS_BYTES
    from model_code.gru4rec.model import GRU4Rec

    n_items = EXTERNAL_WEIGHTS_BYTES // (4 * 16) + 100
    model = GRU4Rec(n_items, layers=(16,), seed=8)
    (tmp_path / artifacts.SCORER_DATA_FILE).write_bytes(b"left by an earlier export")
    _export(model, tmp_path)
    data = tmp_path / artifacts.SCORER_DATA_FILE
    assert data.stat().st_size >= n_items * 16 * 4 > (tmp_path / artifacts.SCORER_FILE).stat().st_size
    session = ort.InferenceSession(str(tmp_path / artifacts.SCORER_FILE), providers=["CPUExecutionProvider"])
    assert mapped_into_this_process(data)
    items, lengths = sample_sessions(n_items, 6, 5, np.random.default_rng(1))
    np.testing.assert_allclose(session.run(None, {"items": items, "lengths": lengths})[0],
                               np.asarray(model((items, lengths))), rtol=1e-4, atol=1e-5)
    _export(GRU4Rec(30, layers=(16,), seed=8), tmp_path)  # a small model: one file, the old weights removed
    assert not data.exists()
    ort.InferenceSession(str(tmp_path / artifacts.SCORER_FILE), providers=["CPUExecutionProvider"])
    assert not any(name.startswith(".") for name in map(lambda path: path.name, tmp_path.iterdir()))


def test_the_mapping_check_sees_only_mapped_files(tmp_path):
    """Negative control for the check above: a file only read is not mapped."""
    path = tmp_path / "read.bin"
    path.write_bytes(b"x" * 8192)
    path.read_bytes()
    assert not mapped_into_this_process(path)


def test_an_ambiguous_stand_in_value_fails_the_export():
    from onnx import numpy_helper

    from model_code.export.export_stand_in import STAND_IN_ITEMS, StandInError, put_real_table, stand_in_model
    from model_code.gru4rec.model import GRU4Rec

    model = GRU4Rec(40, layers=(4,), seed=1)
    stand_in = stand_in_model(model)
    bound = np.array(STAND_IN_ITEMS - 1, np.int32)
    graph = onnx.helper.make_graph([], "g", [], [], initializer=[
        numpy_helper.from_array(np.asarray(stand_in.input_weights()), "table"),
        numpy_helper.from_array(bound, "bound"), numpy_helper.from_array(bound, "other")])
    with pytest.raises(StandInError, match="padding clamp bound 2 times, expected once"):
        put_real_table(graph, stand_in, model)
