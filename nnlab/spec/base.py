"""What every part of the spec shares: the strict base class, the vocabulary of tasks and metrics, and limits.

Kept apart from the spec classes so that `specdata`, `spectrain`, `specmodels` and `spec` can all import it
without importing each other.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# one owner: nnlab.core.messages; re-exported for the spec's own modules
from nnlab.core.messages import listing, quoted, shorten  # noqa: F401

SCHEMA_VERSION = 1
TASKS = ("auto", "binary", "multiclass", "regression")
METRICS_BY_TASK = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"),
    "multiclass": ("accuracy", "f1", "log_loss"),
    "regression": ("mse", "rmse", "mae", "r2"),
}
DEFAULT_METRICS = {"binary": ["accuracy", "f1", "roc_auc"], "multiclass": ["accuracy", "f1"],
                   "regression": ["rmse", "mae", "r2"]}
ALL_METRICS = sorted({m for names in METRICS_BY_TASK.values() for m in names})
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# Names become parts of file names (run folders, models/<name>.safetensors), which most file systems cap
# at 255 bytes; 100 leaves room for the time stamp and suffixes nnlab adds.
MAX_NAME_LENGTH = 100
MAX_SEED = 2**32 - 1  # numpy's and torch's generators both take it; repeats use seed .. seed+N-1
MAX_MODELS = 1000
# Sizes and counts (widths, batch size, patience, ...): torch takes 64-bit integers only, and nothing real
# comes near 2**31.
MAX_COUNT = 2**31 - 1

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
Dropout = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]


class StrictModel(BaseModel):
    """Strict types (no `epochs: yes`), no NaN/inf, and unknown keys rejected.

    Unknown keys are reported by Pydantic itself (`extra="forbid"`), next to every other problem of the
    spec; `specerrors` adds the did-you-mean from the class found at the error's location.
    """

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, validate_default=True)
