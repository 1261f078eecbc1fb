"""What a person sees: rich tables and the fast text grid (`tables`, `grid`), the `show`, two-run and sweep
views (`show`, `pair`, `sweep`), what `train` prints (`train_report`), and curves (`curves`).

May import: report, the run store and core. Never torch or the train side."""
