"""A caller's speech as a pcap of G.711 RTP, ready for sipp play_pcap_audio."""

from __future__ import annotations

import struct
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest

from speech.pcap import (
    PcapError,
    call_media_pcap,
    linear_to_alaw,
    linear_to_ulaw,
    main,
    wav_to_pcap,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the stdlib's C G.711 codec: an independent reference for our encoder

SHARED = Path(__file__).resolve().parents[3] / "shared" / "audio" / "hotline"


def _write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def _tone(freq: float, seconds: float, rate: int, amp: float = 12000.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _ones_complement_ok(data: bytes) -> bool:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def _read_pcap(path: Path) -> tuple[int, list[tuple[float, bytes]]]:
    data = path.read_bytes()
    magic, _maj, _min, _tz, _sig, _snap, link = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4
    out, pos = [], 24
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[pos : pos + 16])
        assert incl == orig
        out.append((sec + usec / 1e6, data[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    return link, out


def test_g711_encoders_agree_with_the_reference_codec_on_every_sample() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    assert linear_to_alaw(every) == audioop.lin2alaw(every.tobytes(), 2)
    assert linear_to_ulaw(every) == audioop.lin2ulaw(every.tobytes(), 2)


@pytest.mark.parametrize(
    ("codec", "pt", "decode"), [("alaw", 8, audioop.alaw2lin), ("ulaw", 0, audioop.ulaw2lin)]
)
def test_a_16k_stereo_tone_becomes_paced_8k_rtp_that_still_sounds_the_same(
    tmp_path: Path, codec: str, pt: int, decode
) -> None:
    tone = _tone(440.0, 1.0, 16000)
    _write_wav(tmp_path / "tone.wav", np.repeat(tone, 2), 16000, channels=2)

    info = wav_to_pcap(tmp_path / "tone.wav", tmp_path / "tone.pcap", codec)

    link, packets = _read_pcap(tmp_path / "tone.pcap")
    assert link == 1  # Ethernet, as sipp expects
    assert info.packets == len(packets) == 50  # 1 s in 20 ms packets
    assert info.payload_type == pt
    audio, seq0 = b"", struct.unpack("!H", packets[0][1][44:46])[0]
    for i, (t, frame) in enumerate(packets):
        assert t == pytest.approx(i * 0.020)
        ip, udp = frame[14:34], frame[34:]
        assert _ones_complement_ok(ip)
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
        assert _ones_complement_ok(pseudo + udp)
        v_pt, m_pt, seq, ts, _ssrc = struct.unpack("!BBHII", udp[8:20])
        assert v_pt == 0x80 and m_pt & 0x7F == pt
        assert bool(m_pt & 0x80) == (i == 0)
        assert seq == (seq0 + i) & 0xFFFF
        assert ts == i * 160
        assert len(udp) - 20 == 160
        audio += udp[20:]
    pcm = np.frombuffer(decode(audio, 2), dtype=np.int16).astype(float)
    spectrum = np.abs(np.fft.rfft(pcm))
    assert np.fft.rfftfreq(pcm.size, 1 / 8000)[spectrum.argmax()] == pytest.approx(440, abs=2)
    assert np.sqrt(np.mean(pcm**2)) == pytest.approx(12000 / np.sqrt(2), rel=0.05)


def test_a_partial_last_packet_is_padded_with_silence(tmp_path: Path) -> None:
    _write_wav(tmp_path / "short.wav", _tone(300.0, 0.03, 8000), 8000)  # 240 samples

    info = wav_to_pcap(tmp_path / "short.wav", tmp_path / "short.pcap", lead_silence_ms=100)

    _link, packets = _read_pcap(tmp_path / "short.pcap")
    assert info.packets == len(packets) == 7  # 100 ms silence + 30 ms tone → 7 packets
    last = np.frombuffer(audioop.alaw2lin(packets[-1][1][54:], 2), dtype=np.int16)
    assert np.all(np.abs(last[80:]) <= 8)  # the padding after the tone is silence
    first = np.frombuffer(audioop.alaw2lin(packets[0][1][54:], 2), dtype=np.int16)
    assert np.all(np.abs(first) <= 8)


@pytest.mark.skipif(not (SHARED / "dev02.wav").exists(), reason="shared hotline audio missing")
def test_a_recorded_mandarin_utterance_keeps_its_length(tmp_path: Path) -> None:
    with wave.open(str(SHARED / "dev02.wav")) as w:
        seconds = w.getnframes() / w.getframerate()

    info = wav_to_pcap(SHARED / "dev02.wav", tmp_path / "dev02.pcap")

    assert info.duration_s == pytest.approx(seconds, abs=0.02)


def test_missing_file_non_wav_and_empty_wav_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(PcapError, match="no such file"):
        wav_to_pcap(tmp_path / "nope.wav", tmp_path / "a.pcap")
    (tmp_path / "text.wav").write_text("this is not audio")
    with pytest.raises(PcapError, match="not a readable PCM wav"):
        wav_to_pcap(tmp_path / "text.wav", tmp_path / "b.pcap")
    _write_wav(tmp_path / "empty.wav", np.zeros(0, np.int16), 8000)
    with pytest.raises(PcapError, match="no audio"):
        wav_to_pcap(tmp_path / "empty.wav", tmp_path / "c.pcap")
    _write_wav(tmp_path / "ok.wav", _tone(300.0, 0.1, 8000), 8000)
    with pytest.raises(PcapError, match="unknown codec"):
        wav_to_pcap(tmp_path / "ok.wav", tmp_path / "d.pcap", "g729")  # type: ignore[arg-type]
    assert not any((tmp_path / n).exists() for n in ("a.pcap", "b.pcap", "c.pcap", "d.pcap"))


def test_command_line_reports_errors_with_exit_code_2(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "missing.wav"), str(tmp_path / "out.pcap")]) == 2
    assert "no such file" in capsys.readouterr().err
    _write_wav(tmp_path / "ok.wav", _tone(300.0, 0.2, 8000), 8000)
    assert main([str(tmp_path / "ok.wav"), str(tmp_path / "out.pcap"), "--codec", "ulaw"]) == 0
    assert "10 RTP" in capsys.readouterr().out


def test_keys_out_of_order_or_unknown_are_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    out = tmp_path / "keys.pcap"
    with pytest.raises(PcapError, match="time order"):
        call_media_pcap(out, [(2.0, "1"), (1.0, "2")])
    with pytest.raises(PcapError, match="time order"):
        call_media_pcap(out, [(1.0, "1"), (1.1, "2")])
    with pytest.raises(PcapError, match="cannot send key"):
        call_media_pcap(out, [(1.0, "A")])
    assert not out.exists()


def test_a_key_is_an_rfc4733_event_that_grows_then_ends_three_times(tmp_path: Path) -> None:
    info = call_media_pcap(tmp_path / "k.pcap", [(0.5, "*")], event_ms=100)

    _link, packets = _read_pcap(tmp_path / "k.pcap")
    assert info.packets == len(packets)
    events = [f[34 + 8 :] for _t, f in packets if f[43] & 0x7F == 101]
    assert len(events) == 5 + 2
    codes = {e[12] for e in events}
    durations = [struct.unpack("!H", e[14:16])[0] for e in events]
    ends = [bool(e[13] & 0x80) for e in events]
    timestamps = {struct.unpack("!I", e[4:8])[0] for e in events}
    assert codes == {10}  # '*'
    assert durations == [160, 320, 480, 640, 800, 800, 800]
    assert ends == [False] * 4 + [True] * 3
    assert timestamps == {round(0.5 * 8000)}
    assert bool(events[0][1] & 0x80)  # marker on the first packet of the event
