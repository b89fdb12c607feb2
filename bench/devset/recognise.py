"""Recognise the synthesised development set with the shipped Whisper base.

    nice -n 10 .venv/bin/python bench/devset/recognise.py [LIMIT]

Rows go held-back first, then dev emergencies (what :mod:`speech.confusions` learns from),
then the rest, so a bounded run (``LIMIT`` rows) still scores the held-back part.

Reads ``.cache/audio/<id>.wav`` (``synth.py`` writes them), streams each through a
:class:`speech.recognizers.WhisperRecognizer` session as a call would, and appends
``id, text, confidence, audio_s, decode_s`` to ``.cache/recognised.tsv`` (resumes: ids already
there are skipped).  One decoding thread, so it shares the machine politely.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from hotline.config import load_config  # noqa: E402
from speech.recognizers import WhisperRecognizer, transcribe_file  # noqa: E402

HERE = Path(__file__).resolve().parent
AUDIO = HERE / ".cache" / "audio"
OUT = HERE / ".cache" / "recognised.tsv"


def done_ids() -> set[str]:
    if not OUT.exists():
        return set()
    with OUT.open(encoding="utf-8") as f:
        return {line.split("\t", 1)[0] for line in f if line.strip()}


def main() -> None:
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else None
    with (HERE / "devset.tsv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    rows.sort(key=lambda r: (r["split"] != "held", not r["emergency"]))
    rows = rows[:limit]
    done = done_ids()
    rec = WhisperRecognizer(load_config(REPO / "hotline.yaml"), cpu_threads=1)
    with OUT.open("a", encoding="utf-8") as out:
        for r in rows:
            wav = AUDIO / f"{r['id']}.wav"
            if r["id"] in done or not wav.exists():
                continue
            t = transcribe_file(rec, wav)
            text = t.text.replace("\t", " ").replace("\n", " ")
            out.write(f"{r['id']}\t{text}\t{t.confidence:.3f}\t{t.audio_seconds:.2f}\t")
            out.write(f"{t.decode_seconds:.2f}\n")
            out.flush()
            print(r["id"], text, flush=True)


if __name__ == "__main__":
    main()
