"""Image files as data: a folder of class subfolders and a CSV of image paths train a CNN end to end; every bad
file is a one-line error naming it (or skipped and counted); the decoded array is cached; init and predict."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import run_folders, write_spec
from nnlab.cli import app
from nnlab.data import images

PIL = pytest.importorskip("PIL.Image")

FORMATS = ("png", "jpg", "bmp", "gif")
CNN = {"name": "cnn", "kind": "cnn", "channels": [4], "kernel": 3}


def picture(label: int, i: int, size: int = 8) -> np.ndarray:
    """Class 0: a bright left half; class 1: a bright right half (plus seeded noise): a CNN learns it."""
    rng = np.random.default_rng(100 * label + i)
    pixels = rng.integers(0, 60, (size, size, 3))
    half = slice(0, size // 2) if label == 0 else slice(size // 2, size)
    pixels[:, half] += 180
    return pixels.clip(0, 255).astype(np.uint8)


def write_folder(root: Path, per_class: int = 12) -> Path:
    """photos/<cat|dog>/NN.<fmt>: the four formats in turn, one image in three grey, a few 10x10 (resized)."""
    for label, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = PIL.fromarray(picture(label, i, 10 if i % 5 == 4 else 8))
            if i % 3 == 2:
                img = img.convert("L")
            img.save(root / name / f"{i:02d}.{FORMATS[i % 4]}")
    return root


def spec_for(data: dict, epochs: int = 3) -> dict:
    return {"name": "photos", "seed": 0, "data": data, "train": {"epochs": epochs, "batch_size": 8},
            "models": [CNN]}


def runs_in(store: Path) -> list[Path]:
    """The run folders of a store (its .cache/ is no run)."""
    return [p for p in run_folders(store) if not p.name.startswith(".")]


def invoke(*args: str):
    return CliRunner().invoke(app, [*map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One folder, trained once; the second train reads the cache (decode spied on)."""
    tmp = tmp_path_factory.mktemp("photos")
    write_folder(tmp / "photos")
    spec = write_spec(tmp, spec_for({"path": "photos", "image": {"size": [8, 8], "channels": 3},
                                     "split": {"val": 0.25, "test": 0.25}}))
    first = invoke("train", spec, "--runs-dir", tmp / "runs")
    return tmp, spec, first


