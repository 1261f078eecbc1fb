"""`nnlab compare`: which settings differ, deltas to the baseline, sorting, formats, the table and the A/B view,
on hand-made runs with known numbers."""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest
from rich.console import Console

from compare_fixtures import as_json, browse, make_spec, repeated, result, two_models, write_run
from nnlab import runstore
from nnlab.report import compare
from nnlab.report import formats
from nnlab.views import tables

BASE = (0.40, 0.42, 0.85, 0.84)


def render(renderable, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def csv_frame(result) -> pd.DataFrame:
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout))


@pytest.fixture
def store(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def three(store):
    """Three runs, each changing one thing from the first: the learning rate, then the hidden sizes."""
    a = write_run(store, make_spec(), two_models(BASE, (0.30, 0.32, 0.90, 0.89)), minute=1, note="first")
    b = write_run(store, make_spec(train={"optimizer": {"lr": 0.01}}), two_models(BASE, (0.25, 0.26, 0.92, 0.93)),
                  minute=2, note="lr 0.01")
    c = write_run(store, make_spec(models=[{"name": "mlp", "kind": "mlp", "hidden": [128, 64], "dropout": 0.0}]),
                  two_models(BASE, (0.35, 0.50, 0.88, 0.80)), minute=3, note="wider")
    return a.name, b.name, c.name


def test_only_the_settings_that_differ_become_columns(store, three):
    frame = csv_frame(browse(store, "compare", "--format", "csv"))
    settings = [c for c in frame.columns if c not in compare.ROW_COLUMNS and not compare.is_measure(c)
                and c not in compare.EPOCH_COLUMNS]
    # a changed train default reaches the model through its merged train settings; the list compares by value
    assert settings == ["models.hidden", "train.optimizer.lr"]
    assert list(frame["run"]) == [three[0], three[0], three[1], three[1], three[2], three[2]]  # oldest first
    assert list(frame["model"]) == ["baseline", "mlp"] * 3
    mlp = frame[frame["model"] == "mlp"]
    assert list(mlp["models.hidden"]) == ["[64, 32]", "[64, 32]", "[128, 64]"]
    assert list(mlp["train.optimizer.lr"]) == [0.001, 0.01, 0.001]
    # neural-model settings do not apply to the baseline rows
    assert frame[frame["model"] == "baseline"][["models.hidden", "train.optimizer.lr"]].isna().all().all()


def test_nested_settings_flatten_to_dotted_keys(store):
    cosine = {"name": "cosine", "t_max": 10}
    write_run(store, make_spec(), two_models(BASE, BASE), minute=1)
    write_run(store, make_spec(train={"scheduler": cosine, "early_stopping": {"patience": 3}}),
              two_models(BASE, BASE), minute=2)
    comparison = compare.compare_runs(compare.select_runs(store, []).runs)
    # null -> a mapping: the old key and every new leaf differ
    assert comparison.settings == ["train.scheduler", "train.early_stopping.patience", "train.scheduler.name",
                                   "train.scheduler.t_max"]
    rows = [r for r in comparison.rows if r["model"] == "mlp"]
    assert rows[0]["train.scheduler"] is None and math.isnan(rows[0]["train.scheduler.name"])
    assert math.isnan(rows[1]["train.scheduler"]) and rows[1]["train.scheduler.name"] == "cosine"
    assert [r["train.early_stopping.patience"] for r in rows] == [8, 3]


def test_per_model_overrides_are_compared_per_model(store):
    models = [{"name": "small", "kind": "mlp", "hidden": [32]},
              {"name": "wide", "kind": "mlp", "hidden": [32], "train": {"optimizer": {"lr": 0.0005}}}]
    results = {"baseline": result(*BASE, kind="logistic"), "small": result(*BASE), "wide": result(*BASE)}
    write_run(store, make_spec(models=models), results, minute=1)
    models[1]["train"] = {"optimizer": {"lr": 0.0001}}
    write_run(store, make_spec(models=models), results, minute=2)
    comparison = compare.compare_runs(compare.select_runs(store, []).runs)
    assert comparison.settings == ["train.optimizer.lr"]
    assert [(r["model"], r["train.optimizer.lr"]) for r in comparison.rows if r["model"] != "baseline"] == [
        ("small", 0.001), ("wide", 0.0005), ("small", 0.001), ("wide", 0.0001)]
    assert comparison.between_runs == ["train.optimizer.lr"]  # only `wide` changed between the runs
    assert comparison.note is None


def test_identical_lists_do_not_differ_and_seed_only_is_said(store):
    write_run(store, make_spec(seed=0), two_models(BASE, BASE), minute=1)
    write_run(store, make_spec(seed=1), two_models(BASE, BASE), minute=2)
    out = browse(store, "compare")
    assert out.exit_code == 0, out.output
    assert "Only the seed differs between these runs" in out.stdout
    assert compare.compare_runs(compare.select_runs(store, []).runs).settings == ["seed"]


def test_no_difference_at_all_is_said(store):
    write_run(store, make_spec(), two_models(BASE, BASE), minute=1)
    write_run(store, make_spec(), two_models(BASE, BASE), minute=2)
    out = browse(store, "compare").stdout
    assert "No setting differs between these runs" in out


def test_deltas_are_to_the_same_runs_baseline(store, three):
    records = as_json(browse(store, "compare", "--format", "json"))
    first_mlp, second_base, second_mlp = records[1], records[2], records[3]
    assert first_mlp["test_accuracy_vs_baseline"] == pytest.approx(0.89 - 0.84)
    assert first_mlp["test_loss_vs_baseline"] == pytest.approx(0.32 - 0.42)
    assert second_mlp["val_loss_vs_baseline"] == pytest.approx(0.25 - 0.40)
    assert second_base["test_loss_vs_baseline"] is None  # the baseline has no difference to itself


def test_no_baseline_means_no_delta(store):
    spec = make_spec(baseline=False)
    write_run(store, spec, {"mlp": result(*BASE)}, minute=1)
    (row,) = as_json(browse(store, "compare", "--format", "json"))
    assert row["model"] == "mlp" and row["test_loss_vs_baseline"] is None and row["test_loss"] == 0.42


@pytest.mark.parametrize("args, column, expected", [
    (["--sort", "loss"], "val_loss", [0.25, 0.30, 0.35, 0.40, 0.40, 0.40]),  # validation by default, lower first
    (["--sort", "test_loss"], "test_loss", [0.26, 0.32, 0.42, 0.42, 0.42, 0.50]),
    (["--sort", "loss", "--split", "test"], "test_loss", [0.26, 0.32, 0.42, 0.42, 0.42, 0.50]),
])
def test_sort_by_loss_is_ascending(store, three, args, column, expected):
    frame = csv_frame(browse(store, "compare", "--format", "csv", *args))
    assert list(frame[column]) == expected


def test_sort_by_a_score_is_descending_on_validation_unless_test_is_asked(store, three):
    frame = csv_frame(browse(store, "compare", "--format", "csv", "--sort", "accuracy"))
    assert list(frame["val_accuracy"]) == [0.92, 0.90, 0.88, 0.85, 0.85, 0.85]
    assert list(frame["test_accuracy"]) == [0.93, 0.89, 0.80, 0.84, 0.84, 0.84]  # not the test order
    frame = csv_frame(browse(store, "compare", "--format", "csv", "--sort", "test_accuracy"))
    assert list(frame["test_accuracy"]) == [0.93, 0.89, 0.84, 0.84, 0.84, 0.80]


def test_sort_puts_missing_values_last(store):
    write_run(store, make_spec(), {"baseline": result(*BASE, kind="logistic"),
                                   "mlp": result(0.3, math.nan, 0.9, math.nan)}, minute=1)
    records = as_json(browse(store, "compare", "--format", "json", "--sort", "test_accuracy"))
    assert [r["model"] for r in records] == ["baseline", "mlp"] and records[1]["test_accuracy"] is None


def test_sort_by_an_unknown_metric_is_exit_2_with_the_choices(store, three):
    out = browse(store, "compare", "--sort", "acc")
    assert out.exit_code == 2
    assert "--sort: expected one of loss, accuracy, val_loss, test_loss" in out.stderr and "got 'acc'" in out.stderr


def test_metric_split_and_model_choose_columns_and_rows(store, three):
    frame = csv_frame(browse(store, "compare", "--format", "csv", "--metric", "accuracy", "--split", "test",
                             "--model", "mlp"))
    assert [c for c in frame.columns if compare.is_measure(c)] == [
        "test_accuracy", "test_accuracy_sd", "test_accuracy_vs_baseline", "train_seconds"]
    assert list(frame["model"]) == ["mlp"] * 3 and list(frame["test_accuracy"]) == [0.89, 0.93, 0.80]
    # the delta still refers to the run's baseline, although its row is filtered out
    assert list(frame["test_accuracy_vs_baseline"]) == pytest.approx([0.05, 0.09, -0.04])
    # with only the mlp rows, only what differs between them is a column
    assert "models.hidden" in frame.columns


def test_unknown_metric_or_model_is_exit_2(store, three):
    out = browse(store, "compare", "--metric", "f1")
    assert out.exit_code == 2 and "--metric: expected one of loss, accuracy; got 'f1'" in out.stderr
    out = browse(store, "compare", "--model", "cnn")
    assert out.exit_code == 2 and "--model: expected one of baseline, mlp; got 'cnn'" in out.stderr


def test_csv_and_json_have_the_same_columns_and_values(store, three):
    frame = csv_frame(browse(store, "compare", "--format", "csv"))
    records = as_json(browse(store, "compare", "--format", "json"))
    assert list(records[0]) == list(frame.columns)
    assert list(frame.columns[:4]) == ["run", "model", "kind", "status"]
    assert list(frame.columns[-16:]) == [
        "best_epoch", "epochs_run", "repeats", "val_loss", "val_loss_sd", "test_loss", "test_loss_sd",
        "val_loss_vs_baseline", "test_loss_vs_baseline", "val_accuracy", "val_accuracy_sd", "test_accuracy",
        "test_accuracy_sd", "val_accuracy_vs_baseline", "test_accuracy_vs_baseline", "train_seconds"]
    assert list(frame["repeats"]) == [1] * 6 and frame["test_accuracy_sd"].isna().all()
    assert [r["test_loss"] for r in records] == list(frame["test_loss"]) == [0.42, 0.32, 0.42, 0.26, 0.42, 0.5]
    assert records[1]["models.hidden"] == [64, 32] and records[1]["best_epoch"] == 2


def test_markdown_is_a_table_with_the_best_in_bold(store, three):
    out = browse(store, "compare", "--format", "markdown")
    assert out.exit_code == 0
    lines = out.stdout.splitlines()
    assert len(lines) == 2 + 6 and lines[0].startswith("| run | model | kind | status | models.hidden |")
    assert all(line.startswith("|") and line.endswith("|") for line in lines)
    best = next(line for line in lines if "**0.2600**" in line)  # the best test loss
    assert three[1] in best and "**0.9300**" in best


def test_empty_store_gives_valid_empty_output(store):
    assert as_json(browse(store, "compare", "--format", "json")) == []
    out = browse(store, "compare", "--format", "csv")
    assert out.exit_code == 0 and pd.read_csv(io.StringIO(out.stdout)).empty
    out = browse(store, "compare")
    assert out.exit_code == 0 and "No runs to compare." in out.stdout


def test_default_is_the_last_ten_runs_and_last_or_name_choose_others(store):
    for minute in range(12):
        write_run(store, make_spec(name="odd" if minute % 2 else "even", seed=minute),
                  {"mlp": result(*BASE)}, minute=minute)
    runs = as_json(browse(store, "compare", "--format", "json"))
    assert [r["seed"] for r in runs] == list(range(2, 12))  # the newest ten, oldest first
    assert [r["seed"] for r in as_json(browse(store, "compare", "--format", "json", "--last", "3"))] == [9, 10, 11]
    assert [r["seed"] for r in as_json(browse(store, "compare", "--format", "json", "--name", "odd"))] == [
        1, 3, 5, 7, 9, 11]
    assert [r["seed"] for r in as_json(browse(store, "compare", "-f", "json", "--name", "o*", "--last", "2"))] == [9, 11]


def test_table_fits_100_columns_and_keeps_numbers_whole(store):
    long_path = "/a/very/long/path/to/some/data/folder/that/goes/on/and/on/data.csv"
    for minute, lr in enumerate([0.001, 0.0003, 0.01]):
        spec = make_spec(train={"optimizer": {"lr": lr}, "batch_size": 32 * (minute + 1), "epochs": 10 + minute},
                         seed=minute, data={"path": f"{long_path}{minute}", "target": "y"})
        write_run(store, spec, two_models(BASE, (0.123456, 0.2, 0.9, 0.91)), minute=minute)
    out = browse(store, "compare").stdout
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    rows = [line for line in lines if line.startswith("mlp ")]
    assert len(rows) == 3 and all("0.1235" in row for row in rows)  # the number rounded, never cut
    assert any("0.0003" in row for row in rows)
    assert [row.split()[2] for row in rows] == ["…on/data.csv0", "…on/data.csv1", "…on/data.csv2"]  # cut, not wrapped
    assert "batch_size = train.batch_size" in out or "left out to fit 100 columns" in out


def test_best_value_of_each_validation_column_is_highlighted(store, three):
    comparison = compare.compare_runs(compare.select_runs(store, []).runs)
    grid = tables.compare_table(comparison, ["loss", "accuracy"])
    val_loss, val_acc = [c for c in grid.columns if c.header == "val"]
    assert [i for i, s in enumerate(val_loss.styles) if s == tables.BEST] == [3]  # 0.25, the second run's mlp
    assert [i for i, s in enumerate(val_acc.styles) if s == tables.BEST] == [3]
    # the test columns are the final report: nothing there invites choosing on the test split
    assert all(s is None for c in grid.columns if c.header == "test" for s in c.styles)
    text = render(grid)
    assert "0.2600" in text and "Δ base" in text and "more metrics" not in text
    assert "bold green: the best val value of a column" in text
    test_grid = tables.compare_table(compare.compare_runs(comparison.runs, split="test"), ["loss"])
    (test_loss,) = [c for c in test_grid.columns if c.header == "test"]
    assert [i for i, s in enumerate(test_loss.styles) if s == tables.BEST] == [3]  # 0.26 when test is asked


def test_table_shows_the_differing_settings_and_the_deltas(store, three):
    out = browse(store, "compare").stdout
    assert "hidden" in out and "lr" in out and "settings: hidden = models.hidden, lr = train.optimizer.lr" in out
    row = next(line for line in out.splitlines() if "[128, 64]" in line)
    assert "-0.0400" in row and "+0.0800" not in row  # test accuracy against the baseline; the loss's on request
    out = browse(store, "compare", "--metric", "loss", "--metric", "accuracy").stdout
    row = next(line for line in out.splitlines() if "[128, 64]" in line)
    assert "-0.0400" in row and "+0.0800" in row


def test_two_runs_side_by_side(store, three):
    out = browse(store, "compare", three[0], three[1])
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert f"A {three[0]}   B {three[1]}" in text
    settings = text.split("settings that differ")[1].split("metrics")[0]
    # the changed default shows once, not again under every model that inherits it
    assert "train.optimizer.lr  0.001  0.01" in settings and "models.mlp.train" not in settings
    line = next(l for l in text.splitlines() if "test_loss" in l and "0.3200" in l)
    assert line.split()[-4:] == ["0.3200", "0.2600", "-0.0600", "better"]
    line = next(l for l in text.splitlines() if "test_accuracy" in l and "0.8900" in l)
    assert line.split()[-4:] == ["0.8900", "0.9300", "+0.0400", "better"]


def test_two_runs_curves_show_when_they_part(store):
    losses_a = [0.9, 0.6, 0.5, 0.45, 0.44]
    losses_b = [0.9, 0.5, 0.3, 0.2, 0.15]
    for minute, (lr, losses) in enumerate([(0.001, losses_a), (0.01, losses_b)]):
        results = two_models(BASE, (min(losses), 0.5, 0.9, 0.9))
        write_run(store, make_spec(train={"optimizer": {"lr": lr}}), results, minute=minute,
                  history={"baseline": [0.4], "mlp": losses})
    text = browse(store, "compare", "last~1", "last").stdout
    assert "mlp: val_loss per epoch" in text and "baseline: val_loss per epoch" not in text
    spark_a = next(l for l in text.splitlines() if l.startswith("A ") and len(l) == 7)
    spark_b = next(l for l in text.splitlines() if l.startswith("B ") and len(l) == 7)
    assert spark_a[2] == spark_b[2] == "█" and spark_b[-1] == "▁" and spark_a[-1] != "▁"
    epochs = next(l for l in text.splitlines() if l.startswith("epoch"))
    assert epochs.split() == ["epoch", "1", "2", "3", "4", "5"]
    delta = next(l for l in text.splitlines() if l.startswith("B−A"))
    assert delta.split() == ["B−A", "+0.0000", "-0.1000", "-0.2000", "-0.2500", "-0.2900"]


def test_two_identical_runs_say_so(store):
    write_run(store, make_spec(), two_models(BASE, BASE), minute=1)
    write_run(store, make_spec(), two_models(BASE, BASE), minute=2)
    text = browse(store, "compare", "last", "last~1").stdout
    assert "No setting differs between A and B" in text


def test_two_runs_with_json_format_give_rows(store, three):
    records = as_json(browse(store, "compare", three[0], three[1], "--format", "json"))
    assert [(r["run"], r["model"]) for r in records] == [(three[0], "baseline"), (three[0], "mlp"),
                                                         (three[1], "baseline"), (three[1], "mlp")]
    assert json.dumps(records)  # plain JSON values only


def test_frame_matches_rows(store, three):
    comparison = compare.compare_runs(compare.select_runs(store, []).runs)
    frame = comparison.frame
    assert list(frame.columns) == comparison.columns and len(frame) == 6
    assert frame["test_loss"].tolist() == [0.42, 0.32, 0.42, 0.26, 0.42, 0.5]
    listing = compare.runs_frame(runstore.list_runs(store)[0])
    assert list(listing.columns) == compare.RUNS_COLUMNS and list(listing["note"]) == ["wider", "lr 0.01", "first"]


def test_table_split_val_shows_validation_of_every_metric(store, three):
    out = browse(store, "compare", "--split", "val").stdout
    header = out.splitlines()[1].split()
    assert header[:2] == ["model", "hidden"] and header.count("val") == 2 and "test" not in header
    row = next(line for line in out.splitlines() if "[128, 64]" in line)
    assert "0.3500" in row and "0.8800" in row and "Δ base: val difference" in out


def test_baseline_settings_are_compared_across_baselines(store):
    write_run(store, make_spec(), two_models(BASE, BASE), minute=1)
    write_run(store, make_spec(baseline={"kind": "logistic", "l2": 0.1}), two_models(BASE, BASE), minute=2)
    comparison = compare.compare_runs(compare.select_runs(store, []).runs)
    assert comparison.settings == ["baseline.l2"] and comparison.between_runs == ["baseline.l2"]
    assert [formats.format_value(r["baseline.l2"], None) for r in comparison.rows] == ["1.0", "", "0.1", ""]


# ---------------------------------------------------------------- width: metrics before settings

def test_runs_of_several_data_sets_keep_their_metrics_at_80_columns(store):
    for minute, data in enumerate(["spambase.csv", "digits.csv", "/data/some/long/path/adult_income.csv"]):
        spec = make_spec(name=f"d{minute}", data={"path": data, "target": ["spam", "digit", "income"][minute]},
                         train={"optimizer": {"lr": 0.001 * (minute + 1)}, "batch_size": 32 * (minute + 1)})
        write_run(store, spec, two_models(BASE, (0.3, 0.32, 0.9, 0.8765)), minute=minute)
    out = browse(store, "compare", columns=80).stdout
    header = out.splitlines()[1].split()
    assert header.count("val") >= 1 and header.count("test") >= 1  # the metrics stay
    assert "0.8765" in out and "left out to fit 80 columns:" in out
    left_out = out.split("left out to fit 80 columns:")[1].split("(see")[0]
    assert "lr" in left_out and "batch_size" in left_out  # settings went first


# ---------------------------------------------------------------- repeats and noise

@pytest.fixture
def repeated_runs(store):
    """A reference, a change that is noise (dropout) and one that is a real gain (lr), each repeated 4 times."""
    ref = write_run(store, make_spec(name="sweep"), {
        "baseline": result(*BASE, kind="logistic"),
        "mlp": repeated("mlp", [0.90, 0.91, 0.89, 0.90], [0.88, 0.89, 0.90, 0.89])}, minute=1, sweep="s1")
    noise = write_run(store, make_spec(name="sweep", models=[{"name": "mlp", "kind": "mlp", "hidden": [64, 32],
                                                              "dropout": 0.3}]), {
        "baseline": result(*BASE, kind="logistic"),
        "mlp": repeated("mlp", [0.905, 0.915, 0.885, 0.905], [0.88, 0.90, 0.89, 0.90])}, minute=2, sweep="s1")
    gain = write_run(store, make_spec(name="sweep", train={"optimizer": {"lr": 0.01}}), {
        "baseline": result(*BASE, kind="logistic"),
        "mlp": repeated("mlp", [0.95, 0.96, 0.95, 0.96], [0.94, 0.95, 0.95, 0.96])}, minute=3, sweep="s1")
    write_run(store, make_spec(name="other"), two_models(BASE, BASE), minute=4, sweep="s2")
    return ref, noise, gain


def test_repeats_read_as_mean_and_sd_in_every_format(store, repeated_runs):
    import numpy as np

    rows = as_json(browse(store, "compare", "--sweep", "s1", "--format", "json"))
    mlp = rows[1]
    assert mlp["repeats"] == 4 and rows[0]["repeats"] == 1
    assert mlp["val_accuracy"] == pytest.approx(np.mean([0.90, 0.91, 0.89, 0.90]))
    assert mlp["val_accuracy_sd"] == pytest.approx(np.std([0.90, 0.91, 0.89, 0.90], ddof=1))
    assert rows[0]["val_accuracy_sd"] is None
    table = browse(store, "compare", "--sweep", "s1").stdout
    assert "0.9000 ± 0.0082" in table and " N " in table.splitlines()[1] + " "  # val accuracy, mean ± sd
    shown = browse(store, "show", repeated_runs[0].name).stdout
    assert "0.8900 ± 0.0082" in shown and "mean ± sd over N repeats" in shown  # test accuracy
    assert "mlp members (seed: val_loss): 0: 0.1000, 1: 0.0900, 2: 0.1100, 3: 0.1000" in shown
    listing = browse(store, "runs", "--sweep", "s1")
    records = as_json(browse(store, "runs", "--sweep", "s1", "--format", "json"))
    assert [r["sweep"] for r in records] == ["s1"] * 3 and records[2]["repeats"] == 4
    assert records[2]["best_val_sd"] == pytest.approx(np.std([0.1, 0.09, 0.11, 0.1], ddof=1))
    assert "±" in listing.stdout


def test_compare_tells_noise_from_a_real_gain(store, repeated_runs):
    out = browse(store, "compare", "--sweep", "s1").stdout
    words = " ".join(out.split())
    # dropout: +0.0025 against a spread of sqrt(0.0082² + 0.0126²) = 0.0150
    assert "mlp dropout 0.3: +0.0025 ± 0.0150 accuracy — within noise" in words
    assert "mlp lr 0.01: +0.0550 ± 0.0100 accuracy — better" in words
    ref, noise, gain = repeated_runs
    pair = browse(store, "compare", ref.name, noise.name).stdout
    row = next(line for line in pair.splitlines() if "val_accuracy" in line and "±" in line)
    assert row.split()[-2:] == ["within", "noise"]
    assert "mlp dropout 0.3: +0.0025 ± 0.0150 accuracy (validation) — within noise" in " ".join(pair.split())
    pair = browse(store, "compare", ref.name, gain.name).stdout
    assert "accuracy (validation) — better" in " ".join(pair.split())


def test_single_runs_are_not_judged_and_the_way_to_judge_them_is_said(store, three, repeated_runs):
    from nnlab.report.noise import SINGLE_RUNS

    words = lambda result: " ".join(result.stdout.split())
    table = words(browse(store, "compare", *three))
    assert SINGLE_RUNS in table and "within noise" not in table
    a, b = three[0], three[1]
    assert SINGLE_RUNS in words(browse(store, "compare", a, b))
    assert SINGLE_RUNS not in words(browse(store, "compare", "--sweep", "s1"))  # repeated: judged instead
    assert SINGLE_RUNS not in words(browse(store, "compare", a))  # one run: nothing to compare


def test_the_within_noise_rule():
    from nnlab.report.noise import difference

    a = {"val_accuracy": 0.90, "val_accuracy_sd": 0.006}
    b = {"val_accuracy": 0.904, "val_accuracy_sd": 0.008}
    change = difference("val_accuracy", a, b)
    assert change.spread == pytest.approx(0.010) and change.within_noise and change.verdict == "within noise"
    assert difference("val_accuracy", a, {"val_accuracy": 0.92}).verdict == "better"  # 0.02 > 0.006
    assert difference("val_loss", {"val_loss": 0.3}, {"val_loss": 0.2}).verdict == "better"  # no spread: no noise call
    assert math.isnan(difference("val_loss", {"val_loss": 0.3}, {"val_loss": 0.2}).spread)


def test_sweep_filters_compare_and_runs(store, repeated_runs):
    assert {r["run"] for r in as_json(browse(store, "compare", "--sweep", "s2", "--format", "json"))} == {
        r for r in [p.name for p in store.iterdir()] if r.startswith("other")}
    assert len(as_json(browse(store, "runs", "--sweep", "s1", "--format", "json"))) == 3
    assert as_json(browse(store, "runs", "--sweep", "nope", "--format", "json")) == []


# ---------------------------------------------------------------- one formatter, one best rule

def test_numbers_format_and_best():
    from nnlab.core.numbers import format_spread, format_value, stored_float
    from nnlab.core.columns import best_value

    assert stored_float(0.9130434989929199) == 0.9130435 and stored_float(0.1) == 0.1  # 0.1 is no float32
    assert stored_float(None) != stored_float(None) and stored_float("x") != stored_float("x")
    assert format_value(0.12345) == "0.1235" and format_value(-0.01, signed=True) == "-0.0100"
    assert format_value(3e-05) == "3.000e-05" and format_value(0.0005, None) == "0.0005"
    assert format_value(math.nan) == "" and format_value([64, 32]) == "[64, 32]" and format_value(True) == "true"
    assert format_spread(0.9, 0.0082) == "0.9000 ± 0.0082" and format_spread(0.9, None) == "0.9000"
    assert best_value([0.3, None, math.nan, 0.2], "val_loss") == 0.2
    assert best_value([0.8, 0.9], "accuracy") == 0.9 and best_value([], "accuracy") is None
    assert best_value([1, 2], "lr") is None


# ---------------------------------------------------------------- what changed since the last run

def test_changed_since_reads_the_last_run_of_the_same_kind_and_a_note_silences_the_reminder(store):
    from nnlab.core.settings import changes_since, previous_of
    from nnlab.views.train_report import TrainReport

    full = write_run(store, make_spec(train={"epochs": 50}), two_models(BASE, BASE), minute=1)
    smoke = write_run(store, make_spec(train={"epochs": 2}), two_models(BASE, BASE), minute=2, smoke=True)
    runs, _ = runstore.list_runs(store)
    assert previous_of(runs, "exp", smoke=False).folder == full.name
    assert previous_of(runs, "exp", smoke=True).folder == smoke.name
    assert previous_of(runs, "other", smoke=False) is None
    new = make_spec(train={"epochs": 50, "optimizer": {"lr": 0.01}})
    assert changes_since(previous_of(runs, "exp", smoke=False).spec, new) == ["train.optimizer.lr 0.001 → 0.01"]

    def said(note: str) -> str:
        console = Console(file=io.StringIO(), width=200, color_system=None)
        TrainReport(console, progress=False, note=note).changes("r1", ["a 1 → 2", "b 3 → 4"])
        return console.file.getvalue()

    assert "2 settings changed at once" in said("")
    assert "changed since r1: a 1 → 2; b 3 → 4" in said("lr and batch together: the batch scales the lr")
    assert "settings changed at once" not in said("lr and batch together: the batch scales the lr")


# ---------------------------------------------------------------- what is never called noise

def test_added_or_dropped_models_are_said_and_never_called_noise(store):
    first = write_run(store, make_spec(), two_models(BASE, (0.3, 0.32, 0.9, 0.89)), minute=1)
    both = [{"name": "mlp", "kind": "mlp", "hidden": [64, 32], "dropout": 0.0}, {"name": "cnn", "kind": "cnn"}]
    second = write_run(store, make_spec(models=both), {**two_models(BASE, (0.3, 0.32, 0.9, 0.89)),
                                                      "cnn": result(0.2, 0.2, 0.93, 0.9, kind="cnn")}, minute=2)
    words = " ".join(browse(store, "compare").stdout.split())
    assert f"models differ between these runs: {second.name} adds cnn (against {first.name})" in words
    assert "noise" not in words.split("models differ")[1].split("Δ base")[0]
    assert "No setting differs" not in words
    comparison = compare.compare_runs([runstore.read_run(second), runstore.read_run(first)])
    assert comparison.models_changed == [f"{first.name} drops cnn (against {second.name})"]


def data_run(store, name, path, minute, base_acc, mlp_acc):
    fingerprint = {"sha256": name * 8, "rows": 100, "columns": 5, "split_seed": 0, "val": 0.15, "test": 0.15,
                   "stratify": True, "split": name}
    return write_run(store, make_spec(name=name, data={"path": path, "target": "y"}), {
        "baseline": result(0.5, 0.5, base_acc, base_acc, kind="logistic"),
        "mlp": repeated("mlp", [mlp_acc - 0.01, mlp_acc, mlp_acc + 0.01], [0.8, 0.8, 0.8])},
        minute=minute, data_fingerprint=fingerprint)


def test_runs_on_different_data_are_grouped_and_never_judged_against_each_other(store):
    a = data_run(store, "churn", "churn.csv", 1, 0.60, 0.70)
    b = data_run(store, "spam", "/data/spam.csv", 2, 0.86, 0.95)
    c = data_run(store, "churn", "moved/churn.csv", 3, 0.60, 0.75)  # the same file elsewhere: the same data
    words = " ".join(browse(store, "compare").stdout.split())
    assert ("these runs read 2 data sets, never judged against each other: each is compared within its own "
            "group (churn.csv -> y: 2 run(s); spam.csv -> y: 1 run(s))") in words
    noise = words.split("against each model's first row on the same data")[1]
    assert "mlp path moved/churn.csv: +0.0500 ± 0.0141 accuracy — better" in noise
    assert "baseline" not in noise.split("test split")[0] and "spam" not in noise.split("test split")[0]
    rows = as_json(browse(store, "compare", "--format", "json"))
    assert [r["run"] for r in rows] == [a.name, a.name, c.name, c.name, b.name, b.name]  # each data set together
    comparison = compare.compare_runs([runstore.read_run(p) for p in (a, b, c)])
    best = tables._best_by_data(comparison)["val_accuracy"]
    assert best == {3, 5}  # the best on churn (c's mlp) and on spam (b's mlp), not only the highest number
    pair = " ".join(browse(store, "compare", a.name, b.name).stdout.split())
    assert "A and B read different data (A churn.csv -> y, B /data/spam.csv -> y)" not in pair
    assert "A and B read different data (A churn.csv -> y, B spam.csv -> y)" in pair
    judged = pair.replace("lower is better", "").replace("higher is better", "").split("nor noise", 1)[1]
    assert "better" not in judged and "worse" not in judged and "within noise" not in judged


def test_spreads_read_with_the_means_decimals():
    from nnlab.report.noise import Difference
    from nnlab.core.numbers import format_spread

    assert format_spread(0.5668, 2.866e-06) == "0.5668 ± 0.0000029"
    assert format_spread(0.5668, 0.0014) == "0.5668 ± 0.0014"
    assert format_spread(0.5668, 0.0) == "0.5668 ± 0.0000"
    assert format_spread(3e-05, 1e-06) == "3.000e-05 ± 1.000e-06"  # beside an e-notation mean, as it reads
    assert Difference("val_accuracy", 0.004, 2.866e-06).text() == "+0.0040 ± 0.0000029"
