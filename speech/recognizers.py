"""Speech recognisers behind one streaming interface.

``session = rec.start(sample_rate)``; ``session.feed(pcm) -> partial text | None`` as audio
arrives (16-bit little-endian mono PCM); ``session.finish() -> Transcript``.

Engines:

- :class:`VoskRecognizer` (vosk 0.3.45): true streaming with partial results; Kaldi's own
  end-pointer closes segments at pauses.  The Mandarin model (vosk-model-small-cn-0.22) is
  installed with ``python -m speech.models install-vosk``.  Phrase biasing: Vosk only
  offers a *grammar* (the recogniser may output nothing but the listed phrases, for models
  with a dynamic graph such as both small models); that suits keyword menus
  (``start(rate, grammar=[...])``), not free speech, so free-speech sessions are unbiased.
- :class:`WhisperRecognizer` (faster-whisper 1.2.1, CTranslate2 int8 on CPU, Whisper base):
  audio is buffered and decoded *incrementally*: whenever the caller pauses after a few
  seconds of speech, the closed segment is decoded inside ``feed``; ``finish`` decodes only
  the last segment, so little work remains after the end of speech.  The hotline vocabulary,
  seat names and districts are given as ``initial_prompt``; output is converted to
  simplified Chinese.

Models are loaded once per process and shared by all sessions (thread-safe: sessions run
in worker threads; CTranslate2 runs ``num_workers`` decodes in parallel).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from speech import audio as au
from speech.models import (
    ModelError,
    prepare_whisper,
    vosk_model_dir,
    vosk_model_installed,
    whisper_model_dir,
)

if TYPE_CHECKING:
    from hotline.config import HotlineConfig


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    confidence: float
    """0..1: mean word confidence (Vosk) or exp(mean token log-probability) (Whisper)."""
    engine: str
    audio_seconds: float
    decode_seconds: float
    """CPU wall time spent decoding, over the whole session."""
    final_decode_seconds: float = 0.0
    """Time spent inside :meth:`RecognizerSession.finish` (what is left after speech ends)."""


class RecognizerSession(Protocol):
    def feed(self, pcm: bytes) -> str | None:
        """Add 16-bit mono PCM; return the text so far when it changed, else ``None``."""
        ...

    def finish(self) -> Transcript:
        """Decode what remains and return the transcript; the session is then spent."""
        ...


class Recognizer(Protocol):
    name: str

    def start(self, sample_rate: int = 8000) -> RecognizerSession:
        """Open a streaming session for audio at ``sample_rate``."""
        ...


_CJK_SPACE = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef])\s+(?=[\u3000-\u9fff\uff00-\uffef])")


def join_words(parts: Iterable[str]) -> str:
    """Join recogniser words: no spaces between CJK characters, one elsewhere."""
    return _CJK_SPACE.sub("", " ".join(p.strip() for p in parts if p.strip()))


_REPEAT = re.compile(r"(.{2,40}?)(?:[,，、。 ]?\1){2,}")


_HALF_PUNCT = re.compile(r"(?<=[\u4e00-\u9fff])\s*([,?!:;])\s*")
_FULL = {",": "，", "?": "？", "!": "！", ":": "：", ";": "；"}


def full_width_punctuation(text: str) -> str:
    """Whisper writes ``,`` and ``?`` after Chinese characters; use ``，`` and ``？``."""
    return _HALF_PUNCT.sub(lambda m: _FULL[m.group(1)], text)


def collapse_repeats(text: str) -> str:
    """Cut Whisper's decoding loops (``家庭,家庭,家庭,…``) down to one occurrence."""
    return _REPEAT.sub(r"\1", text)


def transcribe_file(rec: Recognizer, path: str | Path, chunk_s: float = 0.5) -> Transcript:
    """Stream a WAV file through a session as if it arrived live (faster than real time)."""
    samples, rate = au.read_wav(path)
    session = rec.start(rate)
    step = max(1, int(rate * chunk_s))
    for i in range(0, samples.size, step):
        session.feed(samples[i : i + step].tobytes())
    return session.finish()


# ---- Vosk -------------------------------------------------------------------------------
_lock = threading.Lock()
_vosk_models: dict[str, object] = {}


def _load_vosk(model_dir: Path) -> object:
    import vosk

    key = str(Path(model_dir).resolve())
    with _lock:
        if key not in _vosk_models:
            if not (Path(key) / "conf/model.conf").is_file():
                raise ModelError(f"{key}: not a Vosk model (no conf/model.conf)")
            vosk.SetLogLevel(-1)
            _vosk_models[key] = vosk.Model(key)
        return _vosk_models[key]


