"""`nnlab init`: from a data file and a target column to a short, commented starter spec. Torch-free.

The columns are looked at once (numeric, categorical, free text, or left out with the reason), the task is
inferred the way training will infer it, and the spec is checked with the same code as `nnlab validate` and
the data preparation of `nnlab train` before it is written, so that what `init` writes trains as is.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from nnlab.errors import DataError, SpecError
from nnlab.runstore.layout import write_atomic
from nnlab.spec import MODEL_NAME, DataSpec

MAX_CATEGORIES = 20  # the spec's default data.max_categories: more distinct values cannot be one-hot encoded
TEXT_MIN_WORDS = 5  # a non-numeric column whose values average this many tokens is free text
TEXT_LEN_RANGE = (16, 256)  # text.max_len: the 95th percentile of the token counts, kept in this range
ARRAY_KINDS = {2: "sequence", 3: "image"}  # an .npz X of [N, T, F] or [N, C, H, W]: its one way to be read
SMALL_TABLE_ROWS, BIG_TABLE_ROWS = 1_000, 20_000  # batch sizes 32 / 64 / 256: enough steps per epoch on small
# tables, fewer and cheaper steps on big ones


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # numeric | categorical | text | left out
    why: str = ""


@dataclass(frozen=True)
class Starter:
    """What init found in the data, and the choices the starter spec makes from it."""

    source: str  # the data file's name
    data_path: str  # as written in the spec: relative to the spec's folder
    target: str
    task: str
    task_reason: str
    rows: int
    columns: list[Column]
    text_max_len: int = 0
    missing: tuple[str, ...] = ()  # used feature columns with missing values
    array_shape: tuple[int, ...] = ()  # an .npz X of sequences [T, F] or images [C, H, W]: one example's shape
    image_files: bool = False  # a folder of image class subfolders (array_shape: the [C, H, W] chosen)
    bad_images: int = 0  # image files whose header could not be read: the spec skips bad files

    @property
    def array_kind(self) -> Optional[str]:
        return ARRAY_KINDS.get(len(self.array_shape))

    @property
    def text_column(self) -> Optional[str]:
        return next((c.name for c in self.columns if c.kind == "text"), None)

    def named(self, kind: str) -> list[Column]:
        return [c for c in self.columns if c.kind == kind]


def plan_starter(data: Path, target: str, spec_path: Path) -> Starter:
    """Read `data` and choose a kind for every column. Raises DataError naming the problem."""
    from nnlab.data.read import read_source
    from nnlab.core.messages import names_list
    from nnlab.data.target import fit_target

    if data.is_dir():
        return _image_starter(data, target, spec_path)
    data_spec = DataSpec(path=str(data.resolve()), target=target)
    source = read_source(data_spec, Path.cwd(), 0)
    frame = source.frame
    if target not in frame.columns:
        hint = ("; the file looks separated by something other than commas (nnlab reads .csv as comma-separated "
                "and .tsv as tab-separated)") if len(frame.columns) == 1 and any(
                    sep in str(frame.columns[0]) for sep in ";\t|") else ""
        raise DataError(f"--target: column '{target}' not found in {data.name} "
                        f"(columns: {names_list(frame.columns)}){hint}")
    if frame[target].isna().any():
        raise DataError(f"--target: column '{target}' has {int(frame[target].isna().sum())} missing values; "
                        "drop those rows from the file first")
    coder, _, why = fit_target(data_spec, frame[target])
    task = coder.task
    if task == "binary":
        why += f"; positive class {coder.classes[-1]!r}, set data.positive to change it"
    shape = tuple(source.array_shape or ())
    if len(shape) in ARRAY_KINDS:  # every column is one number of an array: nothing to choose per column
        return Starter(data.name, _relative(data, spec_path.parent), target, task, why, len(frame), [],
                       array_shape=shape)
    columns = [Column(name, "left out", f"type {source.unusable[name]} is not one nnlab reads")
               if name in source.unusable else _column_kind(name, frame[name])
               for name in frame.columns if name != target]
    columns = _one_text_column(columns, frame)
    text = next((c.name for c in columns if c.kind == "text"), None)
    missing = tuple(c.name for c in columns if c.kind in ("numeric", "categorical") and frame[c.name].isna().any())
    return Starter(data.name, _relative(data, spec_path.parent), target, task, why, len(frame), columns,
                   _text_max_len(frame[text]) if text else 0, missing)


IMAGE_MAX_SIDE = 64  # init's data.image.size: the photos' most common size, each side at most this


def _image_starter(folder: Path, target: str, spec_path: Path) -> Starter:
    """A folder of class subfolders: the images' most common size (capped) and grey or colour, read from the
    file headers only (decoding waits for `train`)."""
    from collections import Counter

    from nnlab.data.images import IMAGE_SUFFIXES

    try:
        from PIL import Image
    except ImportError:
        raise DataError("DATA: reading image files needs Pillow: pip install -e '.[images]' in the nnlab checkout") from None
    files = [p for p in sorted(folder.glob("*/**/*")) if p.suffix.lower() in IMAGE_SUFFIXES
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    sizes, grey, bad = Counter(), 0, 0
    for path in files[:200]:  # enough to see the usual size
        try:
            with Image.open(path) as img:
                sizes[(img.height, img.width)] += 1
                grey += img.mode in ("1", "L", "I;16", "I", "F")
        except (OSError, SyntaxError, ValueError):  # broken files seen: the spec skips them (and counts them)
            bad += 1
    if not sizes:
        raise DataError(f"DATA: folder {folder.name} has no readable image files in class subfolders "
                        f"({folder.name}/<label>/<image files>: {', '.join(IMAGE_SUFFIXES)})")
    height, width = (min(side, IMAGE_MAX_SIDE) for side in sizes.most_common(1)[0][0])
    channels = 1 if grey == sum(sizes.values()) else 3
    classes = {p.relative_to(folder).parts[0] for p in files}
    task = "binary" if len(classes) == 2 else "multiclass"
    why = f"{len(classes)} class subfolders"
    return Starter(folder.name, _relative(folder, spec_path.parent), target, task, why, len(files), [],
                   array_shape=(channels, height, width), image_files=True, bad_images=bad)


def _column_kind(name: str, series: pd.Series) -> Column:
    present = series.dropna()
    if present.empty:
        return Column(name, "left out", "every value is missing")
    if pd.api.types.is_bool_dtype(series):
        return Column(name, "categorical")
    if pd.api.types.is_numeric_dtype(series):
        if _row_number(present):
            return Column(name, "left out", "a row number (every value once, counting up by 1)")
        return Column(name, "numeric")
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().mean() >= 0.9:
        junk = present[numbers.isna()].unique()[:3]
        return Column(name, "left out", f"numeric except for {', '.join(map(repr, junk))}: make those cells "
                                        "empty, then use it")
    if present.nunique() <= MAX_CATEGORIES:
        return Column(name, "categorical")
    if _mean_words(present) >= TEXT_MIN_WORDS:
        return Column(name, "text")
    return Column(name, "left out", f"{present.nunique()} distinct values: an identifier, or too many "
                                    "categories to one-hot encode")


def _row_number(values: pd.Series) -> bool:
    """An index column saved with the data (0, 1, 2, ... in some order): it tells a model nothing real."""
    if len(values) < 3 or not pd.api.types.is_integer_dtype(values):
        return False
    ordered = np.sort(values.to_numpy())
    return bool(np.all(np.diff(ordered) == 1))


def _mean_words(values: pd.Series) -> float:
    from nnlab.data.text import tokenize

    sample = values.astype(str).head(2000)
    return float(np.mean([len(tokenize(v)) for v in sample])) if len(sample) else 0.0


def _one_text_column(columns: list[Column], frame: pd.DataFrame) -> list[Column]:
    """nnlab reads one text column (numeric and categorical columns beside it): keep the wordiest one."""
    texts = [c.name for c in columns if c.kind == "text"]
    if not texts:
        return columns
    chosen = max(texts, key=lambda name: _mean_words(frame[name].dropna()))
    return [c if c.name == chosen or c.kind != "text" else Column(c.name, "left out", "a model reads one text "
                                                                  f"column ({chosen}) and the table beside it")
            for c in columns]


def _text_max_len(values: pd.Series) -> int:
    from nnlab.data.text import tokenize

    counts = [len(tokenize(v)) for v in values.dropna().astype(str).head(5000)]
    p95 = int(np.ceil(np.percentile(counts, 95))) if counts else TEXT_LEN_RANGE[0]
    return int(min(max(-(-p95 // 8) * 8, TEXT_LEN_RANGE[0]), TEXT_LEN_RANGE[1]))


def _relative(data: Path, folder: Path) -> str:
    try:
        return os.path.relpath(data.resolve(), folder.resolve())
    except ValueError:  # another drive on Windows
        return str(data.resolve())


def spec_name(data: Path) -> str:
    """A run name from the file name, within the spec's name pattern."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", data.stem).strip("-._") or "starter"
    return name if re.match(MODEL_NAME, name) else f"run-{name}"


