"""Numbers as nnlab shows them: one formatter, one reading of stored floats.

Used by every table (`train`'s results, `runs`, `compare`, `show`) and by the csv/json/markdown output, so a
value reads the same everywhere. Torch-free and numpy-free (the browse commands start fast).
"""

from __future__ import annotations

import json
import math
import struct
from decimal import Decimal
from typing import Optional

NAN = math.nan
PLUS_MINUS = " ± "
SPREAD_MAX_DECIMALS = 12  # a spread below 1e-11 reads in e-notation instead


def stored_float(value: object) -> float:
    """A number read from a run file, as what it is; NaN where there is none.

    Metrics are computed in float32 and stored as Python floats, so 0.9130435 (a float32) is stored as
    0.9130434989929199. A value that is exactly a float32 reads back as the shortest decimal that is that
    float32 (`0.9130435`); any other float is kept as it is."""
    try:
        number = float(value) if value is not None and not isinstance(value, bool) else NAN
    except (TypeError, ValueError):
        return NAN
    if not math.isfinite(number) or number == 0:
        return number
    try:
        as_float32 = struct.unpack("f", struct.pack("f", number))[0]
    except OverflowError:
        return number
    if as_float32 != number:
        return number
    # 9 significant digits always round-trip a float32; where 6 or fewer do, `.6g` already is the shortest
    for digits in range(6, 10):
        text = f"{number:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == number:
            return float(text)
    return number


def format_value(value: object, digits: Optional[int] = 4, signed: bool = False) -> str:
    """One cell as text. A measure with `digits` decimals (and a sign for differences); a setting as written
    (`digits=None`: `0.0005`, `[64, 32]`, `true`, `null`); a missing value (NaN) as nothing."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if digits is None:
            return repr(value)
        # a tiny metric (an MSE of 3e-05) keeps its digits; a tiny difference may read +0.0000
        if value != 0 and (abs(value) >= 1e6 or (abs(value) < 10 ** -digits and not signed)):
            return f"{value:+.{max(digits - 1, 1)}e}" if signed else f"{value:.{max(digits - 1, 1)}e}"
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def format_spread(mean: object, sd: object, digits: int = 4, signed: bool = False) -> str:
    """`0.9130 ± 0.0040`: a mean over repeats and its standard deviation; the mean alone without a spread."""
    text = format_value(mean, digits, signed)
    spread = stored_float(sd)
    if not text or math.isnan(spread):
        return text
    return f"{text}{PLUS_MINUS}{spread_text(spread, digits, exponent='e' in text)}"


def spread_text(sd: float, digits: int = 4, exponent: bool = False) -> str:
    """A spread as its mean reads: with the mean's `digits` decimals, and where that would round it to
    nothing, with decimals enough for two significant digits (`0.0000029`, not `2.866e-06` or `0.0000`); in
    e-notation only beside a mean that is (an MSE of 3e-05)."""
    if exponent or not math.isfinite(sd) or sd == 0 or abs(sd) >= 10 ** -digits:
        return format_value(sd, digits)
    decimals = 1 - math.floor(math.log10(abs(sd)))
    return f"{sd:.{decimals}f}" if decimals <= SPREAD_MAX_DECIMALS else f"{sd:.1e}"


def exact_difference(b: object, a: object) -> float:
    """b − a as the decimals they are: 0.9130435 − 0.89 is 0.0230435, not the binary subtraction's
    0.023043499999999988 (what a script would read in json and csv). NaN where either is missing."""
    vb, va = stored_float(b), stored_float(a)
    if not (math.isfinite(va) and math.isfinite(vb)):
        return vb - va
    return float(Decimal(repr(vb)) - Decimal(repr(va)))
