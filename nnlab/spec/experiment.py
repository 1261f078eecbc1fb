"""The `Spec`: the top-level fields (`root`) with the rules across parts (`checks`) run at validation, and
reading one from a YAML file with `--set` overrides.

Validation happens once, here; the rest of nnlab trusts the types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError, model_validator

from nnlab.core.records import Gate
from nnlab.errors import SpecError
from nnlab.spec.checks import spec_problems, sweep_key_problem
from nnlab.spec.load import MAX_DEPTH, apply_overrides, read_spec_file
from nnlab.spec.messages import format_errors as _format_errors
from nnlab.spec.models import MODEL_KINDS, MLPSpec
from nnlab.spec.root import SpecFields
from nnlab.spec.train import SCHEDULER_NAMES


class Spec(SpecFields):
    """An nnlab experiment."""

    @model_validator(mode="after")
    def _resolve(self) -> Spec:
        if self.models is None:
            self.models = [MLPSpec(kind="mlp", name="mlp")]
            self._default_model = True
        problems = self._name_models()
        if not self.models and self.baseline is None:
            problems.append("models: nothing to train: the baseline is off and the model list is empty")
        problems += spec_problems(self)
        if self.sweep is not None:
            resolved = self.resolved()
            problems += [p for key in self.sweep.grid if (p := sweep_key_problem(key, resolved))]
            # the same check as the grid's, its message naming the section the key is in
            problems += [p.replace("sweep.grid:", "sweep.space:", 1) for key in self.sweep.space
                         if (p := sweep_key_problem(key, resolved))]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _name_models(self) -> list[str]:
        problems, names = [], set()
        for model in self.models:
            model.name = model.name or _unique(model.kind, names)
            if model.name == "baseline":
                problems.append("models: the name 'baseline' is reserved for the baseline model")
            elif model.name in names:
                problems.append(f"models: names must be unique; '{model.name}' appears twice")
            names.add(model.name)
            if model.train is None:
                model.train = self.train.model_copy(deep=True)
        return problems

    @property
    def default_model(self) -> bool:
        """True when `models` was omitted and nnlab chose the first network."""
        return self._default_model

    def resolved(self) -> dict[str, Any]:
        """The spec with every default filled in, as plain YAML-able data."""
        return self.model_dump(mode="json")


def _unique(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def parse_expect_rule(rule: str) -> tuple[str, float]:
    """`'>= 0.9'` -> ('>=', 0.9). Gates are parsed by `records.Gate`; this is its rule part."""
    gate = Gate.parse("model.val.metric", rule)
    return gate.op, gate.threshold


UNION_TAGS = {*MODEL_KINDS, *SCHEDULER_NAMES}


def format_errors(error: ValidationError) -> list[str]:
    """One line per problem of a spec: `field.path: what is allowed; got <value>`."""
    return _format_errors(error, Spec, UNION_TAGS)


def load_spec(path: str | Path, overrides: list[str] = ()) -> tuple[Spec, Path]:
    """Read, override and validate a spec file. Returns the spec and the folder data paths are relative to."""
    path = Path(path)
    raw = read_spec_file(path)
    if raw is None:
        raise SpecError(f"{path.name}: the spec is empty; it needs at least name, data.path and data.target")
    if not isinstance(raw, dict):
        raise SpecError(f"{path.name}: the spec must be a mapping of keys (name, data, ...); "
                        f"got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides)
    return validate_spec(raw, path.name), path.parent


def validate_spec(raw: dict[str, Any], source: str) -> Spec:
    """A raw mapping (parsed YAML, maybe overridden) -> Spec, or a SpecError with one line per problem."""
    try:
        return Spec.model_validate(raw)
    except ValidationError as e:
        raise SpecError("\n".join(f"{source}: {line}" for line in format_errors(e))) from None
    except RecursionError:  # only reachable from Python callers: YAML and --set are bounded in depth
        raise SpecError(f"{source}: nested too deeply; at most {MAX_DEPTH} levels") from None


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "nnlab experiment spec"
    return schema