class VoskSession:
    def __init__(self, model: object, sample_rate: int, grammar: Sequence[str] | None) -> None:
        import vosk

        args: list[object] = [model, float(sample_rate)]
        if grammar:
            args.append(json.dumps([*grammar, "[unk]"], ensure_ascii=False))
        self._rec = vosk.KaldiRecognizer(*args)
        self._rec.SetWords(True)
        self._rate = sample_rate
        self._segments: list[str] = []
        self._confs: list[float] = []
        self._partial = ""
        self._samples = 0
        self._decode = 0.0
        self.segments_closed = 0
        """How many times Vosk's own end-pointer closed a segment at a pause."""

    def _take(self, result: str) -> None:
        data = json.loads(result)
        if data.get("text"):
            self._segments.append(data["text"])
        self._confs += [w.get("conf", 0.0) for w in data.get("result", [])]

    def feed(self, pcm: bytes) -> str | None:
        if not pcm:
            return None
        t0 = time.perf_counter()
        self._samples += len(pcm) // 2
        if self._rec.AcceptWaveform(pcm):
            self.segments_closed += 1
            self._take(self._rec.Result())
            partial = ""
        else:
            partial = json.loads(self._rec.PartialResult()).get("partial", "")
        self._decode += time.perf_counter() - t0
        text = join_words([*self._segments, partial])
        if text == self._partial:
            return None
        self._partial = text
        return text

    def finish(self) -> Transcript:
        t0 = time.perf_counter()
        self._take(self._rec.FinalResult())
        final = time.perf_counter() - t0
        conf = float(np.mean(self._confs)) if self._confs else 0.0
        return Transcript(
            text=join_words(self._segments),
            confidence=round(conf, 3),
            engine="vosk",
            audio_seconds=self._samples / self._rate,
            decode_seconds=self._decode + final,
            final_decode_seconds=final,
        )


class VoskRecognizer:
    """Vosk (Kaldi) streaming recogniser; the model is loaded once and shared."""

    name = "vosk"

    def __init__(self, model_dir: str | Path | None = None) -> None:
        self.model_dir = Path(model_dir) if model_dir else vosk_model_dir()
        self._model = _load_vosk(self.model_dir)

    def start(self, sample_rate: int = 8000, grammar: Sequence[str] | None = None) -> VoskSession:
        """A session; ``grammar`` restricts the output to those phrases (keyword menus)."""
        return VoskSession(self._model, sample_rate, grammar)


# ---- Whisper ----------------------------------------------------------------------------
_whisper_models: dict[tuple[str, int, int], object] = {}
_t2s = None


def _simplified(text: str) -> str:
    global _t2s
    if _t2s is None:
        from opencc import OpenCC

        _t2s = OpenCC("t2s")
    return _t2s.convert(text)


def _load_whisper(model_dir: Path, cpu_threads: int, num_workers: int) -> object:
    from faster_whisper import WhisperModel

    key = (str(Path(model_dir).resolve()), cpu_threads, num_workers)
    with _lock:
        if key not in _whisper_models:
            _whisper_models[key] = WhisperModel(
                key[0],
                device="cpu",
                compute_type="int8",
                cpu_threads=cpu_threads,
                num_workers=num_workers,
            )
        return _whisper_models[key]


def build_prompt(config: HotlineConfig | None) -> str:
    """The Whisper ``initial_prompt``: hotline words, seat names and districts, in simplified
    Chinese so the decoder leans to simplified characters."""
    if config is None:
        return "以下是12345政务服务便民热线的普通话来电。"
    words = [
        *config.speech.vocabulary,
        *(s.name for s in config.seats),
        *config.city.districts,
    ]
    seen = list(dict.fromkeys(w for w in words if w))
    return f"以下是{config.city.name}12345热线的普通话来电：" + "、".join(seen) + "。"


@dataclass(frozen=True, slots=True)
class WhisperOptions:
    beam_size: int = 1
    pause_ms: int = 400
    """A pause this long closes a segment for incremental decoding…"""
    min_segment_s: float = 4.0
    """…once at least this much audio is pending."""
    min_tail_s: float = 2.0
    """A last segment shorter than this is decoded together with the one before."""
    max_segment_s: float = 25.0
    """Decode at this length even without a pause (Whisper's window is 30 s)."""
    short_window: bool = True
    """Encode only the segment's length, not a padded 30 s window (see ``_decode_short``)."""
    level_db: float = -45.0
    """Frames quieter than this count as pause (and a segment without louder frames is
    not decoded at all: Whisper invents text for silence)."""


