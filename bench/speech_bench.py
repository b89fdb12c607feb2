"""Speech benchmark: latency to draft, real-time factor, callers per core, memory.

    .venv/bin/python bench/speech_bench.py [--quick] [--skip-latency] [--skip-concurrency]

1. **Latency** through the real service (AudioSocket over TCP, real Redis on a free port,
   Whisper): callers speak 5–20 s utterances (hotline clips joined) in real time; we time
   end of speech → draft in Redis, and socket release (end of speech detected) → draft.
2. **Real-time factor** per engine on the same utterances, one thread: Whisper base int8
   (short-window decoding and faster-whisper's 30 s window), Vosk (Korean small model; the
   Mandarin small model is the same size class).
3. **Callers per core**: the process pinned to one core, N callers streaming in real time
   through the engine; the largest N whose p95 lag (transcript ready after the audio
   ended) stays ≤ 1.5 s.
4. **Memory**: peak RSS of a fresh process that loads the engine and transcribes one file.

Everything runs on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hotline.config import load_config  # noqa: E402
from speech import audio as au  # noqa: E402
from speech.endpoint import EndpointConfig, EndpointDetector  # noqa: E402
from speech.models import korean_vosk_model_dir  # noqa: E402
from speech.recognizers import (  # noqa: E402
    Recognizer,
    VoskRecognizer,
    WhisperOptions,
    WhisperRecognizer,
)

HOTLINE = ROOT.parent / "shared/audio/hotline"
RATE = 8000


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _trimmed(samples: np.ndarray, margin_s: float = 0.3) -> np.ndarray:
    """A clip with its leading/trailing silence cut to ``margin_s``, so that joined clips
    sound like one caller pausing briefly between sentences (< the silence window)."""
    d = EndpointDetector(EndpointConfig(silence_ms=1500, max_s=120))
    padded = np.concatenate([samples, np.zeros(RATE * 2, np.int16)])
    for i in range(0, padded.size, 160):
        if d.feed(padded[i : i + 160]):
            break
    start = max(0, int(((d.speech_started_at or 0) - margin_s) * RATE))
    end = min(samples.size, int(((d.speech_ended_at or 0) + margin_s) * RATE))
    return samples[start:end]


def utterances(targets: list[float], first: int = 0) -> list[np.ndarray]:
    """Join hotline clips (pauses of ~0.6 s between them) to about each target length."""
    clips = [_trimmed(au.read_wav(HOTLINE / f"dev{i:02d}.wav")[0]) for i in range(1, 17)]
    out, k = [], first
    for target in targets:
        parts = [clips[k % len(clips)]]
        k += 1
        while sum(p.size for p in parts) + clips[k % len(clips)].size <= (target + 1.5) * RATE:
            parts.append(clips[k % len(clips)])
            k += 1
        lead = np.zeros(RATE // 2, np.int16)
        out.append(np.concatenate([lead, *parts, np.zeros(RATE // 2, np.int16)]))
    return out


def speech_end(samples: np.ndarray) -> float:
    """Where the last speech ends (seconds), by our end-pointer."""
    d = EndpointDetector(EndpointConfig(silence_ms=1500, max_s=120))
    padded = np.concatenate([samples, np.zeros(RATE * 2, np.int16)])
    for i in range(0, padded.size, 160):
        if d.feed(padded[i : i + 160]):
            break
    return float(d.speech_ended_at or samples.size / RATE)


# ---- 1. latency through the service -----------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _caller(port: int, redis, samples: np.ndarray, call_id: str, silence_ms: int):
    from speech.service import KIND_AUDIO, KIND_UUID, frame, register_listen, wait_for_draft

    listen_id = await register_listen(redis, call_id, max_s=30, silence_ms=silence_ms)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame(KIND_UUID, uuid.UUID(listen_id).bytes))
    audio = np.concatenate([samples, np.zeros(RATE * 5, np.int16)])
    end_of_speech = speech_end(samples)
    closed = asyncio.get_running_loop().create_future()

    async def watch() -> None:
        try:
            while await reader.read(4096):
                pass
        except ConnectionError:
            pass
        closed.set_result(time.monotonic())

    watcher = asyncio.create_task(watch())
    waiter = asyncio.create_task(wait_for_draft(redis, call_id, 30, listen_id))
    start = time.monotonic()
    for i, k in enumerate(range(0, audio.size, 160)):
        if closed.done():
            break
        try:
            writer.write(frame(KIND_AUDIO, audio[k : k + 160].tobytes()))
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
    released = await closed
    draft = await waiter
    ready = time.monotonic()
    writer.close()
    await watcher
    speech_ended = start + end_of_speech
    return samples.size / RATE, ready - speech_ended, ready - released, draft


async def bench_latency(lengths: list[float], parallel: int, silence_ms: int) -> None:
    from redis.asyncio import Redis

    from speech.service import ServiceSettings, SpeechService

    config = load_config(ROOT / "hotline.yaml")
    rport = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        redis_proc = subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await asyncio.sleep(0.3)
            redis = Redis(host="127.0.0.1", port=rport)
            rec = WhisperRecognizer(config, cpu_threads=1, num_workers=2)
            settings = ServiceSettings(port=0, audio_dir=Path(tmp) / "audio", workers=2)
            svc = SpeechService(config, rec, redis, settings)
            await svc.start()
            utts = utterances(lengths)
            results = []
            for i in range(0, len(utts), parallel):
                batch = utts[i : i + parallel]
                results += await asyncio.gather(
                    *(_caller(svc.port, redis, u, f"bench.{i + j}", silence_ms)
                      for j, u in enumerate(batch))
                )  # fmt: skip
            await svc.stop()
            await redis.aclose()
        finally:
            redis_proc.terminate()
            redis_proc.wait(10)
    print(f"\n## 1. End of speech → draft in Redis (Whisper, service over TCP, "
          f"{parallel} callers at a time, silence window {silence_ms} ms)")  # fmt: skip
    print(f"{'audio s':>8} {'speech end→draft':>17} {'release→draft':>14}  transcript")
    for secs, a, b, draft in results:
        text = (draft or {}).get("transcript", "<none>")
        print(f"{secs:8.1f} {a:17.2f} {b:14.2f}  {len(text):3d} chars: {text[:24]}…{text[-12:]}")
    a_all = [r[1] for r in results]
    b_all = [r[2] for r in results]
    print(f"speech end → draft:    p50 {pct(a_all, 50):.2f} s  p95 {pct(a_all, 95):.2f} s "
          f"(includes the {silence_ms} ms silence window)")  # fmt: skip
    print(f"release → draft:       p50 {pct(b_all, 50):.2f} s  p95 {pct(b_all, 95):.2f} s "
          f"(n={len(results)}; target p95 ≤ 1.5 s)")  # fmt: skip
    for lo, hi in ((0, 10), (10, 16), (16, 30)):
        sel = [r[2] for r in results if lo <= r[0] < hi]
        if sel:
            print(f"  {lo:>2}–{hi} s utterances: release → draft p95 {pct(sel, 95):.2f} s")


# ---- 2. real-time factor ----------------------------------------------------------------
def rtf(rec: Recognizer, utts: list[np.ndarray], chunk_s: float = 0.2) -> tuple[float, float]:
    """Mean decode-time / audio-time and mean time spent in finish()."""
    ratios, finals = [], []
    for u in utts:
        session = rec.start(RATE)
        step = int(RATE * chunk_s)
        t0 = time.perf_counter()
        for i in range(0, u.size, step):
            session.feed(u[i : i + step].tobytes())
        t1 = time.perf_counter()
        session.finish()
        t2 = time.perf_counter()
        ratios.append((t2 - t0) / (u.size / RATE))
        finals.append(t2 - t1)
    return float(np.mean(ratios)), float(np.mean(finals))


def bench_rtf(utts: list[np.ndarray]) -> None:
    config = load_config(ROOT / "hotline.yaml")
    print(f"\n## 2. Real-time factor, 1 thread ({len(utts)} utterances, "
          f"{sum(u.size for u in utts) / RATE:.0f} s of audio)")  # fmt: skip
    engines: list[tuple[str, Recognizer]] = [
        ("whisper-base int8, short window", WhisperRecognizer(config, cpu_threads=1)),
        (
            "whisper-base int8, 30 s window",
            WhisperRecognizer(config, cpu_threads=1, options=WhisperOptions(short_window=False)),
        ),
        ("vosk small (ko model)", VoskRecognizer(korean_vosk_model_dir())),
    ]
    for name, rec in engines:
        ratio, final = rtf(rec, utts)
        print(f"{name:34} RTF {ratio:.3f}   finish() {final:.2f} s on average")


# ---- 3. callers per core ----------------------------------------------------------------
def _stream(rec: Recognizer, utts: list[np.ndarray], start: float, lags: list[float]) -> None:
    """One caller line: utterances back to back, each fed in real time in 200 ms chunks."""
    step = RATE // 5
    t = start
    for samples in utts:
        session = rec.start(RATE)
        for i, k in enumerate(range(0, samples.size, step)):
            delay = t + i * 0.2 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            session.feed(samples[k : k + step].tobytes())
        session.finish()
        end = t + samples.size / RATE
        lags.append(time.monotonic() - end)
        t = max(end, time.monotonic())


def callers_in_real_time(rec: Recognizer, n: int, seconds: float, rounds: int = 2) -> list[float]:
    """n caller lines, each speaking ``rounds`` different utterances back to back; the lines
    start spread over one utterance, so n utterances are in flight at any moment after that."""
    utts = utterances([seconds] * n * rounds, first=3)
    lags: list[float] = []
    start = time.monotonic() + 0.1
    threads = [
        threading.Thread(
            target=_stream,
            args=(rec, utts[j * rounds : (j + 1) * rounds], start + j * seconds / n, lags),
        )
        for j in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lags


def bench_per_core(counts: list[int], seconds: float) -> None:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    config = load_config(ROOT / "hotline.yaml")
    print(
        f"\n## 3. Callers per core (process pinned to one core; n callers stream different "
        f"~{seconds:.0f} s utterances back to back in real time, starts spread over one "
        "utterance so n are in flight at once; "
        "keeps up = p95 lag from end of audio to transcript ≤ 1.5 s)"
    )
    for name, make in (
        ("whisper", lambda n: WhisperRecognizer(config, cpu_threads=1, num_workers=n)),
        ("vosk-ko", lambda n: VoskRecognizer(korean_vosk_model_dir())),
    ):
        best = 0
        for n in counts:
            lags = callers_in_real_time(make(n), n, seconds)
            ok = pct(lags, 95) <= 1.5
            verdict = "keeps up" if ok else "FALLS BEHIND"
            print(
                f"{name:8} {n:2d} callers: lag p50 {pct(lags, 50):5.2f} s  "
                f"p95 {pct(lags, 95):5.2f} s  {verdict}"
            )
            if not ok:
                break
            best = n
        print(f"{name:8} → {best} concurrent callers per core in real time")


# ---- 4. memory --------------------------------------------------------------------------
def rss_child(engine: str) -> None:
    config = load_config(ROOT / "hotline.yaml")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rec: Recognizer = (
        WhisperRecognizer(config, cpu_threads=1)
        if engine == "whisper"
        else VoskRecognizer(korean_vosk_model_dir())
    )
    from speech.recognizers import transcribe_file

    transcribe_file(rec, HOTLINE / "dev01.wav")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{after / 1024:.0f} {(after - before) / 1024:.0f}")


def bench_rss() -> None:
    print("\n## 4. Peak RSS (fresh process: load the engine, transcribe one utterance)")
    for engine in ("whisper", "vosk"):
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", engine],
            capture_output=True, text=True, check=True, cwd=ROOT,
        ).stdout.split()  # fmt: skip
        print(f"{engine:8} peak RSS {out[0]} MB (engine + model: {out[1]} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer utterances")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-concurrency", action="store_true")
    ap.add_argument("--only-concurrency", action="store_true")
    ap.add_argument("--counts", default="1,2,4,6,8,10", help="callers per core to try")
    ap.add_argument("--parallel", type=int, default=2, help="callers at a time in section 1")
    ap.add_argument("--silence-ms", type=int, default=1500)
    ap.add_argument("--rss-child", choices=("whisper", "vosk"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    lengths = [5, 10, 15, 20] * (1 if args.quick else 3)
    print(f"speech bench on {os.cpu_count()} cores, lengths {sorted(set(lengths))} s")
    if not args.only_concurrency:
        bench_rss()
        bench_rtf(utterances([5, 10, 15, 20]))
    if not args.skip_latency and not args.only_concurrency:
        asyncio.run(bench_latency(lengths, args.parallel, args.silence_ms))
    if not args.skip_concurrency:
        bench_per_core([int(c) for c in args.counts.split(",")] if not args.quick else [1, 4], 20)


if __name__ == "__main__":
    main()
