"""Which syllable parts the recogniser confuses, learned from its own output.

``python -m speech.confusions [RECOGNISED.tsv]`` aligns, for every *dev* emergency row of the
development set (:mod:`speech.devset`; held-back rows are never read), the toneless pinyin
of what was said with that of what Whisper wrote (``bench/devset/.cache/recognised.tsv``,
written by ``bench/devset/recognise.py``), and counts, over substituted syllables that
keep their initial, which final was heard for which (``final zhe→zhao`` style pairs), and
over those that keep their final, which initial.  Pairs seen at least :data:`MIN_COUNT` times
are written to :data:`TABLE` (committed; small), which :mod:`speech.fields_emergency` reads
to match emergency cues heard one syllable off.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

from speech.fields_pinyin import keyword_syllables, split_syllable

TABLE = Path(__file__).resolve().parent / "emergency_confusions.tsv"
MIN_COUNT = 2
"""A pair must be seen this often to be used (one sighting may be a fluke)."""


def syllables(text: str) -> list[str]:
    """Toneless pinyin of the Chinese characters of ``text`` (other characters dropped)."""
    han = "".join(c for c in text if "\u3400" <= c <= "\u9fff")
    return [s for s in keyword_syllables(han) if s.isascii() and s.isalpha()]


def align(ref: list[str], hyp: list[str]) -> list[tuple[str, str]]:
    """Substituted (said, heard) syllable pairs of a minimum-edit alignment."""
    n, m = len(ref), len(hyp)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = 0 if ref[i - 1] == hyp[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
    pairs: list[tuple[str, str]] = []
    i, j = n, m
    while i > 0 and j > 0:
        cost = 0 if ref[i - 1] == hyp[j - 1] else 1
        if d[i][j] == d[i - 1][j - 1] + cost:
            if cost:
                pairs.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif d[i][j] == d[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def learn(said_heard: list[tuple[str, str]]) -> Counter[tuple[str, str, str]]:
    """``(kind, said part, heard part)`` counts, kind ``initial`` or ``final``."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for said, heard in said_heard:
        for ref, hyp in align(syllables(said), syllables(heard)):
            (ri, rf), (hi, hf) = split_syllable(ref), split_syllable(hyp)
            if ri == hi and rf != hf:
                counts[("final", rf, hf)] += 1
            elif rf == hf and ri != hi:
                counts[("initial", ri, hi)] += 1
    return counts


def write_table(counts: Counter[tuple[str, str, str]], path: Path = TABLE) -> int:
    kept = sorted((k, c) for k, c in counts.items() if c >= MIN_COUNT)
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("kind\tsaid\theard\tcount\n")
        for (kind, said, heard), c in kept:
            f.write(f"{kind}\t{said}\t{heard}\t{c}\n")
    return len(kept)


@lru_cache(maxsize=4)
def load(path: Path = TABLE) -> dict[str, frozenset[tuple[str, str]]]:
    """``{"initial": {(said, heard)…}, "final": {…}}``; empty sets if the table is missing."""
    out: dict[str, set[tuple[str, str]]] = {"initial": set(), "final": set()}
    try:
        with path.open(encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if row.get("kind") in out and row.get("said") is not None:
                    out[row["kind"]].add((row["said"], row["heard"] or ""))
    except (OSError, csv.Error):
        pass
    return {k: frozenset(v) for k, v in out.items()}


def main(argv: list[str]) -> int:
    from speech import devset

    rec_path = Path(argv[0]) if argv else devset.TSV.parent / ".cache" / "recognised.tsv"
    heard = {}
    with rec_path.open(encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                heard[parts[0]] = parts[1]
    pairs = [
        (r["text"], heard[r["id"]])
        for r in devset.rows("dev")
        if r["emergency"] and r["id"] in heard
    ]
    counts = learn(pairs)
    n = write_table(counts)
    print(f"{len(pairs)} dev emergency utterances, {sum(counts.values())} part substitutions,"
          f" {n} pairs kept (≥{MIN_COUNT}) → {TABLE}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
