"""What the store-tidying commands show: `runs --du` (each run's size, its checkpoints' share) and sizes as
people read them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from nnlab.views.grid import Col, Grid

if TYPE_CHECKING:
    from nnlab.runstore.gc import Usage

DU_COLUMNS = ["id", "bytes", "checkpoint_bytes", "checkpoint_share"]


def human_bytes(count: int) -> str:
    """`1.2 MiB`, `340 B`: binary units, one decimal."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def du_rows(usage: list[Usage]) -> list[dict[str, Union[str, int, float]]]:
    return [{"id": u.run, "bytes": u.bytes, "checkpoint_bytes": u.checkpoint_bytes,
             "checkpoint_share": round(u.checkpoint_bytes / u.bytes, 4) if u.bytes else 0.0} for u in usage]


def du_table(rows: list[dict[str, Union[str, int, float]]], store: str) -> Grid:
    total = sum(int(r["bytes"]) for r in rows)
    held = sum(int(r["checkpoint_bytes"]) for r in rows)
    columns = [Col("id", [str(r["id"]) for r in rows], min_width=40, max_width=40, priority=9, keep_end=True),
               Col("size", [human_bytes(int(r["bytes"])) for r in rows], right=True, priority=8),
               Col("checkpoints", [human_bytes(int(r["checkpoint_bytes"])) for r in rows], right=True, priority=7),
               Col("share", [f"{float(r['checkpoint_share']):.0%}" for r in rows], right=True, priority=6)]
    notes = [f"{len(rows)} run(s) in {store}: {human_bytes(total)}, of which checkpoints {human_bytes(held)} "
             "(`nnlab gc` removes those of completed runs)"]
    return Grid(columns, notes=notes)
