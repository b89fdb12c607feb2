"""Turn a wav file into a pcap of G.711 RTP that sipp can send with ``play_pcap_audio``.

A sipp caller "speaks" by replaying a capture: sipp reads the UDP payloads and their capture
times from the pcap and sends them, paced by those times, to the media address Asterisk put
in its SDP.  This module writes such a capture from any PCM wav: the audio is read with
pydub, mixed to mono 16-bit, resampled to 8 kHz with soxr, encoded to A-law or μ-law with
vectorised numpy (ITU-T G.711 segment coding), cut into 20 ms RTP packets and wrapped in
Ethernet/IPv4/UDP frames with valid checksums.

    python -m speech.pcap IN.wav OUT.pcap [--codec alaw|ulaw]
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import struct
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Codec = Literal["alaw", "ulaw"]
PAYLOAD_TYPE: dict[str, int] = {"ulaw": 0, "alaw": 8}
"""Static RTP payload types (RFC 3551): PCMU 0, PCMA 8."""
RATE = 8000

_PCAP_MAGIC = 0xA1B2C3D4
_LINKTYPE_ETHERNET = 1


class PcapError(ValueError):
    """A wav that cannot be turned into a pcap (unreadable, empty, bad parameters)."""


@dataclass(frozen=True, slots=True)
class PcapInfo:
    """What was written: packet count, audio duration and the codec's RTP payload type."""

    path: Path
    packets: int
    duration_s: float
    payload_type: int


