"""`python -m nnlab.cli`: the same as the `nnlab` command."""

from nnlab.cli import main

main()