class WhisperSession:
    def __init__(self, rec: WhisperRecognizer, sample_rate: int) -> None:
        self._rec = rec
        self._rate = sample_rate
        self._opts = rec.options
        self._frame = sample_rate // 50  # 20 ms
        self._buf = np.zeros(0, dtype=np.int16)
        self._texts: list[str] = []
        self._logprobs: list[float] = []
        self._samples = 0
        self._decode = 0.0
        self._quiet_run = 0
        self._scanned = 0
        self._last: np.ndarray | None = None
        self.segments_decoded = 0

    def _pending_s(self) -> float:
        return self._buf.size / self._rate

    def feed(self, pcm: bytes) -> str | None:
        if not pcm:
            return None
        x = au.slin16_to_int16(pcm)
        self._samples += x.size
        self._buf = np.concatenate((self._buf, x))
        cut = self._find_cut()
        if cut is None:
            return None
        segment, self._buf = self._buf[:cut], self._buf[cut:].copy()
        self._scanned = 0
        self._quiet_run = 0
        self._decode_segment(segment)
        return join_words(self._texts)

    def _find_cut(self) -> int | None:
        """Where to close a segment: the middle of a pause once enough audio is pending."""
        o = self._opts
        n = (self._buf.size - self._scanned) // self._frame
        if n <= 0:
            return None
        frames = self._buf[self._scanned : self._scanned + n * self._frame].astype(np.float32)
        rms = np.sqrt(np.mean(frames.reshape(n, self._frame) ** 2, axis=1)) / 32768.0
        quiet = 20 * np.log10(np.maximum(rms, 1e-7)) < o.level_db
        pause_frames = o.pause_ms // 20
        for i, q in enumerate(quiet):
            self._quiet_run = self._quiet_run + 1 if q else 0
            end = self._scanned + (i + 1) * self._frame
            if end / self._rate >= o.max_segment_s:
                self._scanned = end
                return end
            if self._quiet_run >= pause_frames and end / self._rate >= o.min_segment_s:
                return end - (self._quiet_run * self._frame) // 2
        self._scanned += n * self._frame
        return None

    def _has_speech(self, segment: np.ndarray) -> bool:
        n = segment.size // self._frame
        if n == 0:
            return False
        frames = segment[: n * self._frame].astype(np.float32).reshape(n, self._frame)
        rms = np.sqrt(np.mean(frames * frames, axis=1)) / 32768.0
        return bool(20 * np.log10(max(float(rms.max()), 1e-7)) >= self._opts.level_db)

    def _decode_segment(self, segment: np.ndarray, merge: bool = False) -> None:
        """Decode one closed segment; ``merge``: decode it together with the previous one
        and replace that one's text (a short tail alone gives Whisper too little context).
        A segment without speech is skipped: Whisper invents text for silence."""
        if not self._has_speech(segment):
            return
        if merge and self._last is not None:
            segment = np.concatenate((self._last, segment))
            if self._texts:
                self._texts.pop()
                self._logprobs.pop()
        t0 = time.perf_counter()
        text, logprob = self._rec.decode(au.to_model_input(segment, self._rate))
        self._decode += time.perf_counter() - t0
        self.segments_decoded += 1
        self._last = segment
        if text:
            self._texts.append(text)
            self._logprobs.append(logprob)

    def finish(self) -> Transcript:
        t0 = time.perf_counter()
        short_tail = self._buf.size < self._opts.min_tail_s * self._rate
        self._decode_segment(self._buf, merge=short_tail)
        self._buf = np.zeros(0, dtype=np.int16)
        final = time.perf_counter() - t0
        conf = math.exp(float(np.mean(self._logprobs))) if self._logprobs else 0.0
        return Transcript(
            text=join_words(self._texts),
            confidence=round(conf, 3),
            engine="whisper",
            audio_seconds=self._samples / self._rate,
            decode_seconds=self._decode,
            final_decode_seconds=final,
        )


