"""Rows -> text for scripts and CI: csv, json and markdown with stable column names, and one cell's text.

csv and json carry every value exactly (floats as their shortest repr, stored metrics as the float32 they
are: `0.9130435`; lists as JSON); markdown is for people, with the best value of each metric column in bold.
The one cell formatter is `nnlab.core.numbers`'s, the "best value" rule `nnlab.core.columns`'.
"""

from __future__ import annotations

import csv
import io
import json
import math

from nnlab.report.compare import DELTA_SUFFIX, EPOCH_COLUMNS, best_rows, is_measure
from nnlab.core.numbers import format_value  # noqa: F401  (one formatter, re-exported)
from nnlab.core.jsonvalue import JSONValue
from nnlab.report.rows import Row


def to_csv(columns: list[str], rows: list[Row]) -> str:
    """A header row, then one line per row: numbers as they read back exactly, lists as JSON text
    (`[64, 32]`), booleans as true/false, missing values empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    plain = (str, int, float)
    for row in rows:
        # the csv module writes a float as repr() does, the shortest text that reads back to it
        writer.writerow([v if type(v) in plain and v == v else _csv_cell(v) for v in map(row.get, columns)])
    return out.getvalue()


def _csv_cell(value: JSONValue) -> JSONValue:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return json.dumps(value) if isinstance(value, (bool, list, dict)) else value


def to_json(columns: list[str], rows: list[Row]) -> str:
    """A JSON list of objects with these keys, `[]` when empty; missing values are null."""
    return json.dumps([{c: _json_value(row.get(c)) for c in columns} for row in rows], indent=2) + "\n"

def _json_value(value: JSONValue) -> JSONValue:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN is not JSON; an infinite setting or metric is as unusable to a script
    return value


def to_markdown(columns: list[str], rows: list[Row], digits: int = 4, split: str | None = None) -> str:
    """A GitHub table; the best value of each metric column (of `split` when given) in bold."""
    best = best_rows(columns, rows, split)
    numeric = {c: is_measure(c) for c in columns}
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---:" if numeric[c] or c in EPOCH_COLUMNS else "---" for c in columns) + "|"]
    for i, row in enumerate(rows):
        cells = []
        for col in columns:
            text = format_value(row.get(col), digits if numeric[col] else None, col.endswith(DELTA_SUFFIX))
            text = text.replace("|", "\\|")
            cells.append(f"**{text}**" if i in best.get(col, ()) else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
