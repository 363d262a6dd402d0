"""Step rate of the compiled GRU4Rec training block, on synthetic sessions of a given shape.

    python benchmarks/train_speed.py --preset rsc15 --items 2933
    python benchmarks/train_speed.py --preset diginetica --items 43097 --blocks 3

Sessions are drawn at random (lengths 2..20, items Zipf-like), so only the
shapes matter: items, layers, batch size, negatives. Prints the compile time
(first block) and steps/s and events/s over the following blocks, with the
load average, since other jobs on the machine skew the figures.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np


def main() -> None:
    from model_code.gru4rec.params import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="rsc15", choices=sorted(PRESETS))
    parser.add_argument("--items", type=int, default=2933, help="catalogue size")
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks after the compiling one")
    parser.add_argument("--block-steps", type=int, default=None, help="steps per compiled call (default: preset's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from model_code.data.session_batches import SessionArrays, session_parallel_steps
    from model_code.gru4rec.model import GRU4Rec
    from model_code.gru4rec.trainer import Trainer

    params = PRESETS[args.preset]
    block_steps = args.block_steps or params.block_steps
    rng = np.random.default_rng(args.seed)
    n_sessions = params.batch_size * block_steps * (args.blocks + 1) // 5
    lengths = rng.integers(2, 21, n_sessions)
    items = (rng.zipf(1.3, lengths.sum()) - 1) % args.items
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    data = SessionArrays(items.astype(np.int32), offsets.astype(np.int64))
    steps = session_parallel_steps(data, params.batch_size)
    model = GRU4Rec(args.items, layers=params.layers, embedding=params.embedding, embedding_size=params.embedding_size,
                    dropout_embedding=params.dropout_embedding, dropout_hidden=params.dropout_hidden, seed=args.seed)
    trainer = Trainer(
        model,
        dataclasses.replace(params, block_steps=block_steps),
        item_counts=data.item_counts(args.items) + 1,
        seed=args.seed,
    )
    blocks = list(steps.blocks(block_steps))[: args.blocks + 1]
    times = []
    for block in blocks:
        start = time.perf_counter()
        trainer.train_epoch(block)
        times.append(time.perf_counter() - start)
    timed = sum(times[1:])
    n_steps = block_steps * (len(blocks) - 1)
    events = sum(block.n_examples for block in blocks[1:])
    print(f"{args.preset}: items {args.items}, layers {params.layers}, batch {params.batch_size}, "
          f"negatives {params.n_sample}, {block_steps} steps per call")
    print(f"first call (compile + run): {times[0]:.2f} s")
    print(f"{n_steps / timed:,.0f} steps/s, {events / timed:,.0f} events/s over {n_steps} steps "
          f"(load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    from model_code.gru4rec.training_env import use_training_environment

    use_training_environment()  # Keras on JAX with huge pages, as training runs
    main()
