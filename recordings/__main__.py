"""``python -m recordings serve --config hotline.yaml --spool DIR``: moves finished
recordings from Asterisk's spool into the encrypted store (checked twice a second), deletes
expired ones (every minute) and transcribes new ones one at a time.  The process lowers its
own priority (``nice``), so live calls keep their CPU; calls never depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time

from calls.store import SqliteCallStore
from calls.stream import CallStream
from hotline import service
from hotline.call import CallEvent
from hotline.config import HotlineConfig
from recordings.crypto import RecordingKey, RecordingKeyError
from recordings.index import Recording, RecordingIndex
from recordings.mover import Mover

log = logging.getLogger("recordings")
READY = "recordings: watching"
MOVE_EVERY_S = 0.5
SWEEP_EVERY_S = 60.0
NICE = 10


def transcriber(config: HotlineConfig, mover: Mover, stop: threading.Event) -> None:
    """The transcription thread: the recogniser is loaded on first need; one recording at a
    time; a missing model stops transcription, not recording."""
    decode = None
    while not stop.is_set():
        if not mover.index.pending_transcripts(1):
            stop.wait(1.0)
            continue
        if decode is None:
            from speech.recognizers import WhisperRecognizer
            from speech.stereo import whisper_decoder

            try:
                decode = whisper_decoder(WhisperRecognizer(config, num_workers=1))
            except Exception as exc:  # ModelError, a broken model folder …
                log.error("transcription off: no recogniser (%s)", exc)
                return
        mover.transcribe_next(decode)


async def serve(config: HotlineConfig, spool: str) -> None:
    r = config.recording
    try:
        key = RecordingKey.from_file(r.key_file)
    except (OSError, RecordingKeyError) as exc:
        log.error("recordings not moved: no key (%s)", exc)
        return
    calls = SqliteCallStore(config.calls.path)
    stream = CallStream.from_config(config, socket_timeout=5.0)
    index = RecordingIndex(r.index)
    loop = asyncio.get_running_loop()

    def ended(call_id: str) -> bool:
        rec = asyncio.run_coroutine_threadsafe(calls.get(call_id), loop).result(10)
        return rec is not None and rec.ended

    def announce(rec: Recording) -> None:
        event = CallEvent("recording", rec.call_id, time.time(), "recordings",
                          data={"recording": rec.id, "duration_s": rec.duration_s})  # fmt: skip
        asyncio.run_coroutine_threadsafe(stream.publish(event), loop).result(10)

    mover = Mover(
        spool, r.store_dir, index, key, ended=ended, announce=announce, settle_s=r.settle_s,
        orphan_after_s=r.orphan_after_s, retention_days=r.retention_days,
    )  # fmt: skip
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    halt = threading.Event()
    worker = None
    if r.transcribe:
        worker = threading.Thread(target=transcriber, args=(config, mover, halt), daemon=True)
        worker.start()
    print(f"{READY} {spool}", flush=True)
    swept = 0.0
    while not stop.is_set():
        try:
            await asyncio.to_thread(mover.move_ready)
            if time.monotonic() - swept >= SWEEP_EVERY_S:
                swept = time.monotonic()
                await asyncio.to_thread(mover.sweep)
        except Exception as exc:  # keep going: the next round may succeed
            log.error("recordings round failed: %s", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), MOVE_EVERY_S)
    halt.set()
    await calls.close()
    await stream.close()
    index.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recordings", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="move, encrypt, sweep and transcribe recordings")
    p.add_argument("--config", required=True, help="hotline YAML config")
    p.add_argument("--spool", required=True, help="Asterisk's monitor/hotline folder")
    p.add_argument("--log-level", default="INFO", choices=service.LOG_LEVELS)
    args = parser.parse_args(argv)
    config = service.start(args.config, args.log_level)
    if config is None:
        return 2
    os.nice(NICE)
    asyncio.run(serve(config, args.spool))
    return 0


if __name__ == "__main__":
    sys.exit(main())
