"""The GRU4Rec network: GRU cell against NumPy, sequence path against stepping, saving."""
import keras
import numpy as np
import pytest
from keras import ops

from model_code.gru4rec.model import GateUniform, GRU4Rec, SessionScorer, gru_step, recurrent_columns


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _numpy_gru(x, h, kernel, recurrent, bias):
    """Textbook GRU: reset gate applied to the previous state before its product."""
    H = h.shape[1]
    Wz, Wr, Wh = kernel[:, :H], kernel[:, H:2 * H], kernel[:, 2 * H:]
    Uz, Ur, Uh = recurrent[:, :H], recurrent[:, H:2 * H], recurrent[:, 2 * H:]
    bz, br, bh = bias[:H], bias[H:2 * H], bias[2 * H:]
    z = _sigmoid(x @ Wz + h @ Uz + bz)
    r = _sigmoid(x @ Wr + h @ Ur + br)
    candidate = np.tanh(x @ Wh + (r * h) @ Uh + bh)
    return z * h + (1 - z) * candidate


def test_gru_step_matches_numpy():
    rng = np.random.default_rng(0)
    x, h = rng.normal(size=(4, 5)), rng.normal(size=(4, 3))
    kernel, recurrent, bias = rng.normal(size=(5, 9)), rng.normal(size=(3, 9)), rng.normal(size=9)
    got = gru_step(ops.convert_to_tensor((x @ kernel + bias).astype(np.float32)), h.astype(np.float32),
                   *recurrent_columns(recurrent.astype(np.float32)))
    np.testing.assert_allclose(
        ops.convert_to_numpy(got), _numpy_gru(x, h, kernel, recurrent, bias), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("embedding", ["shared", "separate", "none"])
def test_sequence_path_equals_stepping_and_numpy(embedding):
    n_items = 30
    model = GRU4Rec(n_items, layers=(6, 4), embedding=embedding, seed=3)
    for gru in model.grus:  # non-zero biases, so that they are exercised too
        gru.cell.bias.assign(np.random.default_rng(1).normal(size=gru.cell.bias.shape))
    items = np.array([[1, 2, 3, n_items, n_items], [4, 5, 6, 7, 29]], np.int32)
    lengths = np.array([3, 5], np.int32)
    hidden = ops.convert_to_numpy(model((items, lengths)))
    assert hidden.shape == (2, 4)
    states, stepped = model.zero_states(2), []
    numpy_states = [np.zeros((2, 6)), np.zeros((2, 4))]
    table = ops.convert_to_numpy(model.input_weights())
    for t in range(5):
        column = np.minimum(items[:, t], n_items - 1)
        states = model.step(column, states)
        stepped.append(ops.convert_to_numpy(states[-1]))
        x = np.eye(n_items)[column] if embedding == "none" else table[column]
        for layer, gru in enumerate(model.grus):
            cell = gru.cell
            numpy_states[layer] = _numpy_gru(
                x,
                numpy_states[layer],
                *(ops.convert_to_numpy(w) for w in (cell.kernel, cell.recurrent_kernel, cell.bias)),
            )
            x = numpy_states[layer]
        np.testing.assert_allclose(stepped[-1], x, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(hidden[0], stepped[2][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hidden[1], stepped[4][1], rtol=1e-5, atol=1e-6)


def test_initialisation_bounds_per_gate():
    model = GRU4Rec(1000, layers=(20,), seed=0)
    kernel = ops.convert_to_numpy(model.grus[0].cell.kernel)
    limit = np.sqrt(6 / (20 + 20))  # input width 20 (shared embedding), gate width 20
    assert kernel.shape == (20, 60) and np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    table = ops.convert_to_numpy(model.item_table)
    assert np.abs(table).max() <= np.sqrt(6 / 1020)
    assert not ops.convert_to_numpy(model.item_bias).any()
    assert GateUniform(3).get_config() == {"gates": 3, "seed": None}


def test_save_and_load_round_trip(tmp_path):
    model = GRU4Rec(12, layers=(5,), embedding="separate", embedding_size=3, dropout_hidden=0.2, seed=7)
    items, lengths = np.array([[1, 2, 12]], np.int32), np.array([2], np.int32)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(
        ops.convert_to_numpy(loaded((items, lengths))), ops.convert_to_numpy(model((items, lengths)))
    )


def test_reset_zeroes_the_slot_state_in_the_scorer():
    model = GRU4Rec(10, layers=(4,), seed=1)
    fresh, carried = SessionScorer(model), SessionScorer(model)
    carried.score(np.array([3, 4]), np.array([True, True]))
    a = carried.score(np.array([5, 6]), np.array([True, False]))  # slot 0 restarts, slot 1 goes on
    b = fresh.score(np.array([5, 6]), np.array([True, True]))
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
    assert not np.allclose(a[1], b[1])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="embedding must be one of"):
        GRU4Rec(5, embedding="tied")
    with pytest.raises(ValueError, match="layer widths"):
        GRU4Rec(5, layers=(0,))
