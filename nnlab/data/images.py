"""Image files as data: a folder of class subfolders (`data.path: photos/`, the subfolder names are the labels),
or a CSV whose `data.image.column` holds image paths relative to it. PNG, JPEG, BMP and GIF, decoded once by
Pillow (an optional extra, imported only here) into a uint8 array [N, C, H, W] resized to `data.image.size`,
which then takes the path of an .npz X of images (arrays.py): pixel columns x0, x1, ... and the CNNs unchanged.

A bad file (corrupt, unreadable, a symlink out of the folder, an image bomb) or an empty class folder is a
one-line DataError naming it, or with `skip_bad: true` skipped and counted. The decoded array is cached under
the folder the caller passes (the run store's image cache), keyed by the files' fingerprint: paths, sizes,
mtimes and the image settings, hashed; a second run reads the cache instead of decoding again."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from nnlab.core.messages import EXCERPT_CHARS, excerpt, names_list
from nnlab.data.read import Source, array_frame, memory_bytes, read_source, size_text
from nnlab.errors import DataError
from nnlab.spec import DataSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
FILE_COLUMN = "file"  # the column of the table (and of the errors file, and predictions) naming each image
MAX_IMAGE_PIXELS = 40_000_000  # Pillow's bomb limit: a 6300 x 6300 photo still decodes, a forged header not
# Preparing copies the pixels: float64 columns (8 bytes a value), then float32 model input (4): with the
# uint8 array itself, 13 bytes a value at the peak. A folder that would not fit is refused before decoding.
PEAK_BYTES_PER_VALUE = 13
CACHE_VERSION = 1  # part of the key: a change of the decoding makes old cache files unused


@dataclass
class Decoded:
    """What decoding gives: the images that were read, which files they are, and what was skipped."""

    pixels: np.ndarray  # uint8 [N, C, H, W]
    files: list[str]  # relative paths (posix), one per image
    labels: list[str]  # folder layout: the class folder of each image; CSV layout: empty
    resized: int = 0
    skipped: list[str] = field(default_factory=list)  # "file: why", with skip_bad
    cached: bool = False


def is_image_source(spec: DataSpec) -> bool:
    """Whether `spec` reads image files at `path`: `data.image` with size (a folder) or column (a CSV)."""
    return spec.image is not None and spec.image.from_files


def read_images(spec: DataSpec, base_dir: Path, cache_dir: Optional[Path] = None) -> Source:
    """The table of an image folder or a CSV of image paths (data.path, relative to `base_dir`): pixel
    columns, the target, and the file column."""
    image = spec.image
    path = Path(spec.path)
    path = path if path.is_absolute() else base_dir / path
    if not path.exists():
        raise DataError(f"data.path: not found: {path}")
    if path.is_dir():
        if image.column is not None:
            raise DataError(f"data.image.column: reads image paths from a CSV file; data.path '{path.name}' is "
                            "a folder (its subfolders are the classes): drop column, or point data.path at the CSV")
        root, files, labels, skipped = _folder_files(path, image.skip_bad)
        frame = None
    else:
        root, frame = path.parent, _csv_table(path, spec)
        files, labels, skipped = [str(v) for v in frame[image.column]], [], []
    decoded = load_images(root, files, labels, tuple(image.size), image.channels, image.skip_bad, cache_dir)
    decoded.skipped = skipped + decoded.skipped
    target = spec.target
    pixels = array_frame(decoded.pixels) if len(decoded.files) else pd.DataFrame()
    if target in pixels.columns or target == FILE_COLUMN:
        raise DataError(f"data.target: '{target}' is a column nnlab makes for images (x0, x1, ... and "
                        f"{FILE_COLUMN}); rename the label column")
    if frame is None:
        pixels[target] = decoded.labels
    else:
        kept = frame.set_index(image.column, drop=False).loc[decoded.files] if decoded.skipped else frame
        pixels[target] = kept[target].to_numpy()
    pixels[FILE_COLUMN] = decoded.files
    notes = {"files": len(decoded.files), "resized": decoded.resized, "skipped": len(decoded.skipped),
             "skipped_files": decoded.skipped[:10], "cached": decoded.cached,
             "size": list(image.size), "channels": image.channels}
    digest = hashlib.sha256(decoded.pixels.tobytes())
    digest.update(json.dumps([decoded.files, pixels[target].astype(str).tolist()]).encode())
    return Source(pixels, path.name, digest.hexdigest(), array_shape=tuple(decoded.pixels.shape[1:]),
                  shown=[FILE_COLUMN], notes={"images": notes})


def _folder_files(root: Path, skip_bad: bool) -> tuple[Path, list[str], list[str], list[str]]:
    """The image files of each class subfolder (hidden entries and other suffixes are not images)."""
    top = root.resolve()
    classes = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir())
    if not classes:
        loose = [p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        hint = f" (it holds {len(loose)} image files directly: move each into its class's subfolder)" if loose else ""
        raise DataError(f"data.path: folder '{root.name}' has no class subfolders{hint}; expected "
                        f"{root.name}/<label>/<image files>")
    files, labels, skipped = [], [], []
    for folder in classes:
        if not _inside(folder, top, root, skip_bad):
            skipped.append(f"{folder.name}/: resolves outside the folder (a link)")
            continue
        found = [p for p in sorted(folder.rglob("*"))
                 if p.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in
                                                                   p.relative_to(folder).parts)]
        if not found:
            what = f"class folder '{root.name}/{folder.name}' holds no image files ({', '.join(IMAGE_SUFFIXES)})"
            if not skip_bad:
                raise DataError(f"data.path: {what}; add images or remove the folder (or data.image.skip_bad: "
                                "true)")
            skipped.append(f"{folder.name}/: no image files")
            continue
        files += [p.relative_to(root).as_posix() for p in found]
        labels += [folder.name] * len(found)
    return root, files, labels, skipped


def _csv_table(path: Path, spec: DataSpec) -> pd.DataFrame:
    source = read_source(spec.model_copy(update={"image": None, "path": str(path)}), path.parent, 0)
    frame, column = source.frame, spec.image.column
    if column is None:
        raise DataError(f"data.image.column: needed to read image files from {path.name} (the column of image "
                        f"paths, relative to it; columns: {names_list(frame.columns)})")
    for name, what in ((column, "data.image.column"), (spec.target, "data.target")):
        if name not in frame.columns:
            raise DataError(f"{what}: column '{name}' not found in {path.name} (columns: "
                            f"{names_list(frame.columns)})")
    if frame[column].isna().any() or not all(isinstance(v, str) for v in frame[column]):
        row = next(i for i, v in enumerate(frame[column]) if not isinstance(v, str))
        raise DataError(f"data.image.column: column '{column}' of {path.name} has a missing or non-text path at "
                        f"row {row}; every row needs an image file")
    repeated = frame[column][frame[column].duplicated()]
    if len(repeated):
        raise DataError(f"data.image.column: '{excerpt(str(repeated.iloc[0]))}' is listed more than once in "
                        f"{path.name}; list each image once (a copy would sit in two splits)")
    return frame[[column, spec.target]].reset_index(drop=True)


def _inside(path: Path, top: Path, root: Path, skip_bad: bool = False) -> bool:
    """A file (or class folder) must resolve inside the data folder: a symlink (or a ../ path) out of it is
    refused, or with skip_bad left out (False)."""
    if path.resolve().is_relative_to(top):
        return True
    what = f"{path.relative_to(root).as_posix()} resolves outside the folder '{root.name}' (a link or ../ path to " \
           f"{excerpt(str(path.resolve()))})"
    if skip_bad:
        return False
    raise DataError(f"data.path: {what}; copy the file into the folder instead")


def load_images(root: Path, files: list[str], labels: list[str], size: tuple[int, int], channels: int,
                skip_bad: bool, cache_dir: Optional[Path] = None) -> Decoded:
    """`files` (relative to `root`) decoded into uint8 [N, C, H, W], or read from the cache when the files'
    fingerprint matches. Refuses, before decoding, images that would not fit in memory."""
    top = root.resolve()
    outside = [name for name in files if not _inside(root / name, top, root, skip_bad)]
    if outside:
        keep = [i for i, name in enumerate(files) if name not in set(outside)]
        files, labels = [files[i] for i in keep], [labels[i] for i in keep] if labels else labels
    stats = []
    for name in files:
        path = root / name
        try:
            info = path.stat()
        except OSError as e:
            if not skip_bad:
                raise DataError(f"data.path: cannot read image {name}: {e.strerror or e.__class__.__name__}") \
                    from None
            info = None
        stats.append((name, info.st_size if info else -1, info.st_mtime_ns if info else -1))
    per_image = channels * size[0] * size[1]
    memory = memory_bytes()
    if memory and len(files) * per_image * PEAK_BYTES_PER_VALUE > memory:
        raise DataError(f"data.path: {len(files):,} images of {channels} x {size[0]} x {size[1]} take "
                        f"{size_text(len(files) * per_image)} decoded and about {PEAK_BYTES_PER_VALUE} times that "
                        f"while preparing, more than this machine's memory ({size_text(memory)}); use a smaller "
                        "data.image.size or fewer images")
    key = hashlib.sha256(json.dumps([CACHE_VERSION, stats, labels, list(size), channels, skip_bad])
                         .encode()).hexdigest()[:32]
    decoded = _read_cache(cache_dir, key)
    if decoded is None:
        decoded = decode_images(root, files, labels, size, channels, skip_bad)
        _write_cache(cache_dir, key, decoded)
    decoded.skipped = [f"{name}: resolves outside the folder (a link or ../ path)" for name in outside] + \
        decoded.skipped
    return decoded


def decode_images(root: Path, files: list[str], labels: list[str], size: tuple[int, int], channels: int,
                  skip_bad: bool) -> Decoded:
    """Each file through Pillow: converted to `channels`, resized to `size` ([H, W]) where it differs."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("data.path: reading image files needs Pillow: pip install -e '.[images]' in the nnlab checkout") from None
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    height, width = size
    out = np.empty((len(files), channels, height, width), dtype=np.uint8)
    kept, kept_labels, skipped, resized = [], [], [], 0
    for i, name in enumerate(files):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(root / name) as img:
                    img.seek(0)  # a GIF: its first frame
                    picture = img.convert(mode)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            why = f"more pixels than the limit of {MAX_IMAGE_PIXELS:,} (an image bomb?): {excerpt(str(e))}"
        except (OSError, SyntaxError, ValueError, EOFError) as e:  # what Pillow raises for a damaged file
            first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            why = f"not a readable image ({excerpt(first, 2 * EXCERPT_CHARS)})"
        else:
            if picture.size != (width, height):
                picture = picture.resize((width, height), Image.Resampling.BILINEAR)
                resized += 1
            pixels = np.asarray(picture, dtype=np.uint8).reshape(height, width, channels)
            out[len(kept)] = pixels.transpose(2, 0, 1)
            kept.append(name)
            kept_labels += labels[i:i + 1]
            continue
        if not skip_bad:
            raise DataError(f"data.path: image {name}: {why}; remove or replace it (or data.image.skip_bad: true)")
        skipped.append(f"{name}: {why}")
    if not kept:
        raise DataError(f"data.path: none of the {len(files)} image files could be read (first: "
                        f"{excerpt(skipped[0]) if skipped else 'none listed'})")
    return Decoded(out[:len(kept)].copy(), kept, kept_labels, resized, skipped)


def _read_cache(cache_dir: Optional[Path], key: str) -> Optional[Decoded]:
    if cache_dir is None:
        return None
    path = cache_dir / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            return Decoded(archive["pixels"], meta["files"], meta["labels"], meta["resized"], meta["skipped"],
                           cached=True)
    except (OSError, ValueError, KeyError, EOFError):  # no cache file, or a damaged one: decode again
        return None


def _write_cache(cache_dir: Optional[Path], key: str, decoded: Decoded) -> None:
    """Written to a temporary name and renamed into place: a reader never sees half a cache file. A cache that
    cannot be written (a read-only or full disk) only costs decoding again next time."""
    if cache_dir is None:
        return
    meta = json.dumps({"files": decoded.files, "labels": decoded.labels, "resized": decoded.resized,
                       "skipped": decoded.skipped})
    tmp = cache_dir / f".{key}.{secrets.token_hex(4)}.tmp.npz"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as handle:
            np.savez(handle, pixels=decoded.pixels, meta=np.array(meta))
        os.replace(tmp, cache_dir / f"{key}.npz")
    except OSError:
        tmp.unlink(missing_ok=True)
