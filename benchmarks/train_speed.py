"""Step rate of the compiled GRU4Rec training block, on synthetic sessions of a given shape.

    python benchmarks/train_speed.py --preset rsc15 --items 2933
    python benchmarks/train_speed.py --preset diginetica --items 43097 --blocks 3
    python benchmarks/train_speed.py --preset diginetica --items 43097 --blocks 8 \\
        --compare matmul_precision=float32 matmul_precision=bfloat16

Sessions are drawn at random (lengths 2..20, items Zipf-like), so only the
shapes matter: items, layers, batch size, negatives. Prints the compile time
(first block) and steps/s and events/s over the following blocks, with the
load average, since other jobs on the machine skew the figures.

``--compare`` trains one model per variant (each a comma-separated list of
NAME=VALUE parameters over the preset) in this one process, a block of each
in turn, so that a change of the machine's load falls on all of them alike;
it prints the median wall and CPU milliseconds per step of each and their
ratio to the first. The CPU (vendor, family/model, flags) is printed too:
figures from different CPUs are not comparable.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _variant(text: str) -> dict[str, str]:
    pairs = [item.partition("=") for item in text.split(",") if item]
    if any(not sep for _, sep, _ in pairs):
        raise argparse.ArgumentTypeError(f"a variant is NAME=VALUE[,NAME=VALUE...], got {text!r}")
    return {name: value for name, _, value in pairs}


def _sessions(rng, n_sessions: int, n_items: int):
    from model_code.data.session_batches import SessionArrays

    lengths = rng.integers(2, 21, n_sessions)
    items = (rng.zipf(1.3, lengths.sum()) - 1) % n_items
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return SessionArrays(items.astype(np.int32), offsets.astype(np.int64))


def _trainer(params, n_items: int, data, seed: int):
    from model_code.gru4rec.model import GRU4Rec
    from model_code.gru4rec.trainer import Trainer

    model = GRU4Rec(n_items, layers=params.layers, embedding=params.embedding, embedding_size=params.embedding_size,
                    dropout_embedding=params.dropout_embedding, dropout_hidden=params.dropout_hidden, seed=seed)
    return Trainer(model, params, item_counts=data.item_counts(n_items) + 1, seed=seed)


def main() -> None:
    from model_code.data.session_batches import session_parallel_steps
    from model_code.gru4rec.params import PRESETS
    from model_code.gru4rec.training_env import this_cpu

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="rsc15", choices=sorted(PRESETS))
    parser.add_argument("--items", type=int, default=2933, help="catalogue size")
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks after the compiling one")
    parser.add_argument("--block-steps", type=int, default=None, help="steps per compiled call (default: preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", nargs="+", type=_variant, metavar="NAME=VALUE[,NAME=VALUE...]",
                        help="variants of the preset's parameters to time side by side, blocks taken in turn")
    args = parser.parse_args()

    preset = PRESETS[args.preset]
    block_steps = args.block_steps or preset.block_steps
    variants = args.compare or [{}]
    rng = np.random.default_rng(args.seed)
    data = _sessions(rng, preset.batch_size * block_steps * (args.blocks + 1) // 5, args.items)
    blocks = list(session_parallel_steps(data, preset.batch_size).blocks(block_steps))[: args.blocks + 1]
    trainers = [_trainer(dataclasses.replace(preset.with_strings(variant), block_steps=block_steps), args.items, data,
                         args.seed) for variant in variants]
    wall = [[] for _ in variants]
    cpu = [[] for _ in variants]
    for block in blocks:
        for i, trainer in enumerate(trainers):
            start, cpu_start = time.perf_counter(), _cpu_seconds()
            trainer.train_epoch(block)
            wall[i].append(time.perf_counter() - start)
            cpu[i].append(_cpu_seconds() - cpu_start)
    n_steps = block_steps * (len(blocks) - 1)
    events = sum(block.n_examples for block in blocks[1:])
    cpu_info = this_cpu()
    print(f"{args.preset}: items {args.items}, layers {preset.layers}, batch {preset.batch_size}, "
          f"negatives {preset.n_sample}, {block_steps} steps per call")
    print(f"CPU {cpu_info.vendor} family {cpu_info.family} model {cpu_info.model} ({cpu_info.name}), "
          f"flags {' '.join(cpu_info.flags) or 'none of AVX2/AVX-512/AMX'}")
    base = None
    for variant, trainer, walls, cpus in zip(variants, trainers, wall, cpu):
        step_ms = 1000 * statistics.median(walls[1:]) / block_steps
        cpu_ms = 1000 * statistics.median(cpus[1:]) / block_steps
        base = base or (step_ms, cpu_ms)
        label = ",".join(f"{k}={v}" for k, v in variant.items()) or "preset"
        print(f"{label} (products {trainer.matmul_dtype}): first call (compile + run) {walls[0]:.2f} s; "
              f"{n_steps / sum(walls[1:]):,.0f} steps/s, {events / sum(walls[1:]):,.0f} events/s over {n_steps} "
              f"steps; median per step {step_ms:.2f} ms wall ({step_ms / base[0]:.2f}x the first), "
              f"{cpu_ms:.2f} ms CPU ({cpu_ms / base[1]:.2f}x)")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    from model_code.gru4rec.training_env import use_training_environment

    use_training_environment()  # Keras on JAX with huge pages, as training runs
    main()
