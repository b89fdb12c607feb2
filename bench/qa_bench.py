"""Recording and transcription cost per call (issue 11), printed.

A two-minute call is laid out from real test speech (the caller's from
../shared/audio/hotline, the agent's from bench/qa_scripts/audio) as the two mono WAVs
MixMonitor leaves in the spool, then:

* the mover's work (join to stereo, AES-GCM encrypt, write 0600, index): CPU seconds per
  call-minute, against the call-minute itself (the ceiling: a process that needed a whole
  core per call);
* disk: MB per call-minute in the spool (caller, agent and the mixed file) and in the store;
* transcription with the project's Whisper (one thread): audio minutes per CPU minute, and how
  many calls of ``--call-min`` minutes one core keeps transcribed per hour.

    nice -n 10 .venv/bin/python bench/qa_bench.py [--call-min 3] [--minutes 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hotline.config import load_config  # noqa: E402
from recordings.crypto import RecordingKey  # noqa: E402
from recordings.index import RecordingIndex  # noqa: E402
from recordings.mover import Mover  # noqa: E402
from speech.audio import read_wav, write_wav  # noqa: E402

SHARED = Path(os.environ.get("HOTLINE_SHARED", REPO.parent / "shared"))
RATE = 8000


def layout(minutes: float) -> tuple[np.ndarray, np.ndarray]:
    """Caller and agent taking turns (0.8 s apart) for ``minutes``."""
    callers = sorted((SHARED / "audio" / "hotline").glob("dev??.wav"))
    agents = sorted((REPO / "bench" / "qa_scripts" / "audio").glob("*.wav"))
    if not callers or not agents:
        raise SystemExit("test speech missing (../shared/audio/hotline, bench/qa_synth.py)")
    total = int(minutes * 60 * RATE)
    caller, agent = np.zeros(total, np.int16), np.zeros(total, np.int16)
    pos, turn = 0, 0
    while pos < total:
        pool, side = (callers, caller) if turn % 2 else (agents, agent)
        x, rate = read_wav(pool[(turn // 2) % len(pool)])
        assert rate == RATE
        n = min(x.size, total - pos)
        side[pos : pos + n] = x[:n]
        pos += n + int(0.8 * RATE)
        turn += 1
    return caller, agent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=2.0, help="length of the test call")
    parser.add_argument("--call-min", type=float, default=3.0, help="an average call's length")
    args = parser.parse_args()
    caller, agent = layout(args.minutes)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        spool = t / "spool"
        spool.mkdir()
        call_id = "1800000000.1"
        base = spool / f"{call_id}_{call_id}"
        write_wav(f"{base}_caller.wav", caller, RATE)
        write_wav(f"{base}_agent.wav", agent, RATE)
        write_wav(f"{base}_mix.wav", (caller.astype(np.int32) + agent).clip(-32768, 32767)
                  .astype(np.int16), RATE)  # fmt: skip
        spool_mb = sum(p.stat().st_size for p in spool.iterdir()) / 1e6
        index = RecordingIndex(t / "rec.db")
        mover = Mover(spool, t / "store", index, RecordingKey(os.urandom(32)),
                      ended=lambda _c: True)  # fmt: skip
        mover.settle_s = -1.0
        c0, w0 = time.process_time(), time.perf_counter()
        (rec,) = mover.move_ready()
        move_cpu, move_wall = time.process_time() - c0, time.perf_counter() - w0
        store_mb = rec.bytes / 1e6
        print(f"call: {args.minutes:.1f} min, caller and agent taking turns")
        print(
            f"mover: {move_cpu:.3f} CPU s ({move_wall:.3f} s wall) for the call = "
            f"{move_cpu / args.minutes:.3f} CPU s per call-minute; ceiling 60 CPU s per "
            f"call-minute: ratio {move_cpu / args.minutes / 60:.5f}"
        )
        print(
            f"disk: spool {spool_mb / args.minutes:.2f} MB/min (caller+agent+mix, deleted "
            f"after the move), store {store_mb / args.minutes:.2f} MB/min (stereo, encrypted)"
        )
        from speech.recognizers import WhisperRecognizer
        from speech.stereo import whisper_decoder

        config = load_config(REPO / "hotline.yaml")
        c0 = time.process_time()
        decode = whisper_decoder(WhisperRecognizer(config, num_workers=1))
        load_cpu = time.process_time() - c0
        c0, w0 = time.process_time(), time.perf_counter()
        mover.transcribe_next(decode)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        lines = index.transcript(call_id)
        index.close()
    speed = args.minutes / (cpu / 60)
    print(
        f"transcription (Whisper base int8, 1 thread): {len(lines)} lines, {cpu:.1f} CPU s "
        f"({wall:.1f} s wall, model load {load_cpu:.1f} CPU s) = {speed:.2f} call-minutes "
        f"(both channels) per CPU-minute"
    )
    print(
        f"one core keeps {60 * speed / args.call_min:.0f} calls/hour of {args.call_min:.0f} "
        f"min transcribed"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
