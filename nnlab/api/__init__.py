"""Using a finished run from Python: `nnlab.load_run("last")`, then `.predict(frame)`, `.metrics()`, `.summary`.

A model is rebuilt from what its run folder holds: `models/<model>.json` (its spec, the input description and
the preprocessing: scaler, category and label maps, vocabulary) and `models/<model>.safetensors` (weights,
which load without running code). Nothing is unpickled, and scikit-learn is never imported.

    run = nnlab.load_run("last")          # or an id, a unique id prefix, a folder, last~N
    run.models                            # ['mlp', 'mlp-dropout', 'baseline']: best by validation first
    run.predict(frame)                    # pandas in, pandas out: `prediction` and `p_<class>` columns
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import math
import os

import numpy as np
import pandas as pd

from nnlab.errors import RunError
from nnlab.core.inputs import SparseRows
from nnlab.core.jsonvalue import JSONObject, JSONValue
from nnlab.core.columns import higher_is_better
from nnlab.core.records import ModelInfo, RunSummary

if TYPE_CHECKING:  # torch and the data package load when a model is rebuilt, not when nnlab is imported
    from torch import nn

    from nnlab.data import Preprocessor
    from nnlab.runstore import Run

PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "p_"
PREDICT_BATCH = 65_536  # rows per forward pass: bounded memory on large files
BASELINE_KINDS = ("logistic", "softmax", "linear", "auto")  # what a baseline's json `kind` reads
ENSEMBLE_KIND = "ensemble"  # a ModelResult of this kind is the run's ensemble: models/<name>.json lists members


def load_run(ref: str = "last", runs_dir: str | Path | None = None) -> LoadedRun:
    """A run from the store by reference: `last`, `last~N`, an id, a unique id prefix or a folder path.
    The store is `runs_dir`, else $NNLAB_RUNS_DIR, else ./runs. Raises RunError (one line) if there is none."""
    from nnlab import runstore

    return LoadedRun(runstore.resolve_run(str(ref), runstore.store_path(runs_dir)))


@dataclass
class SavedModel:
    """One model of a run, rebuilt on the CPU with its preprocessing, ready to predict."""

    name: str
    kind: str
    module: nn.Module  # in eval mode, on the CPU
    preprocessor: Preprocessor
    baseline: bool  # the baseline reads the baseline input (TF-IDF rows for text)

    @property
    def columns(self) -> list[str]:
        """The input columns it reads; other columns of a frame are ignored."""
        return list(self.preprocessor.columns)

    def ignored_columns(self, frame: pd.DataFrame | np.ndarray) -> list[str]:
        if isinstance(frame, np.ndarray):
            return []
        used = set(self.columns)
        return [str(c) for c in frame.columns if c not in used]

    @property
    def array_shape(self) -> Optional[tuple[int, ...]]:
        """The shape of one example an array to predict must have: a sequence's [T, F], an image's [C, H, W],
        or [F] for a table model trained on an .npz X (columns x0, x1, ...); None for a table of named columns."""
        from nnlab.data.read import NPZ_FEATURE_PREFIX

        features = self.preprocessor.features
        if self.preprocessor.kind in ("sequence", "image"):
            return tuple(features.shape)  # type: ignore[union-attr]
        if self.preprocessor.kind == "table" and not features.categories and features.numeric == [  # type: ignore[union-attr]
                f"{NPZ_FEATURE_PREFIX}{i}" for i in range(len(self.columns))]:
            return (len(self.columns),)
        return None

    def array_rows(self, x: np.ndarray) -> pd.DataFrame:
        """An array [N, *array_shape] (or flattened, [N, values per example]) as the frame the model reads;
        any other shape is an error naming the expected and the given one."""
        from nnlab.core.messages import names_list
        from nnlab.errors import DataError

        expected = self.array_shape
        if expected is None:
            raise DataError(f"data: model '{self.name}' reads named columns ({names_list(self.columns, 6)}), not an "
                            "array: pass a pandas DataFrame with those columns")
        flat = math.prod(expected)
        if x.ndim < 2 or tuple(x.shape[1:]) not in (expected, (flat,)):
            raise DataError(f"data: X has shape {list(x.shape)}; model '{self.name}' reads examples of shape "
                            f"{list(expected)} (X of shape [N, {', '.join(map(str, expected))}]"
                            + (f" or [N, {flat}])" if len(expected) > 1 else ")"))
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
            raise DataError(f"data: X holds {x.dtype} values; expected real numbers")
        return pd.DataFrame(x.reshape(len(x), flat), columns=self.columns)

    @property
    def task(self) -> str:
        return self.preprocessor.target.task

    @property
    def classes(self) -> list[JSONValue]:
        return list(self.preprocessor.target.classes)

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities (binary: of the positive class [N]; multiclass [N, K]) or, for regression,
        standardized predictions: what `Preprocessor.decode` turns into labels or units."""
        import torch

        from nnlab.models.tensors import as_tensor
        from nnlab.training.metrics import probabilities

        x = self.preprocessor.baseline_transform(frame) if self.baseline else self.preprocessor.transform(frame)
        with torch.inference_mode():
            if isinstance(x, SparseRows):  # TF-IDF rows: sparse, so one product; densified they can be gigabytes
                return probabilities(self.task, self.module(as_tensor(x))).numpy()
            chunks = [probabilities(self.task, self.module(torch.from_numpy(x[start:start + PREDICT_BATCH]))).numpy()
                      for start in range(0, len(x), PREDICT_BATCH)]
        width = (len(self.classes),) if self.task == "multiclass" else ()
        return np.concatenate(chunks) if chunks else np.zeros((0, *width), dtype=np.float32)

    def unseen_categories(self, frame: pd.DataFrame) -> dict[str, pd.Series]:
        """Categorical columns -> their values in `frame` that training never saw (one-hot encoded as no
        known level). A column where no value is known is an error: it is the wrong column or type."""
        from nnlab.core.messages import names_list
        from nnlab.errors import DataError

        unseen = {}
        for column, levels in getattr(self.preprocessor.features, "categories", {}).items():
            values = frame[column].dropna() if column in frame else pd.Series([], dtype=object)
            new = values[~values.isin(levels)]
            if len(new) and len(new) == len(values):
                raise DataError(f"data: column '{column}' holds none of the values it had in training "
                                f"({names_list(levels, 6)}); got values such as {str(new.iloc[0])[:40]!r}")
            if len(new):
                unseen[column] = new
        return unseen

    def predict(self, frame: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """One row per row of `frame` (same index): the prediction in the target's labels or units and, for
        classification, one probability column per class (`p_<class>`). A model trained on an .npz X (or on
        sequences or images) also takes an array X of the training shape: see `array_shape`."""
        if isinstance(frame, np.ndarray):
            frame = self.array_rows(frame)
        self.unseen_categories(frame)
        outputs = self.outputs(frame)
        result = pd.DataFrame({PREDICTION_COLUMN: self.preprocessor.decode(outputs)}, index=frame.index)
        if self.task == "binary":
            negative, positive = self.classes
            result[f"{PROBABILITY_PREFIX}{negative}"] = 1.0 - outputs
            result[f"{PROBABILITY_PREFIX}{positive}"] = outputs
        elif self.task == "multiclass":
            for k, label in enumerate(self.classes):
                result[f"{PROBABILITY_PREFIX}{label}"] = outputs[:, k]
        return result


@dataclass
class SavedEnsemble(SavedModel):
    """The run's ensemble (`ensemble:` in the spec): its members rebuilt from their saved weights, whose
    outputs it averages with the weights models/ensemble.json records."""

    members: list[tuple[float, SavedModel]] = field(default_factory=list)

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """The members' outputs (probabilities, or standardized predictions), weighted and summed."""
        return sum(weight * model.outputs(frame).astype(np.float64) for weight, model in self.members)


class LoadedRun:
    """A finished (or cut-off) run: its results, its epoch table, and its models for prediction."""

    def __init__(self, run: Run):
        self.run = run
        self._loaded: dict[str, SavedModel] = {}

    def __repr__(self) -> str:
        models = self.models if self.run.summary is not None else "no results yet"
        return f"LoadedRun({self.id!r}, status={self.run.status!r}, models={models})"

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def spec(self) -> JSONObject:
        """The resolved spec the run trained with."""
        return self.run.spec

    @property
    def summary(self) -> RunSummary:
        """summary.json as a typed `RunSummary` (task, monitor, each model's results, gates)."""
        summary = self.run.summary
        if summary is None:
            raise RunError(f"run '{self.id}' has no results yet (status {self.run.status}; no summary.json)")
        return summary

    def metrics(self) -> pd.DataFrame:
        """The epoch table (metrics.csv): one row per model, member and epoch."""
        return self.run.metrics()

    @cached_property
    def models(self) -> list[str]:
        """The models that saved weights, best first by the monitored validation metric (the run's
        `monitor`): completed models by score, then the others."""
        files = self.run.files()
        saved = [name for name, result in self.summary.models.items()
                 if f"model:{name}.json" in files and (f"model:{name}.safetensors" in files
                                                       or result.kind == ENSEMBLE_KIND)]
        return sorted(saved, key=self._rank)

    @property
    def best_model(self) -> Optional[str]:
        """The completed model with the best monitored validation score (what `predict` uses by default)."""
        ranked = [name for name in self.models if self.summary.models[name].finished]
        return ranked[0] if ranked else None

    def _rank(self, name: str) -> tuple[int, float]:
        result = self.summary.models[name]
        metric = self.summary.monitor.removeprefix("val_")
        score = result.score("val", metric)
        if not result.finished or score is None:
            return (1, 0.0)
        return (0, -score if higher_is_better(metric) else score)

    def model(self, name: Optional[str] = None) -> SavedModel:
        """A model rebuilt for prediction: `name`, or the best one."""
        name = name or self.best_model
        if name is None:
            saved = f"; name one with --model (saved: {', '.join(self.models)})" if self.models else ""
            raise RunError(f"run '{self.id}': no completed model with saved weights to choose by default{saved}")
        if name not in self.models:
            raise RunError(f"--model: run '{self.id}' has no saved model '{name}' (models: "
                           f"{', '.join(self.models) or 'none'})")
        if name not in self._loaded:
            ensemble = self.summary.models[name].kind == ENSEMBLE_KIND
            self._loaded[name] = _rebuild_ensemble(self.run, name) if ensemble else _rebuild(self.run, name)
        return self._loaded[name]

    def predict(self, frame: pd.DataFrame | np.ndarray, model: Optional[str] = None) -> pd.DataFrame:
        """Predictions for the rows of `frame` (pandas in, pandas out, same index): `prediction` in the
        target's labels or units, and `p_<class>` probabilities for classification. Raises DataError
        naming missing columns or columns of the wrong type; other columns are ignored. A model trained on
        an .npz X also takes an array X [N, ...] of the training shape (or flattened, [N, values])."""
        return self.model(model).predict(frame)

    def ignored_columns(self, frame: pd.DataFrame | np.ndarray, model: Optional[str] = None) -> list[str]:
        """The columns of `frame` the model does not read."""
        return self.model(model).ignored_columns(frame)


def column_notes(model: SavedModel, frame: pd.DataFrame | np.ndarray) -> list[str]:
    """What a person predicting should know about the columns: ignored ones, categories never seen."""
    if isinstance(frame, np.ndarray):
        return []
    ignored = model.ignored_columns(frame)
    notes = [f"ignored column(s) the model does not read: {', '.join(ignored[:12])}"
             + (f" and {len(ignored) - 12} more" if len(ignored) > 12 else "")] if ignored else []
    for column, values in model.unseen_categories(frame).items():
        examples = ", ".join(repr(v) for v in values.unique()[:3])
        notes.append(f"column '{column}': {len(values)} value(s) not seen in training ({examples}) are encoded "
                     "as none of the known categories")
    return notes


def _rebuild(run: Run, name: str) -> SavedModel:
    """The module from its spec and input description, the weights from safetensors, strictly matched."""
    from safetensors import SafetensorError

    from nnlab.data import Preprocessor
    from nnlab.runstore.layout import MODELS_DIR
    from nnlab.core.files import DamagedFile

    try:
        info = run.model_info(name)
        preprocessor = Preprocessor.from_state(info.preprocessing)
        baseline = name == "baseline" or info.kind in BASELINE_KINDS
        module = _build_module(info, preprocessor, baseline)
        module.load_state_dict(run.load_weights(name), strict=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError, DamagedFile) as e:
        first = f"no {e.args[0]!r} in {name}.json" if isinstance(e, KeyError) else (
            str(e).replace(f"{run.path / MODELS_DIR}{os.sep}", "") if isinstance(e, DamagedFile) else (
            str(e).strip().splitlines()[0][:200] if str(e).strip() else e.__class__.__name__))
        raise RunError(f"run '{run.id}': model '{name}' cannot be rebuilt from its saved files ({first})") from None
    module.eval()
    return SavedModel(name, info.kind, module, preprocessor, baseline)


def _rebuild_ensemble(run: Run, name: str) -> SavedEnsemble:
    """Every member of models/<name>.json rebuilt from its own saved files, with its recorded weight."""
    from nnlab.core.files import DamagedFile

    try:
        info = run.ensemble_info(name)
    except (OSError, ValueError, DamagedFile) as e:
        raise RunError(f"run '{run.id}': model '{name}' cannot be rebuilt from its saved files ({name}.json: "
                       f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else e.__class__.__name__})"
                       ) from None
    members = [(member.weight, _rebuild(run, member.weights)) for member in info.members]
    lead = next((model for _, model in members if not model.baseline), members[0][1])
    return SavedEnsemble(name, ENSEMBLE_KIND, None, lead.preprocessor, False, members)


