"""Data checks and preprocessing: clear errors for broken files, statistics from the training split only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab.data import prepare
from nnlab.errors import DataError
from nnlab.spec import DataSpec


def data_error(tmp_path, cli, frame_or_text, message, **data):
    """The DataError `prepare` raises for this file and data section (one line, containing `message`).

    `prepare` is what `nnlab train` runs before anything is written; test_missing_file checks the CLI's side
    (exit 2, no traceback, no run folder)."""
    target = tmp_path / "data.csv"
    if isinstance(frame_or_text, pd.DataFrame):
        frame_or_text.to_csv(target, index=False)
    elif frame_or_text is not None:
        target.write_text(frame_or_text)
    with pytest.raises(DataError) as caught:
        prepare(DataSpec(**{"path": "data.csv", "target": "label", **data}), tmp_path, 0)
    text = str(caught.value)
    assert message in text and "\n" not in text, text
    return text


def test_missing_file(tmp_path, cli, runs):
    spec = write_spec(tmp_path, tiny_spec(data={"path": "data.csv", "target": "label"}))
    result = cli("train", spec)
    assert result.exit_code == 2, result.output
    assert "data.path: file not found:" in result.stderr and "Traceback" not in result.stderr
    assert run_folders(runs) == []


def test_unsupported_file_type(tmp_path, cli):
    data_error(tmp_path, cli, None, "data.path: cannot read 'data.xlsx': expected one of .csv, .txt, .tsv, "
                                    ".parquet, .pq, .npz files", path="data.xlsx")


def test_unparseable_csv(tmp_path, cli):
    data_error(tmp_path, cli, 'a,label\n1,0\n"2,1\n', "data.path: cannot parse data.csv")


def test_empty_table(tmp_path, cli):
    data_error(tmp_path, cli, "a,label\n", "data.csv: the table is empty")


def test_target_missing_lists_the_columns(tmp_path, cli):
    data_error(tmp_path, cli, binary_table(), "data.target: column 'Label' not found in data.csv "
                                              "(columns: a, b, noise, label)", target="Label")


def test_single_class(tmp_path, cli):
    frame = binary_table().assign(label=1)
    data_error(tmp_path, cli, frame, "data.target: column 'label' has a single class (1)")


def test_too_few_rows_for_the_split(tmp_path, cli):
    frame = binary_table(n=40)
    frame.loc[:1, "label"] = 2  # a third class with two rows
    frame.loc[2:, "label"] = frame.loc[2:, "label"].clip(0, 1)
    data_error(tmp_path, cli, frame, "data.split: class 2 has only 2 row(s)")


def test_missing_values_need_impute(tmp_path, cli):
    frame = binary_table()
    frame.loc[[3, 5, 8, 13, 21, 34, 55, 89, 144], "b"] = np.nan
    result = data_error(tmp_path, cli, frame, "missing values in column(s) 'b' (")
    assert "set data.impute: mean|median|most_frequent" in result


def test_impute_fills_with_training_statistics(tmp_path):
    frame = binary_table()
    frame.loc[[3, 5, 8, 13, 21, 34, 55, 89, 144], "b"] = np.nan
    frame.to_csv(tmp_path / "data.csv", index=False)
    prepared = prepare(DataSpec(path="data.csv", target="label", impute="median", scale="none"), tmp_path, 0)
    train_rows = frame.iloc[prepared.rows["train"]]
    assert prepared.preprocessing["impute"]["b"] == pytest.approx(train_rows["b"].median())
    assert np.isfinite(np.concatenate(list(prepared.x.values()))).all()


def test_infinite_values(tmp_path, cli):
    frame = binary_table()
    frame.loc[7, "a"] = np.inf
    data_error(tmp_path, cli, frame, "data: column 'a' has infinite values")


def test_text_column_is_named(tmp_path, cli):
    frame = binary_table().assign(comment=[f"free text {i}" for i in range(240)])
    result = data_error(tmp_path, cli, frame, "non-numeric column(s) 'comment' (")
    assert "data.exclude" in result


def test_scaler_is_fitted_on_the_training_split_only(tmp_path):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    prepared = prepare(DataSpec(path="data.csv", target="label"), tmp_path, 0)
    train = prepared.x["train"]
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-4)
    assert abs(prepared.x["test"].mean(axis=0)).max() > 1e-3  # not refitted on test
    raw = binary_table()
    expected = (raw.iloc[prepared.rows["val"]]["a"] - raw.iloc[prepared.rows["train"]]["a"].mean()) \
        / raw.iloc[prepared.rows["train"]]["a"].std(ddof=0)
    np.testing.assert_allclose(prepared.x["val"][:, 0], expected, rtol=1e-4)


def test_split_is_stratified_disjoint_and_seeded(tmp_path):
    binary_table(n=1000).to_csv(tmp_path / "data.csv", index=False)
    spec = DataSpec(path="data.csv", target="label", split={"val": 0.2, "test": 0.1})
    a, b, c = (prepare(spec, tmp_path, seed) for seed in (0, 0, 1))
    rows = np.concatenate(list(a.rows.values()))
    assert sorted(rows) == list(range(1000))
    assert {k: len(v) for k, v in a.rows.items()} == {"train": 700, "val": 200, "test": 100}
    overall = a.y["train"].mean()
    assert abs(a.y["val"].mean() - overall) < 0.01 and abs(a.y["test"].mean() - overall) < 0.01
    assert all(np.array_equal(a.rows[k], b.rows[k]) for k in a.rows)
    assert not np.array_equal(a.rows["test"], c.rows["test"])


def test_string_labels_positive_class_and_one_hot(tmp_path):
    frame = binary_table()
    frame["label"] = np.where(frame["label"] == 1, "spam", "ham")
    frame["colour"] = np.resize(["red", "green", "blue"], len(frame))
    frame.to_parquet(tmp_path / "data.parquet")
    prepared = prepare(DataSpec(path="data.parquet", target="label"), tmp_path, 0)
    assert prepared.task == "binary"
    assert prepared.classes == ["ham", "spam"] and prepared.summary.positive == "spam"
    assert prepared.feature_names[-3:] == ["colour=blue", "colour=green", "colour=red"]
    flipped = prepare(DataSpec(path="data.parquet", target="label", positive="ham"), tmp_path, 0)
    assert flipped.classes == ["spam", "ham"]
    np.testing.assert_array_equal(flipped.y["train"], 1 - prepared.y["train"])
    with pytest.raises(DataError, match=r"data.positive: expected one of 'ham', 'spam'; got 'eggs'"):
        prepare(DataSpec(path="data.parquet", target="label", positive="eggs"), tmp_path, 0)


def test_task_inference(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "count": rng.integers(0, 4, 300),
                          "price": rng.normal(100, 20, 300)})
    frame.to_csv(tmp_path / "data.csv", index=False)
    multi = prepare(DataSpec(path="data.csv", target="count"), tmp_path, 0)
    assert multi.task == "multiclass" and multi.classes == [0, 1, 2, 3] and multi.y["train"].dtype == np.int64
    reg = prepare(DataSpec(path="data.csv", target="price"), tmp_path, 0)
    assert reg.task == "regression"
    train_price = frame["price"].iloc[reg.rows["train"]]
    assert reg.preprocessing["target_mean"] == pytest.approx(train_price.mean(), rel=1e-5)
    np.testing.assert_allclose(reg.y["train"].mean(), 0, atol=1e-5)
    forced = prepare(DataSpec(path="data.csv", target="count", task="regression"), tmp_path, 0)
    assert forced.task == "regression"
    with pytest.raises(DataError, match="data.task: binary needs exactly 2 classes; column 'count' has 4"):
        prepare(DataSpec(path="data.csv", target="count", task="binary"), tmp_path, 0)


def test_include_exclude(tmp_path):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    prepared = prepare(DataSpec(path="data.csv", target="label", exclude=["noise"]), tmp_path, 0)
    assert prepared.feature_names == ["a", "b"]
    with pytest.raises(DataError, match=r"data.include: column\(s\) 'c' not found"):
        prepare(DataSpec(path="data.csv", target="label", include=["a", "c"]), tmp_path, 0)


def test_placeholder_in_a_numeric_column_is_named(tmp_path, cli):
    frame = binary_table().astype({"a": object})
    frame.loc[[4, 9], "a"] = "?"
    data_error(tmp_path, cli, frame, "data: column 'a' is numeric except for 2 value(s) such as '?'")


def test_semicolon_separated_file_gets_a_hint(tmp_path, cli):
    binary_table().to_csv(tmp_path / "data.csv", index=False, sep=";")
    data_error(tmp_path, cli, None, "looks separated by something other than commas")


def test_a_folder_is_not_a_data_file(tmp_path, cli):
    (tmp_path / "data.csv").mkdir()
    data_error(tmp_path, cli, None, "is a folder; expected a .csv/.txt/.tsv/.parquet/.pq/.npz file")


def test_empty_file(tmp_path, cli):
    data_error(tmp_path, cli, "", "data.path: cannot parse data.csv")


def test_a_true_false_column_is_a_category_not_numbers_written_as_text(tmp_path):
    from pathlib import Path

    from nnlab.data import prepare
    from nnlab.spec import DataSpec

    table = binary_table()
    table["flag"] = (table["a"] > 0).astype(object)
    table.loc[3, "flag"] = None  # missing values make pandas read the column as objects
    table.to_csv(tmp_path / "data.csv", index=False)
    prepared = prepare(DataSpec(path="data.csv", target="label", impute="most_frequent"), Path(tmp_path), 0)
    assert {"flag=False", "flag=True"} <= set(prepared.feature_names)
