"""The `--executor ray` options, declared once for `train` and `sweep`, and assembled once into the
keywords the Ray executor takes (only those given, so `executor_for` can name one given without Ray)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from nnlab.sweeps.executors import RayOptions

AddressOption = typer.Option(None, "--address", show_default=False, help="With --executor ray: auto or "
                             "ray://host:port joins a running cluster (default: a local instance).")
CpusPerTrialOption = typer.Option(None, "--cpus-per-trial", min=0, show_default=False,
                                  help="With --executor ray: CPUs per point (default 1).")
GpusPerTrialOption = typer.Option(None, "--gpus-per-trial", min=0, show_default=False,
                                  help="With --executor ray: GPUs each run reserves (in a sweep, each point; "
                                       "default 0).")
MaxRetriesOption = typer.Option(None, "--max-retries", min=0, show_default=False,
                                help="With --executor ray: new attempts for a run whose worker died (default 1).")
ShipOption = typer.Option(False, "--ship", help="With --executor ray: send the spec and its data file through "
                          "Ray's object store and each run folder back (no shared file system).")



def ray_options(address: Optional[str], cpus_per_trial: Optional[float], gpus_per_trial: Optional[float],
                max_retries: Optional[int], ship: bool) -> RayOptions:
    """The Ray options given on the command line, as RayExecutor's keywords; none given: empty."""
    given: RayOptions = {}
    if address is not None:
        given["address"] = address
    if cpus_per_trial is not None:
        given["cpus_per_trial"] = cpus_per_trial
    if gpus_per_trial is not None:
        given["gpus_per_trial"] = gpus_per_trial
    if max_retries is not None:
        given["max_retries"] = max_retries
    if ship:
        given["ship"] = True
    return given
