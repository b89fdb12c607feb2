"""Callers answered by the knowledge base: the lookup the IVR asks for (``kb.phone``), and a
whole self-service call through the FastAGI server with a fake Asterisk."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from test_agi_server import FakeAsterisk, menu_answers, start
from test_ivr_self_service import ASKED, speech_config

from agi_scripts.handlers import ivr as ivr_handler
from agi_scripts.server import AgiApp
from hotline import dialplan_vars as V
from hotline.call import CallEvent, CallRecord
from ivr.actions import Article, CallInfo, Heard, Listen
from ivr.flow import call_flow
from kb.io import parse_markdown
from kb.model import Actor, Role, article_from
from kb.phone import CallerOffers, prompt_prefix
from kb.service import KnowledgeBase, SpokenAnswers
from kb.sqlite import SqliteKbStore
from speech.synth_prompts import MANIFEST_NAME, text_hash, write_manifest

SAMPLE = Path(__file__).resolve().parents[2] / "kb" / "data" / "sample_kb.md"
ADMIN = Actor("wang", Role.ADMIN)
MORNING = datetime(2026, 12, 2, 9, tzinfo=ZoneInfo("Asia/Shanghai"))


def spoken_ready(spoken: SpokenAnswers, *articles) -> None:  # type: ignore[no-untyped-def]
    """What a finished synthesis leaves: the wavs and the manifest of their texts."""
    spoken.out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for a in articles:
        for name, text in spoken.texts(a).items():
            (spoken.out_dir / f"{name}.wav").write_bytes(b"RIFF")
            manifest[name] = text_hash(text)
    write_manifest(spoken.out_dir / MANIFEST_NAME, manifest)


def sample_kb(tmp_path: Path) -> KnowledgeBase:
    store = SqliteKbStore(tmp_path / "kb.sqlite3", clock=lambda: MORNING)
    articles = [
        a for a in parse_markdown(SAMPLE.read_text(encoding="utf-8")) if a.id.startswith("gjj-")
    ]
    store.propose_all(ADMIN, articles)
    for a in articles:
        store.publish(ADMIN, a.id)
    spoken = SpokenAnswers(tmp_path / "sounds" / "hotline" / "kb-itest")
    return KnowledgeBase.open(store, spoken)


def test_a_confident_article_with_its_audio_ready_is_offered_with_its_prompts(tmp_path) -> None:
    kb = sample_kb(tmp_path)
    offers = CallerOffers(kb, threshold=0.8, prompt_prefix="kb-itest/")
    said = str(ASKED["transcript"])
    assert offers.find(said) == Article()  # no audio yet: callers are not offered it
    spoken_ready(kb.spoken, *kb.store.published())
    found = offers.find(said)
    assert found.id == "gjj-rent" and found.title == "租房提取公积金" and found.version == 1
    assert (found.about, found.answer) == ("kb-itest/kb-gjj-rent-about", "kb-itest/kb-gjj-rent")
    assert offers.find("你们这个热线是干什么的") == Article()  # nothing confident
    assert CallerOffers(kb, threshold=0.9999, prompt_prefix="").find(said) == Article()


def test_an_article_the_console_publishes_reaches_the_phone_index(tmp_path) -> None:
    kb = sample_kb(tmp_path)
    offers = CallerOffers(kb, threshold=0.8)
    other = SqliteKbStore(tmp_path / "kb.sqlite3", clock=lambda: MORNING)  # the console's
    new = article_from({
        "id": "gjj-marriage", "title": "结婚登记后公积金怎么合并",
        "questions": ["结婚以后公积金能合并吗"],
        "answer": "示例", "spoken": "示例：公积金账户不能合并。", "path": "公积金 › 账户",
        "department": "市住房公积金管理中心",
    })  # fmt: skip
    other.propose(ADMIN, new.to_json())
    published = other.publish(ADMIN, "gjj-marriage")
    spoken_ready(kb.spoken, *kb.store.published())
    assert offers.find("结婚以后公积金能合并吗").id == ""  # not indexed here yet
    offers.refresh()
    assert offers.find("结婚以后公积金能合并吗").id == "gjj-marriage"
    assert published.version == 1


def test_the_prompt_prefix_is_the_directory_inside_the_hotline_prompts(tmp_path) -> None:
    inside = tmp_path / "sounds" / "hotline" / "kb-itest"
    inside.mkdir(parents=True)
    link = tmp_path / "run" / "kb-sounds"
    link.parent.mkdir()
    link.symlink_to(inside, target_is_directory=True)
    assert prompt_prefix(link) == "kb-itest/" and prompt_prefix(inside) == "kb-itest/"
    assert prompt_prefix(tmp_path / "run") is None  # Asterisk could not play from here


class Caller:
    async def listen(self, session, call: CallInfo, action: Listen, listen_id: str) -> Heard:  # type: ignore[no-untyped-def]
        return Heard(transcript=str(ASKED["transcript"]), draft=dict(ASKED), listen_id=listen_id)


class Offers:
    def __init__(self, found: Article) -> None:
        self.found = found
        self.asked: list[str] = []

    async def offer(self, transcript: str) -> Article:
        self.asked.append(transcript)
        return self.found


class Events:
    def __init__(self) -> None:
        self.events: list[CallEvent] = []

    def emit(self, event: CallEvent) -> None:
        self.events.append(event)


RENT = Article(
    "gjj-rent", 2, "租房提取公积金", "kb-itest/kb-gjj-rent-about", "kb-itest/kb-gjj-rent"
)


async def self_service_call(keys: dict[str, str], found: Article = RENT):  # type: ignore[no-untyped-def]
    config = speech_config()
    events, offers = Events(), Offers(found)
    app = AgiApp(config=config, handlers={"ivr": ivr_handler.handle}, listener=Caller(),
                 events=events, kb=offers)  # fmt: skip
    app.flow = call_flow
    server, port = await start(app)
    ast = await FakeAsterisk(port, menu_answers(keys)).call()
    await server.stop()
    record = CallRecord("1763841600.1")
    for e in events.events:
        record.apply(e)
    return ast, record, offers


async def test_caller_hears_the_article_presses_2_and_the_record_says_self_served() -> None:
    ast, record, offers = await self_service_call(
        {"hotline/main-menu": "2", "hotline/kb-menu": "2"}
    )
    assert offers.asked == [ASKED["transcript"]]
    played = ast.played()
    assert played[-4:] == ["hotline/kb-itest/kb-gjj-rent-about", "hotline/kb-itest/kb-gjj-rent",
                           "hotline/kb-menu", "hotline/goodbye"]  # fmt: skip
    assert ast.variables()[-1] == (V.ROUTE, "hangup")
    assert [k["action"] for k in record.kb] == ["offered", "self_served"]
    assert {k["article"] for k in record.kb} == {"gjj-rent"}
    assert record.outcome == "self_served"


async def test_caller_presses_0_and_the_agent_gets_the_call_with_the_article_played() -> None:
    ast, record, _ = await self_service_call({"hotline/main-menu": "2", "hotline/kb-menu": "0"})
    vars_ = dict(ast.variables())
    assert vars_[V.QUEUE] == "seat_gjj" and vars_[V.IVR_PATH] == "main>2>kb>0"
    assert [k["action"] for k in record.kb] == ["offered"]
    assert record.outcome != "self_served"


async def test_without_an_article_the_caller_goes_to_the_agent_as_before() -> None:
    ast, record, offers = await self_service_call({"hotline/main-menu": "2"}, found=Article())
    assert offers.asked and "hotline/kb-menu" not in ast.played()
    assert dict(ast.variables())[V.QUEUE] == "seat_gjj" and record.kb == []
