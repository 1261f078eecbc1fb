"""One `nnlab train`: plan it (everything checked, nothing written), run the session (baseline first, then
each model as a stack of members), fit a model's members and sum them up (`members`), say what was seen
(`diagnosis`), and resume a cut-off run (`resume`).

May import: everything below it (core, spec, data, models, training) and the run store. Reports through
the `Reporter` protocol, never the views."""
