"""Uploaded prompt recordings → what Asterisk plays (8 kHz 16-bit mono wav).

The content decides, never the name: :func:`sniff` reads the container's magic bytes (RIFF/
WAVE, an MP3 ID3 tag or frame sync, an MP4 ``ftyp`` box of an audio brand), then ffprobe must
find exactly an audio stream of a sensible length, then ffmpeg decodes and converts it
(mono, 8 kHz, 16-bit, peak-normalised to -1 dBFS).  Anything else is refused with
:class:`PromptAudioError` and nothing is written.  ffmpeg (Debian package ``ffmpeg``) runs
with a time limit, on a private temporary copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

RATE = 8000
MAX_SECONDS = 120.0
MIN_SECONDS = 0.2
TIMEOUT_S = 30.0
M4A_BRANDS = (b"M4A ", b"mp42", b"isom", b"mp41", b"M4B ", b"dash", b"iso5", b"iso6")


class PromptAudioError(ValueError):
    """An upload that is not a usable recording (the message says why)."""


def sniff(data: bytes) -> str:
    """``wav``, ``mp3`` or ``m4a`` from the first bytes; :class:`PromptAudioError` otherwise."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3" or (len(data) >= 2 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0):
        return "mp3"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in M4A_BRANDS:
        return "m4a"
    raise PromptAudioError("not a wav, mp3 or m4a recording")


def _run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(argv, capture_output=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise PromptAudioError("the recording took too long to decode") from None
    except FileNotFoundError:
        raise PromptAudioError("ffmpeg is not installed (scripts/install-deps.sh)") from None


def probe(path: Path, kind: str) -> float:
    """The recording's duration in seconds, checked: one audio stream, no video, the
    container ffprobe finds agrees with the sniffed one."""
    out = _run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                "-show_streams", str(path)])  # fmt: skip
    if out.returncode != 0:
        raise PromptAudioError("the recording cannot be decoded")
    try:
        info = json.loads(out.stdout)
        streams = info["streams"]
        fmt = info["format"]["format_name"]
        duration = float(info["format"].get("duration") or streams[0].get("duration"))
    except (ValueError, KeyError, IndexError, TypeError):
        raise PromptAudioError("the recording cannot be decoded") from None
    expected = {"wav": "wav", "mp3": "mp3", "m4a": "mp4"}[kind]
    if expected not in fmt.split(","):
        raise PromptAudioError(f"the content is {fmt}, not {kind}")
    if [s.get("codec_type") for s in streams] != ["audio"]:
        raise PromptAudioError("the recording must hold exactly one audio stream")
    if not MIN_SECONDS <= duration <= MAX_SECONDS:
        raise PromptAudioError(f"a prompt lasts {MIN_SECONDS}-{MAX_SECONDS:.0f} seconds")
    return duration


def convert(data: bytes, out: Path) -> float:
    """Check ``data`` and write it to ``out`` as an 8 kHz mono 16-bit wav (atomically);
    return its duration in seconds."""
    kind = sniff(data)
    with tempfile.TemporaryDirectory(prefix="prompt-") as tmp:
        src = Path(tmp) / f"upload.{kind}"
        src.write_bytes(data)
        duration = probe(src, kind)
        dst = Path(tmp) / "out.wav"
        done = _run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), "-map", "0:a:0",
                     "-ac", "1", "-ar", str(RATE), "-sample_fmt", "s16",
                     "-af", "dynaudnorm=p=0.89", "-t", str(MAX_SECONDS), "-f", "wav",
                     "-bitexact", str(dst)])  # fmt: skip
        if done.returncode != 0 or not dst.exists() or dst.stat().st_size <= 44:
            raise PromptAudioError("the recording cannot be converted")
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".part")
        shutil.copyfile(dst, part)
        os.chmod(part, 0o644)  # Asterisk (another user in the chroot) reads it
        part.replace(out)
    return duration
