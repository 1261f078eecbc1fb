"""The one training loop and what it needs: loop state (`state`), stacked members (`stack`, and the torch-free
rule of what can stack, `stacking`), losses and the optimizer step and schedules (`optim`), stopping rules
(`stopping`), evaluation with one host read (`evaluation`, `metrics`), fp16's loss scale (`lossscale`),
device, precision, loss scale and CPU threads resolved once (`placement`), and the fit entry points (`fit`:
a stack, members one after another, the baseline) that resolve it and run the loop (`loop.run_epochs`).

May import: core, spec, data, models. Never the run store, the read side or the entry points: it returns
records and calls `on_epoch`; it never prints or writes files."""
