import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model_code.gru4rec.params import (
    PARAMETER_NAMES,
    PRESETS,
    GRU4RecParams,
    ParamError,
    parse_assignments,
    resolve_params,
)

# ANCHORS.md's preset table: loss, units, batch, dropout emb / hidden, lr, momentum, alpha, bpreg, elu, logq
ANCHOR_TABLE = {
    "rsc15": ("cross-entropy", 100, 32, 0.0, 0.4, 0.2, 0.2, 0.5, 0.0, 0.0, 1.0),
    "yoochoose": ("cross-entropy", 480, 48, 0.0, 0.2, 0.07, 0.0, 0.2, 0.0, 0.0, 1.0),
    "retailrocket": ("bpr-max", 224, 80, 0.5, 0.05, 0.05, 0.4, 0.4, 1.95, 0.5, 0.0),
    "diginetica": ("bpr-max", 512, 128, 0.5, 0.3, 0.05, 0.15, 0.3, 0.9, 1.0, 0.0),
}


@pytest.mark.parametrize("name", sorted(ANCHOR_TABLE))
def test_presets_match_the_published_table(name):
    p = PRESETS[name]
    row = (p.loss, p.layers[0], p.batch_size, p.dropout_embedding, p.dropout_hidden, p.learning_rate,
           p.momentum, p.sample_alpha, p.bpreg, p.elu, p.logq)
    assert row == ANCHOR_TABLE[name]
    assert (len(p.layers), p.epochs, p.n_sample, p.embedding) == (1, 10, 2048, "shared")


def test_overrides_are_parsed_from_strings():
    p = resolve_params("diginetica", {"layers": "100,50", "epochs": "3", "dropout-hidden": "0.25",
                                      "loss": "Cross_Entropy", "embedding_size": "none", "n_sample": "0"})
    assert p.layers == (100, 50) and p.epochs == 3 and p.dropout_hidden == 0.25
    assert p.loss == "cross-entropy" and p.embedding_size is None and p.n_sample == 0
    assert p.batch_size == 128  # untouched preset value


def test_default_preset_is_rsc15():
    assert resolve_params() == PRESETS["rsc15"] == GRU4RecParams()


def test_unknown_parameter_lists_known_ones_and_suggests_closest():
    with pytest.raises(ParamError) as err:
        resolve_params("rsc15", {"dropout_hiden": "0.1"})
    message = str(err.value)
    assert "'dropout_hiden'" in message and "did you mean 'dropout_hidden'" in message
    assert all(name in message for name in PARAMETER_NAMES)


def test_unknown_preset_lists_presets():
    with pytest.raises(ParamError, match="known presets: rsc15, yoochoose, retailrocket, diginetica"):
        resolve_params("movielens")


@pytest.mark.parametrize(
    "name, value, allowed",
    [
        ("loss", "top1", "cross-entropy | bpr-max"),
        ("embedding", "tied", "shared | separate | none"),
        ("batch_size", "0", "integer >= 1"),
        ("batch_size", "2.5", "integer >= 1"),
        ("layers", "100,,100", "comma-separated"),
        ("layers", "0", "comma-separated"),
        ("dropout_hidden", "1", "[0, 1)"),
        ("dropout_embedding", "-0.1", "[0, 1)"),
        ("learning_rate", "0", "> 0"),
        ("learning_rate", "nan", "> 0"),
        ("sample_alpha", "1.5", "[0, 1]"),
        ("n_sample", "many", "integer >= 0"),
        ("epochs", "0", "integer >= 1"),
    ],
)
def test_bad_value_names_parameter_and_allowed_values(name, value, allowed):
    with pytest.raises(ParamError) as err:
        resolve_params("rsc15", {name: value})
    assert f"parameter {name!r}" in str(err.value) and repr(value) in str(err.value)
    assert allowed in str(err.value)


def test_embedding_size_needs_a_separate_embedding():
    with pytest.raises(ParamError, match="'embedding_size'.*embedding=separate"):
        resolve_params("rsc15", {"embedding_size": "64"})
    assert resolve_params("rsc15", {"embedding_size": "64", "embedding": "separate"}).embedding_size == 64


def test_assignments():
    assert parse_assignments(["a=1", "b = x=y", "a=2"]) == {"a": "2", "b": " x=y"}
    with pytest.raises(ParamError, match="name=value"):
        parse_assignments(["epochs"])


def test_constructor_validates_too():
    with pytest.raises(ParamError, match="'batch_size'"):
        GRU4RecParams(batch_size=-1)


@given(
    layers=st.lists(st.integers(1, 1024), min_size=1, max_size=3),
    batch=st.integers(1, 4096),
    dropout=st.floats(0, 0.99),
    lr=st.floats(1e-6, 10),
    loss=st.sampled_from(["cross-entropy", "bpr-max"]),
    preset=st.sampled_from(sorted(PRESETS)),
)
def test_round_trip_through_strings_and_dict(layers, batch, dropout, lr, loss, preset):
    strings = {"layers": ",".join(map(str, layers)), "batch_size": str(batch), "dropout_hidden": repr(dropout),
               "learning_rate": repr(lr), "loss": loss}
    p = resolve_params(preset, strings)
    assert p.layers == tuple(layers) and p.batch_size == batch and p.dropout_hidden == dropout
    assert p.learning_rate == lr and p.loss == loss
    assert GRU4RecParams.from_dict(p.to_dict()) == p
    as_strings = {k: (",".join(map(str, v)) if k == "layers" else str(v)) for k, v in p.to_dict().items()}
    assert resolve_params("rsc15", as_strings) == p
    assert dataclasses.replace(p) == p


@pytest.mark.parametrize("name, value, allowed", [("loss", "top1", "cross-entropy | bpr-max"),
                                                  ("logq_form", "uniform", "reference | sampling"),
                                                  ("embedding", "tied", "shared | separate | none")])
def test_parameters_made_in_code_are_checked_as_parsed_ones_are(name, value, allowed):
    """The trainer and the model take their names from a GRU4RecParams: one made directly is checked too."""
    with pytest.raises(ParamError, match=f"parameter '{name}': cannot use '{value}'; allowed: {allowed}"):
        GRU4RecParams(**{name: value})
