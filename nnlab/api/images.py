"""Image files to predict: `nnlab predict RUN photos-new/` (a folder, its subfolders too) or one image file,
decoded as in training (data/images.py) to the model's [C, H, W], one row per file."""

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


def read_image_files(path: Path, model: SavedModel) -> tuple[np.ndarray, list[str]]:
    """The image files of a folder (its subfolders too, hidden entries left out) or one image file, decoded
    to the model's [C, H, W] as in training; and each one's name (relative to the folder)."""
    from nnlab.data import images
    from nnlab.errors import DataError

    shape = model.array_shape
    if model.preprocessor.kind != "image" or shape is None or len(shape) != 3:
        raise DataError(f"DATA: {path.name} holds image files; model '{model.name}' was not trained on images")
    if path.is_dir():
        root = path
        files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                       if p.suffix.lower() in images.IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise DataError(f"DATA: folder {path.name} holds no image files ({', '.join(images.IMAGE_SUFFIXES)})")
    else:
        if not path.is_file():
            raise DataError(f"DATA: file not found: {path}")
        root, files = path.parent, [path.name]
    try:
        decoded = images.load_images(root, files, [], (shape[1], shape[2]), shape[0], skip_bad=False)
    except DataError as e:
        raise DataError(f"DATA: {str(e).removeprefix('data.path: ')}") from None
    return decoded.pixels, decoded.files