def write_starter(data: Path, target: str, out: Path, force: bool = False) -> Starter:
    """Plan, render and check the starter spec, then write it. Nothing is written if a check fails."""
    if (out.exists() or out.is_symlink()) and not force:  # a dangling link is there too
        raise SpecError(f"{out}: the file exists; choose another name with -o or overwrite it with --force")
    if out.is_dir():
        raise SpecError(f"{out}: is a folder; give a file name with -o, e.g. -o {out / 'spec.yaml'}")
    starter = plan_starter(data, target, out)
    text = render_spec(starter, spec_name(data))
    _check_trains(text, out)
    try:  # renamed into place: a symlink at OUT is replaced by the spec, its target never written
        write_atomic(out, text)
    except OSError as e:
        raise SpecError(f"{out}: cannot write the spec ({e.strerror or e})") from None
    return starter


def _check_trains(text: str, out: Path) -> None:
    """The checks of `nnlab validate` and the data preparation of `nnlab train`, on the text to be written."""
    from nnlab.data import prepare
    from nnlab.spec import parse_yaml, validate_spec

    spec = validate_spec(parse_yaml(text, out.name), out.name)
    try:
        prepare(spec.data, out.parent, spec.seed)
    except DataError as e:  # a problem init cannot choose around (too few rows of a class): the data needs it
        raise DataError(f"no spec written: training would stop on the data: {e}") from None


