"""The type of a value read from or written to JSON (run.json, summary.json, models/<model>.json), so that
annotations can name it. Only an annotation: nothing here checks a value."""

from __future__ import annotations

from typing import Union

JSONValue = Union[None, bool, int, float, str, list["JSONValue"], dict[str, "JSONValue"]]
JSONObject = dict[str, JSONValue]  # a JSON object: what json.loads returns for `{...}`
