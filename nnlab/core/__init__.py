"""Torch-free foundations every layer stands on, one owner per concept:

    records     the run contract: run.json, summary.json and models/<model>.json as typed records, gates
    statuses    the words a run and a model end in (apart, so the CLI's choices need no pydantic)
    inputs      what a model needs to know about its input (kind, shape, vocabulary), sparse rows
    interrupts  Ctrl-C and SIGTERM as exceptions that name their signal; sections where they wait
    columns     the metric-column vocabulary (`val_accuracy`, `test_rmse_sd`) and which direction is better
    numbers     numbers as every table shows them; stored floats read back exactly
    messages    values and lists in one-line messages (`shorten`, `quoted`, `show_value`, ...)
    settings    a spec as flat dotted settings, and the one spec diff (`compare`, `compare A B`, changes since)
    keys        the one resolver of dotted keys such as `models.<name|index>.dropout` (a name wins)
    yamlfile    the bounded YAML reader (a spec file, a run's spec.yaml, a `--set` value)
    files       the one "is this a regular file" check and the bounded file reader
    verdicts    the words a model's stored verdicts begin with (advice, cut off)
    jsonvalue   the type of a JSON value, for annotations

May import: nothing of nnlab but `nnlab.errors` and the rest of `core`; pydantic (records), PyYAML (yamlfile),
numpy (inputs).
Never torch."""
