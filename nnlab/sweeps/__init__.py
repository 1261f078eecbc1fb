"""Sweeps: the grid and one-at-a-time points (`grid`), points trained as one stack (`points`), and the
executors that run work units (`executors`: local processes, Ray, what `--ship` sends).

May import: run and everything below it. Never the views or the CLI."""
