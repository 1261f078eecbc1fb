"""Hostile data: duplicated column names (a leaked target), values that overflow the scaler, Parquet types nnlab
cannot read, special files as data.path, misleading messages; plus the split seed and the data fingerprint."""

from __future__ import annotations

import json
import os
import re
import threading

import numpy as np
import pandas as pd
import pytest

from conftest import binary_table, tiny_spec, write_spec
from nnlab.data import prepare
from nnlab.errors import DataError
from nnlab.spec import DataSpec


def raises(tmp_path, message: str, **data) -> str:
    with pytest.raises(DataError) as caught:
        prepare(DataSpec(**{"path": "data.csv", "target": "label", **data}), tmp_path, 0)
    text = str(caught.value)
    assert message in text and "\n" not in text, text
    return text


def test_duplicated_target_column_is_an_error_naming_it(tmp_path):
    frame = binary_table()
    frame.insert(1, "label_copy", frame["label"])
    frame.to_csv(tmp_path / "data.csv", index=False)
    text = (tmp_path / "data.csv").read_text().replace("label_copy", "label", 1)
    (tmp_path / "data.csv").write_text(text)
    assert "label.1" in pd.read_csv(tmp_path / "data.csv").columns  # what pandas would have done silently
    raises(tmp_path, "data.path: data.csv has repeated column name(s) 'label' (2 times); every column needs "
                     "its own name (a copy of the target would leak the label into the features)")


def test_duplicated_parquet_column_is_an_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([pa.array([1.0, 2.0]), pa.array([0, 1]), pa.array([0, 1])], names=["a", "y", "y"]),
                   tmp_path / "data.parquet")
    raises(tmp_path, "data.path: data.parquet has repeated column name(s) 'y' (2 times)", path="data.parquet",
           target="y")


@pytest.mark.parametrize("scale", ["standard", "minmax"])
def test_huge_and_tiny_columns_scale_like_ordinary_ones(tmp_path, scale):
    frame = binary_table()
    frame.to_csv(tmp_path / "data.csv", index=False)
    plain = prepare(DataSpec(path="data.csv", target="label", scale=scale), tmp_path, 0)
    frame.assign(a=frame["a"] * 1e200, b=frame["b"] * 1e-200).to_csv(tmp_path / "data.csv", index=False)
    extreme = prepare(DataSpec(path="data.csv", target="label", scale=scale), tmp_path, 0)
    for split in plain.x:
        np.testing.assert_allclose(extreme.x[split], plain.x[split], rtol=1e-5, atol=1e-6)
        assert np.isfinite(extreme.x[split]).all()
    json.dumps(extreme.preprocessing, allow_nan=False)  # no Infinity or NaN in what the run folder stores
    assert extreme.preprocessing["spread"][0] == pytest.approx(plain.preprocessing["spread"][0] * 1e200, rel=1e-9)


def test_a_huge_column_trains_to_the_same_accuracy(tmp_path, cli, runs):
    frame = binary_table()
    accuracies = []
    for factor in (1.0, 1e200):
        frame.assign(a=frame["a"] * factor).to_csv(tmp_path / "data.csv", index=False)
        result = cli("train", write_spec(tmp_path, tiny_spec(name=f"scale{len(accuracies)}")))
        assert result.exit_code == 0, result.output
        folder = max((p for p in runs.iterdir() if p.name.startswith(f"scale{len(accuracies)}")), key=os.path.getmtime)
        summary = folder.joinpath("summary.json").read_text()
        assert "Infinity" not in summary and "NaN" not in summary
        accuracies.append({m: v["val"]["accuracy"] for m, v in json.loads(summary)["models"].items()})
    assert accuracies[0] == accuracies[1] and accuracies[0]["baseline"] > 0.85


def test_values_beyond_the_scalers_range_are_rejected_with_the_column(tmp_path):
    frame = binary_table()
    frame.loc[::2, "b"] = 1.5e308
    frame.loc[1::2, "b"] = -1.5e308
    frame.to_csv(tmp_path / "data.csv", index=False)
    raises(tmp_path, "data: column 'b' has values too large to scale", scale="minmax")


