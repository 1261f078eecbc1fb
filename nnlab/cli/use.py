"""`predict`, `init`, `check`: use a trained run, start a spec, re-check gates."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from nnlab.cli.base import RunsDirOption, echo, stderr, fail, stdout, warn, app
from nnlab.errors import NnlabError


class PredictFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"
    json = "json"


@app.command("predict")
def predict_command(
    ref: str = typer.Argument(..., metavar="RUN", help="id, unique id prefix, folder path, last or last~N."),
    data: list[Path] = typer.Argument(..., help="Rows to predict (CSV, TSV or Parquet) with the training columns; "
                                                "for a model trained on image files, folders or image files.",
                                      show_default=False),
    model: Optional[str] = typer.Option(None, "--model", "-m", show_default=False,
                                        help="The model to use (default: the best by validation)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", show_default=False,
                                       help="Write the predictions to this file (default: stdout)."),
    format: Optional[PredictFormat] = typer.Option(None, "--format", "-f", show_default=False,
                                                   help="csv, parquet or json (default: from --out's suffix, "
                                                        "else csv)."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Predict with a trained model: one output row per row of DATA, in the same order.

    Columns: `prediction` (in the target's own labels or units) and, for classification, `p_<class>` for
    each class. Columns DATA has beyond the training columns are ignored (a note on stderr says which).
    """
    from nnlab import api
    from nnlab.api.images import is_image_input, read_image_files

    try:
        run = api.load_run(ref, runs_dir)
        files = None
        if len(data) > 1 or is_image_input(data[0]):  # folders or image files: decoded as in training, a row each
            chosen = run.model(model)
            frame, files = read_image_files(data, chosen)
        else:
            frame = api.read_rows(data[0])
            chosen = run.model(model)
        result = api.predict_rows(chosen, frame, data[0].name)
        if files is not None:
            result.insert(0, "file", files)
        column_notes = api.column_notes(chosen, frame)
        source = next((p for p in data if out is not None and out.resolve() == p.resolve()), data[0])
        text = api.write_predictions(result, out, format.value if format else None, source)
    except NnlabError as e:
        fail(e)
    notes = [f"model '{chosen.name}' of run {run.id}", *column_notes]
    if isinstance(chosen, api.SavedEnsemble):
        notes.insert(1, "the ensemble averages " + ", ".join(f"{model.name} × {weight:.4g}"
                                                            for weight, model in chosen.members))
    if out is not None:
        notes.append(f"wrote {len(result):,} predictions to {out}")
    stderr().print("\n".join(f"note: {n}" for n in notes), markup=False)
    if text is not None:
        # json lines end without a newline in some pandas versions: every output ends its last line
        text = text if not text or text.endswith("\n") else text + "\n"
        echo(text, json=(format.value if format else None) == "json")


@app.command("init")
def init_command(
    data: Path = typer.Argument(..., help="The data file (CSV, TSV, Parquet or .npz), or a folder of image "
                                          "class subfolders.", show_default=False),
    target: Optional[str] = typer.Option(None, "--target", "-t", show_default=False,
                                         help="The column to predict (a folder of images: label, its default)."),
    out: Path = typer.Option(Path("spec.yaml"), "--out", "-o", help="Where to write the spec."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
) -> None:
    """Write a short, commented starter spec for DATA: a baseline and one small network that fits the data.

    The task and each column's kind (numeric, categorical, text, left out) are inferred from the data; the
    spec is checked like `nnlab validate` and `nnlab train` would check it before it is written.
    """
    from nnlab.spec.data import IMAGE_FOLDER_TARGET
    from nnlab.starter import write_starter

    if target is None and not data.is_dir():
        fail(NnlabError("--target: give the column to predict (nnlab init DATA --target COLUMN)"))
    try:
        starter = write_starter(data, target or IMAGE_FOLDER_TARGET, out, force)
    except NnlabError as e:
        fail(e)
    if starter.image_files:
        found = f"image files read as {list(starter.array_shape)} ([C, H, W]), {starter.task_reason}"
    elif starter.array_kind:
        found = f"X: {starter.array_kind}s, {list(starter.array_shape)} each"
    else:
        found = "columns: " + ", ".join(f"{len(starter.named(k))} {k}" for k in
                                        ("numeric", "categorical", "text", "left out") if starter.named(k))
    stdout().print(f"wrote {out}: {starter.task} task on '{starter.target}', {starter.rows:,} rows; {found}",
                 markup=False, soft_wrap=True)
    stdout().print(f"next: nnlab train {out}", markup=False, soft_wrap=True)


@app.command("check")
def check_command(
    ref: str = typer.Argument(..., metavar="RUN", help="id, unique id prefix, folder path, last or last~N."),
    expect: list[str] = typer.Option([], "--expect", "-e", show_default=False,
                                     help="A gate KEY=RULE, e.g. 'mlp.test.accuracy=>=0.92' (repeatable). "
                                          "Default: the gates in the run's spec."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Re-check a finished run's `expect` gates from its recorded scores, without training.

    Prints one line per gate. Exit codes: 0 every gate passes, 1 a gate missed, 2 a bad run reference or rule.
    """
    from nnlab import runstore
    from nnlab.report.check import check_run

    try:
        run = runstore.resolve_run(ref, runstore.store_path(runs_dir))
        report = check_run(run, expect)
    except NnlabError as e:
        fail(e)
    warn(report.notes)
    for line in report.lines():
        stdout().print(line, markup=False, soft_wrap=True)
    if not report.passed:
        raise typer.Exit(1)