def summary_of(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_folder_trains_a_cnn_and_counts_resized_files(trained):
    tmp, _, result = trained
    assert result.exit_code == 0, result.output
    [run] = runs_in(tmp / "runs")
    data = summary_of(run)["data"]
    assert data["rows"] == 24 and data["classes"] == {"cat": 12, "dog": 12}
    assert data["input"] == {"kind": "image", "shape": [3, 8, 8]}
    assert data["images"]["files"] == 24 and data["images"]["resized"] == 4 and data["images"]["skipped"] == 0
    assert "24 image files (4 resized to 8x8)" in result.output
    assert summary_of(run)["models"]["cnn"]["status"] == "completed"


def test_the_mistakes_file_names_the_image(trained):
    tmp, _, _ = trained
    [run] = runs_in(tmp / "runs")
    errors = pd.read_csv(run / "errors" / "cnn.csv")
    assert list(errors.columns[:5]) == ["row", "true", "predicted", "confidence", "file"]
    assert all(f.split("/")[0] in ("cat", "dog") and f.split(".")[-1] in FORMATS for f in errors["file"])


def test_a_second_run_reads_the_cache_instead_of_decoding(trained, monkeypatch):
    tmp, spec, _ = trained
    calls = []
    real = images.decode_images
    monkeypatch.setattr(images, "decode_images", lambda *a, **k: calls.append(a) or real(*a, **k))
    [cache] = (tmp / "runs" / ".cache" / "images").glob("*.npz")
    again = invoke("train", spec, "--runs-dir", tmp / "runs", "--set", "train.epochs=1")
    assert again.exit_code == 0, again.output
    assert calls == []
    newest = Path(again.output.strip().splitlines()[-1].removeprefix("run: "))
    assert "decoded images read from the cache" in again.output
    assert summary_of(newest)["data"]["images"]["cached"] is True
    # a changed file changes the fingerprint: decoded again
    img = tmp / "photos" / "cat" / "00.png"
    PIL.fromarray(picture(0, 99)).save(img)
    assert invoke("validate", spec).exit_code == 0  # validate passes no store: no cache, decodes
    calls.clear()
    assert invoke("train", spec, "--runs-dir", tmp / "runs", "--set", "train.epochs=1").exit_code == 0
    assert len(calls) == 1 and len(list(cache.parent.glob("*.npz"))) == 2


def test_predict_on_a_folder_names_each_file(trained, tmp_path):
    tmp, _, _ = trained
    [run] = runs_in(tmp / "runs")[:1]
    new = tmp_path / "new"
    new.mkdir()
    for i in range(3):
        PIL.fromarray(picture(i % 2, 50 + i)).save(new / f"n{i}.png")
    out = invoke("predict", run, new)
    assert out.exit_code == 0, out.output
    table = pd.read_csv(__import__("io").StringIO(out.stdout))
    assert list(table["file"]) == ["n0.png", "n1.png", "n2.png"]
    assert set(table["prediction"]) <= {"cat", "dog"} and np.allclose(table["p_cat"] + table["p_dog"], 1)
    single = invoke("predict", run, new / "n1.png")
    assert single.exit_code == 0 and pd.read_csv(__import__("io").StringIO(single.stdout))["file"].tolist() == ["n1.png"]


def test_csv_of_paths_trains(tmp_path):
    write_folder(tmp_path / "pics", per_class=10)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "pics").rglob("*.*"))
    pd.DataFrame({"file": files, "label": [f.split("/")[1] for f in files], "other": 1}).to_csv(
        tmp_path / "index.csv", index=False)
    spec = write_spec(tmp_path, spec_for({"path": "index.csv", "target": "label",
                                          "image": {"column": "file", "size": [8, 8], "channels": 1}}, epochs=2))
    result = invoke("train", spec, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    [run] = runs_in(tmp_path / "runs")
    data = summary_of(run)["data"]
    assert data["rows"] == 20 and data["input"]["shape"] == [1, 8, 8] and data["columns"] == 64 * 1


def bad_error(tmp_path: Path, data: dict, needle: str) -> None:
    spec = write_spec(tmp_path, spec_for(data, epochs=1))
    result = invoke("train", spec, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output, result.output
    assert not (tmp_path / "runs").exists() or runs_in(tmp_path / "runs") == []


def bomb_png(path: Path, side: int = 100_000) -> None:
    """A PNG whose header claims side x side pixels (10^10) with almost no data: Pillow's bomb check."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


BAD_CASES = [
    ("corrupt", lambda d: (d / "cat" / "03.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really"),
     "data.path: image cat/03.png: not a readable image"),
    ("truncated jpeg", lambda d: (d / "dog" / "01.jpg").write_bytes((d / "dog" / "01.jpg").read_bytes()[:40]),
     "data.path: image dog/01.jpg: not a readable image"),
    ("bomb", lambda d: bomb_png(d / "cat" / "07.png"),
     "data.path: image cat/07.png: more pixels than the limit of 40,000,000"),
    ("symlink out", lambda d: (d / "cat" / "zz.png").symlink_to(d.parent / "outside.png"),
     "data.path: cat/zz.png resolves outside the folder 'photos'"),
    ("empty class", lambda d: (d / "bird").mkdir(),
     "data.path: class folder 'photos/bird' holds no image files"),
]


@pytest.mark.parametrize("name, damage, needle", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_a_bad_file_is_one_line_naming_it(tmp_path, name, damage, needle):
    root = write_folder(tmp_path / "photos", per_class=8)
    PIL.fromarray(picture(0, 0)).save(tmp_path / "outside.png")
    damage(root)
    bad_error(tmp_path, {"path": "photos", "image": {"size": [8, 8]}}, needle)


def test_skip_bad_skips_and_counts_every_bad_file(tmp_path):
    root = write_folder(tmp_path / "photos", per_class=8)
    PIL.fromarray(picture(0, 0)).save(tmp_path / "outside.png")
    for _, damage, _ in BAD_CASES:
        damage(root)
    spec = write_spec(tmp_path, spec_for({"path": "photos", "image": {"size": [8, 8], "skip_bad": True}}, epochs=1))
    result = invoke("train", spec, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    [run] = runs_in(tmp_path / "runs")
    shown = summary_of(run)["data"]["images"]
    assert shown["skipped"] == 5 and shown["files"] == 15  # 16 images + 3 bad ones (1 replaced), the link, bird/
    assert {s.split(":")[0] for s in shown["skipped_files"]} == {"cat/zz.png", "bird/", "cat/03.png", "dog/01.jpg",
                                                                 "cat/07.png"}
    assert "5 skipped (bad files" in result.output


def test_a_folder_too_big_for_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    write_folder(tmp_path / "photos", per_class=4)
    monkeypatch.setattr(images, "memory_bytes", lambda: 10_000)
    monkeypatch.setattr(images, "decode_images", lambda *a: pytest.fail("decoded"))
    bad_error(tmp_path, {"path": "photos", "image": {"size": [32, 32]}},
              "data.path: 8 images of 3 x 32 x 32 take 24.6 kB decoded")


def test_a_folder_without_class_subfolders(tmp_path):
    (tmp_path / "photos").mkdir()
    PIL.fromarray(picture(0, 0)).save(tmp_path / "photos" / "a.png")
    bad_error(tmp_path, {"path": "photos", "image": {"size": [8, 8]}},
              "data.path: folder 'photos' has no class subfolders (it holds 1 image files directly")


def test_init_on_a_folder_writes_a_cnn_spec_that_validates(tmp_path, monkeypatch):
    write_folder(tmp_path / "photos", per_class=6)
    monkeypatch.chdir(tmp_path)
    result = invoke("init", "photos", "-o", "photos.yaml")
    assert result.exit_code == 0, result.output
    assert "image files read as [3, 8, 8] ([C, H, W]), 2 class subfolders" in result.output
    written = yaml.safe_load((tmp_path / "photos.yaml").read_text())
    assert written["data"]["path"] == "photos" and written["data"]["image"] == {"size": [8, 8], "channels": 3}
    assert [m["kind"] for m in written["models"]] == ["cnn"]
    assert invoke("validate", "photos.yaml").exit_code == 0