@pytest.mark.parametrize("column, message", [
    ("tags", "data: column 'tags' in data.parquet has type list<element: int64>, which nnlab cannot read; flatten it "
             "into plain number or string columns, or leave it out with data.exclude"),
    ("when", "data: column 'when' in data.parquet has type timestamp[us], which nnlab cannot read; convert it to a "
             "number (e.g. seconds since 1970) or leave it out with data.exclude"),
    ("price", "data: column 'price' in data.parquet has type decimal128(10, 2), which nnlab cannot read; cast it "
              "to float64 in the file or leave it out with data.exclude"),
    ("point", "data: column 'point' in data.parquet has type struct<x: int64>"),
    ("props", "data: column 'props' in data.parquet has type map<string, int64"),
])
def test_parquet_types_nnlab_cannot_read(tmp_path, column, message):
    import datetime
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 30
    columns = {
        "a": pa.array(np.arange(n, dtype=float)), "label": pa.array(np.arange(n) % 2),
        "tags": pa.array([[i] for i in range(n)]),
        "when": pa.array([datetime.datetime(2024, 1, 1 + i % 28) for i in range(n)], pa.timestamp("us")),
        "price": pa.array([decimal.Decimal(f"{i}.50") for i in range(n)], pa.decimal128(10, 2)),
        "point": pa.array([{"x": i} for i in range(n)]),
        "props": pa.array([[("k", i)] for i in range(n)], pa.map_(pa.string(), pa.int64()))}
    keep = ["a", "label", column]
    pq.write_table(pa.table([columns[k] for k in keep], names=keep), tmp_path / "data.parquet")
    raises(tmp_path, message, path="data.parquet")
    assert prepare(DataSpec(path="data.parquet", target="label", exclude=[column]), tmp_path, 0).n_features == 1
    with pytest.raises(DataError, match=re.escape(f"data.target: column '{column}' in data.parquet has type")):
        prepare(DataSpec(path="data.parquet", target=column), tmp_path, 0)


def test_a_fifo_is_named_and_never_opened(tmp_path):
    os.mkfifo(tmp_path / "data.csv")
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(raises(tmp_path, "is a named pipe (FIFO), not a "
                                                                             "regular file")), daemon=True)
    worker.start()
    worker.join(10)
    assert outcome, "reading a FIFO blocked"


def test_a_device_is_not_file_not_found(tmp_path):
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    (tmp_path / "data.csv").symlink_to("/dev/null")
    raises(tmp_path, "is a character device, not a regular file")


def test_a_symlink_loop_is_not_file_not_found(tmp_path):
    (tmp_path / "data.csv").symlink_to(tmp_path / "data.csv")
    text = raises(tmp_path, "data.path: cannot read")
    assert "not found" not in text


def test_numbers_stored_as_text_get_a_message_with_an_example(tmp_path):
    frame = binary_table().assign(a=lambda f: f["a"].map(str))  # a Parquet string column of numbers
    frame.to_parquet(tmp_path / "data.parquet")
    text = raises(tmp_path, "data: column 'a' holds numbers written as text (such as ", path="data.parquet")
    assert "0 value(s)" not in text and "write them as plain numbers" in text
    frame.loc[4, "a"] = "1e5000"  # out of float range: not a number nnlab can scale
    frame.to_parquet(tmp_path / "data.parquet")
    raises(tmp_path, "data: column 'a' is numeric except for 1 value(s) such as '1e5000'", path="data.parquet")


def test_impute_on_a_column_empty_in_training_says_what_to_do(tmp_path):
    frame = binary_table().assign(empty=np.nan)
    frame.to_csv(tmp_path / "data.csv", index=False)
    for how in ("mean", "median", "most_frequent"):
        text = raises(tmp_path, "data.impute: column(s) 'empty' have no values in the training split", impute=how)
        assert "set data.impute" not in text and "data.exclude" in text


def test_split_seed_is_separate_from_the_training_seed(tmp_path):
    binary_table(n=400).to_csv(tmp_path / "data.csv", index=False)
    fixed = DataSpec(path="data.csv", target="label", split={"seed": 7})
    a, b = prepare(fixed, tmp_path, 0), prepare(fixed, tmp_path, 1)
    assert all(np.array_equal(a.rows[k], b.rows[k]) for k in a.rows)
    default = DataSpec(path="data.csv", target="label")
    assert all(np.array_equal(a.rows[k], prepare(default, tmp_path, 7).rows[k]) for k in a.rows)
    assert not np.array_equal(a.rows["test"], prepare(default, tmp_path, 0).rows["test"])
    assert a.summary.fingerprint == b.summary.fingerprint
    assert a.summary.fingerprint["split_seed"] == 7


