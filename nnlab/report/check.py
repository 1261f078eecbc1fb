"""`nnlab check`: re-check a finished run's `expect` gates from its summary, without training. Torch-free.

CI jobs that train once and check later (or check a stricter rule than the spec's) read the recorded
scores only: the run's own gates (its spec's `expect`) or gates given on the command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from nnlab.core.numbers import format_value
from nnlab.errors import RunError, SpecError
from nnlab.core.records import Gate, GateResult, ModelResult, RunSummary
from nnlab.core.jsonvalue import JSONObject

if TYPE_CHECKING:
    from nnlab.runstore import Run

# `KEY=RULE` as the option reads (`mlp.test.accuracy=>=0.92`), or `KEY RULE` (`mlp.test.accuracy >= 0.92`).
_EXPECT_OPTION = re.compile(r"^\s*([^<>=\s]+)\s*=?\s*((?:>=|<=|==|>|<).*)$")


@dataclass(frozen=True)
class CheckReport:
    """The gates of one run, checked: what `nnlab check` prints and its exit code."""

    run_id: str
    status: str
    results: list[GateResult]
    models: dict[str, ModelResult]  # the run's recorded results, to say why a score is missing
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [gate_line(result, self.models) for result in self.results]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def parse_expect_option(text: str) -> Gate:
    """`mlp.test.accuracy=>=0.92` (or with spaces, or without the `=`) -> a Gate. SpecError if malformed."""
    match = _EXPECT_OPTION.match(text)
    if not match:
        raise SpecError(f"--expect {text!r}: expected KEY=RULE such as 'mlp.test.accuracy=>=0.92' "
                        "(<model>.<val|test>.<metric>, op one of >=, >, <=, <, ==)")
    try:
        return Gate.parse(match.group(1), match.group(2).strip())
    except ValueError as e:  # the message names the key and what the rule should read
        raise SpecError(f"--expect {str(e).removeprefix('expect: ').removeprefix('expect.')}") from None


def run_summary(run: Run) -> RunSummary:
    """The typed summary of a run read from the store; RunError when it has none to check."""
    summary = run.summary
    if summary is None:
        raise RunError(f"run '{run.id}' has no results to check (status {run.status}; no summary.json)")
    return summary


def recorded_gates(run: Run) -> list[Gate]:
    """The gates in the run's own spec (`expect`)."""
    expect = (run.spec or {}).get("expect") or {}
    try:
        return [Gate.parse(str(key), rule) for key, rule in expect.items()]
    except ValueError as e:  # a run.json edited by hand, or written by another version
        raise RunError(f"run '{run.id}': its spec's {e}") from None


def check_run(run: Run, given: list[str]) -> CheckReport:
    """Check `given` gates (`KEY=RULE` texts), or the run's own when none are given."""
    gates = [parse_expect_option(text) for text in given]
    summary = run_summary(run)
    if not gates:
        gates = recorded_gates(run)
    if not gates:
        raise SpecError(f"run '{run.id}': its spec has no expect gates and none were given; "
                        "add --expect KEY=RULE, e.g. --expect 'mlp.test.accuracy=>=0.9'")
    for gate in gates:
        _check_gate_fits(gate, summary, run)
    notes = [] if run.status == "completed" else [f"run '{run.id}' is {run.status}: checking the models it "
                                                   "finished"]
    if run.smoke and not given:
        notes.append(f"run '{run.id}' is a smoke run (a small training sample): its spec's gates are meant "
                     "for a full run")
    return CheckReport(run.id, run.status, [gate.check(summary.models) for gate in gates], summary.models, notes)


def _check_gate_fits(gate: Gate, summary: RunSummary, run: Run) -> None:
    """A gate naming a model or metric the run never had is a typo (exit 2), not a miss (exit 1); a model
    that was planned but failed or never trained has no score, which is a miss."""
    models = list(dict.fromkeys([*summary.models, *_planned_models(run.spec or {})]))
    if gate.model not in models:
        raise SpecError(f"expect {gate.key}: run '{run.id}' has no model '{gate.model}' "
                        f"(models: {', '.join(models) or 'none'})")
    logged = ["loss", *summary.metrics]
    if summary.metrics and gate.metric not in logged:
        raise SpecError(f"expect {gate.key}: metric '{gate.metric}' was not logged in run '{run.id}' "
                        f"(metrics: {', '.join(logged)})")


def _planned_models(spec: JSONObject) -> list[str]:
    names = ["baseline"] if spec.get("baseline") else []
    return names + [m["name"] for m in spec.get("models") or [] if isinstance(m, dict) and m.get("name")]


def gate_line(result: GateResult, models: Mapping[str, ModelResult]) -> str:
    """`expect mlp.test.accuracy >= 0.92: 0.9304 -> pass`: the one line for a gate, printed by `nnlab check`
    and `nnlab train` alike. The score reads as every table writes it (numbers.format_value); a missing one
    names its model's status when that model did not finish (`missing (failed)`)."""
    if result.value is None:
        model = models.get(_gated_model(result))
        value = f"missing ({model.status})" if model is not None and not model.finished else "missing"
    else:
        value = format_value(result.value)
    return f"expect {result.key} {result.rule.strip()}: {value} -> {'pass' if result.passed else 'MISSED'}"


def _gated_model(result: GateResult) -> str:
    try:
        return Gate.parse(result.key, result.rule).model
    except ValueError:  # a summary.json edited by hand: the line still shows, without the model's status
        return ""
