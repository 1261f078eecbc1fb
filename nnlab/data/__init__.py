"""Data: read and check a source, split it, and fit the preprocessing (tables, text, sequences, images) on the
training split only. `prepare` is the entry point; `Preprocessor` re-applies the preprocessing to new rows.

Modules: read (files and their checks), target (task and labels), split (seeded split, fingerprint), table,
text, arrays (sequences and images), scaling (overflow-safe statistics), preprocess (the Preprocessor),
prepared (Prepared and prepare), mistakes (the errors file).

May import: `nnlab.spec`, `nnlab.core`, `nnlab.errors` (and numpy, pandas); never torch."""

from nnlab.data.mistakes import misclassified
from nnlab.data.prepared import Prepared, prepare, shrink_train
from nnlab.data.preprocess import Preprocessor
from nnlab.data.read import array_frame, builtin_table
from nnlab.data.table import TableEncoder
from nnlab.data.text import TextEncoder, tokenize

__all__ = ["Prepared", "Preprocessor", "TableEncoder", "TextEncoder", "array_frame", "builtin_table", "misclassified", "prepare",
           "shrink_train", "tokenize"]
