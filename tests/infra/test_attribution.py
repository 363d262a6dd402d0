"""The attribution's rates (infra/attribution.py), checked against the hand-worked counts of
tests/support/captures.py."""

from __future__ import annotations

import pytest

from infra.attribution import figures, read_rows
from tests.support.captures import EXPECTED


def test_rates_of_the_fixtures_counts():
    """v1: 2 hits of 2 followed answers, ranks 2 and 3; 4 clicks; 6 of 8 items recommended; 1 of 5 unknown.
    v2: 1 hit (rank 1) of 2; 2 clicks; 4 of 8; 1 of 3 unknown; 2 of 3 attributable answers followed."""
    assert figures(EXPECTED[("Champion", "v1")]) == pytest.approx(
        {
            "hit_rate": 1.0,
            "mean_rank": 2.5,
            "mrr": (1 / 2 + 1 / 3) / 2,
            "clicks_per_answer": 2.0,
            "followed_share": 1.0,
            "coverage": 0.75,
            "unknown_share": 0.2,
        }
    )
    assert figures(EXPECTED[("Challenger", "v2")]) == pytest.approx(
        {
            "hit_rate": 0.5,
            "mean_rank": 1.0,
            "mrr": 0.5,
            "clicks_per_answer": 1.0,
            "followed_share": 2 / 3,
            "coverage": 0.5,
            "unknown_share": 1 / 3,
        }
    )


def test_nothing_to_count_gives_none_not_a_division_error():
    empty = dict.fromkeys(EXPECTED[("Champion", "v1")], 0)
    assert set(figures(empty).values()) == {None}


def test_athena_rows_become_numbers():
    header = ["day", "variant", "model_version", "answers", "reciprocal_rank_sum", "hits"]
    (row,) = read_rows(header, [[None, "Champion", "v1", "3", "0.8333333333333333", "2"]])
    assert row["day"] is None and row["answers"] == 3 and row["hits"] == 2
    assert row["reciprocal_rank_sum"] == pytest.approx(5 / 6)
