"""Feature scaling statistics computed without overflow: each column is first divided by its largest absolute
value, so a column of values near 1e200 gets the same scaled values as the column near 1 (squaring 1e200
overflows to inf, and dividing by an infinite spread silently zeroed such columns)."""

from __future__ import annotations

import numpy as np

from nnlab.errors import DataError

SAFE_RANGE = (1e-100, 1e100)  # column magnitudes whose squares and sums stay finite and normal in float64


def fit_scaling(values: np.ndarray, how: str, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """center, spread per column of a 2-D float array; constant columns get spread 1 (they stay 0)."""
    n_cols = values.shape[1]
    if how == "none" or len(values) == 0:
        return np.zeros(n_cols), np.ones(n_cols)
    magnitude = np.abs(values).max(axis=0)
    # Ordinary columns are left as they are (so their statistics stay bit-identical to the direct formulas);
    # only columns whose squares would overflow or underflow are brought near 1 first.
    magnitude = np.where((magnitude > SAFE_RANGE[0]) & (magnitude < SAFE_RANGE[1]) | (magnitude == 0), 1.0,
                         magnitude)
    scaled = values / magnitude
    if how == "standard":
        center, spread = scaled.mean(axis=0), scaled.std(axis=0)
    else:  # minmax
        center, spread = scaled.min(axis=0), scaled.max(axis=0) - scaled.min(axis=0)
    with np.errstate(over="ignore"):
        center, spread = center * magnitude, spread * magnitude
    _check_finite(center, spread, names, magnitude)
    return center, np.where(spread > 0, spread, 1.0)


def _check_finite(center: np.ndarray, spread: np.ndarray, names: list[str], magnitude: np.ndarray) -> None:
    bad = ~(np.isfinite(center) & np.isfinite(spread))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"data: column '{names[i]}' has values too large to scale (up to {magnitude[i]:.3g}); "
                        "rescale them in the file")


def apply_scaling(values: np.ndarray, center: np.ndarray, spread: np.ndarray, names: list[str]) -> np.ndarray:
    """(values - center) / spread as float32; a value that overflows on the way is an error naming its column."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = ((values - center) / spread).astype(np.float32)
    bad = ~np.isfinite(scaled)
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=0))[0])
        raise DataError(f"data: column '{names[i]}' has values too large to scale "
                        f"(such as {values[:, i][bad[:, i]][0]:.3g}); rescale them in the file")
    return scaled
