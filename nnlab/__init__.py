"""nnlab: a command-line experiment runner for neural networks."""

__version__ = "0.1.0"
