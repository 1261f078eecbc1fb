"""Where a sweep's work units train: here, in this process or in local worker processes (`local`), or as
Ray tasks (`ray`, with what `--ship` sends in `shipping`). `units` holds the unit, its result and the
`Executor` protocol both implement; neither executor imports the other. The factory below imports each
only when asked for (Ray is heavy).
"""

from __future__ import annotations

from typing import TypedDict

from nnlab.errors import NnlabError
from nnlab.sweeps.executors.units import Executor


class RayOptions(TypedDict, total=False):
    """What the command line asked of Ray (ray.RayExecutor's keywords); a key only when it was given."""

    address: str
    cpus_per_trial: float
    gpus_per_trial: float
    max_retries: int
    ship: bool


def executor_for(name: str, jobs: int, ray_options: RayOptions) -> Executor:
    """The executor units go to: `local` (`jobs` at a time) or `ray`; Ray is imported only when asked for."""
    if name == "local":
        if ray_options:
            raise NnlabError(f"--{next(iter(ray_options)).replace('_', '-')}: only with --executor ray")
        from nnlab.sweeps.executors.local import LocalExecutor

        return LocalExecutor(jobs)
    if jobs != 1:
        raise NnlabError("--jobs: only with --executor local; Ray runs as many points at once as the cluster has "
                         "room for (--cpus-per-trial)")
    from nnlab.sweeps.executors.ray import RayExecutor

    return RayExecutor(**ray_options)
