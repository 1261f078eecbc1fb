"""The `ensemble:` section: after training, members chosen greedily on validation predictions become one more
model of the run, `ensemble` (nnlab/run/ensemble.py builds it).

    ensemble: {method: greedy, size: 5}   # 5 selection steps with replacement (Caruana et al. 2004)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nnlab.spec.base import StrictModel

ENSEMBLE_NAME = "ensemble"  # the model name the ensemble has in the run (summary.json, models/, --model)
MAX_ENSEMBLE_STEPS = 1000


class EnsembleSpec(StrictModel):
    method: Literal["greedy"] = Field("greedy", description="greedy: forward selection with replacement on the "
                                      "validation predictions (Caruana et al. 2004), as AutoGluon does.")
    size: int = Field(5, ge=1, le=MAX_ENSEMBLE_STEPS, description="Selection steps: each adds one member (a "
                      "member may be added again, which raises its weight); the best-scoring prefix is kept.")


def ensemble_problems(ensemble: EnsembleSpec | None, model_names: list[str]) -> list[str]:
    """The ensemble is recorded as a model named `ensemble`: no model of the spec may have that name."""
    if ensemble is not None and ENSEMBLE_NAME in model_names:
        return [f"models: the name '{ENSEMBLE_NAME}' is reserved for the ensemble (ensemble: is set); rename "
                f"the model"]
    return []
