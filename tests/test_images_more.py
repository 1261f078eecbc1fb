"""Image files, the loose ends: predict on a list of files (and folders), the image settings in the data
fingerprint, and the augment settings shown by `validate --models` and `show`."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from conftest import write_spec
from test_images import PIL, picture, runs_in, spec_for, write_folder, invoke

from nnlab import runstore
from nnlab.report.fingerprints import data_key, split_key

AUGMENT = {"flip": "horizontal", "crop": {"pad": 2}, "noise": 0.05}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A folder trained twice: at 8x8 and at 6x6, the second with augmentation."""
    tmp = tmp_path_factory.mktemp("more")
    write_folder(tmp / "photos", per_class=8)
    image = {"path": "photos", "split": {"val": 0.25, "test": 0.25}}
    small = write_spec(tmp, spec_for({**image, "image": {"size": [8, 8]}}, epochs=2), "eight.yaml")
    other = spec_for({**image, "image": {"size": [6, 6]}}, epochs=2)
    other["train"]["augment"] = AUGMENT
    augmented = write_spec(tmp, other, "six.yaml")
    for spec in (small, augmented):
        result = invoke("train", spec, "--runs-dir", tmp / "runs")
        assert result.exit_code == 0, result.output
    runs = sorted((runstore.read_run(p) for p in runs_in(tmp / "runs")),
                  key=lambda run: run.spec["data"]["image"]["size"][0], reverse=True)
    return tmp, runs, augmented


def test_predict_on_a_list_of_files_names_each_as_given(trained, tmp_path):
    _, (run, _), _ = trained
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = [tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", tmp_path / "c.jpg"]
    for i, path in enumerate(paths):
        PIL.fromarray(picture(i % 2, 70 + i)).save(path)
    listed = invoke("predict", run.path, *paths)
    assert listed.exit_code == 0, listed.output
    table = pd.read_csv(io.StringIO(listed.stdout))
    assert table["file"].tolist() == [str(p) for p in paths]  # two x.png files stay apart
    # each row is what predicting that file alone gives
    for path, (_, row) in zip(paths, table.iterrows()):
        alone = pd.read_csv(io.StringIO(invoke("predict", run.path, path).stdout))
        assert alone["prediction"].tolist() == [row["prediction"]]
        assert np.allclose(alone["p_cat"], row["p_cat"], atol=1e-6)
    # a folder among the files: its images below it
    mixed = invoke("predict", run.path, tmp_path / "a", tmp_path / "c.jpg")
    assert pd.read_csv(io.StringIO(mixed.stdout))["file"].tolist() == [str(tmp_path / "a" / "x.png"),
                                                                      str(tmp_path / "c.jpg")]


def test_predict_on_a_list_refuses_a_table_or_a_missing_file(trained, tmp_path):
    _, (run, _), _ = trained
    PIL.fromarray(picture(0, 1)).save(tmp_path / "ok.png")
    (tmp_path / "rows.csv").write_text("a\n1\n")
    table = invoke("predict", run.path, tmp_path / "ok.png", tmp_path / "rows.csv")
    assert table.exit_code == 2
    assert table.output.strip() == ("error: DATA: rows.csv is not an image file or folder (.png, .jpg, .jpeg, "
                                    ".bmp, .gif); several paths are read as image files (predict a table on its own)")
    missing = invoke("predict", run.path, tmp_path / "ok.png", tmp_path / "gone.png")
    assert missing.exit_code == 2 and missing.output.strip().startswith("error: DATA: file not found: ")


def test_the_image_settings_are_part_of_the_data_fingerprint(trained):
    _, (eight, six), _ = trained
    assert eight.meta.data_fingerprint["image"] == {"size": [8, 8], "channels": 3, "skip_bad": False}
    assert six.meta.data_fingerprint["image"]["size"] == [6, 6]
    assert data_key(eight) != data_key(six) and split_key(eight) != split_key(six)


def test_the_same_settings_are_the_same_data_and_skip_bad_is_not(tmp_path):
    write_folder(tmp_path / "photos", per_class=6)
    for name, skip in (("a", False), ("b", False), ("c", True)):
        spec = spec_for({"path": "photos", "image": {"size": [8, 8], "skip_bad": skip}}, epochs=1)
        assert invoke("train", write_spec(tmp_path, spec, f"{name}.yaml"), "--runs-dir", tmp_path / "runs") \
            .exit_code == 0
    runs = sorted((runstore.read_run(p) for p in runs_in(tmp_path / "runs")),
                  key=lambda run: run.spec["data"]["image"]["skip_bad"])
    assert data_key(runs[0]) == data_key(runs[1])
    assert data_key(runs[1]) != data_key(runs[2])  # the same pixels, read under another rule


def test_validate_models_and_show_say_the_augmentation(trained):
    tmp, (_, six), augmented = trained
    shown = invoke("validate", augmented, "--models")
    assert shown.exit_code == 0, shown.output
    assert "augment (training batches only): flip horizontal, crop pad 2, noise 0.05" in shown.output
    page = invoke("show", six.path)
    assert page.exit_code == 0, page.output
    assert "augment flip horizontal, crop pad 2, noise 0.05" in page.output
    plain = invoke("show", trained[1][0].path)
    assert "augment" not in plain.output
