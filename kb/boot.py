"""Open the knowledge base a hotline config describes (``kb:`` in ``hotline.yaml``).

:func:`open_kb` opens the SQLite store, imports and publishes the SAMPLE articles on the very
first start (``kb.import_sample``, an empty store only) and indexes every published article:
seconds of CPU, so async callers run it in a thread.  :func:`calibration` reads the
confidence weights and the self-service threshold fitted by ``python -m kb.evaluate --fit``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hotline.config import HotlineConfig
from kb.io import parse_markdown
from kb.model import Actor, KbError, Role
from kb.search import Calibration, Searcher
from kb.service import REPO, KnowledgeBase, SpokenAnswers
from kb.sqlite import SqliteKbStore

log = logging.getLogger("kb")
SAMPLE_MD = REPO / "kb" / "data" / "sample_kb.md"
SAMPLE_IMPORTER = Actor("sample-import", Role.ADMIN)
"""Who the first-start import of the sample is recorded as (history shows it)."""


def _repo_path(path: str) -> Path:
    """A relative calibration path is the repository's file (not the working directory's)."""
    p = Path(path)
    return p if p.is_absolute() else REPO / p


def calibration(config: HotlineConfig) -> tuple[Calibration, float]:
    """The confidence weights and the self-service threshold (``KbError`` on a bad file)."""
    path = _repo_path(config.kb.calibration)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        threshold = float(data["threshold"])
        weights = Calibration(float(data["bias"]), float(data["w_cover"]), float(data["w_margin"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KbError(f"kb.calibration {path}: {exc}") from None
    if not 0.0 < threshold <= 1.0:
        raise KbError(f"kb.calibration {path}: threshold {threshold} is not in (0, 1]")
    return weights, threshold


def import_sample(store: SqliteKbStore, path: Path = SAMPLE_MD) -> int:
    """Propose and publish the sample articles into an EMPTY store; returns how many."""
    if store.heads():
        return 0
    articles = parse_markdown(path.read_text(encoding="utf-8"))
    today = store.today()
    current = [a for a in articles if a.valid_until is None or a.valid_until >= today]
    store.propose_all(SAMPLE_IMPORTER, current, "SAMPLE knowledge base, first start")
    for a in current:
        store.publish(SAMPLE_IMPORTER, a.id, comment="SAMPLE content, not official policy")
    return len(current)


def open_kb(config: HotlineConfig) -> tuple[KnowledgeBase, float]:
    """The knowledge base (store, index, spoken answers) and its self-service threshold."""
    weights, threshold = calibration(config)
    store = SqliteKbStore(config.kb.path, timezone=config.business_hours.timezone)
    if config.kb.import_sample:
        n = import_sample(store)
        if n:
            log.info("knowledge base: imported %d SAMPLE articles into %s", n, config.kb.path)
    searcher = Searcher(store.published(), calibration=weights)
    spoken = SpokenAnswers(Path(config.kb.spoken_dir))
    return KnowledgeBase(store, searcher, spoken), threshold
