"""The compiled engine against NumPy reference arithmetic, in float64, written from the formulas.

One block of three steps (a session start in every slot, a reset in one slot, a step with an empty
slot, and a padded step with none valid) goes through the engine's compiled block; the reference
does the same steps in NumPy: the GRU forward, the loss (cross-entropy with either logQ form, or
BPR-max), gradients by central finite differences (no autodiff shared with the code under test),
and Adagrad with momentum on every dense weight and on the touched rows of the item tables only.
"""
import numpy as np
import pytest
from keras import ops

from model_code.data.session_batches import EpochSteps
from model_code.gru4rec.model import GRU4Rec
from model_code.gru4rec.optimizer import EPSILON
from model_code.gru4rec.params import GRU4RecParams
from model_code.gru4rec.sampler import log_item_counts
from model_code.gru4rec.trainer import Trainer

N_ITEMS, BATCH, N_SAMPLE = 9, 3, 4
SETTINGS = dict(n_sample=N_SAMPLE, sample_alpha=0.5, learning_rate=0.1, logq=1.0, bpreg=0.5, elu=0.5,
                batch_size=BATCH, block_steps=3, matmul_precision="float32")  # float32 products: exact to NumPy
SEED = 3
COUNTS = np.array([5, 1, 3, 8, 2, 2, 7, 1, 4])


def _block():
    """Three steps: every slot starts a session; then slot 1 starts another and slot 2 is empty; then padding."""
    inputs = np.array([[0, 4, 7], [2, 5, 0], [0, 0, 0]], np.int32)
    targets = np.array([[4, 4, 2], [6, 8, 0], [0, 0, 0]], np.int32)  # a repeated target: summed rows
    resets = np.array([[True, True, True], [False, True, False], [False, False, False]])
    valid = np.array([[True, True, True], [True, True, False], [False, False, False]])
    negatives = np.array([[4, 3, 3, 0], [7, 1, 6, 2], [5, 5, 1, 3]], np.int32)  # repeats, and a target among them
    return EpochSteps(inputs, targets, resets, valid), negatives


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gru(projection, state, recurrent):
    units = state.shape[1]
    gates = _sigmoid(projection[:, :2 * units] + state @ recurrent[:, :2 * units])
    update, reset = gates[:, :units], gates[:, units:]
    candidate = np.tanh(projection[:, 2 * units:] + (reset * state) @ recurrent[:, 2 * units:])
    return update * state + (1.0 - update) * candidate


def numpy_forward(w, embedding, items, states):
    """The GRU layers one step in NumPy: one-hot input selects the first kernel's rows."""
    new_states = []
    x = None
    for i, state in enumerate(states):
        if i == 0 and embedding == "none":
            projection = w["input_table"][items] + w["bias_0"]
        else:
            if i == 0:
                x = w["item_table" if embedding == "shared" else "input_table"][items]
            projection = x @ w[f"kernel_{i}"] + w[f"bias_{i}"]
        x = _gru(projection, state, w[f"recurrent_{i}"])
        new_states.append(x)
    return new_states


def _row_losses(scores, valid, loss, log_q):
    columns = np.concatenate([valid, np.ones(N_SAMPLE, bool)])
    out = np.zeros(BATCH)
    for i in np.flatnonzero(valid):
        if loss == "cross-entropy":
            kept = (scores[i] - SETTINGS["logq"] * log_q)[columns]
            target = scores[i, i] - SETTINGS["logq"] * log_q[i]
            out[i] = np.log(np.exp(kept - kept.max()).sum()) + kept.max() - target
        else:
            elu = np.where(scores[i] > 0, scores[i], SETTINGS["elu"] * (np.exp(scores[i]) - 1))
            negative = columns.copy()
            negative[i] = False
            r = elu[negative]
            s = np.exp(r - r.max()) / np.exp(r - r.max()).sum()
            out[i] = -np.log((s * _sigmoid(elu[i] - r)).sum()) + SETTINGS["bpreg"] * (s * r ** 2).sum()
    return out


def _step_loss(w, embedding, loss, log_q, inputs, candidates, valid, states):
    hidden = numpy_forward(w, embedding, inputs, states)
    scores = hidden[-1] @ w["item_table"][candidates].T + w["item_bias"][candidates]
    return _row_losses(scores, valid, loss, log_q).sum() / BATCH, hidden


def _gradients(w, f, h=1e-6):
    """Central finite differences of ``f(w)`` with respect to every entry of every weight."""
    grads = {}
    for name, value in w.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            saved = value[index]
            value[index] = saved + h
            up = f(w)
            value[index] = saved - h
            down = f(w)
            value[index] = saved
            grad[index] = (up - down) / (2 * h)
        grads[name] = grad
    return grads


def _touched(name, embedding, inputs, targets, negatives, valid):
    """Rows of item table ``name`` a step updates: inputs of valid rows, valid targets, every negative."""
    if not valid.any():
        return np.zeros(0, int)
    candidates = np.concatenate([targets[valid], negatives])
    if name == "item_table":
        rows = np.concatenate([candidates, inputs[valid]]) if embedding == "shared" else candidates
    else:
        rows = candidates if name == "item_bias" else inputs[valid]
    return np.unique(rows)


