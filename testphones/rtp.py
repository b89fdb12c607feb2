"""A test phone's media in Python: sends a steady tone as G.711 a-law RTP and records the
audio it receives, so a test can tell *whose* voice reached *which* phone.

sipp does the SIP side (the scenario's SDP names this socket's port, see
:func:`testphones.sipp.media_at`); this class does the RTP side::

    phone = RtpPhone("127.0.0.2", tone_hz=600)       # binds a free UDP port
    ...  # SDP: m=audio {phone.port}
    phone.start()                                    # answers Asterisk's RTP from its source
    phone.press("2")                                 # an RFC 4733 key, in the same stream
    levels = phone.tone_levels([600, 1100], since, until)   # share of the received energy

It starts sending when the first packet arrives and always sends to where the latest packet
came from (symmetric RTP: that is Asterisk's media address of the current call; one phone
answers one call after another).  Every received 20 ms frame is kept with its arrival time.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time

import numpy as np

from speech.pcap import linear_to_alaw

RATE = 8000
FRAME = 160
"""Samples per 20 ms packet."""
PT_ALAW, PT_ULAW, PT_EVENT = 8, 0, 101
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


def _alaw_table() -> np.ndarray:
    out = np.zeros(256, dtype=np.int16)
    for byte in range(256):
        a = byte ^ 0x55
        seg = (a & 0x70) >> 4
        t = (a & 0x0F) << 4
        t = t + 8 if seg == 0 else (t + 0x108) << (seg - 1)
        out[byte] = t if a & 0x80 else -t
    return out


def _ulaw_table() -> np.ndarray:
    out = np.zeros(256, dtype=np.int16)
    for byte in range(256):
        u = ~byte & 0xFF
        t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
        out[byte] = (0x84 - t) if u & 0x80 else (t - 0x84)
    return out


DECODE = {PT_ALAW: _alaw_table(), PT_ULAW: _ulaw_table()}


def tone_frame(hz: float, n: int, amplitude: float = 6000.0) -> np.ndarray:
    """Frame ``n`` (20 ms each) of a continuous sine at ``hz``."""
    t = (np.arange(FRAME) + n * FRAME) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def band_share(samples: np.ndarray, hz: float, width_hz: float = 40.0) -> float:
    """The share of ``samples``' energy within ``width_hz`` of ``hz`` (0 … 1)."""
    if samples.size < FRAME:
        return 0.0
    x = samples.astype(np.float64) * np.hanning(samples.size)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / RATE)
    total = power[freqs > 100].sum()
    if total <= 0:
        return 0.0
    return float(power[np.abs(freqs - hz) <= width_hz].sum() / total)


class RtpPhone:
    """One phone's RTP: a tone out, everything received kept (see the module docstring)."""

    def __init__(self, host: str, tone_hz: float, port: int = 0) -> None:
        self.tone_hz = tone_hz
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.05)
        self.host, self.port = self.sock.getsockname()
        self.remote: tuple[str, int] | None = None
        self.frames: list[tuple[float, np.ndarray]] = []
        self.packets = 0
        self._keys: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seq = random.randrange(1 << 16)
        self._ts = random.randrange(1 << 32)
        self._ssrc = random.randrange(1 << 32)

    def start(self) -> RtpPhone:
        for target in (self._receive, self._send):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        with contextlib.suppress(OSError):
            self.sock.close()

    def press(self, key: str) -> None:
        """Send ``key`` as RFC 4733 events (instead of audio for about 200 ms)."""
        if key not in DTMF_EVENTS:
            raise ValueError(f"not a key: {key!r}")
        with self._lock:
            self._keys.append(key)

    # ---- received audio ---------------------------------------------------------------
    def received(self, since: float = 0.0, until: float = float("inf")) -> np.ndarray:
        """The audio samples that arrived between ``since`` and ``until`` (monotonic)."""
        with self._lock:
            parts = [f for t, f in self.frames if since <= t < until]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def tone_levels(
        self, tones: list[float], since: float = 0.0, until: float = float("inf")
    ) -> dict[float, float]:
        """Each tone's share of the energy received in that time."""
        samples = self.received(since, until)
        return {hz: round(band_share(samples, hz), 4) for hz in tones}

    def onset(self, hz: float, since: float, share: float = 0.05, chunk: int = 4) -> float | None:
        """Seconds from ``since`` to the first ``chunk`` frames (80 ms) received in which
        ``hz`` holds at least ``share`` of the energy (None: not yet)."""
        with self._lock:
            frames = [(t, f) for t, f in self.frames if t >= since]
        for i in range(0, len(frames) - chunk + 1):
            group = np.concatenate([f for _, f in frames[i : i + chunk]])
            if band_share(group, hz) >= share:
                return round(frames[i][0] - since, 3)
        return None

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            if len(data) < 12 or data[0] >> 6 != 2:
                continue
            pt = data[1] & 0x7F
            cc = data[0] & 0x0F
            payload = data[12 + 4 * cc :]
            with self._lock:
                self.packets += 1
                self.remote = addr  # the latest call's media address (phones outlive calls)
                if pt in DECODE:
                    table = DECODE[pt]
                    frame = table[np.frombuffer(payload, dtype=np.uint8)]
                    self.frames.append((time.monotonic(), frame))

    # ---- sent audio -------------------------------------------------------------------
    def _packet(
        self, pt: int, payload: bytes, marker: bool = False, ts: int | None = None
    ) -> bytes:
        self._seq = (self._seq + 1) & 0xFFFF
        header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, self._seq,
                             self._ts if ts is None else ts, self._ssrc)  # fmt: skip
        return header + payload

    def _send(self) -> None:
        n = 0
        next_at = time.monotonic()
        pending: list[bytes] = []
        while not self._stop.is_set():
            next_at += FRAME / RATE
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with self._lock:
                remote = self.remote
                if not pending and self._keys:
                    pending = self._key_packets(self._keys.pop(0))
            if remote is None:
                continue
            if pending:
                packet = pending.pop(0)
            else:
                packet = self._packet(PT_ALAW, linear_to_alaw(tone_frame(self.tone_hz, n)))
            self._ts = (self._ts + FRAME) & 0xFFFFFFFF
            n += 1
            with contextlib.suppress(OSError):
                self.sock.sendto(packet, remote)

    def _key_packets(self, key: str) -> list[bytes]:
        """10 packets of 20 ms (the last three the end), all with the key's start timestamp."""
        event, start = DTMF_EVENTS[key], self._ts
        out = []
        for i in range(10):
            end = i >= 7
            duration = min(i + 1, 8) * FRAME
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
            out.append(self._packet(PT_EVENT, payload, marker=i == 0, ts=start))
        return out
