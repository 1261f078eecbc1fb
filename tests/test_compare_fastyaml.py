"""`fastyaml.load` reads what `yaml.safe_dump` writes exactly as PyYAML does (PyYAML is the oracle)."""

from __future__ import annotations

import math
import random

import pytest
import yaml

from compare_fixtures import make_spec
from nnlab import fastyaml

TRICKY = ["a", "mlp", "val_loss", "1.0", "yes", "No", "null", "~", "0x1F", "1_000", "017", "2024-01-01", "", " ", "-",
          "- a", "? x", "[", "]", "{a}", "a,b", "&x", "*y", "!t", "%", "@", "`", "|", ">", "a: b", "a:b", "a #c", "#",
          "it's", 'say "hi"', "é", "日本", "x" * 90, "word " * 30, "line\nbreak", " lead", "trail ", "=", "<<",
          ".inf", "1e5", "1.5e-3", "+1", "-0", "tab\there", ":", "a:", "true", "ON", "0o17", "12:30", "1:20:30",
          "'", "''", "\\", "0", "00", "3.", ".5", "-.5", ".nan"]
NUMBERS = [0.0, -0.0, 1e-5, 1e20, 0.001, 3.14159, -2.5, 1e-300, float("inf"), float("nan"), 1.0, 5e-4, 12345678.9]


def _scalar(rng: random.Random):
    pick = rng.random()
    if pick < 0.35:
        return rng.choice(TRICKY)
    if pick < 0.5:
        return rng.randint(-10**6, 10**6)
    if pick < 0.65:
        return rng.choice(NUMBERS)
    return rng.choice([True, False, None])


def _value(rng: random.Random, depth: int = 0):
    pick = rng.random()
    if depth > 3 or pick < 0.5:
        return _scalar(rng)
    if pick < 0.75:
        return {_key(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def _key(rng: random.Random):
    return rng.choice([*TRICKY, "name", "train", "x.y.z"]) if rng.random() < 0.85 else rng.randint(0, 5)


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_random_documents_read_as_pyyaml_reads_them():
    rng = random.Random(7)
    fast = 0
    for _ in range(1000):
        data = {_key(rng): _value(rng) for _ in range(rng.randint(1, 6))} if rng.random() < 0.9 else _value(rng)
        text = yaml.safe_dump(data, sort_keys=False)
        assert same(fastyaml.load(text), yaml.safe_load(text)), text
        try:
            fastyaml._Reader(text).document()
            fast += 1
        except fastyaml._Unsupported:
            pass
    assert fast > 150  # the fast path is taken, not only the fallback


@pytest.mark.parametrize("spec", [
    make_spec(),
    make_spec(train={"scheduler": {"name": "cosine"}}, models=[
        {"name": "a", "kind": "mlp", "hidden": [64, 32]},
        {"name": "b", "kind": "mlp", "hidden": [], "train": {"optimizer": {"lr": 1e-05}}}]),
    {"models": [[1, [2, 3]], {"a": [{"b": None}]}], "empty": {}, "none": [], "quote": "it's: fine"},
])
def test_specs_read_on_the_fast_path(spec):
    text = yaml.safe_dump(spec, sort_keys=False)
    assert fastyaml._Reader(text).document() == yaml.safe_load(text)


@pytest.mark.parametrize("text", [
    "a: &x 1\nb: *x\n", "a: !!str 1\n", "a: |\n  two\n  lines\n", "a: 'wrapped\n  quote'\n", "a: plain\n  wrapped\n",
    "a: 1 # comment\n", "--- 1\n", "a: {b: 1}\n", "a: 017\n", "a: 1_000\n", "a: 2024-01-01\n", 'a: "x\\ty"\n',
    "a: 1\na: 2\n", "- a\n-\n",
])
def test_anything_else_goes_to_libyaml(text):
    with pytest.raises(fastyaml._Unsupported):
        fastyaml._Reader(text).document()
    assert fastyaml.load(text) == yaml.safe_load(text)