def _adagrad(w, a, v, g, momentum):
    lr = SETTINGS["learning_rate"]
    a += g ** 2
    if momentum:
        v[...] = momentum * v - lr * g / np.sqrt(a + EPSILON)
        w += v
    else:
        w -= lr * g / np.sqrt(a + EPSILON)


def numpy_block(w, embedding, loss, logq_form, momentum, block, negatives):
    """The block in NumPy: returns (summed row losses, weights, accumulators, velocities)."""
    log_counts = log_item_counts(COUNTS).astype(np.float64)
    target_weight = 1.0 if logq_form == "reference" else SETTINGS["sample_alpha"]
    acc = {name: np.zeros_like(value) for name, value in w.items()}
    vel = {name: np.zeros_like(value) for name, value in w.items()}
    states = [np.zeros((BATCH, units)) for units in (4, 3)]
    total = 0.0
    for t in range(block.n_steps):
        inputs, targets, valid = block.inputs[t], block.targets[t], block.valid[t]
        states = [state * ~block.resets[t][:, None] for state in states]
        candidates = np.concatenate([targets, negatives[t]])
        log_q = np.concatenate(
            [target_weight * log_counts[targets], SETTINGS["sample_alpha"] * log_counts[negatives[t]]]
        )
        args = (embedding, loss, log_q, inputs, candidates, valid, states)
        mean, new_states = _step_loss(w, *args)
        total += mean * BATCH
        grads = _gradients(w, lambda weights, args=args: _step_loss(weights, *args)[0])
        for name in w:
            if name in ("item_table", "item_bias", "input_table"):
                rows = _touched(name, embedding, inputs, targets, negatives[t], valid)
                sub = [x[rows] for x in (w[name], acc[name], vel[name], grads[name])]
                _adagrad(*sub, momentum)
                w[name][rows], acc[name][rows], vel[name][rows] = sub[:3]
            elif valid.any():
                _adagrad(w[name], acc[name], vel[name], grads[name], momentum)
        states = new_states
    return total, w, acc, vel


CASES = [  # embedding, loss, logQ form, table update, momentum
    ("shared", "cross-entropy", "reference", "rows", 0.3),
    ("shared", "cross-entropy", "sampling", "whole", 0.3),
    ("separate", "cross-entropy", "reference", "whole", 0.0),
    ("separate", "bpr-max", "reference", "rows", 0.3),
    ("none", "bpr-max", "reference", "auto", 0.3),
    ("none", "cross-entropy", "sampling", "rows", 0.0),
]


@pytest.mark.parametrize("embedding,loss,logq_form,table_update,momentum", CASES)
def test_compiled_block_equals_the_numpy_reference(embedding, loss, logq_form, table_update, momentum):
    model = GRU4Rec(N_ITEMS, layers=(4, 3), embedding=embedding,
                    embedding_size=2 if embedding == "separate" else None, seed=4)
    start = {name: ops.convert_to_numpy(v).astype(np.float64) for name, v in model.named_weights().items()}
    params = GRU4RecParams(loss=loss, logq_form=logq_form, momentum=momentum, **SETTINGS)
    trainer = Trainer(model, params, item_counts=COUNTS, seed=SEED, table_update=table_update)
    block, negatives = _block()
    loss_sum, _ = trainer._engine.train_block(block, negatives, (0, 0), trainer._engine.zero_states(BATCH))

    want_loss, want, want_acc, want_vel = numpy_block(start, embedding, loss, logq_form, momentum, block, negatives)
    assert float(loss_sum) == pytest.approx(want_loss, rel=1e-5)
    state = trainer.get_state()
    for name, variable in model.named_weights().items():
        np.testing.assert_allclose(ops.convert_to_numpy(variable), want[name], rtol=1e-4, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(state[f"accumulator/{name}"], want_acc[name], rtol=1e-3, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(state[f"velocity/{name}"], want_vel[name], rtol=1e-3, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("embedding", ["shared", "separate", "none"])
def test_model_step_equals_the_numpy_gru(embedding):
    """The inference step (the evaluation's and serving's) from the model's weights, against NumPy."""
    model = GRU4Rec(N_ITEMS, layers=(4, 3), embedding=embedding, seed=6)
    w = {name: ops.convert_to_numpy(v).astype(np.float64) for name, v in model.named_weights().items()}
    rng = np.random.default_rng(0)
    items = rng.integers(0, N_ITEMS, 5).astype(np.int32)
    states = [rng.normal(size=(5, units)) for units in (4, 3)]
    got = model.step(ops.convert_to_tensor(items), [ops.convert_to_tensor(s.astype(np.float32)) for s in states])
    for layer, (a, b) in enumerate(zip(got, numpy_forward(w, embedding, items, states))):
        np.testing.assert_allclose(ops.convert_to_numpy(a), b, rtol=1e-5, atol=1e-6, err_msg=f"layer {layer}")
    scores = ops.convert_to_numpy(model.scores(got[-1]))
    want = ops.convert_to_numpy(got[-1]).astype(np.float64) @ w["item_table"].T + w["item_bias"]
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-6)
