"""The compiled trainer: evaluation equals the reference loop, resets, sparse updates, resuming, real data."""
import ast
from pathlib import Path

import numpy as np
import pytest
from keras import ops

from model_code.data.event_table import read_events
from model_code.data.item_index import ItemIndex
from model_code.data.session_batches import SessionArrays, session_parallel_steps
from model_code.gru4rec.model import GRU4Rec, SessionScorer
from model_code.gru4rec.params import GRU4RecParams
from model_code.gru4rec.train_step import dropout_plan, join_recurrent, split_recurrent, updates_whole_table
from model_code.gru4rec.trainer import Trainer, trainable_weights
from model_code.ranking import metrics


def _sessions(seed, n_sessions, n_items, max_length=7):
    rng = np.random.default_rng(seed)
    return SessionArrays.from_lists(
        [list(rng.integers(0, n_items, rng.integers(1, max_length))) for _ in range(n_sessions)]
    )


TRAINER_OPTIONS = ("item_counts", "seed", "table_update")


def _trainer(model, data, **kwargs):
    options = dict(loss="cross-entropy", n_sample=8, sample_alpha=0.5, learning_rate=0.1, momentum=0.2, bpreg=1.0,
                   logq=1.0, batch_size=4, block_steps=5, item_counts=data.item_counts(model.n_items) + 1, seed=3)
    options.update(kwargs)
    params = GRU4RecParams(**{name: value for name, value in options.items() if name not in TRAINER_OPTIONS})
    return Trainer(model, params, **{name: value for name, value in options.items() if name in TRAINER_OPTIONS})


@pytest.mark.parametrize("ties", ["conservative", "standard", "median"])
def test_evaluate_equals_the_step_by_step_reference(ties):
    n_items = 25
    model = GRU4Rec(n_items, layers=(8,), seed=0)
    train = _sessions(1, 40, n_items)
    _trainer(model, train).train_epoch(session_parallel_steps(train, 4))
    table = ops.convert_to_numpy(model.item_table)
    table[7] = table[3]  # items 3 and 7 tie exactly
    model.item_table.assign(table)
    test = _sessions(2, 30, n_items)
    trainer = _trainer(model, train)
    got = trainer.evaluate(test, batch_size=6, ties=ties, block_steps=4)
    want = metrics.evaluate(SessionScorer(model), test, batch_size=6, ties=ties, progress=False)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-6), key


def _block_loss(trainer, steps, states):
    """Summed loss of one block from the given incoming states (through the backend's compiled block)."""
    negatives = trainer.sampler.draw(steps.n_steps, trainer.n_sample)
    loss, _ = trainer._engine.train_block(steps, negatives, (0, 0), states)
    return float(loss)


def test_a_reset_zeroes_the_slot_state_in_training():
    model = GRU4Rec(20, layers=(6, 5), seed=2)
    data = _sessions(3, 12, 20)
    trainer = _trainer(model, data, learning_rate=1e-30, momentum=0.0, block_steps=3)
    steps = next(session_parallel_steps(data, 4).blocks(3))
    assert steps.resets[0].all()
    rng = np.random.default_rng(0)
    noisy = [ops.convert_to_tensor(rng.normal(size=(4, units)).astype(np.float32)) for units in (6, 5)]
    zeros = trainer._engine.zero_states(4)
    trainer.sampler.set_state({"sampler_seed": 0, "sampler_counter": 0})
    with_noise = _block_loss(trainer, steps, noisy)
    trainer.sampler.set_state({"sampler_seed": 0, "sampler_counter": 0})
    from_zero = _block_loss(trainer, steps, zeros)
    assert with_noise == pytest.approx(from_zero, rel=1e-6)
    no_reset = type(steps)(steps.inputs, steps.targets, np.zeros_like(steps.resets), steps.valid)
    trainer.sampler.set_state({"sampler_seed": 0, "sampler_counter": 0})
    assert _block_loss(trainer, no_reset, noisy) != pytest.approx(from_zero, rel=1e-3)


@pytest.mark.parametrize("table_update", ["rows", "whole"])
@pytest.mark.parametrize("momentum", [0.0, 0.4])
def test_training_touches_only_the_rows_it_used(table_update, momentum):
    n_items = 30
    model = GRU4Rec(n_items, layers=(4,), seed=5)
    data = SessionArrays.from_lists([[1, 2, 3], [4, 5], [2, 6, 1]])
    before_table = ops.convert_to_numpy(model.item_table).copy()
    trainer = _trainer(model, data, n_sample=0, batch_size=2, block_steps=4, table_update=table_update,
                       momentum=momentum)
    result = trainer.train_epoch(session_parallel_steps(data, 2))
    assert result["examples"] == data.n_examples == 5
    table, bias = ops.convert_to_numpy(model.item_table), ops.convert_to_numpy(model.item_bias)
    used = [1, 2, 3, 4, 5, 6]
    unused = [i for i in range(n_items) if i not in used]
    np.testing.assert_array_equal(table[unused], before_table[unused])
    assert not bias[unused].any()
    assert (np.abs(table[used] - before_table[used]).sum(axis=1) > 0).all()
    state = trainer.get_state()
    assert not state["accumulator/item_table"][unused].any() and state["accumulator/item_table"][used].all()
    assert not state["velocity/item_table"][unused].any() and not state["velocity/item_bias"][unused].any()