def _scalar(value: object) -> str:
    """A YAML scalar for a column or file name: JSON strings are YAML too, and quoting keeps '1' a string."""
    return json.dumps(value, ensure_ascii=False)


def _names(columns: list[Column], limit: int = 6) -> str:
    names = [c.name for c in columns]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _line(text: str, comment: str, width: int = 44) -> str:
    return f"{text:<{width - 1}} # {comment}" if comment else text


def render_spec(starter: Starter, name: str) -> str:
    """The starter spec as YAML text with one comment per field (written by hand: yaml.dump drops comments)."""
    lines = [f"# Starter spec from `nnlab init` on {starter.source} ({starter.rows:,} rows). Check it with",
             "# `nnlab validate <this file>`, train with `nnlab train <this file>`, then edit and compare.",
             _line(f"name: {_scalar(name)}", "used in run names (runs/<name>-<time>-<id>)"),
             _line("seed: 0", "seeds the split and every model's start: same seed, same numbers"),
             "data:", *_data_lines(starter), *_model_lines(starter),
             _line("monitor: val_loss", "what 'best' means: picks each model's epoch and the best model"),
             f"# metrics: {_metrics_comment(starter.task)}",
             f"# expect: {{{_network(starter)[0]}.test.{_GATE_METRIC[starter.task]}: \">= 0.9\"}}"
             "   # CI gates: `nnlab train` exits 1 when one is missed"]
    return "\n".join(lines) + "\n"


