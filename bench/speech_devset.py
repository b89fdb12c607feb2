"""Field extraction scored on the project's development set (issue 14), text and recognised.

    .venv/bin/python bench/speech_devset.py [--split dev|held|both] [--errors N]

Rows come from ``bench/devset/devset.tsv`` (``python -m speech.devset``).  For each split
(``dev``: tuned on; ``held``: a quarter of the phrasing groups, never looked at while tuning)
it prints, on the text as written and — where ``bench/devset/.cache/recognised.tsv`` exists
(``bench/devset/synth.py`` then ``recognise.py``) — on what Whisper base heard through the
phone band:

- emergency recall (the right line offered) and any-line recall; false alarms on every row
  that is not an emergency (past events, questions, matters), plus the 16 hotline test
  utterances when ``../shared/audio/hotline/expected.tsv`` is there;
- 第八条 split accuracy (number of demands on multi-/single-demand rows and on matters);
- type, seat and department accuracy on matters; out-of-scope accuracy (and false ones);
- recogniser CER; field extraction time per utterance.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hotline.config import load_config  # noqa: E402
from speech import devset  # noqa: E402
from speech.fields import extract  # noqa: E402
from speech.fields_bench import UTTERANCES  # noqa: E402
from speech.metrics import cer  # noqa: E402

RECOGNISED = devset.TSV.parent / ".cache" / "recognised.tsv"
SHARED = Path(os.environ.get("HOTLINE_SHARED", ROOT.parent / "shared"))
if not (SHARED / "audio").is_dir():
    SHARED = Path("/work/shared")
HOTLINE_TSV = SHARED / "audio" / "hotline" / "expected.tsv"


def recognised() -> dict[str, str]:
    out: dict[str, str] = {}
    if RECOGNISED.exists():
        for line in RECOGNISED.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                out[parts[0]] = parts[1]
    return out


class Score:
    def __init__(self) -> None:
        self.hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.errors: dict[str, list[str]] = defaultdict(list)

    def add(self, name: str, ok: bool, what: str) -> None:
        """``ok``: a pass — or, for a "lower is better" measure, an alarm (listed as error)."""
        self.hits[name][0] += int(ok)
        self.hits[name][1] += 1
        if ok == ("lower" in name):
            self.errors[name].append(what)

    def line(self, name: str) -> str:
        ok, n = self.hits.get(name, [0, 0])
        return f"{ok}/{n} = {100 * ok / n:5.1f} %" if n else "–"


def _dept_ok(got: str | None, want: str) -> bool:
    return got is not None and got in want.split("|")


def score(rows: list[dict[str, str]], texts: dict[str, str], config: object) -> Score:
    s = Score()
    for r in rows:
        if r["id"] not in texts:
            continue
        said = texts[r["id"]]
        d = extract(said, config)  # type: ignore[arg-type]
        tag = f"{r['id']}: {said} → "
        if r["emergency"]:
            s.add(
                "emergency recall (right line)",
                d["emergency"] == r["emergency"],
                tag + f"{d['emergency']} {d['emergency_context']} {d['emergency_mentioned']}",
            )
            s.add("emergency recall (any line)", d["emergency"] is not None, tag)
            continue
        s.add("false emergencies (lower is better)", d["emergency"] is not None,
              tag + f"{d['emergency']} {d['emergency_words']}")  # fmt: skip
        if r["scope"]:
            s.add("out of scope", d["out_of_scope"] == r["scope"], tag + str(d["out_of_scope"]))
            continue
        s.add("false out-of-scope (lower is better)", d["out_of_scope"] is not None,
              tag + str(d["out_of_scope"]))  # fmt: skip
        s.add("demands split (count)", len(d["demands"]) == int(r["demands"]),
              tag + str([x["text"] for x in d["demands"]]))  # fmt: skip
        if int(r["demands"]) == 2:
            want = r["department"].split(";")
            got = [x["department"] for x in d["demands"]]
            ok = len(got) == 2 and all(_dept_ok(g, w) for g, w in zip(got, want, strict=True))
            s.add("department (both demands)", ok, tag + str(got))
            continue
        if r["type"]:
            s.add("type", d["type"] == r["type"], tag + str(d["type"]))
            want_seat = r["seat"] or config.general_seat.id  # type: ignore[attr-defined]
            s.add("seat", d["seat"] == want_seat, tag + str(d["seat"]))
        if r["department"]:
            s.add("department", _dept_ok(d["department"], r["department"]),
                  tag + str(d["department"]))  # fmt: skip
    return s


ORDER = (
    "emergency recall (right line)", "emergency recall (any line)",
    "false emergencies (lower is better)", "out of scope", "false out-of-scope (lower is better)",
    "demands split (count)", "department (both demands)", "type", "seat", "department",
)  # fmt: skip


def hotline_false_alarms(config: object) -> str:
    if not HOTLINE_TSV.exists():
        return "hotline utterances not found"
    with HOTLINE_TSV.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    calm = [r for r in rows if not r["emergency"]]
    alarms = [r["id"] for r in calm if extract(r["text"], config)["emergency"]]  # type: ignore[arg-type]
    missed = [
        r["id"] for r in rows if r["emergency"]
        and extract(r["text"], config)["emergency"] != r["emergency"]  # type: ignore[arg-type]
    ]  # fmt: skip
    return (f"hotline utterances: false emergencies {len(alarms)}/{len(calm)} {alarms}, "
            f"emergencies missed {len(missed)}/{len(rows) - len(calm)} {missed}")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=("dev", "held", "both"), default="both")
    ap.add_argument("--errors", type=int, default=0, help="print N errors per measure")
    args = ap.parse_args()
    config = load_config(ROOT / "hotline.yaml")
    heard = recognised()
    splits = ("dev", "held") if args.split == "both" else (args.split,)
    print(hotline_false_alarms(config))
    for split in splits:
        rows = devset.rows(split)
        written = {r["id"]: r["text"] for r in rows}
        for source, texts in (("text", written), ("recognised", heard)):
            covered = [r for r in rows if r["id"] in texts]
            if not covered:
                print(f"\n[{split} / {source}] no rows (run bench/devset/synth.py, recognise.py)")
                continue
            s = score(covered, texts, config)
            print(f"\n[{split} / {source}] {len(covered)} utterances")
            for name in ORDER:
                print(f"  {name:40s} {s.line(name)}")
                for e in s.errors.get(name, [])[: args.errors]:
                    print(f"      {e}")
            if source == "recognised":
                cers = [cer(texts[r["id"]], r["text"]) for r in covered]
                print(f"  {'recogniser CER (mean)':40s} {100 * statistics.fmean(cers):5.1f} %")
    texts = [r["text"] for r in devset.rows()] + list(heard.values())
    print()
    for name, batch in (("development set", texts), ("fields_bench's 8", list(UTTERANCES))):
        for t in batch:
            extract(t, config)
        best = float("inf")
        for _ in range(3):  # best of three: the machine is shared
            t0 = time.perf_counter()
            for t in batch:
                extract(t, config)
            best = min(best, (time.perf_counter() - t0) / len(batch) * 1000)
        print(f"field extraction, {name}: {best:.3f} ms per utterance (ceiling 5 ms)")
    print(f"load average while timing: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
