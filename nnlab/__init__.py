"""nnlab: a command-line experiment runner for neural networks.

`nnlab.load_run(ref)` opens a finished run for prediction (see `nnlab.api`); it is imported on first use, so
that `import nnlab` (and every command that does not train or predict) stays light.
"""

from typing import Any

from nnlab.version import __version__
__all__ = ["__version__", "load_run"]


def __getattr__(name: str) -> Any:
    if name == "load_run":
        from nnlab.api import load_run

        return load_run
    raise AttributeError(f"module 'nnlab' has no attribute {name!r}")