@pytest.mark.parametrize("embedding,momentum", [("shared", 0.3), ("separate", 0.3), ("shared", 0.0)])
def test_row_and_whole_table_updates_train_the_same_model(embedding, momentum):
    data = _sessions(4, 30, 40)
    results = {}
    for table_update in ("rows", "whole"):
        model = GRU4Rec(40, layers=(6,), embedding=embedding, seed=2)
        trainer = _trainer(model, data, n_sample=10, momentum=momentum, table_update=table_update)
        loss = trainer.train_epoch(session_parallel_steps(data, 4))["loss"]
        results[table_update] = (loss, model.get_weights(), trainer.get_state())
    (loss_rows, weights_rows, state_rows), (loss_whole, weights_whole, state_whole) = results["rows"], results["whole"]
    assert loss_whole == pytest.approx(loss_rows, rel=1e-5)
    for a, b in zip(weights_rows, weights_whole):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    for name, value in state_rows.items():
        np.testing.assert_allclose(state_whole[name], value, rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("table_rows,step_rows,mode,whole", [
    (2933, 2112, "auto", True), (43097, 2304, "auto", False), (2933, 32, "auto", False), (100, 25, "auto", True),
    (101, 25, "auto", False), (43097, 2304, "whole", True), (10, 2304, "rows", False),
])
def test_auto_updates_a_table_as_a_whole_only_while_it_is_small(table_rows, step_rows, mode, whole):
    assert updates_whole_table(mode, table_rows, step_rows) is whole


@pytest.mark.parametrize("loss,embedding", [("cross-entropy", "shared"), ("bpr-max", "separate"), ("bpr-max", "none")])
def test_resuming_from_state_continues_exactly(loss, embedding):
    n_items = 20
    data = _sessions(7, 30, n_items)
    kwargs = dict(loss=loss, bpreg=0.5, elu=0.5)

    def fresh():
        return GRU4Rec(n_items, layers=(5,), embedding=embedding, dropout_embedding=0.2, dropout_hidden=0.3, seed=1)

    model = fresh()
    trainer = _trainer(model, data, **kwargs)
    trainer.train_epoch(session_parallel_steps(data, 4))
    weights, state = model.get_weights(), trainer.get_state()
    second = trainer.train_epoch(session_parallel_steps(data, 4))
    resumed_model = fresh()
    resumed_model.set_weights(weights)
    resumed = _trainer(resumed_model, data, **kwargs)
    resumed.set_state(state)
    again = resumed.train_epoch(session_parallel_steps(data, 4))
    assert again["loss"] == pytest.approx(second["loss"], rel=1e-6)
    for a, b in zip(resumed_model.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("alpha, same", [(1.0, True), (0.5, False)])
def test_logq_forms_differ_only_where_alpha_is_below_one(alpha, same):
    """With alpha 1 the targets' and the negatives' corrections agree, so both forms train alike."""
    n_items = 20
    data = _sessions(11, 30, n_items)
    counts = np.arange(1, n_items + 1) ** 2

    def epoch_loss(form):
        model = GRU4Rec(n_items, layers=(5,), seed=1)
        trainer = _trainer(model, data, sample_alpha=alpha, logq_form=form, item_counts=counts)
        return trainer.train_epoch(session_parallel_steps(data, 4))["loss"]

    reference, sampling = epoch_loss("reference"), epoch_loss("sampling")
    assert (reference == pytest.approx(sampling, rel=1e-6)) is same


@pytest.mark.parametrize("embedding", ["shared", "separate"])
def test_padded_steps_change_no_weight_and_no_slot(embedding):
    """An epoch in one exact block and the same epoch padded with empty steps end with equal weights and slots.

    The padded block draws the same negatives and dropout masks for its first steps; with momentum, an
    update on an empty step would still move every dense weight and the sampled rows.
    """
    n_items = 20
    data = _sessions(13, 12, n_items)
    n_steps = session_parallel_steps(data, 4).n_steps

    def train(block_steps):
        model = GRU4Rec(n_items, layers=(5,), embedding=embedding, dropout_embedding=0.2, dropout_hidden=0.3, seed=1)
        trainer = _trainer(model, data, momentum=0.5, block_steps=block_steps)
        trainer.train_epoch(session_parallel_steps(data, 4))
        return model.get_weights(), trainer.get_state()

    (exact, exact_state), (padded, padded_state) = train(n_steps), train(n_steps + 7)
    for a, b in zip(exact, padded):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for key in exact_state:
        if key.startswith(("accumulator/", "velocity/")):
            np.testing.assert_allclose(exact_state[key], padded_state[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_dropout_plan_follows_the_reference():
    """One-hot input: embedding dropout on the first layer's output, no input mask, no hidden dropout there."""
    none = GRU4Rec(10, layers=(6, 4), embedding="none", dropout_embedding=0.2, dropout_hidden=0.3)
    assert dropout_plan(none) == [(0.0, 1), (0.2, 6), (0.3, 4)]
    shared = GRU4Rec(10, layers=(6, 4), dropout_embedding=0.2, dropout_hidden=0.3)
    assert dropout_plan(shared) == [(0.2, 4), (0.3, 6), (0.3, 4)]
    separate = GRU4Rec(
        10, layers=(6,), embedding="separate", embedding_size=3, dropout_embedding=0.2, dropout_hidden=0.3
    )
    assert dropout_plan(separate) == [(0.2, 3), (0.3, 6)]


@pytest.mark.parametrize("rates, same", [((0.0, 0.9), True), ((0.5, 0.0), False)])
def test_one_hot_layer_takes_the_embedding_dropout_only(rates, same):
    """With one-hot input and one layer, hidden dropout has no effect and embedding dropout does."""
    n_items = 20
    data = _sessions(17, 30, n_items)

    def epoch_loss(dropout_embedding, dropout_hidden):
        model = GRU4Rec(n_items, layers=(5,), embedding="none", dropout_embedding=dropout_embedding,
                        dropout_hidden=dropout_hidden, seed=1)
        return _trainer(model, data).train_epoch(session_parallel_steps(data, 4))["loss"]

    assert (epoch_loss(*rates) == pytest.approx(epoch_loss(0.0, 0.0), rel=1e-6)) is same


def test_recurrent_kernels_split_into_gate_and_candidate_columns_and_back():
    """Each layer's recurrent kernel [H, 3H] splits into z, r columns [H, 2H] and h columns [H, H]; joining restores
    it."""
    model = GRU4Rec(10, layers=(6, 4), seed=2)
    names, variables = trainable_weights(model)
    weights = {name: ops.convert_to_numpy(v) for name, v in zip(names, variables)}
    split = split_recurrent(weights)
    assert set(split) == (set(names) - {"recurrent_0", "recurrent_1"}) | {
        "recurrent_0/gates", "recurrent_0/candidate", "recurrent_1/gates", "recurrent_1/candidate"}
    kernel = weights["recurrent_1"]
    np.testing.assert_array_equal(split["recurrent_1/gates"], kernel[:, :8])
    np.testing.assert_array_equal(split["recurrent_1/candidate"], kernel[:, 8:])
    joined = join_recurrent(split)
    assert set(joined) == set(names)
    for name in names:
        np.testing.assert_array_equal(ops.convert_to_numpy(joined[name]), weights[name], err_msg=name)


def test_the_engine_does_not_import_the_trainer():
    """The step functions live in train_step: trainer -> engine -> train_step, never back."""
    root = Path(__file__).resolve().parents[3] / "model_code" / "gru4rec"
    for name in ("train_step.py", "trainer_jax.py"):
        tree = ast.parse((root / name).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert "model_code.gru4rec.trainer" not in imported, name
        assert not any(isinstance(node, ast.ImportFrom) and node.module == "model_code.gru4rec"
                       and any(alias.name == "trainer" for alias in node.names) for node in ast.walk(tree)), name


def test_trainer_refuses_mismatched_inputs():
    model = GRU4Rec(10, layers=(3,))
    params = GRU4RecParams(batch_size=2, n_sample=4)
    with pytest.raises(ValueError, match="table_update must be one of"):
        Trainer(model, params, table_update="dense")
    with pytest.raises(ValueError, match="item_counts has 3 entries"):
        Trainer(model, params, item_counts=np.ones(3))
    trainer = Trainer(model, params)
    with pytest.raises(ValueError, match="batch size 3"):
        trainer.train_epoch(session_parallel_steps(SessionArrays.from_lists([[1, 2, 3]]), 3))


def test_short_training_on_real_data_clears_the_recall_floor(yoochoose100k):
    """rsc15 preset, 3 epochs on yoochoose100k.

    Measured on this code (seeds 0 and 1): after 3 epochs Recall@20 0.639 / 0.647 and
    MRR@20 0.331 / 0.333; after 10 epochs (seeds 0 and 42) Recall@20 0.683 / 0.682. The
    floors are 90% of the lower 3-epoch figures (0.57, 0.29): a broken loss, sampler,
    update or reset lands far below (a random ranking gives Recall@20 20/2933 = 0.007).
    """
    train_events, test_events = read_events(yoochoose100k / "train.tsv.gz"), read_events(yoochoose100k / "test.tsv.gz")
    index = ItemIndex.from_events(train_events)
    train, test = SessionArrays.from_events(train_events, index), SessionArrays.from_events(test_events, index)
    model = GRU4Rec(len(index), layers=(100,), dropout_hidden=0.4, seed=0)
    params = GRU4RecParams(loss="cross-entropy", n_sample=2048, sample_alpha=0.5, learning_rate=0.2, momentum=0.2,
                           logq=1.0, batch_size=32)
    trainer = Trainer(model, params, item_counts=train.item_counts(len(index)), seed=0)
    losses = [trainer.train_epoch(session_parallel_steps(train, 32))["loss"] for _ in range(3)]
    assert losses[2] < losses[0]
    result = trainer.evaluate(test)
    assert result["recall@20"] >= 0.57
    assert result["mrr@20"] >= 0.29
