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


def test_models_named_0_and_1_are_read_alike_by_set_sweep_one_at_a_time_table_and_stacking(tmp_path):
    """Models "1" then "0": every reader of `models.1.dropout` means the model NAMED "1" (position 0)."""
    from conftest import binary_table, tiny_spec, write_spec
    from nnlab.core.settings import changes_since
    from nnlab.run import session as runner
    from nnlab.sweeps.grid import plan_sweep
    from nnlab.training.stacking import can_stack, stackable_key
    from nnlab.views.sweep import touches

    binary_table().to_csv(tmp_path / "data.csv", index=False)
    models = [{"name": "1", "kind": "mlp", "hidden": [8], "dropout": 0.5}, {"name": "0", "kind": "mlp", "hidden": [8]}]
    spec = write_spec(tmp_path, tiny_spec(models=models))
    plan = plan_sweep(spec, ["models.1.dropout=0.5,0.3"], one_at_a_time=True)
    # one-at-a-time: 0.5 is model "1"'s own value, so only 0.3 is a new point (position 1 has 0.0)
    assert [p.settings for p in plan.points] == [(), (("models.1.dropout", 0.3),)]
    point = plan.points[1]
    planned = runner.plan(spec, point.overrides).spec  # --set, as the point trains
    assert {m.name: m.dropout for m in planned.models} == {"1": 0.3, "0": 0.0}
    assert touches(point, "1", plan.models) and not touches(point, "0", plan.models)  # the sweep table
    # the stacking decision: the key is one members may differ in, and the point's models still stack
    assert stackable_key("models.1.dropout") and can_stack(planned.models)[0]
    reference = runner.plan(spec, []).spec
    assert changes_since(reference.resolved(), planned.resolved()) == ["models.1.dropout 0.5 → 0.3"]
