"""Shared fixtures: the real data sets of ../shared/data, skipped where absent.

Hypothesis runs without its per-example deadline: timing is for the benchmarks, and a loaded CI
machine must not fail a property that holds.
"""
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("project", deadline=None)
settings.load_profile("project")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_data_set(name: str) -> Path:
    """Folder of one real data set (train.tsv.gz, test.tsv.gz), or skip the test."""
    folder = SHARED_DATA / name
    if not (folder / "train.tsv.gz").exists():
        pytest.skip(f"real data set {name!r} not found at {folder}: tests on real data are skipped")
    return folder


@pytest.fixture
def yoochoose100k() -> Path:
    return shared_data_set("yoochoose100k")


@pytest.fixture
def diginetica() -> Path:
    return shared_data_set("diginetica")
