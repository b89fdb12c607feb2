"""Department suggestion: the lexicon compared with a character n-gram naive Bayes.

    .venv/bin/python bench/devset/department_nb.py

Training text is the project's own: the *dev* rows of the development set that name a
department (held-back rows are not read).  Naive Bayes (character 1–2-grams, Laplace
smoothing, numpy) is scored by leave-one-phrasing-group-out cross-validation, so no test row
shares a phrasing with its training rows; the lexicon (:func:`speech.fields.extract`) on the
same rows; and the two together (naive Bayes only where the lexicon names no department).
Prints the three accuracies (the lexicon was written while looking at dev rows, so its figure
here is optimistic; see bench/speech_devset.py for the held-back part).
"""

from __future__ import annotations

import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from hotline.config import load_config  # noqa: E402
from speech import devset  # noqa: E402
from speech.fields import extract  # noqa: E402


def grams(text: str) -> list[str]:
    chars = [c for c in text if "\u3400" <= c <= "\u9fff"]
    return chars + [a + b for a, b in pairwise(chars)]


class NaiveBayes:
    def fit(self, texts: list[str], labels: list[str]) -> NaiveBayes:
        self.labels = sorted(set(labels))
        vocab = sorted({g for t in texts for g in grams(t)})
        self.index = {g: i for i, g in enumerate(vocab)}
        counts = np.ones((len(self.labels), len(vocab)))
        for t, y in zip(texts, labels, strict=True):
            for g, n in Counter(grams(t)).items():
                counts[self.labels.index(y), self.index[g]] += n
        self.logp = np.log(counts / counts.sum(axis=1, keepdims=True))
        prior = Counter(labels)
        self.prior = np.log(np.array([prior[y] / len(labels) for y in self.labels]))
        return self

    def predict(self, text: str) -> str:
        idx = [self.index[g] for g in grams(text) if g in self.index]
        score = self.prior + (self.logp[:, idx].sum(axis=1) if idx else 0)
        return self.labels[int(np.argmax(score))]


def main() -> int:
    config = load_config(REPO / "hotline.yaml")
    rows = [
        r for r in devset.rows("dev")
        if r["department"] and int(r["demands"]) == 1 and not r["emergency"]
    ]  # fmt: skip
    ok = {"lexicon": 0, "naive Bayes": 0, "lexicon, then naive Bayes": 0}
    for r in rows:
        train = [x for x in rows if x["group"] != r["group"]]
        nb = NaiveBayes().fit([x["text"] for x in train],
                              [x["department"].split("|")[0] for x in train])  # fmt: skip
        want = r["department"].split("|")
        lex = extract(r["text"], config)["department"]
        guess = nb.predict(r["text"])
        ok["lexicon"] += lex in want
        ok["naive Bayes"] += guess in want
        ok["lexicon, then naive Bayes"] += (lex or guess) in want
    for name, n in ok.items():
        print(f"{name:28s} {n}/{len(rows)} = {100 * n / len(rows):5.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
