"""Reading a data source into one table: CSV/TSV, Parquet, `.npz` arrays or a builtin set, with the checks that
must happen before pandas hides a problem (duplicated column names, special files, Parquet types nnlab cannot
use). Also the fingerprint of what was read, so runs can tell whether they saw the same data."""

from __future__ import annotations

import hashlib
import math
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nnlab.core.jsonvalue import JSONObject
from nnlab.errors import DataError
from nnlab.spec import DataSpec
from nnlab.core.files import special_kind
from nnlab.core.messages import EXCERPT_CHARS, excerpt

SUFFIXES = (".csv", ".txt", ".tsv", ".parquet", ".pq", ".npz")
NPZ_FEATURE_PREFIX = "x"  # an .npz X becomes columns x0, x1, ... in C order (time-major for [N, T, F])
DEFLATE_MAX_RATIO = 1100  # deflate cannot expand more than ~1032:1: a member claiming more is forged


@dataclass
class Source:
    """What was read: the table, its display name, a hash of its bytes, and facts the table alone loses."""

    frame: pd.DataFrame
    name: str
    sha256: str
    unusable: dict[str, str] = field(default_factory=dict)  # Parquet column -> type nnlab cannot use
    array_shape: tuple[int, ...] | None = None  # .npz: the shape of one example of X
    shown: list[str] = field(default_factory=list)  # columns kept to name an example (image files), no feature
    notes: dict[str, JSONObject] = field(default_factory=dict)  # facts for the data summary (image files: counts)


def read_source(spec: DataSpec, base_dir: Path, seed: int, rows_only: bool = False) -> Source:
    """The table `spec` names. `rows_only`: rows to predict, so an .npz needs only X (a y is not read).
    Image files (`data.image` with size or column) are images.py's: `prepare` reads them there."""
    if spec.builtin:
        digest = hashlib.sha256(f"builtin:{spec.builtin}:{seed}".encode()).hexdigest()
        return Source(builtin_table(spec.builtin, seed), f"builtin:{spec.builtin}", digest)
    path = Path(spec.path)
    path = path if path.is_absolute() else base_dir / path
    _check_path(path)
    try:
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        suffix = path.suffix.lower()
        if suffix == ".npz":
            return _read_npz(path, spec, digest, rows_only)
        if suffix in (".parquet", ".pq"):
            return _read_parquet(path, digest)
        return _read_text_table(path, "\t" if suffix == ".tsv" else ",", digest)
    except ImportError as e:
        raise DataError(f"data.path: reading {path.name} needs an extra package: {e}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as e:
        # A library's message can quote the file (a line, a value): only a short, escaped excerpt of it.
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise DataError(f"data.path: cannot parse {path.name}: {excerpt(first_line, 2 * EXCERPT_CHARS)}") from None


def _check_path(path: Path) -> None:
    """A regular file of a known kind, or a one-line error saying what it is (never open a FIFO: it blocks)."""
    if path.suffix.lower() not in SUFFIXES:
        if path.is_dir():  # a folder named without a suffix: say so, not that its suffix is wrong
            raise DataError(f"data.path: '{path.name}' is a folder; expected a file: one of {', '.join(SUFFIXES)}"
                            f" (or, for a folder of image class subfolders, data.image: {{size: [H, W]}})")
        raise DataError(f"data.path: cannot read '{path.name}': expected one of {', '.join(SUFFIXES)} files")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"data.path: file not found: {path}") from None
    except OSError as e:
        raise DataError(f"data.path: cannot read {path}: {e.strerror or e.__class__.__name__}") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"data.path: {path} is a folder; expected a {'/'.join(SUFFIXES)} file")
    what = special_kind(mode)  # the one check of nnlab's file readers, in data.path's words
    if what == "not a regular file":
        raise DataError(f"data.path: {path} is not a regular file")
    if what is not None:
        raise DataError(f"data.path: {path} is {what}, not a regular file; save the data to a file first")


