"""The built-in data set: synthetic click sessions with real sequential structure.

Items fall into topics; each topic's items form a ring. A session starts at an
item drawn by popularity (Zipf-like, so a few items get most clicks) and walks
its topic's ring in one direction, chosen per session, mostly one or two items
at a time; now and then it jumps to a popular item of the same topic or of the
whole catalogue. So the next item depends on the current item *and* on the
session's direction, which only the items before it reveal: most-popular does
poorly, item-kNN (which sees only the current item, and co-occurrence is
symmetric) does better, and a sequence model such as GRU4Rec does best.

Output: ``train.tsv.gz`` and ``test.tsv.gz`` in the layout of the real data
(``SessionId<TAB>ItemId<TAB>Time``, Unix seconds); test holds the sessions that
start in the last ``test_days`` days, restricted to items seen in training,
sessions shorter than 2 dropped. The same seed gives the same bytes.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model_code.data.event_rules import ITEM, SESSION, TIME
from model_code.data.events import write_events

START_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400
TRAIN_FILE, TEST_FILE = "train.tsv.gz", "test.tsv.gz"


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate; the defaults give ~80k events, small enough to train GRU4Rec in seconds."""

    sessions: int = 15_000
    items: int = 1_500
    seed: int = 0
    days: int = 15
    test_days: int = 1
    topic_size: int = 50
    popularity_exponent: float = 1.0  # Zipf exponent of the item popularity
    mean_length: float = 5.5  # mean session length (>= 2)
    max_length: int = 40
    p_ring: float = 0.75  # walk the ring (else jump)
    p_topic_jump: float = 0.15  # jump to a popular item of the topic (else to a popular item anywhere)
    ring_steps: tuple = (0.65, 0.25, 0.10)  # probability of moving 1, 2, 3 items along the ring

    def __post_init__(self):
        if self.sessions < 1 or self.items < 2:
            raise ValueError("need at least 1 session and 2 items")
        if not 0 < self.test_days < self.days:
            raise ValueError(f"test_days must be between 0 and days ({self.days}), got {self.test_days}")
        if self.mean_length <= 2 or self.max_length < 2:
            raise ValueError("mean_length must exceed 2 and max_length be at least 2")


def generate(spec: SyntheticSpec = SyntheticSpec()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) event frames with columns SessionId, ItemId, Time."""
    rng = np.random.default_rng(spec.seed)
    catalogue = _Catalogue(spec, rng)
    paths = _walk(spec, catalogue, rng)
    events = _timed_events(spec, paths, rng)
    return _split(spec, events)


class _Catalogue:
    """Item popularity and the topic rings."""

    def __init__(self, spec: SyntheticSpec, rng: np.random.Generator):
        n = spec.items
        popularity = 1.0 / np.arange(1, n + 1) ** spec.popularity_exponent
        self.popularity = rng.permutation(popularity) / popularity.sum()
        # ring order: items shuffled, cut into topics; ring position = place in the shuffled order
        self.members = rng.permutation(n)
        n_topics = max(1, n // spec.topic_size)
        self.topic_start = np.linspace(0, n, n_topics + 1).astype(np.int64)
        topic_of_slot = np.repeat(np.arange(n_topics), np.diff(self.topic_start))
        self.slot = np.empty(n, dtype=np.int64)
        self.slot[self.members] = np.arange(n)
        self.topic = topic_of_slot[self.slot]
        self.member_cdf = np.cumsum(self.popularity[self.members])
        self.global_cdf = np.cumsum(self.popularity)

    def popular(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Items drawn by popularity from the whole catalogue."""
        return np.minimum(
            np.searchsorted(self.global_cdf, rng.random(size) * self.global_cdf[-1]), len(self.global_cdf) - 1
        )

    def popular_in_topic(self, rng: np.random.Generator, items: np.ndarray) -> np.ndarray:
        """For each item, an item of its topic drawn by popularity."""
        start, end = self.topic_start[self.topic[items]], self.topic_start[self.topic[items] + 1]
        low = np.where(start > 0, self.member_cdf[start - 1], 0.0)
        high = self.member_cdf[end - 1]
        slots = np.searchsorted(self.member_cdf, low + rng.random(len(items)) * (high - low), side="right")
        return self.members[np.clip(slots, start, end - 1)]

    def along_ring(self, items: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """The item ``steps`` places further along each item's topic ring (negative: backwards)."""
        topic = self.topic[items]
        start, size = self.topic_start[topic], np.diff(self.topic_start)[topic]
        return self.members[start + (self.slot[items] - start + steps) % size]


def _walk(spec: SyntheticSpec, catalogue: _Catalogue, rng: np.random.Generator) -> list[np.ndarray]:
    """Item paths of all sessions, built one position at a time for all sessions at once."""
    lengths = np.minimum(2 + rng.geometric(1.0 / (spec.mean_length - 1), spec.sessions) - 1, spec.max_length)
    direction = rng.choice([-1, 1], spec.sessions)
    paths = np.zeros((spec.sessions, int(lengths.max())), dtype=np.int64)
    paths[:, 0] = catalogue.popular(rng, spec.sessions)
    for position in range(1, paths.shape[1]):
        current = paths[:, position - 1]
        move = rng.random(spec.sessions)
        steps = 1 + rng.choice(len(spec.ring_steps), spec.sessions, p=spec.ring_steps)
        ring = catalogue.along_ring(current, direction * steps)
        topic_jump = catalogue.popular_in_topic(rng, current)
        anywhere = catalogue.popular(rng, spec.sessions)
        paths[:, position] = np.where(
            move < spec.p_ring, ring, np.where(move < spec.p_ring + spec.p_topic_jump, topic_jump, anywhere)
        )
    return [paths[s, :length] for s, length in enumerate(lengths)]


def _timed_events(spec: SyntheticSpec, paths: list[np.ndarray], rng: np.random.Generator) -> pd.DataFrame:
    starts = np.sort(START_TIME + rng.random(len(paths)) * spec.days * DAY).astype(np.int64)
    lengths = np.array([len(p) for p in paths])
    gaps = (10 + rng.exponential(60.0, lengths.sum())).astype(np.int64)
    first = np.cumsum(lengths) - lengths
    gaps[first] = 0
    session = np.repeat(np.arange(len(paths)), lengths)
    offset = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first], lengths)
    width = len(str(spec.items))
    return pd.DataFrame(
        {
            SESSION: (session + 1).astype(str),
            ITEM: np.char.add("1", np.char.zfill(np.concatenate(paths).astype(str), width)),
            TIME: starts[session] + offset,
            "start": starts[session],
        }
    )


