"""The read side: rows of runs and models (`rows`), the run listing (`runlist`), comparison tables and the
two-run view (`compare`, `pair`), the noise rule (`noise`), data fingerprints (`fingerprints`), score gates
(`check`), and output formats for scripts (`formats`).

May import: core and the run store. Never torch, spec, data, models or training: it reads run folders."""
