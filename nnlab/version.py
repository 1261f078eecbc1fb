"""The version of nnlab, in one place: `nnlab --version`, run.json and the package metadata read it.

A module of its own so that reading it never imports the `nnlab` package's lazy entry points."""

__version__ = "0.1.0"