def _read_text_table(path: Path, sep: str, digest: str) -> Source:
    frame = pd.read_csv(path, sep=sep)
    # pandas renames a repeated header name ('y' -> 'y.1'): read the header line as data to see the real names.
    header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
    _check_unique(path.name, [str(v) for v in header.iloc[0].tolist()] if len(header) else [])
    return Source(frame, path.name, digest)


def _check_unique(name: str, columns: list[str]) -> None:
    seen: dict[str, int] = {}
    for column in columns:
        seen[column] = seen.get(column, 0) + 1
    repeated = [c for c, n in seen.items() if n > 1]
    if repeated:
        listed = ", ".join(f"'{c}' ({seen[c]} times)" for c in repeated[:5])
        raise DataError(f"data.path: {name} has repeated column name(s) {listed}; every column needs its own "
                        "name (a copy of the target would leak the label into the features)")


def _read_parquet(path: Path, digest: str) -> Source:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    _check_unique(path.name, list(schema.names))
    unusable = {f.name: str(f.type) for f in schema if _unusable_arrow_type(f.type)}
    return Source(pd.read_parquet(path), path.name, digest, unusable)


def _unusable_arrow_type(arrow_type: Any) -> bool:
    """Nested, time and decimal columns: pandas turns them into objects nnlab would misread as categories."""
    import pyarrow.types as t

    checks = (t.is_list, t.is_large_list, t.is_fixed_size_list, t.is_map, t.is_struct, t.is_union,
              t.is_timestamp, t.is_date, t.is_time, t.is_duration, t.is_decimal, t.is_binary, t.is_large_binary,
              t.is_fixed_size_binary)
    return any(check(arrow_type) for check in checks)


def unusable_column_message(column: str, arrow_type: str, source: str, is_target: bool) -> str:
    if is_target:
        todo = "convert it to numbers or labels (strings) in the file"
    elif any(word in arrow_type for word in ("timestamp", "date", "time", "duration")):
        todo = "convert it to a number (e.g. seconds since 1970) or leave it out with data.exclude"
    elif "decimal" in arrow_type:
        todo = "cast it to float64 in the file or leave it out with data.exclude"
    else:
        todo = "flatten it into plain number or string columns, or leave it out with data.exclude"
    field_name = "data.target" if is_target else "data"
    return f"{field_name}: column '{column}' in {source} has type {arrow_type[:60]}, which nnlab cannot read; {todo}"


def _read_npz(path: Path, spec: DataSpec, digest: str, rows_only: bool = False) -> Source:
    try:
        return _read_npz_arrays(path, spec, digest, rows_only)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as e:  # truncated, damaged, odd zip
        raise DataError(f"data.path: {path.name} is not a readable .npz archive (truncated or damaged: "
                        f"{excerpt(str(e) or e.__class__.__name__)})") from None


def _read_npz_arrays(path: Path, spec: DataSpec, digest: str, rows_only: bool) -> Source:
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as e:  # numpy's message about pickles suggests loading unsafely: nnlab never does
        if "pickle" not in str(e):
            raise
        raise DataError(f"data.path: {path.name} is not an .npz archive of plain arrays (nnlab never loads "
                        "pickled objects); save it with numpy.savez") from None
    if not hasattr(archive, "files"):
        raise DataError(f"data.path: {path.name} holds a single array, not an .npz archive with X and y")
    with archive:
        names = list(archive.files)
        missing = [k for k in (("X",) if rows_only else ("X", "y")) if k not in names]
        if missing:
            needs = "an array X" if rows_only else "arrays X and y"
            raise DataError(f"data.path: {path.name} needs {needs}; missing {', '.join(missing)} "
                            f"(arrays: {', '.join(excerpt(n) for n in names[:10]) or 'none'})")
        x = _npz_array(archive, "X", path)
        y = None if rows_only else _npz_array(archive, "y", path)
    if x.ndim not in (2, 3, 4) or len(x) == 0:
        raise DataError(f"data.path: X in {path.name} has shape {x.shape}; expected 2-D [N, F], 3-D [N, T, F] "
                        "or 4-D [N, C, H, W] with N >= 1 rows")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
        raise DataError(f"data.path: X in {path.name} holds {x.dtype} values; expected real numbers")
    example = tuple(int(d) for d in x.shape[1:])
    if y is None:
        return Source(array_frame(x), path.name, digest, array_shape=example)
    if np.iscomplexobj(y):
        raise DataError(f"data.path: y in {path.name} holds {y.dtype} values; expected labels or real numbers")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"data.path: y in {path.name} has shape {y.shape}; expected one value per row of X "
                        f"({len(x)})")
    frame = array_frame(x)
    if spec.target in frame.columns:
        raise DataError(f"data.target: '{spec.target}' names a column of X in {path.name} (x0, x1, ...); the "
                        "target of an .npz file is its array y: choose another name, such as y")
    frame[spec.target] = y  # the spec's target names y's column (any other name is accepted)
    return Source(frame, path.name, digest, array_shape=example)


