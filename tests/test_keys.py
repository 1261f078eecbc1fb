"""One rule for dotted keys (core.keys): a model's name wins over an index, in --set, sweep keys, the
one-at-a-time points and the sweep table alike."""

from __future__ import annotations

import pytest

from nnlab.core.keys import MISSING, model_position, value_at
from nnlab.errors import SpecError
from nnlab.spec import set_path, sweep_key_problem


def _models():  # named "1" then "0": index 1 is the model named "0"
    return {"models": [{"name": "1", "kind": "mlp", "dropout": 0.0}, {"name": "0", "kind": "mlp", "dropout": 0.0}]}


def test_a_name_wins_over_an_index():
    assert model_position(["1", "0"], "1") == 0
    assert model_position(["a", "b"], "1") == 1
    assert model_position(["a", "b"], "2") is None and model_position(["a"], "c") is None


def test_set_changes_the_model_of_that_name():
    raw = set_path(_models(), "models.1.dropout", 0.3)
    assert [m["dropout"] for m in raw["models"]] == [0.3, 0.0]  # the model named "1", not position 1
    raw = set_path({"models": [{"name": "a"}, {"name": "b"}]}, "models.1.dropout", 0.3)
    assert raw["models"][1] == {"name": "b", "dropout": 0.3}
    with pytest.raises(SpecError, match=r"--set models\.5: index 5 out of range \(2 item\(s\)\)"):
        set_path({"models": [{"name": "a"}, {"name": "b"}]}, "models.5.dropout", 0.3)


def test_sweep_reads_and_checks_the_same_model():
    spec = _models()
    spec["models"][0]["dropout"] = 0.5
    assert value_at(spec, "models.1.dropout") == 0.5
    assert value_at(spec, "models.0.dropout") == 0.0
    assert value_at(spec, "models.2.dropout") is MISSING
    assert sweep_key_problem("models.1.dropout", spec) is None
    assert "no model '7'" in sweep_key_problem("models.7.dropout", spec)


def test_the_sweep_table_credits_the_same_model():
    from nnlab.views.sweep import touches

    class Point:
        settings = [("models.1.dropout", 0.3)]

    assert touches(Point(), "1", ["1", "0"]) and not touches(Point(), "0", ["1", "0"])
    assert touches(Point(), "b", ["a", "b"]) and not touches(Point(), "a", ["a", "b"])
