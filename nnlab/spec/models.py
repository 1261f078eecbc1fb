"""The model specs: one Pydantic class per model kind, in a `kind`-tagged union, and the baseline.

Each class validates its own fields; which data kinds a model runs on is declared in `INPUT_KINDS_BY_MODEL`
and checked against `data:` by the spec, before any data is read (and by `models` when one is built directly).
`MODEL_KINDS` is read off the union, so a new class is a new kind; the registry in `models` must match it.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union, get_args

from pydantic import Field, field_validator, model_validator

from nnlab.spec.base import MAX_COUNT, MAX_NAME_LENGTH, MODEL_NAME, Dropout, NonNegFloat, StrictModel
from nnlab.spec.train import TrainSpec

Activation = Literal["relu", "tanh", "sigmoid", "gelu", "leaky_relu"]


Width = Annotated[int, Field(ge=1, le=MAX_COUNT)]
MODEL_INPUTS = ("text", "table")  # what a model may read of text beside table columns
TABLE_ONLY_KINDS = ("mlp", "resmlp")  # the kinds that read table columns alone (inputs: [table])


class TableEncoderSpec(StrictModel):
    """The encoder of the table columns beside data.text: an MLP over the scaled and one-hot columns."""

    hidden: list[Width] = Field(default_factory=lambda: [32], description="Widths of its layers ([]: the "
                                                                          "encoded columns as they are).")
    activation: Activation = "relu"


class CombinerSpec(StrictModel):
    """How the text encoder's and the table encoder's outputs meet before the head (Ludwig's combiner)."""

    kind: Literal["concat"] = Field("concat", description="concat: the two outputs side by side.")
    text: Width = Field(32, description="Width the text encoder's output is projected to before the concat.")
    hidden: list[Width] = Field(default_factory=lambda: [32], description="Layers after the concat, before the "
                                                                          "head (they learn how the two interact).")
    activation: Activation = "relu"


class ModelBase(StrictModel):
    name: Optional[str] = Field(None, pattern=MODEL_NAME, max_length=MAX_NAME_LENGTH,
                                description="Unique name (default: the kind).")
    train: Optional[TrainSpec] = Field(None, description="Overrides of the top-level train settings.")
    # Text beside table columns (data.text and other feature columns): the kind's own fields describe the text
    # encoder, `table` the columns' encoder, `combiner` how they meet. Read by nnlab.models.combiner.
    inputs: Optional[list[Literal[MODEL_INPUTS]]] = Field(
        None, min_length=1, description="Text beside table columns: what the model reads, [text], [table] or "
                                        "[text, table] (default: both).")
    table: Optional[TableEncoderSpec] = Field(None, description="Text beside table columns: the columns' encoder "
                                                                "(default: hidden [32]).")
    combiner: Optional[CombinerSpec] = Field(None, description="Text beside table columns: `concat` or {kind: "
                                                               "concat, text: 32, hidden: [32]} (the default).")

    @field_validator("combiner", mode="before")
    @classmethod
    def _combiner_by_name(cls, value: object) -> object:
        return {"kind": value} if isinstance(value, str) else value  # `combiner: concat`

    @model_validator(mode="after")
    def _check_inputs(self) -> ModelBase:
        inputs = self.inputs or list(MODEL_INPUTS)
        if len(set(inputs)) < len(inputs):
            raise ValueError(f"inputs: list each input once; got {inputs}")
        kind = getattr(self, "kind", "")
        if inputs == ["table"] and kind not in TABLE_ONLY_KINDS:
            raise ValueError(f"inputs: [table] reads only the table columns, which needs kind "
                             f"{' or '.join(TABLE_ONLY_KINDS)}; got kind '{kind}'")
        if len(inputs) == 1 and (self.table is not None or self.combiner is not None):
            given = "table" if self.table is not None else "combiner"
            raise ValueError(f"{given}: joins text and table columns; the model reads only {inputs[0]} (inputs: "
                             f"{inputs})")
        return self

    @property
    def reads_beside(self) -> tuple[bool, bool]:
        """(text, table): which inputs of text beside table columns the model reads."""
        inputs = self.inputs or list(MODEL_INPUTS)
        return "text" in inputs, "table" in inputs

    @property
    def sets_inputs(self) -> bool:
        """Whether any setting for text beside table columns is given (they need data.text)."""
        return self.inputs is not None or self.table is not None or self.combiner is not None


Embedding = Annotated[int, Field(ge=1, le=4096, description="Token embedding size (text data only).")]


class MLPSpec(ModelBase):
    kind: Literal["mlp"]
    embedding: Embedding = 64
    hidden: list[Annotated[int, Field(ge=1, le=MAX_COUNT)]] = Field(default_factory=lambda: [64, 32])
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False)
    norm: Literal["none", "batchnorm", "layernorm"] = "none"


