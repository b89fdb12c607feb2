"""Measure search on the question set; fit the confidence calibration and the threshold.

``kb/data/questions.tsv``: ``id, article, style, question`` (``article`` ``-``: no article
answers it, so any self-service answer is wrong).  A question is *held back* when
sha256(id) mod 4 == 0: calibration and threshold are fitted on the other (*dev*) questions
only, and held-back figures are reported apart::

    python -m kb.evaluate            # report with the shipped calibration
    python -m kb.evaluate --fit      # refit on dev, write kb/data/calibration.json, report

*Wrong rate*: wrong self-service answers / answers offered (confidence ≥ threshold).
*Coverage*: questions answered right by self-service / questions an article answers.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from kb.io import parse_markdown
from kb.search import CALIBRATION_JSON, DATA, Calibration, Searcher, features

QUESTIONS_TSV = DATA / "questions.tsv"
ASR_TSV = DATA / "questions_asr.tsv"
"""Recogniser versions of some questions (``bench/kb_asr_questions.py``), ids ``<id>-asr``."""
SAMPLE_MD = DATA / "sample_kb.md"
MAX_WRONG = 0.02
EVAL_DAY = date(2026, 12, 2)
"""Every sample article is valid on this day (the sample's validity windows are fixed)."""


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    article: str | None
    style: str
    text: str

    @property
    def held_back(self) -> bool:
        """By the original question's id, so a recogniser version stays on its side."""
        base = self.id.removesuffix("-asr")
        return hashlib.sha256(base.encode()).digest()[0] % 4 == 0


@dataclass(frozen=True, slots=True)
class Outcome:
    question: Question
    ranked: tuple[str, ...]
    confidence: float
    features: tuple[float, float] | None

    @property
    def top1(self) -> bool:
        return bool(self.ranked) and self.ranked[0] == self.question.article

    @property
    def top3(self) -> bool:
        return self.question.article in self.ranked[:3]


def read_questions(path: Path = QUESTIONS_TSV) -> list[Question]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        Question(r["id"], None if r["article"] == "-" else r["article"], r["style"], r["question"])
        for r in rows
    ]


def run(searcher: Searcher, questions: Iterable[Question], today: date = EVAL_DAY) -> list[Outcome]:
    out = []
    for q in questions:
        res = searcher.search(q.text, today=today, limit=3)
        best = res.best
        out.append(
            Outcome(
                q, tuple(h.article.id for h in res.hits),
                best.confidence if best else 0.0, features(res),
            )
        )  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class Report:
    questions: int
    in_scope: int
    top1: float
    top3: float
    threshold: float
    answered: int
    wrong_rate: float
    coverage: float


def report(outcomes: Sequence[Outcome], threshold: float) -> Report:
    scoped = [o for o in outcomes if o.question.article]
    answered = [o for o in outcomes if o.ranked and o.confidence >= threshold]
    wrong = sum(not o.top1 for o in answered)
    right = len(answered) - wrong
    return Report(
        questions=len(outcomes),
        in_scope=len(scoped),
        top1=sum(o.top1 for o in scoped) / max(len(scoped), 1),
        top3=sum(o.top3 for o in scoped) / max(len(scoped), 1),
        threshold=threshold,
        answered=len(answered),
        wrong_rate=wrong / max(len(answered), 1),
        coverage=right / max(len(scoped), 1),
    )


def choose_threshold(outcomes: Sequence[Outcome], max_wrong: float = MAX_WRONG) -> float:
    """The lowest confidence threshold whose wrong rate stays under ``max_wrong`` (so coverage
    is as large as it can be); 1.0 if none does."""
    best = 1.0
    for t in sorted({round(o.confidence, 4) for o in outcomes}, reverse=True):
        if report(outcomes, t).wrong_rate < max_wrong:
            best = t
    return best


def fit_calibration(
    outcomes: Sequence[Outcome], steps: int = 4000, rate: float = 0.5
) -> Calibration:
    """Logistic regression of "top hit is right" on (cover, margin), by gradient descent."""
    data = [(o.features, 1.0 if o.top1 else 0.0) for o in outcomes if o.features]
    b = wc = wm = 0.0
    n = max(len(data), 1)
    for _ in range(steps):
        gb = gc = gm = 0.0
        for (c, m), y in data:
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, b + wc * c + wm * m))))
            gb += p - y
            gc += (p - y) * c
            gm += (p - y) * m
        b, wc, wm = b - rate * gb / n, wc - rate * gc / n, wm - rate * gm / n
    return Calibration(round(b, 4), round(wc, 4), round(wm, 4))


def sample_searcher(calibration: Calibration | None = None) -> Searcher:
    return Searcher(parse_markdown(SAMPLE_MD.read_text(encoding="utf-8")), calibration=calibration)


def all_questions() -> list[Question]:
    """The written questions and, when made, their recogniser versions."""
    return read_questions() + (read_questions(ASR_TSV) if ASR_TSV.exists() else [])


def evaluate(searcher: Searcher | None = None, fit: bool = False) -> dict[str, Report]:
    """Reports for dev, held-back and the recogniser versions on each side (refitting the
    calibration and threshold on the dev questions if ``fit``)."""
    questions = all_questions()
    dev_q = [q for q in questions if not q.held_back]
    held_q = [q for q in questions if q.held_back]
    searcher = searcher or sample_searcher()
    if fit:
        searcher.calibration = fit_calibration(run(searcher, dev_q))
    dev = run(searcher, dev_q)
    threshold = choose_threshold(dev) if fit else load_threshold()
    if fit:
        c = searcher.calibration
        body = {"bias": c.bias, "w_cover": c.w_cover, "w_margin": c.w_margin}
        body["threshold"] = threshold
        body["fitted_on"] = f"{len(dev_q)} dev questions (written and recogniser versions)"
        CALIBRATION_JSON.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    held = run(searcher, held_q)
    out = {"dev": report(dev, threshold), "held_back": report(held, threshold)}
    for side, part in (("dev", dev), ("held", held)):
        asr = [o for o in part if o.question.style == "asr"]
        if asr:
            out[f"{side} written"] = report([o for o in part if o not in asr], threshold)
            out[f"{side} asr"] = report(asr, threshold)
    return out


def load_threshold(path: Path = CALIBRATION_JSON) -> float:
    """The self-service threshold fitted with the calibration (1.0 = never self-serve)."""
    if not path.exists():
        return 1.0
    return float(json.loads(path.read_text(encoding="utf-8"))["threshold"])


def format_report(name: str, r: Report) -> str:
    return (
        f"{name:12s} n={r.questions:3d} (in scope {r.in_scope:3d})  top-1 {r.top1:6.1%}"
        f"  top-3 {r.top3:6.1%}  threshold {r.threshold:.3f}  answered {r.answered:3d}"
        f"  wrong {r.wrong_rate:5.2%}  coverage {r.coverage:6.1%}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", action="store_true", help="refit calibration on dev questions")
    parser.add_argument("--misses", action="store_true", help="list dev top-1 misses")
    args = parser.parse_args(argv)
    for name, r in evaluate(fit=args.fit).items():
        print(format_report(name, r))
    if args.misses:
        searcher = sample_searcher()
        dev = [q for q in all_questions() if not q.held_back]
        for o in run(searcher, dev):
            if o.question.article and not o.top1:
                print(o.question.id, o.question.text, o.question.article, o.ranked, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