class WhisperRecognizer:
    """faster-whisper (Whisper base, int8, CPU) with incremental decoding at pauses."""

    name = "whisper"

    def __init__(
        self,
        config: HotlineConfig | None = None,
        model_dir: str | Path | None = None,
        cpu_threads: int = 1,
        num_workers: int = 2,
        options: WhisperOptions | None = None,
    ) -> None:
        path = Path(model_dir) if model_dir else whisper_model_dir()
        if not (path / "model.bin").is_file():
            path = prepare_whisper(path)
        self.model_dir = path
        self.options = options or WhisperOptions()
        self.prompt = build_prompt(config)
        self._model = _load_whisper(path, cpu_threads, num_workers)
        from faster_whisper.tokenizer import Tokenizer

        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer,  # type: ignore[attr-defined]
            True,
            task="transcribe",
            language="zh",
        )

    def start(self, sample_rate: int = 8000) -> WhisperSession:
        return WhisperSession(self, sample_rate)

    def decode(self, audio16k: np.ndarray, context: str = "") -> tuple[str, float]:
        """Decode one segment of 16 kHz float audio; return simplified text and mean logprob."""
        if self.options.short_window:
            text, logprob = self._decode_short(audio16k, context)
        else:
            text, logprob = self._decode_full(audio16k, context)
        return full_width_punctuation(collapse_repeats(_simplified(text))), logprob

    def _decode_short(self, audio16k: np.ndarray, context: str) -> tuple[str, float]:
        """Run the encoder on the segment's own length (plus ≥ 1 s of padding) instead of
        Whisper's fixed 30 s window: about 4× less CPU for a 5 s segment (whisper.cpp's
        ``audio_ctx`` idea), then greedy/beam decoding straight on CTranslate2."""
        import ctranslate2

        model = self._model
        frames = min(3000, int(math.ceil((audio16k.size / 160 + 100) / 100) * 100))
        padded = np.zeros(frames * 160, dtype=np.float32)
        padded[: min(audio16k.size, padded.size)] = audio16k[: padded.size]
        mel = model.feature_extractor(padded, padding=0)[:, :frames]  # type: ignore[attr-defined]
        encoded = model.model.encode(  # type: ignore[attr-defined]
            ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], np.float32))
        )
        tok = self._tokenizer
        prompt_tokens = tok.encode(" " + self.prompt + context)[-200:]
        prompt = [tok.sot_prev, *prompt_tokens, *tok.sot_sequence, tok.no_timestamps]
        budget = int(12 * audio16k.size / 16000) + 10  # ~5 characters a second spoken
        result = model.model.generate(  # type: ignore[attr-defined]
            encoded,
            [prompt],
            beam_size=self.options.beam_size,
            max_length=min(448, len(prompt) + budget),
            return_scores=True,
            suppress_blank=True,
        )[0]
        ids = [t for t in result.sequences_ids[0] if t < tok.eot]
        return tok.decode(ids).strip(), float(result.scores[0]) if result.scores else -10.0

    def _decode_full(self, audio16k: np.ndarray, context: str) -> tuple[str, float]:
        """faster-whisper's own path (30 s window, with its no-speech filter)."""
        segments, _info = self._model.transcribe(  # type: ignore[attr-defined]
            audio16k,
            language="zh",
            task="transcribe",
            beam_size=self.options.beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            initial_prompt=self.prompt + context,
            without_timestamps=True,
            vad_filter=False,
        )
        texts: list[str] = []
        logprobs: list[float] = []
        for seg in segments:
            if seg.no_speech_prob > 0.6 and seg.avg_logprob < -1.0:
                continue  # Whisper's guess for noise
            texts.append(seg.text)
            logprobs.append(seg.avg_logprob)
        return join_words(texts), float(np.mean(logprobs)) if logprobs else -10.0


# ---- choice -----------------------------------------------------------------------------
def make_recognizer(config: HotlineConfig, **whisper_kwargs: object) -> Recognizer:
    """The configured engine; ``auto``: Vosk when the Mandarin Vosk model is installed,
    else Whisper.  Raises :class:`ModelError` when the chosen engine's model is missing."""
    engine = config.speech.engine
    if engine == "vosk" or (engine == "auto" and vosk_model_installed()):
        if not vosk_model_installed():
            raise ModelError(
                f"speech.engine is vosk but no Mandarin Vosk model is in {vosk_model_dir()}"
                " (python -m speech.models install-vosk --from DIR_OR_ZIP)"
            )
        return VoskRecognizer()
    return WhisperRecognizer(config, **whisper_kwargs)  # type: ignore[arg-type]
