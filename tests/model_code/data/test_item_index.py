import json

import numpy as np
import pandas as pd
import pytest

from model_code import artifacts
from model_code.data.item_index import ItemIndex


def test_from_events_keeps_first_appearance_order_and_strings():
    events = pd.DataFrame({"ItemId": ["0042", "7", "0042", "7.0", "x"]})
    index = ItemIndex.from_events(events)
    assert index.ids == ["0042", "7", "7.0", "x"]
    assert len(index) == 4


def test_lookup_known_and_unknown():
    index = ItemIndex(["a", "b", "c"])
    indices, known = index.lookup(["c", "zz", "a", "a"])
    assert indices.dtype == np.int32 and known.dtype == bool
    np.testing.assert_array_equal(known, [True, False, True, True])
    np.testing.assert_array_equal(indices[known], [2, 0, 0])
    assert indices[1] == -1


def test_lookup_does_not_confuse_numeric_looking_ids():
    index = ItemIndex(["1", "01", "1.0"])
    indices, known = index.lookup(pd.Series(["01", "1.0", "1"], dtype=str))
    np.testing.assert_array_equal(indices, [1, 2, 0])
    assert known.all()


def test_save_and_load_round_trip(tmp_path):
    index = ItemIndex(["b", "a", "10"])
    index.save(tmp_path)
    assert json.loads((tmp_path / artifacts.ITEMS_FILE).read_text()) == ["b", "a", "10"]
    assert ItemIndex.load(tmp_path).ids == ["b", "a", "10"]


def test_duplicates_and_non_strings_are_refused():
    with pytest.raises(ValueError, match="'a'"):
        ItemIndex(["a", "b", "a"])
    with pytest.raises(TypeError, match="strings"):
        ItemIndex(["a", 3])