def _data_lines(starter: Starter) -> list[str]:
    lines = [_line(f"  path: {_scalar(starter.data_path)}", "relative to this file"),
             _line(f"  target: {_scalar(starter.target)}", "the column to predict"),
             _line("  task: auto", f"inferred: {starter.task} ({starter.task_reason})"),
             _line("  split: {val: 0.15, test: 0.15}", "validation picks epochs and models; test is scored once")]
    text = starter.text_column
    if starter.image_files:
        channels, height, width = starter.array_shape
        lines[1] = _line(f"  target: {_scalar(starter.target)}", "each image's class: its subfolder's name")
        skip = ", skip_bad: true" if starter.bad_images else ""
        why = f"{starter.bad_images} broken file(s) seen: skipped and counted" if skip else \
            "skip_bad: true would skip broken files"
        lines.append(_line(f"  image: {{size: [{height}, {width}], channels: {channels}{skip}}}",
                           f"decoded once, resized to {height}x{width}; {why}"))
    elif starter.array_kind:
        layout = "[N, T, F]: steps, features" if starter.array_kind == "sequence" else "[N, C, H, W]: channels, pixels"
        lines.append(_line(f"  {starter.array_kind}: {{}}", f"X is {layout} = {[starter.rows, *starter.array_shape]}; "
                                                            "scaled on the training split"))
    elif text:
        lines.append(_line(f"  text: {{column: {_scalar(text)}, max_len: {starter.text_max_len}}}",
                           "token ids; max_len covers 95% of the texts"))
        beside = starter.named("numeric") + starter.named("categorical")
        if beside:  # read as a table next to the text: each model gets an encoder for it (nnlab.models.combiner)
            lines.append(f"  # read beside the text (scaled, one-hot): {_names(beside)}")
        if starter.missing:
            where = _names([Column(name, "") for name in starter.missing], 3)
            lines.append(_line("  impute: median", f"missing values in {where}: filled from the training split"))
    else:
        numeric, categorical = starter.named("numeric"), starter.named("categorical")
        lines.append(_line("  scale: standard", f"{len(numeric)} numeric column(s), standardized on the "
                                                 "training split"))
        if categorical:
            lines.append(f"  # one-hot encoded (categorical): {_names(categorical)}")
        if starter.missing:
            where = _names([Column(name, "") for name in starter.missing], 3)
            lines.append(_line("  impute: median", f"missing values in {where}: filled from the training split"))
    left_out = starter.named("left out")
    if left_out:
        lines.append(_line(f"  exclude: [{', '.join(_scalar(c.name) for c in left_out)}]", "left out, because:"))
        lines += [f"  #   {c.name}: {c.why}" for c in left_out]
    return lines


def _model_lines(starter: Starter) -> list[str]:
    batch = 32 if starter.rows < SMALL_TABLE_ROWS else 64 if starter.rows <= BIG_TABLE_ROWS else 256
    name, network, why = _network(starter)
    beside = " beside the columns" if starter.text_column and starter.named("numeric") + starter.named("categorical") \
        else ""
    baseline = f"TF-IDF{beside} + logistic regression" if starter.text_column else {
        "regression": "ridge regression"}.get(starter.task, "logistic regression")
    return [_line("baseline: {kind: auto}", f"{baseline}: the score a network must beat"),
            "train:",
            _line("  epochs: 50", "at most; early stopping usually ends sooner"),
            _line(f"  batch_size: {batch}", "rows per step"),
            _line("  optimizer: {name: adam, lr: 1.0e-3}", "Adam's usual start"),
            _line("  early_stopping: {patience: 8}", "stop after 8 epochs without a better val_loss; "
                                                    "keep the best epoch"),
            "models:",
            _line(f"  - {{name: {name}, {network}}}", why)]


_GATE_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "r2"}


def _network(starter: Starter) -> tuple[str, str, str]:
    """The one network of the starter spec: its name, its settings and why it fits the data."""
    if starter.array_kind == "sequence":
        return "gru", "kind: rnn, cell: gru, hidden: 64, pool: max, train: {grad_clip: 1.0}", (
            "reads the steps in order; clipped, as RNNs spike")
    if starter.array_kind == "image":
        return "cnn", "kind: cnn, channels: [32, 64], kernel: 3, pool: max", "3x3 filters find local patterns anywhere"
    if starter.text_column:
        return "bag", "kind: mlp, hidden: [64], embedding: 32", ("bag of embeddings (word order ignored; "
                                                                  "kind: cnn or rnn reads it, slower)")
    return "mlp", "kind: mlp, hidden: [64, 32]", "two hidden layers, ReLU"


def _metrics_comment(task: str) -> str:
    from nnlab.spec import DEFAULT_METRICS, METRICS_BY_TASK

    return (f"[{', '.join(DEFAULT_METRICS[task])}]   # the {task} default; also "
            + ", ".join(m for m in METRICS_BY_TASK[task] if m not in DEFAULT_METRICS[task]))