def _build_module(info: ModelInfo, preprocessor: Preprocessor, baseline: bool) -> nn.Module:
    from nnlab.models import build_baseline, build_model

    if baseline:
        if info.n_inputs is None or info.n_outputs is None:  # an edited file: `no 'n_inputs' in baseline.json`
            raise KeyError("n_inputs" if info.n_inputs is None else "n_outputs")
        return build_baseline(info.n_inputs, info.n_outputs)
    from pydantic import TypeAdapter

    from nnlab.spec import ModelSpec

    if info.spec is None:
        raise KeyError("spec")
    spec = TypeAdapter(ModelSpec).validate_python(info.spec)
    return build_model(spec, preprocessor.info())


# --- files: what `nnlab predict` reads and writes ----------------------------------------------------------

OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}


def read_rows(path: Path) -> pd.DataFrame | np.ndarray:
    """The rows to predict, read with the same readers and checks as training data: a frame from CSV, TSV or
    Parquet; from an .npz its array X (a y in it is not read)."""
    from nnlab.data.read import read_source
    from nnlab.errors import DataError
    from nnlab.spec import DataSpec

    try:
        # DataSpec needs a target to be valid; reading rows never looks at it.
        source = read_source(DataSpec(path=str(path), target="-"), Path.cwd(), 0, rows_only=True)
    except DataError as e:
        raise DataError(f"DATA: {str(e).removeprefix('data.path: ')}") from None
    if len(source.frame) == 0:
        raise DataError(f"DATA: {path.name} has no rows to predict")
    if source.array_shape is not None:
        return source.frame.to_numpy().reshape(len(source.frame), *source.array_shape)
    return source.frame


