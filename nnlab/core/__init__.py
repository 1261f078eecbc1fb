"""Torch-free foundations every layer stands on: the run contract (`records`: run.json and summary.json as
typed records, gates), input descriptions (`inputs`), signals as exceptions and deferred sections
(`interrupts`), the metric-column vocabulary and which direction is better (`columns`), number formatting
(`numbers`), settings flattened and diffed (`settings`, `changes`).

May import: nothing of nnlab but `nnlab.errors`. Never torch."""
