"""The experiment spec: the top-level `Spec`, loading it from YAML with `--set` overrides, and its JSON Schema.
Imports only `nnlab.core` and `nnlab.errors` (and pydantic, PyYAML); never torch.

Validation happens once, here; the rest of nnlab trusts the types. Every error names the field path, what
is allowed and what was given, e.g. `spam.yaml: models[1].kind: expected one of 'mlp', 'resmlp'; got 'mpl'`,
and every problem of a spec is reported at once, one line each.

The parts live by concern: `base` (base class, vocabulary, limits), `data` (`data:`), `train` (`train:`),
`models` (`models:`, `baseline:`), `root` (the top-level fields, `sweep:`), `checks` (rules across parts and
for a task), `experiment` (`Spec`: the fields with those rules; reading a spec file), `load` (bounded YAML,
`--set`) and `messages` (error lines). Everything is importable from here.
"""

from __future__ import annotations

from nnlab.spec.base import (ALL_METRICS, DEFAULT_METRICS, MAX_MODELS, MAX_NAME_LENGTH, MAX_SEED,  # noqa: F401
                             METRICS_BY_TASK, MODEL_NAME, SCHEMA_VERSION, TASKS, Dropout, Fraction, NonNegFloat,
                             PositiveFloat, StrictModel, listing, quoted, shorten)
from nnlab.spec.checks import check_for_task, spec_problems, sweep_key_problem  # noqa: F401
from nnlab.spec.data import DataSpec, ImageSpec, SequenceSpec, SplitSpec, TextSpec  # noqa: F401
from nnlab.spec.experiment import (UNION_TAGS, Spec, format_errors, json_schema, load_spec,  # noqa: F401
                                   parse_expect_rule, validate_spec)
from nnlab.spec.load import (MAX_DEPTH, MAX_SPEC_BYTES, MAX_VALUES, apply_override, apply_overrides,  # noqa: F401
                            deep_merge, parse_yaml, read_spec_file, set_path)
from nnlab.spec.models import (ACTIVATIONS, INPUT_KINDS_BY_MODEL, MODEL_KINDS, Activation, BaselineSpec,  # noqa: F401
                              CNNSpec, Embedding, MLPSpec, ModelBase, ModelSpec, ResMLPSpec, RNNSpec, TransformerSpec,
                              needed_data)
from nnlab.spec.root import MAX_SWEEP_POINTS, SpecFields, SweepSpec, grid_points  # noqa: F401
from nnlab.spec.train import (SCHEDULER_NAMES, CosineScheduler, EarlyStoppingSpec, OptimizerSpec,  # noqa: F401
                             PlateauScheduler, SchedulerSpec, StepScheduler, TrainSpec)
