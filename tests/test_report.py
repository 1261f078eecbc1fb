"""`nnlab report` and `nnlab curves RUN RUN ...` without a browser: what the page holds against compare's
rows and metrics.csv, escaping, the ROC / precision-recall / calibration numbers against scikit-learn,
runs that did not record predictions, errors, and no torch. The browser check is test_report_browser.py."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nnlab.cli import app
from nnlab.report import classcurves
from nnlab.report.compare import compare_runs, noise_lines
from nnlab.report.curvedata import run_curves
from nnlab.runstore import list_runs
from nnlab.views.tables import metric_cell
from report_store import HOSTILE_NOTE, report_store  # noqa: F401  (the session's store)


def invoke(*args: object):
    return CliRunner().invoke(app, [*map(str, args)], catch_exceptions=False)


class Tables(HTMLParser):
    """Every <table> of a page as lists of cell texts, by its class."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._rows: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._rows = self.tables.setdefault(dict(attrs).get("class") or "", [])
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._rows is not None:
            self._rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def page(report_store, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("page") / "report.html"
    result = invoke("report", "--runs-dir", report_store, "-o", out)
    assert result.exit_code == 0, result.output
    assert f"report: {out} (4 run(s)" in result.stdout
    return out.read_text()


def tables_of(text: str) -> dict[str, list[list[str]]]:
    parser = Tables()
    parser.feed(text)
    return parser.tables


def test_the_compare_table_is_compares_rows(page, report_store):
    runs = list_runs(report_store)[0][::-1]  # compare's order: oldest first
    comparison = compare_runs(runs)
    heads, *rows = tables_of(page)["compare"]
    assert len(rows) == len(comparison.rows) == 8  # 4 runs x (baseline, mlp)
    for row, cells in zip(comparison.rows, rows):
        by_head = dict(zip(heads, cells))
        assert (by_head["run"], by_head["model"]) == (row["run"], row["model"])
        assert by_head["val loss"] == metric_cell(row, "val_loss")
        assert by_head["test accuracy"] == metric_cell(row, "test_accuracy")
    repeated = next(dict(zip(heads, c)) for c in rows if c[heads.index("N")] == "3" and c[1] == "mlp")
    assert "±" in repeated["val accuracy"]
    assert "lr" in heads  # the setting the sweep changed
    for line in noise_lines(comparison):  # the verdicts in words, as compare prints them
        assert html.escape(line) in page


def test_user_text_is_escaped(page):
    assert HOSTILE_NOTE not in page and "<img" not in page
    assert html.escape(HOSTILE_NOTE) in page
    figures = re.search(r"<script type='application/json' id='nnlab-figures'>(.*?)</script>", page, re.S).group(1)
    assert "</" not in figures and "<" not in figures
    json.loads(figures)  # still JSON


def test_no_network_reference(page):
    """Everything the page needs is in it: no script, style or font comes from elsewhere."""
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)
    assert re.search(r"<script>/\*\*\s*\n?\s*\* plotly\.js v", page)  # the bundle inline


def test_curves_are_the_members_mean_and_sd(report_store):
    run = next(r for r in list_runs(report_store)[0] if r.note == "three repeats")
    history = run.metrics()
    mlp = history[history["model"] == "mlp"]
    (curve,) = run_curves(run, ["loss"])["loss"]
    assert curve.members == 3 and curve.epochs == [1, 2]
    assert curve.stopped_at == 2  # min_delta 0.5: no gain counts, training ends after patience 1
    assert curve.best_epoch == run.summary.models["mlp"].best_epoch
    expected = mlp.groupby("epoch")["val_loss"]
    assert np.allclose(curve.mean["val"], expected.mean()) and np.allclose(curve.sd["val"], expected.std(ddof=1))
    assert np.allclose(curve.mean["train"], mlp.groupby("epoch")["train_loss"].mean())


def test_roc_pr_calibration_against_scikit_learn():
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import auc, average_precision_score, roc_auc_score, roc_curve

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400).astype(bool)
    score = np.round(np.clip(truth * 0.3 + rng.normal(0.35, 0.25, 400), 0.001, 0.999), 2)  # ties too
    curve = classcurves.roc(truth, score)
    assert curve.area == pytest.approx(roc_auc_score(truth, score), abs=1e-12)
    fpr, tpr, _ = roc_curve(truth, score, drop_intermediate=False)
    assert np.allclose(curve.x, fpr) and np.allclose(curve.y, tpr) and auc(fpr, tpr) == pytest.approx(curve.area)
    assert classcurves.precision_recall(truth, score).area == pytest.approx(average_precision_score(truth, score),
                                                                            abs=1e-12)
    confidence = rng.uniform(0.003, 0.997, 400)
    cal = classcurves.calibration(truth, confidence)
    fraction, mean = calibration_curve(truth, confidence, n_bins=10, strategy="uniform")
    assert np.allclose(cal.x, mean) and np.allclose(cal.y, fraction)
    counts = np.histogram(confidence, bins=np.linspace(0, 1, 11))[0]
    assert cal.area == pytest.approx(np.sum(counts[counts > 0] * np.abs(fraction - mean)) / 400)


