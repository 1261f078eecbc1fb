"""Image files to predict: `nnlab predict RUN photos-new/` (a folder, its subfolders too) or image files
(`nnlab predict RUN a.png b.jpg`), decoded as in training (data/images.py) to the model's [C, H, W], one row
per file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from nnlab.api import SavedModel


def is_image_input(path: Path) -> bool:
    """A folder, or an image file: what `nnlab predict` decodes as images rather than reads as a table."""
    from nnlab.data.images import IMAGE_SUFFIXES

    return path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES


def read_image_files(paths: Path | list[Path], model: SavedModel) -> tuple[np.ndarray, list[str]]:
    """The image files of a folder (its subfolders too, hidden entries left out), or of image files and
    folders listed, decoded to the model's [C, H, W] as in training; and each one's name: relative to the
    folder (one file: its name) when one path is given, else the path as given (a listed folder's files below
    it), so that files of different folders never share a name."""
    from nnlab.data import images
    from nnlab.errors import DataError

    paths = [paths] if isinstance(paths, Path) else list(paths)
    shape = model.array_shape
    if model.preprocessor.kind != "image" or shape is None or len(shape) != 3:
        raise DataError(f"DATA: {paths[0].name} holds image files; model '{model.name}' was not trained on images")
    table = next((p for p in paths if not is_image_input(p)), None)
    if table is not None:
        raise DataError(f"DATA: {table.name} is not an image file or folder ({', '.join(images.IMAGE_SUFFIXES)}); "
                        "several paths are read as image files (predict a table on its own)")
    pixels, names = [], []
    for path in paths:
        root, files = _image_files(path, images.IMAGE_SUFFIXES)
        try:
            decoded = images.load_images(root, files, [], (shape[1], shape[2]), shape[0], skip_bad=False)
        except DataError as e:
            raise DataError(f"DATA: {str(e).removeprefix('data.path: ')}") from None
        pixels.append(decoded.pixels)
        names += decoded.files if len(paths) == 1 else [(path / f).as_posix() if path.is_dir() else str(path)
                                              for f in decoded.files]
    return np.concatenate(pixels), names


def _image_files(path: Path, suffixes: tuple[str, ...]) -> tuple[Path, list[str]]:
    """A folder's image files (relative to it, sorted), or one file: the folder to read from, and the names."""
    from nnlab.errors import DataError

    if path.is_dir():
        files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                       if p.suffix.lower() in suffixes
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise DataError(f"DATA: folder {path.name} holds no image files ({', '.join(suffixes)})")
        return path, files
    if not path.is_file():
        raise DataError(f"DATA: file not found: {path}")
    return path.parent, [path.name]
