"""Moves finished recordings out of Asterisk's spool into the encrypted store, deletes them
after the retention period, and transcribes them.

MixMonitor writes ``<call id>_<leg uniqueid>_{caller,agent,mix}.wav`` into the instance's
``monitor/hotline`` spool (inside the rootfs, folder 0700).  Once the call's record has
ended (or the files sat untouched for ``orphan_after_s``) and they have been untouched for
``settle_s``, :meth:`Mover.move_ready` joins caller and agent into one stereo WAV
(:func:`speech.stereo.stereo_wav`), encrypts it (:mod:`recordings.crypto`) into
``store_dir/<call id>_<leg>.rec`` (0600, written to a temporary name and renamed), indexes
it, announces it on the call event stream, then deletes the plaintext.  A failure (disk
full, store unwritable) leaves the spool files for a later try, is logged by call id only
and counted in the index for supervisors; calls never depend on any of this.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recordings.crypto import RecordingKey
from recordings.index import Recording, RecordingIndex, TLine

log = logging.getLogger("recordings")

FILE_RE = re.compile(
    r"^([0-9]{1,20}\.[0-9]{1,10})_([0-9]{1,20}\.[0-9]{1,10})_(caller|agent|mix)\.wav$"
)
RETRY_S = 30.0
"""A recording whose move failed is tried again after this long."""


@dataclass
class Leg:
    """One agent leg's files in the spool."""

    call_id: str
    leg: str
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def rec_id(self) -> str:
        return f"{self.call_id}_{self.leg}"

    def newest_mtime(self) -> float:
        times = []
        for p in self.files.values():
            with contextlib.suppress(OSError):
                times.append(p.stat().st_mtime)
        return max(times, default=0.0)


def spool_legs(spool: Path) -> list[Leg]:
    """The legs whose files are in ``spool`` (names that do not match are left alone)."""
    legs: dict[tuple[str, str], Leg] = {}
    try:
        names = os.listdir(spool)
    except OSError:
        return []
    for name in names:
        m = FILE_RE.match(name)
        if not m:
            continue
        call_id, leg, side = m.groups()
        legs.setdefault((call_id, leg), Leg(call_id, leg)).files[side] = spool / name
    return sorted(legs.values(), key=lambda g: (g.call_id, g.leg))


class Mover:
    """The spool → store mover, the retention sweeper and the transcription step."""

    def __init__(
        self,
        spool: str | Path,
        store_dir: str | Path,
        index: RecordingIndex,
        key: RecordingKey,
        *,
        ended: Callable[[str], bool],
        announce: Callable[[Recording], None] | None = None,
        settle_s: float = 1.0,
        orphan_after_s: float = 600.0,
        retention_days: float = 180.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = Path(spool)
        self.store_dir = Path(store_dir)
        self.index = index
        self.key = key
        self.ended = ended
        self.announce = announce
        self.settle_s = settle_s
        self.orphan_after_s = orphan_after_s
        self.retention_s = retention_days * 86400.0
        self.clock = clock
        self._retry_at: dict[str, float] = {}

    # ---- moving --------------------------------------------------------------------------
    def ready(self, leg: Leg) -> bool:
        """The leg's call is over and its files are quiet (or long abandoned)."""
        quiet = self.clock() - leg.newest_mtime()
        if quiet < self.settle_s or self._retry_at.get(leg.rec_id, 0.0) > self.clock():
            return False
        return quiet >= self.orphan_after_s or self.ended(leg.call_id)

    def move_ready(self) -> list[Recording]:
        """Move every ready leg; the recordings stored."""
        done = []
        for leg in spool_legs(self.spool):
            if self.ready(leg):
                rec = self.move(leg)
                if rec is not None:
                    done.append(rec)
        return done

    def move(self, leg: Leg) -> Recording | None:
        """Store one leg encrypted, then delete its plaintext; None when it failed."""
        from speech.stereo import StereoError, split, stereo_wav

        try:
            data = stereo_wav(leg.files.get("caller"), leg.files.get("agent"))
            caller, _agent, rate = split(data)
            blob = self.key.encrypt(data, leg.rec_id)
            path = self._write(leg.rec_id, blob)
        except (OSError, StereoError) as exc:
            return self._failed(leg, exc)
        rec = Recording(
            leg.rec_id, leg.call_id, leg.leg, str(path), self.clock(),
            round(caller.size / rate, 2), len(blob), "stored",
        )  # fmt: skip
        try:
            self.index.add(rec)
        except Exception as exc:  # sqlite3 errors (disk full) and the like
            path.unlink(missing_ok=True)
            return self._failed(leg, exc)
        for p in leg.files.values():
            p.unlink(missing_ok=True)
        self._retry_at.pop(leg.rec_id, None)
        log.info("recording of call %s stored (%.1f s, %d bytes)", leg.call_id,
                 rec.duration_s, rec.bytes)  # fmt: skip
        if self.announce is not None:
            try:
                self.announce(rec)
            except Exception as exc:  # the record's pointer is late, the recording is safe
                log.warning("recording of call %s not announced: %s", leg.call_id, exc)
        return rec

    def _write(self, rec_id: str, blob: bytes) -> Path:
        self.store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.store_dir / f"{rec_id}.rec"
        tmp = self.store_dir / f".{rec_id}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def _failed(self, leg: Leg, exc: BaseException) -> None:
        reason = type(exc).__name__ + (f" errno {exc.errno}" if isinstance(exc, OSError) else "")
        log.error("recording of call %s not stored (%s); retry in %.0f s", leg.call_id, reason,
                  RETRY_S)  # fmt: skip
        self._retry_at[leg.rec_id] = self.clock() + RETRY_S
        try:
            self.index.failed(leg.call_id, reason)
        except Exception as exc2:
            log.error("recording failure of call %s not counted: %s", leg.call_id,
                      type(exc2).__name__)  # fmt: skip
        return None

    # ---- retention -----------------------------------------------------------------------
    def sweep(self) -> list[Recording]:
        """Delete recordings older than the retention period (each deletion logged)."""
        gone = []
        for rec in self.index.expired(self.clock() - self.retention_s):
            try:
                Path(rec.path).unlink(missing_ok=True)
            except OSError as exc:
                log.error("expired recording of call %s not deleted: %s", rec.call_id,
                          type(exc).__name__)  # fmt: skip
                continue
            self.index.mark_deleted(rec)
            log.info("recording of call %s deleted (retention)", rec.call_id)
            gone.append(rec)
        return gone

    # ---- transcripts ---------------------------------------------------------------------
    def transcribe_next(self, decode: Callable[..., str]) -> Recording | None:
        """Transcribe the oldest untranscribed recording (None when there is none)."""
        from speech.stereo import StereoError, transcribe_stereo

        pending = self.index.pending_transcripts(1)
        if not pending:
            return None
        rec = pending[0]
        try:
            data = self.key.decrypt(Path(rec.path).read_bytes(), rec.id)
            lines = transcribe_stereo(data, decode)
        except (OSError, ValueError, StereoError) as exc:
            log.error("recording of call %s not transcribed: %s", rec.call_id,
                      type(exc).__name__)  # fmt: skip
            self.index.set_state(rec.id, "untranscribable", type(exc).__name__)
            return rec
        self.index.set_transcript(rec, [TLine(x.speaker, x.start, x.end, x.text) for x in lines])
        log.info("recording of call %s transcribed: %d lines", rec.call_id, len(lines))
        return rec
