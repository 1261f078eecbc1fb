"""`export`: hand runs to MLflow or TensorBoard (run folders read only, no torch), or a model to ONNX."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from nnlab.cli.base import RunsDirOption, fail, stdout, warn, app
from nnlab.errors import NnlabError


class Target(str, Enum):
    mlflow = "mlflow"
    tensorboard = "tensorboard"
    onnx = "onnx"


@app.command("export")
def export_command(
    refs: list[str] = typer.Argument(..., metavar="RUN...", show_default=False,
                                     help="Runs by id, unique prefix, folder, last or last~N. With --to "
                                          "tensorboard the last one may be DIR, the log folder."),
    to: Target = typer.Option(..., "--to", help="mlflow: one MLflow run per model; tensorboard: event files; "
                                                "onnx: one model as an .onnx file.", show_default=False),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", show_default=False,
                                               help="--to mlflow: the tracking store (http://..., sqlite:///..., "
                                                    "file:...); default $MLFLOW_TRACKING_URI, else MLflow's."),
    experiment: Optional[str] = typer.Option(None, "--experiment", show_default=False,
                                             help="--to mlflow: the MLflow experiment (default: the spec name)."),
    model: Optional[list[str]] = typer.Option(None, "--model", "-m", show_default=False,
                                              help="Only this model (repeatable); --to onnx: the model to export "
                                                   "(default: the best by validation)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", show_default=False,
                                       help="--to tensorboard: the log folder; --to onnx: the .onnx file "
                                            "(default <model>.onnx)."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Export runs to the tools teams already run. The run folder stays the source of truth; exporting again
    adds only what is missing (MLflow) or rewrites the same files (TensorBoard), never a duplicate.

    nnlab export last --to mlflow --tracking-uri sqlite:///mlflow.db, then mlflow ui --backend-store-uri
    sqlite:///mlflow.db; nnlab export last --to tensorboard tb, then tensorboard --logdir tb.
    """
    from nnlab import runstore

    try:
        store = runstore.store_path(runs_dir)
        if to is Target.tensorboard and out is None:
            if len(refs) < 2:
                raise NnlabError("--to tensorboard: give the log folder: nnlab export RUN --to tensorboard DIR")
            refs, out = refs[:-1], Path(refs[-1])
        listed, warnings = runstore.list_runs(store)
        runs = [runstore.resolve_run(ref, store, listed) for ref in dict.fromkeys(refs)]
        if to is Target.mlflow:
            from nnlab.export import mlflow_export

            lines = mlflow_export.export_runs(runs, tracking_uri, experiment, model)
        elif to is Target.tensorboard:
            from nnlab.export import tensorboard_export

            lines = tensorboard_export.export_runs(runs, out, model)
        else:
            from nnlab.export import onnx_export

            if len(runs) != 1 or (model and len(model) > 1):
                raise NnlabError("--to onnx: one run and one --model at a time")
            lines = onnx_export.export_model(runs[0], model[0] if model else None, out)
    except NnlabError as e:
        fail(e)
    console = stdout()
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)
    warn([*warnings, *(w for run in runs for w in run.warnings)])