def test_recorded_predictions_draw_roc_with_the_runs_auc(page, report_store):
    from sklearn.metrics import roc_auc_score

    run = list_runs(report_store)[0][-1]  # the plain run
    frame = pd.read_csv(run.path / "predictions" / "mlp.csv", dtype={"target": str})
    val = frame[frame["split"] == "val"]
    auc = roc_auc_score(val["target"] == "1", val["p_1"])
    assert f"ROC (validation), AUC {auc:.4f}" in page
    assert "confusion matrix (validation)" in page


def test_a_run_without_predictions_says_not_recorded(report_store, tmp_path):
    store = tmp_path / "runs"
    old = list_runs(report_store)[0][-1]
    shutil.copytree(old.path, store / old.folder)
    shutil.rmtree(store / old.folder / "predictions", ignore_errors=True)
    summary = json.loads((store / old.folder / "summary.json").read_text())
    for model in summary["models"].values():
        model.pop("per_class", None)  # as an older nnlab wrote it
    (store / old.folder / "summary.json").write_text(json.dumps(summary))
    result = invoke("report", "--runs-dir", store, "-o", tmp_path / "old.html")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "old.html").read_text()
    assert "confusion matrix: not recorded by this run" in text
    assert "ROC and precision-recall curves: not recorded by this run" in text
    assert "per-class results: not recorded by this run" in text


