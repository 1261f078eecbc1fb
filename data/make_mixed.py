"""Generate data/mixed.csv: short messages beside table columns, where only the two together say spam.

A message is spam when it carries a promotion word ("prize", "claim", "offer", ...) AND comes from a sender not
in the recipient's contacts. Friends write promotion words too ("free for lunch?") and strangers write plain
messages (a courier, a new colleague), so the words alone and the sender alone each leave a quarter of the
rows wrong: half the messages have a promotion word and half the senders are unknown, spam is the quarter with
both. `links` and `hour` are columns that look relevant and say nothing; 3% of the labels are flipped.

Text alone and the columns alone top out near 0.75 accuracy (predicting ham for every row gets as far); text
and columns together reach about 0.97 (the label noise). The logical AND is a sum of the two signals past a
threshold, so even a linear model that reads both (TF-IDF beside the one-hot sender) finds it.

Deterministic: `python data/make_mixed.py` rewrites the same file byte for byte; `make_mixed(rows, seed)`
returns the table (the tests build small ones).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ROWS, SEED, LABEL_NOISE = 3000, 20261206, 0.03
PROMO = ("free", "prize", "win", "claim", "offer", "cash", "bonus", "winner", "reward", "voucher")
PLAIN = ("meeting", "tomorrow", "lunch", "call", "home", "later", "ok", "thanks", "see", "you", "at", "the",
         "office", "tonight", "dinner", "train", "late", "running", "bus", "love", "mum", "dad", "weekend",
         "party", "match", "game", "report", "send", "file", "please", "sorry", "missed", "pick", "up", "kids",
         "school", "shop", "milk", "bread", "coffee", "doctor", "friday", "monday", "delivery", "parcel", "door",
         "address", "new", "team", "welcome", "hello", "hi", "is", "it", "are", "we", "still", "on", "for", "now")


def make_mixed(rows: int = ROWS, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    promo = rng.random(rows) < 0.5  # the word signal
    unknown = rng.random(rows) < 0.5  # the column signal
    spam = promo & unknown
    flipped = rng.random(rows) < LABEL_NOISE
    messages = []
    for has_promo in promo:
        words = list(rng.choice(PLAIN, size=int(rng.integers(4, 11))))
        if has_promo:
            for word in rng.choice(PROMO, size=int(rng.integers(1, 3)), replace=False):
                words.insert(int(rng.integers(0, len(words) + 1)), str(word))
        messages.append(" ".join(words))
    return pd.DataFrame({
        "message": messages,
        "sender": np.where(unknown, "unknown", "contact"),
        "links": rng.poisson(0.8, rows),  # as many in every class: no signal
        "hour": np.round(rng.uniform(0, 24, rows), 1),  # no signal either
        "label": np.where(spam ^ flipped, "spam", "ham"),
    })


def main() -> None:
    out = Path(__file__).with_name("mixed.csv")
    make_mixed().to_csv(out, index=False)
    print(f"wrote {out} ({ROWS} rows)")


if __name__ == "__main__":
    main()
