"""The session-parallel schedule, against a step-by-step reference and as properties."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_code.data.item_index import ItemIndex
from model_code.data.session_batches import SessionArrays, session_parallel_steps


def reference_steps(sessions: list[list[int]], batch_size: int):
    """Plain simulation of the GRU4Rec slot loop, one step at a time."""
    queue = [s for s in sessions if len(s) >= 2]
    slots = [None] * batch_size  # [session, position]
    rows = []
    next_session = 0
    fresh = [False] * batch_size
    for b in range(batch_size):
        if next_session < len(queue):
            slots[b] = [queue[next_session], 0]
            fresh[b] = True
            next_session += 1
    while any(slot is not None for slot in slots):
        row = []
        for b in range(batch_size):
            if slots[b] is None:
                row.append((0, 0, False, False))
            else:
                session, pos = slots[b]
                row.append((session[pos], session[pos + 1], fresh[b], True))
        rows.append(row)
        for b in range(batch_size):
            fresh[b] = False
            if slots[b] is None:
                continue
            slots[b][1] += 1
            if slots[b][1] + 1 >= len(slots[b][0]):
                if next_session < len(queue):
                    slots[b] = [queue[next_session], 0]
                    fresh[b] = True
                    next_session += 1
                else:
                    slots[b] = None
    arrays = np.array(rows, dtype=object).reshape(len(rows), batch_size, 4) if rows else np.zeros((0, batch_size, 4))
    return [arrays[..., j].astype(dtype) for j, dtype in enumerate((np.int32, np.int32, bool, bool))]


sessions_strategy = st.lists(st.lists(st.integers(0, 30), min_size=0, max_size=9), min_size=0, max_size=40)


@settings(max_examples=150)
@given(sessions=sessions_strategy, batch_size=st.integers(1, 7))
def test_matches_step_by_step_reference(sessions, batch_size):
    steps = session_parallel_steps(SessionArrays.from_lists(sessions), batch_size)
    inputs, targets, resets, valid = reference_steps(sessions, batch_size)
    assert steps.inputs.shape == (len(inputs), batch_size)
    np.testing.assert_array_equal(steps.inputs, inputs)
    np.testing.assert_array_equal(steps.targets, targets)
    np.testing.assert_array_equal(steps.resets, resets)
    np.testing.assert_array_equal(steps.valid, valid)


def trace_slots(steps):
    """For each slot, the runs of consecutive valid steps split at resets: lists of (input, target)."""
    runs = []
    for b in range(steps.batch_size):
        current = None
        for t in range(steps.n_steps):
            if not steps.valid[t, b]:
                assert not steps.resets[t, b]
                current = None
                continue
            if steps.resets[t, b] or current is None:
                assert steps.resets[t, b], "a slot resumed after an invalid step without a reset"
                current = []
                runs.append((t, b, current))
            current.append((int(steps.inputs[t, b]), int(steps.targets[t, b])))
    return runs


@settings(max_examples=150)
@given(sessions=sessions_strategy, batch_size=st.integers(1, 7))
def test_properties(sessions, batch_size):
    # make every event distinguishable: item = global event number
    counter = iter(range(10_000))
    sessions = [[next(counter) for _ in s] for s in sessions]
    steps = session_parallel_steps(SessionArrays.from_lists(sessions), batch_size)
    long_sessions = [s for s in sessions if len(s) >= 2]
    # every event but each session's last is an example exactly once
    expected_inputs = sorted(i for s in long_sessions for i in s[:-1])
    assert sorted(steps.inputs[steps.valid].tolist()) == expected_inputs
    assert steps.n_examples == len(expected_inputs)
    # invalid entries hold zeros
    assert not steps.inputs[~steps.valid].any() and not steps.targets[~steps.valid].any()
    # each run between resets is exactly one whole session, in order: no mixing, resets at starts
    runs = trace_slots(steps)
    assert sorted(run for _, _, run in runs) == sorted([list(zip(s[:-1], s[1:])) for s in long_sessions])
    # sessions enter slots in order of first event (ties at the same step: slot order)
    entered = [run[0][0] for _, _, run in sorted(runs, key=lambda r: (r[0], r[1]))]
    assert entered == [s[0] for s in long_sessions]
    # T = steps until the last slot finishes
    if long_sessions:
        assert steps.valid[-1].any()
    assert steps.resets.sum() == len(long_sessions)


def test_small_example_by_hand():
    data = SessionArrays.from_lists([[1, 2, 3], [4], [5, 6], [7, 8, 9, 10]])
    steps = session_parallel_steps(data, 2)
    np.testing.assert_array_equal(steps.inputs, [[1, 5], [2, 7], [0, 8], [0, 9]])
    np.testing.assert_array_equal(steps.targets, [[2, 6], [3, 8], [0, 9], [0, 10]])
    np.testing.assert_array_equal(steps.resets, [[True, True], [False, True], [False, False], [False, False]])
    np.testing.assert_array_equal(steps.valid, [[True, True], [True, True], [False, True], [False, True]])


@pytest.mark.parametrize("block_steps", [1, 3, 4, 10])
def test_blocks_have_one_shape_and_cover_the_epoch(block_steps):
    data = SessionArrays.from_lists([[1, 2, 3], [4, 5], [5, 6], [7, 8, 9, 10], [3, 2]])
    steps = session_parallel_steps(data, 2)
    blocks = list(steps.blocks(block_steps))
    assert all(block.inputs.shape == (block_steps, 2) for block in blocks)
    assert len(blocks) == -(-steps.n_steps // block_steps)
    joined = np.concatenate([block.inputs for block in blocks])
    np.testing.assert_array_equal(joined[: steps.n_steps], steps.inputs)
    padding = np.concatenate([block.valid for block in blocks])[steps.n_steps:]
    assert not padding.any()
    assert sum(block.n_examples for block in blocks) == steps.n_examples == data.n_examples


def test_no_sessions_gives_zero_steps():
    steps = session_parallel_steps(SessionArrays.from_lists([[1], []]), 4)
    assert steps.inputs.shape == (0, 4) and steps.n_examples == 0
    assert list(steps.blocks(5)) == []


def test_from_events_orders_sessions_by_first_time_and_drops_unknown_items():
    events = pd.DataFrame(
        {
            "SessionId": ["a", "a", "b", "b", "c", "c", "c"],
            "ItemId": ["x", "y", "z", "x", "y", "new", "x"],
            "Time": [50.0, 60.0, 10.0, 20.0, 30.0, 31.0, 32.0],
        }
    )
    index = ItemIndex(["x", "y", "z"])
    data = SessionArrays.from_events(events, index)
    assert data.dropped_unknown == 1
    assert data.session_ids.tolist() == ["b", "c", "a"]
    assert [data.session(s).tolist() for s in range(3)] == [[2, 0], [1, 0], [0, 1]]
    assert data.offsets.dtype == np.int64 and data.items.dtype == np.int32
    assert data.n_examples == 3


def test_from_events_sorts_time_inside_a_session():
    events = pd.DataFrame({"SessionId": ["s"] * 3, "ItemId": ["b", "c", "a"], "Time": [2.0, 3.0, 1.0]})
    data = SessionArrays.from_events(events, ItemIndex(["a", "b", "c"]))
    assert data.session(0).tolist() == [0, 1, 2]


def test_real_data_schedule(yoochoose100k):
    from model_code.data.event_table import read_events

    train = read_events(yoochoose100k / "train.tsv.gz")
    data = SessionArrays.from_events(train, ItemIndex.from_events(train))
    steps = session_parallel_steps(data, 32)
    assert data.n_events == 70_278 and data.n_sessions == 17_794
    assert steps.n_examples == data.n_examples == 70_278 - 17_794
    assert steps.resets.sum() == (data.lengths >= 2).sum()