def test_bad_selection_and_output_are_one_line_errors(report_store, tmp_path):
    result = invoke("report", "--runs-dir", tmp_path / "empty", "-o", tmp_path / "r.html")
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        f"error: report: no runs to report in {tmp_path / 'empty'}"]
    result = invoke("report", "--runs-dir", report_store, "-o", tmp_path)
    assert result.exit_code == 2 and result.output.strip() == f"error: --out: expected a file name; got the folder '{tmp_path}'"
    result = invoke("report", "nope", "--runs-dir", report_store, "-o", tmp_path / "r.html")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_curves_overlays_several_runs(report_store, tmp_path):
    from PIL import Image

    out = tmp_path / "overlay.png"
    result = invoke("curves", "last", "last~1", "last~2", "--runs-dir", report_store, "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"curves: {out} (3 run(s))"
    width, height = Image.open(out).size
    assert width > 1000 and height > 300  # two panels side by side: loss, accuracy
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.png"]  # renamed into place, no temporary left
    result = invoke("curves", "last", "nope", "--runs-dir", report_store, "-o", out)
    assert result.exit_code == 2 and result.output.startswith("error: run 'nope': no such run")


def test_report_and_curves_never_import_torch(report_store, tmp_path):
    calls = [["report", "-o", str(tmp_path / "r.html")], ["curves", "last", "last~1", "-o", str(tmp_path / "c.png")]]
    code = ("import sys; from nnlab.cli import app\n"
            f"for args in {calls!r}:\n"
            f"    try: app([*args, '--runs-dir', {str(report_store)!r}])\n"
            "    except SystemExit as e: assert not e.code, e\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith("NO TORCH")
    assert (tmp_path / "r.html").stat().st_size > 1e6 and (tmp_path / "c.png").stat().st_size > 1e4


def test_report_takes_compares_run_filters(report_store, tmp_path):
    """--where, --tag and --note choose the runs as compare's do: the page's runs table holds exactly the
    chosen ones (the store copied: tagging writes run.json)."""
    store = tmp_path / "runs"
    shutil.copytree(report_store, store)
    runs = list_runs(store)[0]  # newest first: the sweep's two points, the repeats, the plain run
    plain, repeated = runs[-1], next(r for r in runs if r.note == "three repeats")
    assert invoke("tag", plain.id, repeated.id, "keep", "--runs-dir", store).exit_code == 0

    def reported(*args: str) -> list[str]:
        out = tmp_path / "r.html"
        result = invoke("report", *args, "--runs-dir", store, "-o", out)
        assert result.exit_code == 0, result.output
        return sorted(row[0] for row in tables_of(out.read_text())["runs"][1:])

    lr_point = next(r for r in runs if r.meta.sweep and r.spec["train"]["optimizer"]["lr"] == 0.01)
    assert reported("--tag", "keep") == sorted([plain.id, repeated.id])
    assert reported("--note", "THREE") == [repeated.id]
    assert reported("--where", "train.optimizer.lr=0.01", "--where", "model=mlp") == [lr_point.id]
    assert reported("--tag", "keep", "--where", "train.epochs>=5") == [repeated.id]
    result = invoke("report", "last", "--tag", "keep", "--runs-dir", store, "-o", tmp_path / "x.html")
    assert result.exit_code == 2 and result.output.strip() == (
        "error: report: --where, --tag and --note choose the runs; give them without RUN")
    result = invoke("report", "--tag", "nobody", "--runs-dir", store, "-o", tmp_path / "x.html")
    assert result.exit_code == 2 and result.output.strip() == (
        f"error: report: no runs to report in {store} with these --name/--sweep/--last/--where/--tag/--note")
    result = invoke("report", "--where", "val_loss<<1", "--runs-dir", store, "-o", tmp_path / "x.html")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.html").exists()


def test_the_layer_table_is_the_trained_models(report_store, tmp_path):
    """Each model's layers as recorded at train time (models/<model>.json): the names are the saved weights'
    modules, the parameters add up to the weights' real count (by hand: 3*8+8, 8*1+1) and to summary.json's."""
    from safetensors.numpy import load_file

    run = list_runs(report_store)[0][-1]  # the plain run: mlp hidden [8] on 3 features, binary
    out = tmp_path / "one.html"
    assert invoke("report", run.folder, "--runs-dir", report_store, "-o", out).exit_code == 0
    heads, *rows = tables_of(out.read_text())["layers"]  # the baseline has no layer table: mlp's only
    assert heads == ["layer", "type", "output shape", "parameters"]
    assert rows == [["0", "Linear", "[B, 8]", "32"], ["1", "ReLU", "[B, 8]", "0"], ["2", "Linear", "[B, 1]", "9"],
                    ["total", "", "", "41"]]
    weights = load_file(run.path / "models" / "mlp.safetensors")
    assert sum(w.size for w in weights.values()) == 41 == run.summary.models["mlp"].params
    assert {key.rsplit(".", 1)[0] for key in weights} == {r[0] for r in rows[:-1] if r[3] != "0"}


def test_a_model_file_without_its_layer_table_still_reads(report_store, tmp_path):
    """An older models/<model>.json (no layers) and a damaged table: the report says not recorded, and the
    file still reads for predicting."""
    store = tmp_path / "runs"
    old = list_runs(report_store)[0][-1]
    shutil.copytree(old.path, store / old.folder)
    info = store / old.folder / "models" / "mlp.json"
    saved = json.loads(info.read_text())
    for layers in (None, [{"name": "0"}]):
        if layers is None:
            saved.pop("layers")
        else:
            saved["layers"] = layers
        info.write_text(json.dumps(saved))
        (run,) = list_runs(store)[0]
        assert run.model_info("mlp").layers is None and run.model_info("mlp").kind == "mlp"
        result = invoke("report", "--runs-dir", store, "-o", tmp_path / "old.html")
        assert result.exit_code == 0, result.output
        assert "layer table not recorded by this run" in (tmp_path / "old.html").read_text()


def test_each_model_shows_its_decision_threshold_and_binary_extras(report_store, tmp_path):
    """A binary model's per-class section states PR AUC, Brier and the F1 threshold found on validation, the
    numbers summary.json holds, and whether test was scored at it (train.threshold: val_f1) or at 0.5."""
    run = list_runs(report_store)[0][-1]
    out = tmp_path / "one.html"
    assert invoke("report", run.folder, "--runs-dir", report_store, "-o", out).exit_code == 0
    lines = [html.unescape(m) for m in re.findall(r"<p class=scores>(.*?)</p>", out.read_text())]
    mlp = run.summary.models["mlp"]
    (test_line,) = [line for line in lines if line.startswith("mlp test:")]
    shown = re.search(r"F1 threshold on val ([0-9.]+) \(test at 0\.5; train\.threshold: val_f1 applies it\)", test_line)
    assert shown and abs(float(shown.group(1)) - mlp.val["f1_threshold"]) < 5e-4, test_line
    for metric in ("pr_auc", "brier"):
        value = re.search(rf"{metric} ([0-9.]+)", test_line)
        assert value and abs(float(value.group(1)) - mlp.test[metric]) < 5e-4, test_line
    assert any(line.startswith("mlp val:") for line in lines) and any(line.startswith("baseline val:") for line in lines)