def _npz_array(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """One array of an .npz, once its header's shape x dtype is known to fit in its zip member and in this
    machine's memory: a forged header (80 TB of float64) is an error, not an attempt to allocate it."""
    member = next(n for n in archive.zip.namelist() if n in (key, f"{key}.npy"))
    info = archive.zip.getinfo(member)
    with archive.zip.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(handle, max_header_size=10_000)
        header = handle.tell()
    if dtype.hasobject:
        raise DataError(f"data.path: {key} in {path.name} holds Python objects, which load only by unpickling "
                        "(nnlab never does); save plain arrays with numpy.savez")
    needed = math.prod(shape) * dtype.itemsize
    forged = (info.file_size > info.compress_size if info.compress_type == zipfile.ZIP_STORED
              else info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 2**20)
    if forged or needed > info.file_size - header:
        raise DataError(f"data.path: {key} in {path.name} claims shape {list(shape)} of {dtype} "
                        f"({size_text(needed)}) but the archive holds {size_text(max(info.file_size - header, 0))}: "
                        "the file is damaged or truncated")
    memory = memory_bytes()
    if memory and needed > memory:
        raise DataError(f"data.path: {key} in {path.name} has shape {list(shape)} of {dtype}: {size_text(needed)}, "
                        f"more than this machine's memory ({size_text(memory)})")
    return archive[key]


def memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not known on this system: no limit beyond the file's own
        return 0


def size_text(n: int) -> str:
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def array_frame(x: np.ndarray) -> pd.DataFrame:
    """An array [N, ...] as the table nnlab reads from an .npz file: columns x0, x1, ... in C order (what
    `Preprocessor.transform` expects for rows to predict that come as arrays)."""
    flat = x.reshape(len(x), -1)
    return pd.DataFrame(flat, columns=[f"{NPZ_FEATURE_PREFIX}{i}" for i in range(flat.shape[1])])


def builtin_table(name: str, seed: int) -> pd.DataFrame:
    """Small sets that ship with scikit-learn, or are generated (moons, xor) for non-linear checks."""
    rng = np.random.default_rng(seed)
    if name in ("moons", "xor"):
        n = 600
        if name == "moons":
            t = rng.uniform(0, np.pi, n)
            label = rng.integers(0, 2, n)
            x1 = np.where(label == 0, np.cos(t), 1 - np.cos(t))
            x2 = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
        else:
            x1, x2 = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
            label = ((x1 > 0) ^ (x2 > 0)).astype(int)
        noise = rng.normal(0, 0.1, (2, n))
        return pd.DataFrame({"x1": x1 + noise[0], "x2": x2 + noise[1], "target": label})
    try:
        from sklearn import datasets
    except ImportError:
        raise DataError(f"data.builtin: '{name}' ships with scikit-learn: pip install scikit-learn") from None
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return bunch.frame
