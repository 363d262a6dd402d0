"""The training step's matrix products in bfloat16 on Keras's JAX backend: every one of them on the CPU's bfloat16 path.

Each product rounds its two float32 operands to bfloat16 and sums in float32
(``preferred_element_type``); so do the two products of its gradient, which
round the incoming gradient too. XLA's CPU compiler runs a bfloat16 product
at bfloat16's rate (its YNNPACK kernels) only in the plain form ``a @ b``
with both operands stored row by row. A product that reads an operand
transposed (the scores ``x @ items.T``, every gradient ``a.T @ g`` and
``g @ b.T``) it converts back to float32. So every product here is made
plain: an operand read transposed is first copied, transposed, into rows of
bfloat16 (the largest such copy is the step's candidate rows, 2,176 x 512
values on the diginetica preset); the optimization barrier keeps XLA from
folding the transpose back into the product as a layout. On a 2-core AMD
EPYC Zen 4 (``avx512_bf16``) this takes all eleven products of a diginetica
step to bfloat16 and a step's CPU time down by a fifth (docs/model.md).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from model_code.gru4rec.train_step import Products


def _rows(t):
    """``t`` in bfloat16, stored row by row whatever layout it had (a transpose is copied, not folded)."""
    flat = jax.lax.optimization_barrier(t.astype(jnp.bfloat16).reshape(-1))
    return flat.reshape(t.shape)


def _product(a, b):
    return jnp.matmul(_rows(a), _rows(b), preferred_element_type=jnp.float32)


@jax.custom_vjp
def matmul(a, b):
    """``a @ b`` with both rounded to bfloat16, summed and returned in float32; its gradient likewise."""
    return _product(a, b)


def _matmul_forward(a, b):
    return _product(a, b), (a, b)


def _matmul_backward(operands, grad):
    a, b = operands
    return _product(grad, b.T), _product(a.T, grad)


matmul.defvjp(_matmul_forward, _matmul_backward)


@jax.custom_vjp
def matmul_t(a, b):
    """``a @ b.T`` like :func:`matmul`; the gradient of ``b`` comes out in ``b``'s own shape, with no transpose."""
    return _product(a, b.T)


def _matmul_t_forward(a, b):
    return _product(a, b.T), (a, b)


def _matmul_t_backward(operands, grad):
    a, b = operands
    return _product(grad, b), _product(grad.T, a)


matmul_t.defvjp(_matmul_t_forward, _matmul_t_backward)

PRODUCTS = Products(matmul, matmul_t)