def _split(spec: SyntheticSpec, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    is_test = (events["start"] >= START_TIME + (spec.days - spec.test_days) * DAY).to_numpy()
    train = events.loc[~is_test, [SESSION, ITEM, TIME]].reset_index(drop=True)
    test = events.loc[is_test, [SESSION, ITEM, TIME]]
    test = test[test[ITEM].isin(set(train[ITEM]))]
    test = test[test.groupby(SESSION)[SESSION].transform("size") >= 2].reset_index(drop=True)
    return train, test


def write_dataset(
    out_dir: str | os.PathLike, spec: SyntheticSpec = SyntheticSpec()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test = generate(spec)
    write_events(out / TRAIN_FILE, train)
    write_events(out / TEST_FILE, test)
    return train, test


def main(argv=None) -> int:
    defaults = SyntheticSpec()
    parser = argparse.ArgumentParser(
        prog="python -m model_code.data.synthetic",
        description=(
            "Write the built-in synthetic click data (train.tsv.gz, test.tsv.gz in the layout of the real data "
            "sets) to --out. Items have skewed popularity and sessions walk topic rings in a per-session "
            "direction, so a sequence model beats item-kNN, which beats most-popular. Same seed, same files."
        ),
    )
    parser.add_argument(
        "--out", required=True, help="folder to write train.tsv.gz and test.tsv.gz into (created if missing)"
    )
    parser.add_argument(
        "--sessions", type=int, default=defaults.sessions, help=f"sessions to generate (default: {defaults.sessions})"
    )
    parser.add_argument("--items", type=int, default=defaults.items, help=f"catalogue size (default: {defaults.items})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"random seed (default: {defaults.seed})")
    parser.add_argument(
        "--days", type=int, default=defaults.days, help=f"days the sessions span (default: {defaults.days})"
    )
    parser.add_argument(
        "--test-days", type=int, default=defaults.test_days,
        help=f"sessions starting in the last N days form the test set (default: {defaults.test_days})",
    )
    args = parser.parse_args(argv)
    try:
        spec = SyntheticSpec(
            sessions=args.sessions, items=args.items, seed=args.seed, days=args.days, test_days=args.test_days
        )
    except ValueError as err:
        parser.error(str(err))
    train, test = write_dataset(args.out, spec)
    for name, frame in (("train", train), ("test", test)):
        print(
            f"{name}: {len(frame)} events, {frame[SESSION].nunique()} sessions, {frame[ITEM].nunique()} items "
            f"-> {Path(args.out) / (TRAIN_FILE if name == 'train' else TEST_FILE)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
