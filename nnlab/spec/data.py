"""The `data:` section of a spec: where the data comes from, how it is split, and how features are read.

A model validator's message may start with a field of its own class (`text: ...`); `specerrors` then
reports it at that field (`data.text: ...`).
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from nnlab.core.inputs import INPUT_KINDS as CORE_INPUT_KINDS
from nnlab.spec.base import MAX_COUNT, MAX_SEED, TASKS, Fraction, StrictModel
from nnlab.core.messages import quoted, shorten

# The settings that each read the features one way; without any of them, a plain table.
INPUT_KINDS = tuple(kind for kind in CORE_INPUT_KINDS if kind != "table")
MAX_IMAGE_SIDE = 4096  # pixels of data.image.size: a bigger [C, H, W] per example is no small-data CNN input
IMAGE_FOLDER_TARGET = "label"  # the target of a folder of class subfolders: the subfolder's name


class SplitSpec(StrictModel):
    val: Fraction = Field(0.15, description="Fraction of rows for validation (model selection).")
    test: Fraction = Field(0.15, description="Fraction of rows held out for the final test, touched once.")
    stratify: bool = Field(True, description="Keep class proportions equal across splits (classification).")
    seed: Optional[int] = Field(None, ge=0, le=MAX_SEED,
                                description="Seed of the split (default: the spec's seed). Fix it to keep one "
                                            "split while repeats and sweeps vary the training seed.")

    @model_validator(mode="after")
    def _check_sum(self) -> SplitSpec:
        if self.val + self.test >= 0.9:
            raise ValueError(f"val + test must leave at least 10% for training; got {self.val} + {self.test}")
        return self


class TextSpec(StrictModel):
    column: str = Field("text", description="The text column; it becomes token ids [N, max_len].")
    max_len: int = Field(64, ge=1, le=4096, description="Tokens kept per row (longer rows are cut).")
    max_vocab: int = Field(20000, ge=10, le=1_000_000, description="Most frequent training tokens kept.")
    min_freq: int = Field(1, ge=1, le=MAX_COUNT,
                          description="Tokens seen fewer times in the training split are unknown.")
    lowercase: bool = Field(True, description="Lower-case the text before splitting it into tokens.")
    vectors: Optional[str] = Field(None, description="Pretrained word vectors (word2vec/GloVe text format: a word "
                                                     "and its values per line), relative to the spec file: the "
                                                     "vocabulary's words found in it start from their vector.")
    freeze: bool = Field(False, description="With vectors: keep the embedding as it starts (no training updates).")

    @model_validator(mode="after")
    def _check_freeze(self) -> TextSpec:
        if self.freeze and self.vectors is None:
            raise ValueError("freeze: keeps pretrained word vectors fixed; give data.text.vectors (a word2vec/GloVe "
                             "text file) or leave freeze out")
        return self


class SequenceSpec(StrictModel):
    steps: Optional[int] = Field(None, ge=1, le=MAX_COUNT,
                                 description="Time steps T: columns are read time-major as [N, T, F] "
                                             "(F = columns / T). Omit for a 3-D array in an .npz file.")


class ImageSpec(StrictModel):
    shape: Optional[list[Annotated[int, Field(ge=1, le=MAX_COUNT)]]] = Field(
        None, min_length=3, max_length=3, description="[C, H, W]: columns reshaped to images. Omit for a 4-D "
                                                      "array in an .npz file.")
    # Image files (a folder of class subfolders, or a CSV column of paths): decoded once, resized to `size`.
    size: Optional[list[Annotated[int, Field(ge=1, le=MAX_IMAGE_SIDE)]]] = Field(
        None, min_length=2, max_length=2, description="[H, W]: image files are resized to this (needed to read "
                                                      "image files).")
    channels: Literal[1, 3, 4] = Field(3, description="Image files: 1 grey, 3 RGB, 4 RGBA (converted to it).")
    column: Optional[str] = Field(None, description="A CSV column of image paths, relative to the CSV file.")
    skip_bad: bool = Field(False, description="Skip (and count) unreadable image files instead of refusing "
                                              "the data.")

    @property
    def from_files(self) -> bool:
        return self.size is not None or self.column is not None

    @model_validator(mode="after")
    def _check_files(self) -> ImageSpec:
        if self.shape is not None and self.from_files:
            raise ValueError("shape: reads table columns as images; size/column read image files: give one")
        if self.column is not None and self.size is None:
            raise ValueError("size: needed to read image files ([H, W], e.g. [32, 32]); got column: "
                             f"'{shorten(self.column)}' without it")
        return self


class DataSpec(StrictModel):
    path: Optional[str] = Field(None, description="CSV, Parquet or .npz file (arrays X and y), or a folder of "
                                                  "image class subfolders, relative to the spec file.")
    builtin: Optional[Literal["iris", "wine", "breast_cancer", "digits", "diabetes", "moons", "xor"]] = Field(
        None, description="A data set that ships with scikit-learn (iris, wine, breast_cancer, digits, diabetes)"
                          " or is generated (moons, xor); needs no file.")
    target: Optional[str] = Field(None, description="Target column (default 'target' for builtin sets).")
    task: Literal[TASKS] = Field("auto", description="auto infers it from the target column.")
    positive: Optional[Union[str, int, bool]] = Field(
        None, description="Positive class of a binary target (default: 1/True, else the second label sorted).")
    split: SplitSpec = Field(default_factory=SplitSpec)
    scale: Literal["standard", "minmax", "none"] = Field(
        "standard", description="Feature scaling, fitted on the training split only.")
    include: Optional[list[str]] = Field(None, description="Feature columns to use (default: all but target).")
    exclude: list[str] = Field(default_factory=list, description="Columns to leave out.")
    impute: Optional[Literal["mean", "median", "most_frequent"]] = Field(
        None, description="Fill missing feature values (statistics from the training split). "
                          "Without it, missing values are an error.")
    max_categories: int = Field(20, ge=2, le=MAX_COUNT,
                                description="Non-numeric columns with at most this many distinct values are one-hot "
                                            "encoded; more is an error.")
    text: Optional[TextSpec] = Field(None, description="Read a text column as token ids (text models); other "
                                                       "feature columns are read beside it as a table.")
    sequence: Optional[SequenceSpec] = Field(None, description="Read the columns as a sequence [N, T, F].")
    image: Optional[ImageSpec] = Field(None, description="Read the columns as images [N, C, H, W].")

    @property
    def input_kind(self) -> str:
        """table, text, sequence or image: how the features are read."""
        return next((k for k in INPUT_KINDS if getattr(self, k) is not None), "table")

    @field_validator("include")
    @classmethod
    def _include_once(cls, include: Optional[list[str]]) -> Optional[list[str]]:
        twice = _listed_twice(include or [])
        if twice:
            raise ValueError(f"column {quoted(twice)} listed more than once; list each column once")
        return include

    @model_validator(mode="after")
    def _check_source(self) -> DataSpec:
        if (self.path is None) == (self.builtin is None):
            raise ValueError("give exactly one of data.path (a CSV, Parquet or .npz file) or data.builtin")
        if self.builtin and self.target is None:
            self.target = "target"
        if self.target is None and self.image is not None and self.image.size is not None and not self.image.column:
            self.target = IMAGE_FOLDER_TARGET
        if self.target is None:
            raise ValueError("data.target is required: the name of the column to predict")
        return self

    @model_validator(mode="after")
    def _check_input_kind(self) -> DataSpec:
        given = [k for k in INPUT_KINDS if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"{given[-1]}: cannot be given together with "
                             f"{' and '.join(f'data.{k}' for k in given[:-1])}; choose one way to read the "
                             f"features (data.text, data.sequence or data.image)")
        if self.image is not None and self.image.from_files and self.builtin:
            raise ValueError(f"image: size/column read image files from data.path; got data.builtin: {self.builtin}")
        # Other feature columns beside data.text are read as a table next to the text (nnlab.data.mixed).
        return self


def _listed_twice(items: list[str]) -> list[str]:
    seen: set[str] = set()
    twice = [item for item in items if item in seen or seen.add(item)]
    return list(dict.fromkeys(twice))