def test_fingerprint_names_the_data_and_the_split(tmp_path):
    import hashlib

    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = DataSpec(path="data.csv", target="label")
    facts = prepare(spec, tmp_path, 0).summary.fingerprint
    assert facts["sha256"] == hashlib.sha256((tmp_path / "data.csv").read_bytes()).hexdigest()
    assert {k: facts[k] for k in ("rows", "columns", "split_seed", "val", "test", "stratify")} == {
        "rows": 240, "columns": 4, "split_seed": 0, "val": 0.15, "test": 0.15, "stratify": True}
    other_split = prepare(spec.model_copy(update={"split": spec.split.model_copy(update={"test": 0.2})}),
                          tmp_path, 0).summary.fingerprint
    assert other_split["sha256"] == facts["sha256"] and other_split["split"] != facts["split"]
    binary_table(seed=1).to_csv(tmp_path / "data.csv", index=False)
    assert prepare(spec, tmp_path, 0).summary.fingerprint["sha256"] != facts["sha256"]


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_text("not an archive"), "data.path: data.npz is not an .npz archive of plain arrays (nnlab "
                                               "never loads pickled objects)"),
    (lambda p: np.savez(p, X=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4)),
     "data.path: X in data.npz holds Python objects, which load only by unpickling (nnlab never does)"),
    (lambda p: np.savez(p, X=np.zeros((0, 3)), y=np.zeros(0)), "X in data.npz has shape (0, 3); expected 2-D"),
    (lambda p: np.savez(p, X=np.zeros(10), y=np.zeros(10)), "X in data.npz has shape (10,)"),
    (lambda p: np.savez(p, X=np.zeros((10, 2)), y=np.zeros((10, 2))), "y in data.npz has shape (10, 2); expected "
                                                                      "one value per row of X (10)"),
    (lambda p: np.savez(p, X=np.array([["a", "b"]] * 10), y=np.zeros(10)), "X in data.npz holds <U1 values"),
])
def test_broken_npz_files(tmp_path, write, message):
    write(tmp_path / "data.npz")
    raises(tmp_path, message, path="data.npz", target="y")


def test_a_huge_regression_target_is_standardized_and_decoded(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=100), "label": rng.normal(5, 2, 100)})
    frame.to_csv(tmp_path / "data.csv", index=False)
    plain = prepare(DataSpec(path="data.csv", target="label"), tmp_path, 0)
    frame.assign(label=frame["label"] * 1e200).to_csv(tmp_path / "data.csv", index=False)
    huge = prepare(DataSpec(path="data.csv", target="label"), tmp_path, 0)
    np.testing.assert_allclose(huge.y["train"], plain.y["train"], atol=1e-5)
    json.dumps(huge.preprocessing, allow_nan=False)
    np.testing.assert_allclose(huge.preprocessor.decode(huge.y["val"]),
                               frame["label"].to_numpy()[huge.rows["val"]] * 1e200, rtol=1e-5)


def forged_npz(path, shape: tuple[int, ...]) -> None:
    """An .npz whose X header claims `shape` of float64 while holding 64 bytes (what a crafted file does)."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    y = io.BytesIO()
    np.save(y, np.zeros(4))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", header.getvalue() + b"\0" * 64)
        archive.writestr("y.npy", y.getvalue())


def test_an_npz_header_claiming_80_terabytes_is_refused_before_allocating(tmp_path):
    forged_npz(tmp_path / "data.npz", (10**13, 1))
    raises(tmp_path, "data.path: X in data.npz claims shape [10000000000000, 1] of float64 (80 TB) but the "
                     "archive holds 64 bytes: the file is damaged or truncated", path="data.npz", target="y")


def test_a_truncated_npz_is_a_one_line_error(tmp_path):
    np.savez(tmp_path / "whole.npz", X=np.zeros((50, 3)), y=np.zeros(50))
    raw = (tmp_path / "whole.npz").read_bytes()
    for cut in (len(raw) // 2, len(raw) - 10):
        (tmp_path / "data.npz").write_bytes(raw[:cut])
        raises(tmp_path, "data.path: data.npz is not a readable .npz archive (truncated or damaged",
               path="data.npz", target="y")


def test_complex_values_are_refused_naming_the_file_and_dtype(tmp_path):
    np.savez(tmp_path / "data.npz", X=np.ones((40, 2)) + 1j, y=np.arange(40) % 2)
    raises(tmp_path, "data.path: X in data.npz holds complex128 values; expected real numbers", path="data.npz",
           target="y")
    np.savez(tmp_path / "data.npz", X=np.ones((40, 2)), y=(np.arange(40) % 2) + 0j)
    raises(tmp_path, "data.path: y in data.npz holds complex128 values", path="data.npz", target="y")


SECRET = "root:$6$Zm9vYmFyYmF6cXV4c2VjcmV0aGFzaHNlY3JldGhhc2g:19000:0:99999:7:::"


@pytest.mark.parametrize("content", [
    f"{SECRET}\ndaemon:*:19000:0:99999:7:::\n".encode(),  # a password file behind a symlink
    b"\x1b]0;owned\x07" + SECRET.encode() + b"\x1b[2J\n1\n",  # terminal escapes in what would be the header
    f"a,b,label\n1,2,3\n1,2,3,{SECRET}\n".encode(),  # a parse error near a secret
])
def test_errors_show_at_most_a_short_escaped_excerpt_of_a_file(tmp_path, content):
    (tmp_path / "secret").write_bytes(content)
    os.symlink(tmp_path / "secret", tmp_path / "data.csv")
    with pytest.raises(DataError) as caught:
        prepare(DataSpec(path="data.csv", target="label"), tmp_path, 0)
    text = str(caught.value)
    assert "\n" not in text and not any(ord(c) < 32 for c in text), text
    assert "Zm9vYmFyYmF6cXV4c2VjcmV0aGFzaHNl" not in text and "19000:0:99999" not in text, text