# ---- reading ----------------------------------------------------------------------------
def read_pcm8k(path: str | Path) -> np.ndarray:
    """Read a PCM wav as mono int16 samples at 8 kHz (mixed down and resampled as needed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pydub warns when ffmpeg is absent
        from pydub import AudioSegment
    p = Path(path)
    if not p.is_file():
        raise PcapError(f"{p}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pydub's "no ffprobe" warning
            seg = AudioSegment.from_wav(str(p))
    except Exception as exc:  # pydub raises several types for a file that is not a wav
        raise PcapError(f"{p}: not a readable PCM wav ({exc})") from None
    seg = seg.set_channels(1).set_sample_width(2)
    samples = np.frombuffer(seg.raw_data, dtype="<i2")
    if samples.size == 0:
        raise PcapError(f"{p}: the wav holds no audio")
    if seg.frame_rate != RATE:
        import soxr

        resampled = soxr.resample(samples.astype(np.float32) / 32768.0, seg.frame_rate, RATE)
        samples = np.clip(np.round(resampled * 32768.0), -32768, 32767).astype(np.int16)
    return samples


# ---- G.711 ------------------------------------------------------------------------------
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def linear_to_alaw(samples: np.ndarray) -> bytes:
    """Encode int16 samples to G.711 A-law (ITU-T reference algorithm, vectorised)."""
    pcm = samples.astype(np.int32) >> 3  # 13-bit range
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag)  # first segment whose end is >= mag
    quant = np.where(seg < 2, mag >> 1, mag >> np.minimum(seg, 7)) & 0x0F
    out = np.where(seg >= 8, 0x7F, (seg << 4) | quant)
    return ((out ^ mask) & 0xFF).astype(np.uint8).tobytes()


def linear_to_ulaw(samples: np.ndarray) -> bytes:
    """Encode int16 samples to G.711 μ-law (ITU-T reference algorithm, vectorised)."""
    bias, clip = 0x84, 8159
    pcm = samples.astype(np.int32) >> 2  # 14-bit range
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), clip) + (bias >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, mag)
    out = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> np.minimum(seg + 1, 8)) & 0x0F))
    return ((out ^ mask) & 0xFF).astype(np.uint8).tobytes()


def encode(samples: np.ndarray, codec: Codec) -> bytes:
    """G.711-encode int16 samples with ``codec``."""
    if codec == "alaw":
        return linear_to_alaw(samples)
    if codec == "ulaw":
        return linear_to_ulaw(samples)
    raise PcapError(f"unknown codec {codec!r}: use alaw or ulaw")


# ---- packets ----------------------------------------------------------------------------
def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(np.frombuffer(data, dtype=">u2").astype(np.uint64).sum())
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(src: tuple[str, int], dst: tuple[str, int], ident: int, payload: bytes) -> bytes:
    s_ip, d_ip = ipaddress.IPv4Address(src[0]).packed, ipaddress.IPv4Address(dst[0]).packed
    udp_len = 8 + len(payload)
    pseudo = s_ip + d_ip + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", src[1], dst[1], udp_len, 0) + payload
    udp_sum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ident, 0x4000, 64, 17, 0, s_ip, d_ip)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"
    return eth + ip + udp


def write_rtp_pcap(
    payload: bytes,
    out: str | Path,
    payload_type: int,
    *,
    src: tuple[str, int] = ("127.0.0.2", 16000),
    dst: tuple[str, int] = ("127.0.0.1", 10000),
    ptime_ms: int = 20,
    ssrc: int = 0x12345678,
    first_seq: int = 1000,
) -> int:
    """Write G.711 bytes as one RTP stream (``ptime_ms`` packets) into a pcap; return the
    packet count.  Capture times advance by ``ptime_ms`` so sipp paces them in real time."""
    per_packet = RATE * ptime_ms // 1000
    if per_packet <= 0:
        raise PcapError("ptime_ms must be at least 1")
    silence = b"\xd5" if payload_type == PAYLOAD_TYPE["alaw"] else b"\xff"
    if len(payload) % per_packet:
        payload += silence * (per_packet - len(payload) % per_packet)
    count = len(payload) // per_packet
    chunks = [struct.pack("<IHHiIII", _PCAP_MAGIC, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET)]
    for i in range(count):
        marker = 0x80 if i == 0 else 0
        rtp = struct.pack(
            "!BBHII",
            0x80,
            marker | payload_type,
            (first_seq + i) & 0xFFFF,
            (i * per_packet) & 0xFFFFFFFF,
            ssrc,
        )
        frame = _frame(src, dst, i & 0xFFFF, rtp + payload[i * per_packet : (i + 1) * per_packet])
        sec, usec = divmod(i * ptime_ms * 1000, 1_000_000)
        chunks.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
        chunks.append(frame)
    Path(out).write_bytes(b"".join(chunks))
    return count


DTMF_EVENTS: dict[str, int] = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
"""RFC 4733 event codes of the telephone keys."""
EVENT_PT = 101
"""The telephone-event payload type the caller scenario offers in its SDP."""


def write_packets(
    packets: list[tuple[float, bytes]],
    out: str | Path,
    *,
    src: tuple[str, int] = ("127.0.0.2", 16000),
    dst: tuple[str, int] = ("127.0.0.1", 10000),
) -> int:
    """Write ``(capture time in s, RTP packet)`` pairs as a pcap; return the count."""
    chunks = [struct.pack("<IHHiIII", _PCAP_MAGIC, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET)]
    for i, (t, rtp) in enumerate(packets):
        frame = _frame(src, dst, i & 0xFFFF, rtp)
        sec, usec = divmod(round(t * 1_000_000), 1_000_000)
        chunks.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
        chunks.append(frame)
    Path(out).write_bytes(b"".join(chunks))
    return len(packets)


def call_media_pcap(
    out: str | Path,
    keys: list[tuple[float, str]],
    speech: str | Path | None = None,
    speech_at_s: float = 0.0,
    codec: Codec = "alaw",
    tail_s: float = 0.2,
    event_ms: int = 100,
    ssrc: int = 0x4D454449,
) -> PcapInfo:
    """One caller's whole media as a single RTP stream, the way a phone sends it: audio
    every 20 ms (silence, or ``speech`` from ``speech_at_s`` on) with RFC 4733 key events
    (``(seconds from the start, key)``) in place of the audio while a key is down.

    Sequence numbers and timestamps only ever grow, so a receiver takes every key in order
    (sip-tester's per-key samples share one capture's numbering: replayed out of order,
    Asterisk drops the lower-numbered key)."""
    if codec not in PAYLOAD_TYPE:
        raise PcapError(f"unknown codec {codec!r}: use alaw or ulaw")
    times = [t for t, _ in keys]
    for t, key in keys:
        if key not in DTMF_EVENTS:
            raise PcapError(f"cannot send key {key!r}: keys are 0-9, * and #")
        if t < 0:
            raise PcapError("a key time must not be negative")
    if times != sorted(times) or any(b - a < 0.2 for a, b in itertools.pairwise(times)):
        raise PcapError("keys must come in time order, at least 0.2 s apart")
    per = RATE // 50  # 20 ms
    audio = np.zeros(0, np.int16)
    if speech is not None:
        if speech_at_s < 0:
            raise PcapError("speech_at_s must not be negative")
        voice = read_pcm8k(speech)
        audio = np.concatenate([np.zeros(round(speech_at_s * RATE), np.int16), voice])
    end_s = max([*(t + event_ms / 1000 for t in times), audio.size / RATE]) + tail_s
    frames = int(np.ceil(end_s * 50))
    audio = np.concatenate([audio, np.zeros(max(0, frames * per - audio.size), np.int16)])
    encoded = encode(audio[: frames * per], codec)
    pt = PAYLOAD_TYPE[codec]
    key_at = {round(t * 50): DTMF_EVENTS[k] for t, k in keys}
    event_frames = max(1, event_ms // 20)
    packets: list[tuple[float, bytes]] = []
    seq = 1000
    i = 0

    def rtp(marker: bool, ptype: int, ts: int, payload: bytes) -> bytes:
        nonlocal seq
        head = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | ptype, seq & 0xFFFF, ts, ssrc)
        seq += 1
        return head + payload

    while i < frames:
        if i in key_at:
            code, start_ts = key_at[i], i * per
            for j in range(event_frames):
                dur = (j + 1) * per
                last = j == event_frames - 1
                body = struct.pack("!BBH", code, (0x80 if last else 0) | 10, dur)
                packets.append(((i + j) * 0.02, rtp(j == 0, EVENT_PT, start_ts, body)))
                if last:  # the end packet goes three times (RFC 4733 2.5.1.4)
                    for _ in range(2):
                        packets.append(((i + j) * 0.02, rtp(False, EVENT_PT, start_ts, body)))
            i += event_frames
            continue
        packets.append((i * 0.02, rtp(i == 0, pt, i * per, encoded[i * per : (i + 1) * per])))
        i += 1
    count = write_packets(packets, out)
    return PcapInfo(Path(out), count, frames * 0.02, pt)


def wav_to_pcap(
    wav: str | Path,
    out: str | Path,
    codec: Codec = "alaw",
    *,
    lead_silence_ms: int = 0,
    ptime_ms: int = 20,
) -> PcapInfo:
    """Convert a wav into a pcap of G.711 RTP for sipp ``play_pcap_audio``."""
    if codec not in PAYLOAD_TYPE:
        raise PcapError(f"unknown codec {codec!r}: use alaw or ulaw")
    if lead_silence_ms < 0:
        raise PcapError("lead_silence_ms must not be negative")
    samples = read_pcm8k(wav)
    if lead_silence_ms:
        samples = np.concatenate([np.zeros(RATE * lead_silence_ms // 1000, np.int16), samples])
    pt = PAYLOAD_TYPE[codec]
    count = write_rtp_pcap(encode(samples, codec), out, pt, ptime_ms=ptime_ms)
    return PcapInfo(Path(out), count, count * ptime_ms / 1000, pt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speech.pcap", description=__doc__)
    parser.add_argument("wav")
    parser.add_argument("pcap")
    parser.add_argument("--codec", choices=sorted(PAYLOAD_TYPE), default="alaw")
    parser.add_argument("--lead-silence-ms", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        info = wav_to_pcap(args.wav, args.pcap, args.codec, lead_silence_ms=args.lead_silence_ms)
    except PcapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{info.path}: {info.packets} RTP packets, {info.duration_s:.2f} s, PT {info.payload_type}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


SPEECH_TAIL_S = 4.0
"""Silence a caller's phone keeps sending after the last word (longer than ``silence_ms``)."""


def with_trailing_silence(wav: str | Path, out: str | Path, tail_s: float = SPEECH_TAIL_S) -> Path:
    """``wav`` at 8 kHz followed by ``tail_s`` of silence, written to ``out``.

    A phone sends audio for the whole call; a test caller that stops right after its words
    would never let the speech service's end-pointer hear the pause that ends the matter (and
    Asterisk's AudioSocket() gives up after 2 s without a frame)."""
    from speech.audio import write_wav

    if not 0 <= tail_s <= 60:
        raise PcapError("tail_s must be within 0..60 s")
    samples = read_pcm8k(wav)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_wav(out, np.concatenate([samples, np.zeros(round(tail_s * RATE), np.int16)]), RATE)
    return out
