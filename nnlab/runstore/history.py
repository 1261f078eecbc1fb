"""metrics.csv read back as a pandas DataFrame, whatever happened to the file.

Every row is written whole with its newline and flushed, so a crash can only cut the last line; that line
is dropped. Damage from elsewhere (binary bytes, NUL bytes, rows of the wrong width, text in a number
column) drops the rows it touches and says so once; it never raises.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from nnlab.core.files import special_kind

if TYPE_CHECKING:
    import pandas as pd

TEXT_COLUMNS = ("model",)


def read_history(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The rows of metrics.csv (model as text, every other column a number, `member` 0 where an older run
    has no such column) and one warning per kind of damage found."""
    import pandas as pd

    problems: list[str] = []
    try:
        if special_kind(path.stat().st_mode) is not None:  # a FIFO would block the read forever
            return _empty(), [f"{path}: not a regular file; no epochs shown"]
        raw = path.read_bytes()
    except FileNotFoundError:
        return _empty(), problems
    except OSError as e:
        return _empty(), [f"{path}: unreadable ({e.strerror or e}); no epochs shown"]
    if not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]  # every row is written whole with its newline: drop a cut one
    lines = raw.split(b"\n")
    kept = [line for line in lines if b"\0" not in line and _is_text(line)]
    if len(kept) < len(lines):
        problems.append(f"{path}: {len(lines) - len(kept)} line(s) with binary bytes skipped")
    try:
        frame = pd.read_csv(io.StringIO(b"\n".join(kept).decode("utf-8")), on_bad_lines="skip", dtype=str,
                            keep_default_na=False)
    except (ValueError, pd.errors.EmptyDataError, pd.errors.ParserError):
        return _empty(), problems
    if "model" not in frame or "epoch" not in frame:
        if len(frame.columns):
            problems.append(f"{path}: no model and epoch columns; no epochs shown")
        return _empty(), problems
    for column in frame.columns:
        if column not in TEXT_COLUMNS:
            frame[column] = pd.to_numeric(frame[column].replace("", None), errors="coerce")
    frame = frame[frame["epoch"].notna()].copy()
    frame["member"] = frame["member"].fillna(0) if "member" in frame else 0
    frame["epoch"] = frame["epoch"].astype("int64")
    frame["member"] = frame["member"].astype("int64")
    return frame.reset_index(drop=True), problems


def _is_text(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _empty() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({"model": pd.Series(dtype=str), "member": pd.Series(dtype="int64"),
                         "epoch": pd.Series(dtype="int64")})
