"""Preprocess a raw click log the way the GRU4Rec reference protocol does.

Steps, in order, each switchable (defaults in brackets):

1. drop consecutive repeats: an event whose item equals the previous event's
   item in the same session [on; ``--keep-repeats`` turns it off];
2. drop items with fewer than ``--min-item-support`` events [5] and sessions
   with fewer than ``--min-session-length`` events [2], repeated until neither
   removes anything [on; ``--single-pass`` applies each filter once: sessions,
   items, sessions];
3. split by time: test = sessions whose first event lies in the last
   ``--test-days`` days [1] before the latest event, train = the rest; test
   events whose item does not occur in train are dropped, then test sessions
   shorter than ``--min-session-length``.

Writes ``train.tsv.gz`` and ``test.tsv.gz`` (SessionId, ItemId, Time) into ``--out``.
Training, evaluation and the baselines use such files as given.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model_code.data.event_rules import ITEM, SESSION, TIME, add_read_options, read_options
from model_code.data.event_table import block_starts, read_events
from model_code.data.events import DataError, write_events
from model_code.data.read_summary import time_span

DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class Protocol:
    drop_repeats: bool = True
    min_item_support: int = 5
    min_session_length: int = 2
    iterate: bool = True
    test_days: float = 1.0
    day_length: float = DAY_SECONDS  # one day in the unit of the Time column


def drop_consecutive_repeats(events: pd.DataFrame) -> pd.DataFrame:
    """Drop events that repeat the previous event's item in the same session (events grouped, time-ordered)."""
    same_session = events[SESSION].to_numpy()[1:] == events[SESSION].to_numpy()[:-1]
    same_item = events[ITEM].to_numpy()[1:] == events[ITEM].to_numpy()[:-1]
    repeat = np.concatenate([[False], same_session & same_item])
    return events.loc[~repeat].reset_index(drop=True)


def filter_support(
    events: pd.DataFrame, min_item_support: int = 5, min_session_length: int = 2, iterate: bool = True
) -> pd.DataFrame:
    """Drop rare items and short sessions; with ``iterate`` until both conditions hold everywhere."""
    def short_sessions_out(frame):
        return frame[frame.groupby(SESSION, sort=False)[SESSION].transform("size") >= min_session_length]

    def rare_items_out(frame):
        return frame[frame.groupby(ITEM, sort=False)[ITEM].transform("size") >= min_item_support]

    if not iterate:
        return short_sessions_out(rare_items_out(short_sessions_out(events))).reset_index(drop=True)
    while True:
        before = len(events)
        events = short_sessions_out(rare_items_out(events))
        if len(events) == before:
            return events.reset_index(drop=True)


def split_by_time(events: pd.DataFrame, days: float, day_length: float = DAY_SECONDS):
    """(earlier, last days): whole sessions, those starting in the last ``days`` days before the latest event apart."""
    starts = events.groupby(SESSION, sort=False)[TIME].transform("min")
    cut = events[TIME].max() - days * day_length
    is_last = (starts >= cut).to_numpy()
    return events.loc[~is_last].reset_index(drop=True), events.loc[is_last].reset_index(drop=True)


def split_codes_by_time(events, days: float, day_length: float = DAY_SECONDS):
    """:func:`split_by_time` for :class:`~model_code.data.event_table.EventCodes` (grouped, time-ordered events)."""
    starts = block_starts(events.sessions)
    lengths = np.diff(np.append(starts, len(events)))
    cut = events.times.max() - days * day_length
    is_last = np.repeat(events.times[starts] >= cut, lengths)
    return events.take(~is_last), events.take(is_last)


def split_last_days(
    events: pd.DataFrame, test_days: float = 1.0, day_length: float = DAY_SECONDS, min_session_length: int = 2
):
    """(train, test): test = sessions starting in the last ``test_days`` days, restricted to train items."""
    train, test = split_by_time(events, test_days, day_length)
    test = test[test[ITEM].isin(pd.unique(train[ITEM]))]
    test = test[test.groupby(SESSION, sort=False)[SESSION].transform("size") >= min_session_length]
    return train, test.reset_index(drop=True)


def preprocess(events: pd.DataFrame, protocol: Protocol = Protocol(), log=print):
    """Run the protocol on events as read_events returns them; returns (train, test)."""
    log(f"raw: {_stats(events)}")
    if protocol.drop_repeats:
        events = drop_consecutive_repeats(events)
        log(f"without consecutive repeats: {_stats(events)}")
    events = filter_support(events, protocol.min_item_support, protocol.min_session_length, protocol.iterate)
    log(
        f"items >= {protocol.min_item_support} events, sessions >= {protocol.min_session_length} events: "
        f"{_stats(events)}"
    )
    if events.empty:
        raise DataError("no events left after filtering: lower --min-item-support or --min-session-length")
    train, test = split_last_days(events, protocol.test_days, protocol.day_length, protocol.min_session_length)
    log(f"train: {_stats(train)}")
    log(f"test (sessions starting in the last {protocol.test_days:g} days, train items only): {_stats(test)}")
    if train.empty or test.empty:
        raise DataError(
            f"the split leaves {'train' if train.empty else 'test'} empty ({time_span(events[TIME].to_numpy())}): "
            f"change --test-days or --day-length, or check how times are read (--time-format)"
        )
    return train, test


def _stats(events: pd.DataFrame) -> str:
    return f"{len(events)} events, {events[SESSION].nunique()} sessions, {events[ITEM].nunique()} items"


def main(argv=None) -> int:
    defaults = Protocol()
    parser = argparse.ArgumentParser(
        prog="python -m model_code.data.preprocess",
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "raw", metavar="RAW", help="raw events: TSV/CSV/Parquet file (gzip or not), folder or s3:// URI"
    )
    parser.add_argument("--out", required=True, help="folder for train.tsv.gz and test.tsv.gz (created if missing)")
    parser.add_argument(
        "--keep-repeats", action="store_true", help="keep events that repeat the previous item of their session"
    )
    parser.add_argument(
        "--min-item-support",
        type=int,
        default=defaults.min_item_support,
        help=f"drop items with fewer events (default: {defaults.min_item_support})",
    )
    parser.add_argument(
        "--min-session-length",
        type=int,
        default=defaults.min_session_length,
        help=f"drop sessions with fewer events (default: {defaults.min_session_length})",
    )
    parser.add_argument(
        "--single-pass", action="store_true", help="filter sessions, items, sessions once instead of until stable"
    )
    parser.add_argument(
        "--test-days",
        type=float,
        default=defaults.test_days,
        help=f"sessions starting in the last N days are the test set (default: {defaults.test_days:g})",
    )
    parser.add_argument(
        "--day-length",
        type=float,
        default=defaults.day_length,
        help=f"one day in the unit of the time column (default: {defaults.day_length:g}, seconds; 86400000 for "
             "milliseconds)",
    )
    add_read_options(parser)
    args = parser.parse_args(argv)
    protocol = Protocol(
        drop_repeats=not args.keep_repeats,
        min_item_support=args.min_item_support,
        min_session_length=args.min_session_length,
        iterate=not args.single_pass,
        test_days=args.test_days,
        day_length=args.day_length,
    )
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    try:
        events = read_events(args.raw, read_options(args), log)
        train, test = preprocess(events, protocol, log)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_events(out / "train.tsv.gz", train)
    write_events(out / "test.tsv.gz", test)
    log(f"wrote {out / 'train.tsv.gz'} and {out / 'test.tsv.gz'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
