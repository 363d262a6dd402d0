"""bfloat16 matrix products in the training step: chosen from the CPU's flags, exact to bfloat16-rounded inputs."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model_code.data.session_batches import SessionArrays, session_parallel_steps
from model_code.gru4rec import bfloat16_jax
from model_code.gru4rec.model import GRU4Rec
from model_code.gru4rec.params import PRESETS, GRU4RecParams, ParamError
from model_code.gru4rec.trainer import Trainer
from model_code.gru4rec.training_env import CpuDescription, matmul_dtype, this_cpu


def _cpu(*flags):
    return CpuDescription("AuthenticAMD", "25", "17", "AMD EPYC", tuple(flags))


@pytest.mark.parametrize("precision,flags,dtype", [
    ("auto", ("avx2", "avx512_bf16", "avx512f"), "bfloat16"),
    ("auto", ("amx_bf16", "amx_tile"), "bfloat16"),
    ("auto", ("avx2", "avx512f", "amx_tile", "amx_int8"), "float32"),  # control: AVX-512 and AMX without bfloat16
    ("auto", (), "float32"),
    ("float32", ("avx512_bf16",), "float32"),
    ("bfloat16", (), "bfloat16"),
])
def test_matmul_dtype_follows_the_cpus_bfloat16_flags(precision, flags, dtype):
    assert matmul_dtype(precision, _cpu(*flags)) == dtype


@pytest.mark.parametrize("units,dtype", [(512, "bfloat16"), (256, "bfloat16"), (255, "float32"), (100, "float32")])
def test_auto_takes_bfloat16_only_for_models_wide_enough_to_gain(units, dtype):
    assert matmul_dtype("auto", _cpu("avx512_bf16"), units) == dtype
    assert matmul_dtype("bfloat16", _cpu(), units) == "bfloat16"  # control: a forced precision is kept


def test_the_trainer_passes_its_widest_layer():
    params = GRU4RecParams(loss="bpr-max", n_sample=4, batch_size=2, matmul_precision="auto")
    wants = matmul_dtype("auto", this_cpu(), 300)
    assert Trainer(GRU4Rec(20, layers=(16, 300), seed=0), params).matmul_dtype == wants
    assert Trainer(GRU4Rec(20, layers=(16,), seed=0), params).matmul_dtype == "float32"


def test_unknown_matmul_precision_is_refused_by_name():
    with pytest.raises(ValueError, match="matmul_precision"):
        matmul_dtype("float16", _cpu())
    with pytest.raises(ParamError, match="'matmul_precision'"):
        PRESETS["diginetica"].with_strings({"matmul_precision": "half"})
    assert PRESETS["diginetica"].matmul_precision == "auto"


def _round(x):
    return np.asarray(jnp.asarray(x).astype(jnp.bfloat16).astype(jnp.float32), dtype=np.float64)


@pytest.mark.parametrize("transposed", [False, True])
def test_bfloat16_products_and_their_gradients_equal_float64_products_of_rounded_inputs(transposed):
    rng = np.random.default_rng(0)
    a, b, g = (rng.normal(size=shape).astype(np.float32) for shape in ((6, 40), (40, 9), (6, 9)))
    ra, rb, rg = _round(a), _round(b), _round(g)
    if transposed:  # matmul_t(a, b) is a @ b.T: b given as [9, 40]
        b, rb = np.ascontiguousarray(b.T), rb.T
    product = bfloat16_jax.matmul_t if transposed else bfloat16_jax.matmul
    out, pullback = jax.vjp(product, jnp.asarray(a), jnp.asarray(b))
    grad_a, grad_b = pullback(jnp.asarray(g))
    used_b = rb.T if transposed else rb
    np.testing.assert_allclose(out, ra @ used_b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_a, rg @ used_b.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_b, (ra.T @ rg).T if transposed else ra.T @ rg, rtol=1e-5, atol=1e-5)
    assert grad_b.shape == b.shape
    # control: the float32 product of the unrounded inputs is measurably different
    assert np.max(np.abs(np.asarray(out) - a.astype(np.float64) @ (b.T if transposed else b))) > 1e-3


def test_bfloat16_training_stays_close_to_float32_training():
    rng = np.random.default_rng(1)
    n_items = 30
    data = SessionArrays.from_lists([list(rng.integers(0, n_items, rng.integers(2, 8))) for _ in range(60)])
    losses, tables = {}, {}
    for precision in ("float32", "bfloat16"):
        model = GRU4Rec(n_items, layers=(16,), seed=0)
        params = GRU4RecParams(loss="bpr-max", n_sample=8, sample_alpha=0.5, learning_rate=0.05, momentum=0.1,
                               bpreg=0.5, elu=1.0, batch_size=4, block_steps=5, matmul_precision=precision)
        trainer = Trainer(model, params, seed=3, item_counts=data.item_counts(n_items) + 1)
        assert trainer.matmul_dtype == precision
        losses[precision] = trainer.train_epoch(session_parallel_steps(data, 4))["loss"]
        tables[precision] = np.asarray(model.item_table)
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=2e-2)
    difference = np.max(np.abs(tables["bfloat16"] - tables["float32"]))
    assert 0 < difference < 1e-2  # rounded products move the weights a little, not far


def _compiled_product_operands(precision):
    """The operand dtypes of every matrix product in the compiled training block (XLA's optimized HLO)."""
    model = GRU4Rec(50, layers=(16,), seed=0)
    params = GRU4RecParams(loss="bpr-max", n_sample=8, batch_size=4, block_steps=2, momentum=0.1,
                           matmul_precision=precision)
    engine = Trainer(model, params, seed=0)._engine
    steps, batch = 2, 4
    ids = jnp.zeros((steps, batch), jnp.int32)
    flags = jnp.ones((steps, batch), bool)
    hlo = engine._train_block.lower(
        [jnp.asarray(v.value) for v in engine.trainer.variables], engine._slots, ids, ids, ~flags, flags,
        jnp.zeros((steps, 8), jnp.int32), jnp.zeros(2, jnp.uint32), engine.zero_states(batch),
    ).compile().as_text()
    operands = []
    for computation in re.split(r"\n(?=\S.*\{\n)", hlo):
        for dot in re.finditer(r"= \S+ dot\(%(\S+), %(\S+)\)", computation):
            operands.append(tuple(re.search(rf"%{re.escape(name)} = (\w+)\[", computation).group(1)
                                  for name in dot.groups()))
    return operands


def test_every_product_of_a_bfloat16_step_reaches_xla_in_bfloat16():
    """XLA turns a product that reads an operand transposed back into float32; bfloat16_jax gives it none: the step's
    eleven products (forward 3, backward 8, one GRU layer with the shared embedding) all stay bfloat16."""
    assert _compiled_product_operands("bfloat16") == [("bf16", "bf16")] * 11
    assert _compiled_product_operands("float32") == [("f32", "f32")] * 11  # control: the same count, all float32