class ResMLPSpec(ModelBase):
    kind: Literal["resmlp"]
    embedding: Embedding = 64
    width: int = Field(128, ge=1, le=MAX_COUNT, description="Width of every residual block.")
    blocks: int = Field(2, ge=1, le=1000, description="Number of residual blocks.")
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False)
    norm: Literal["none", "batchnorm", "layernorm"] = "layernorm"


class CNNSpec(ModelBase):
    kind: Literal["cnn"]
    channels: list[Annotated[int, Field(ge=1, le=MAX_COUNT)]] = Field(default_factory=lambda: [32, 64], min_length=1,
                                                         description="Output channels of each conv layer.")
    kernel: int = Field(5, ge=1, le=MAX_COUNT, description="Kernel size (k, or k x k on images).")
    stride: int = Field(1, ge=1, le=MAX_COUNT)
    pool: Literal["max", "avg", "none"] = Field("max", description="Pooling (size 2) after each conv layer.")
    norm: Literal["none", "batchnorm"] = "none"
    activation: Activation = "relu"
    dropout: Dropout = 0.0
    embedding: Embedding = 64


class RNNSpec(ModelBase):
    kind: Literal["rnn"]
    cell: Literal["gru", "lstm", "rnn"] = "gru"
    hidden: int = Field(64, ge=1, le=MAX_COUNT)
    layers: int = Field(1, ge=1, le=16)
    bidirectional: bool = False
    dropout: Dropout = 0.0
    pool: Literal["last", "mean", "max"] = Field("last", description="How the steps become one vector "
                                                                    "(padding-aware on text).")
    embedding: Embedding = 64


class TransformerSpec(ModelBase):
    kind: Literal["transformer"]
    d_model: int = Field(64, ge=1, le=8192)
    heads: int = Field(4, ge=1, le=8192)
    layers: int = Field(2, ge=1, le=48)
    ff: int = Field(128, ge=1, le=MAX_COUNT, description="Width of each feed-forward block.")
    dropout: Dropout = 0.1
    positions: Literal["learned", "sinusoidal"] = "learned"
    pool: Literal["cls", "mean"] = "mean"

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TransformerSpec:
        if self.d_model % self.heads:
            raise ValueError(f"heads: must divide d_model ({self.d_model}) so that every head gets "
                             f"d_model / heads features; got {self.heads}")
        return self


ModelSpec = Annotated[Union[MLPSpec, ResMLPSpec, CNNSpec, RNNSpec, TransformerSpec], Field(discriminator="kind")]
MODEL_KINDS: tuple[str, ...] = tuple(get_args(cls.model_fields["kind"].annotation)[0]
                                     for cls in get_args(get_args(ModelSpec)[0]))
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
# The data kinds (data.text, data.sequence, data.image, or a plain table) each model kind runs on.
INPUT_KINDS_BY_MODEL = {
    "mlp": ("table", "text", "sequence", "image"),
    "resmlp": ("table", "text", "sequence", "image"),
    "cnn": ("sequence", "image", "text"),
    "rnn": ("sequence", "text"),
    "transformer": ("sequence", "text"),
}
DATA_SETTING = {"table": "a plain table", "text": "data.text", "sequence": "data.sequence", "image": "data.image"}


def needed_data(kind: str) -> str:
    """`data.sequence or data.text`: the data settings a model kind runs on, as a message says them."""
    settings = [DATA_SETTING[k] for k in INPUT_KINDS_BY_MODEL[kind]]
    return ", ".join(settings[:-1]) + " or " + settings[-1] if len(settings) > 1 else settings[0]


class BaselineSpec(StrictModel):
    kind: Literal["auto", "logistic", "linear"] = Field(
        "auto", description="auto: logistic (softmax) regression for classification, ridge for regression.")
    l2: NonNegFloat = Field(1.0, description="L2 strength; scikit-learn's C = 1/l2 (Ridge's alpha = l2).")
    max_iter: int = Field(500, ge=1, le=MAX_COUNT, description="L-BFGS iterations.")