def predict_rows(model: SavedModel, frame: pd.DataFrame | np.ndarray, source: str) -> pd.DataFrame:
    """`model.predict(frame)`, with column errors naming the file the rows came from."""
    from nnlab.errors import DataError

    try:
        return model.predict(frame)
    except DataError as e:
        raise DataError(f"{source}: {str(e).removeprefix('data: ')}") from None


def write_predictions(result: pd.DataFrame, out: Optional[Path], format: Optional[str],
                      source: Optional[Path] = None) -> Optional[str]:
    """Write to `out` in `format` (default: from out's suffix, else csv); without `out`, return the text
    for stdout (csv or json lines). `source`, the file the rows came from, is never overwritten."""
    from nnlab.errors import DataError

    if out is not None and source is not None and _same_file(out, source):
        raise DataError(f"--out {out}: this is the file the rows were read from ({source}); writing there would "
                        "replace the data: choose another file")
    format = format or OUTPUT_FORMATS.get(out.suffix.lower() if out else "", "csv")
    if out is None:
        if format == "parquet":
            raise DataError("--format parquet needs --out FILE (Parquet is binary, not for a terminal)")
        return _as_text(result, format)
    from nnlab.runstore.layout import write_atomic

    try:  # renamed into place: a symlink at `out` is replaced, never written through
        write_atomic(out, result.to_parquet(index=False) if format == "parquet" else _as_text(result, format))
    except ImportError as e:
        raise DataError(f"--out {out}: writing Parquet needs an extra package: {e}") from None
    except OSError as e:
        raise DataError(f"--out {out}: cannot write ({e.strerror or e})") from None
    return None


def _same_file(a: Path, b: Path) -> bool:
    """The same file: by device and inode when both exist (hard links, symlinks), else by resolved path."""
    try:
        return a.exists() and b.exists() and a.samefile(b) or a.resolve() == b.resolve()
    except OSError:
        return False


def _as_text(result: pd.DataFrame, format: str) -> str:
    if format == "json":
        return result.to_json(orient="records", lines=True, force_ascii=False, double_precision=15)
    return result.to_csv(index=False)
