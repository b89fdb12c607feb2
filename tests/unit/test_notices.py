"""Incident notices (第十三条): the admin sets one in the console, callers hear it in its
window (all callers, or callers choosing a seat), agents see it as a knowledge-base note,
and it expires by itself.  Prompt uploads: content-checked, converted to 8 kHz mono."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from test_calendar import place_call as calendar_call
from test_calendar import played
from test_console import PASSWORD, fast_store

from console.app import Services, make_app
from console.kb import KbSlot
from hotline import safe_yaml
from hotline.calendar import HolidayCalendar
from hotline.config import HotlineConfig, load_config
from ivr.actions import CallInfo, NoticePrompt, Play
from ivr.flow import call_flow
from kb.boot import open_kb
from notices.model import Notice
from notices.phone import CallerNotices
from notices.store import NoticeStore
from notices.voice import prompt_of

REPO = Path(__file__).resolve().parents[2]
USERS = (("admin", "admin", None), ("a1002", "agent", "1002"), ("sup", "supervisor", None))
NOW = datetime.now(UTC)
WATER = "因管道抢修，西湖区文三路一带今天停水至晚上八点，请您谅解。"


def notices_config(tmp_path: Path) -> HotlineConfig:
    data = safe_yaml.load_file(REPO / "hotline.yaml")
    data["speech"] = {"mode": "off"}
    data["kb"] = {**data["kb"], "path": str(tmp_path / "kb.sqlite3"), "import_sample": False,
                  "spoken_dir": str(tmp_path / "kb-sounds")}  # fmt: skip
    data["tickets"]["path"] = str(tmp_path / "t.sqlite3")
    data["notices"] = {"path": str(tmp_path / "notices.sqlite3"),
                       "sounds_dir": str(tmp_path / "custom-sounds")}  # fmt: skip
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_config(path)


def water_cut(**fields: Any) -> Notice:
    base: dict[str, Any] = {
        "id": "n000000000001",
        "title": "文三路停水",
        "text": WATER,
        "start": NOW - timedelta(hours=1),
        "end": NOW + timedelta(hours=1),
    }
    return Notice(**{**base, **fields})  # fmt: skip


# ---- the IVR ----------------------------------------------------------------------------
def place_call(config: HotlineConfig, keys: list[str], notices: tuple[NoticePrompt, ...]) -> list:
    return calendar_call(config, keys, NOW, HolidayCalendar(), notices=notices)


def test_a_notice_for_everyone_follows_the_greeting(tmp_path: Path) -> None:
    config = notices_config(tmp_path)
    call = place_call(config, ["2"], (NoticePrompt("custom-x/notices/notice-1"),))
    heard = played(call)
    assert heard[:2] == ["greeting", "custom-x/notices/notice-1"]
    assert call[-1].ivr_path == "notice>main>2"
    assert call[-1].request.skill == "gjj"


def test_a_seat_notice_plays_only_to_callers_choosing_that_seat(tmp_path: Path) -> None:
    config = notices_config(tmp_path)
    notice = (NoticePrompt("custom-x/notices/notice-2", ("gjj",)),)
    gjj = place_call(config, ["2"], notice)
    assert "custom-x/notices/notice-2" in played(gjj)
    assert gjj[-1].ivr_path == "main>2>notice"
    renshe = place_call(config, ["1"], notice)
    assert "custom-x/notices/notice-2" not in played(renshe)


def test_a_warned_caller_hears_the_notice_too(tmp_path: Path) -> None:
    config = notices_config(tmp_path)
    info = CallInfo("c", "1", caller_flag="warning", notices=(NoticePrompt("n/a"),))
    first = next(call_flow(config, info))
    assert isinstance(first, Play) and first.prompts == ("greeting", "throttle-warning", "n/a")


# ---- the store and what a call reads ----------------------------------------------------
def test_notices_expire_by_themselves(tmp_path: Path) -> None:
    store = NoticeStore(tmp_path / "n.sqlite3")
    assert os.stat(tmp_path / "n.sqlite3").st_mode & 0o777 == 0o600
    store.add(water_cut())
    assert [n.id for n in store.active(NOW)] == ["n000000000001"]
    assert store.active(NOW + timedelta(hours=2)) == []  # read filters by time: no sweep
    assert store.active(NOW - timedelta(hours=2)) == []
    ended = store.end("n000000000001", NOW)
    assert ended is not None and store.active(NOW + timedelta(seconds=1)) == []
    assert store.get("n000000000001").end == NOW  # kept as a record
    assert store.end("n000000000001", NOW + timedelta(hours=5)).end == NOW  # not moved later
    assert store.end("nope") is None


def test_a_call_hears_only_notices_whose_audio_is_ready(tmp_path: Path) -> None:
    store = NoticeStore(tmp_path / "n.sqlite3")
    sounds = tmp_path / "custom-cal"
    ready, pending = water_cut(), water_cut(id="n000000000002", text="另一条通告", seats=("gjj",))
    store.add(ready)
    store.add(pending)
    (sounds / "notices").mkdir(parents=True)
    (sounds / f"{prompt_of(ready)}.wav").write_bytes(b"RIFF")
    got = CallerNotices(store, sounds, "custom-cal/").current(NOW)
    assert got == (NoticePrompt(f"custom-cal/notices/{ready.voice_name}"),)


def test_the_same_text_has_the_same_voice_file() -> None:
    assert water_cut().voice_name == water_cut(id="n000000000009").voice_name
    assert water_cut().voice_name != water_cut(text="别的内容").voice_name


# ---- the console ------------------------------------------------------------------------
class Api:
    def __init__(self, client: httpx.AsyncClient, app: Any, tokens: dict[str, str]) -> None:
        self.c, self.app, self.tokens = client, app, tokens

    def as_(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


@pytest.fixture
async def api(tmp_path: Path):
    config = notices_config(tmp_path)
    access = fast_store(tmp_path / "access.sqlite3")
    for name, role, agent in USERS:
        access.add_user(name, PASSWORD, role, agent, None)
    kb, _ = open_kb(config)
    app = make_app(config, Services(kb=KbSlot(kb)), access=access)
    app.state.notices.resynthesise = lambda: None  # the TTS itself is tested in speech/
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as c:
        tokens = {}
        for name, *_ in USERS:
            r = await c.post(
                "/api/login", json={"name": name, "password": PASSWORD, "bearer": True}
            )
            tokens[name] = r.json()["token"]
        c.cookies.clear()
        yield Api(c, app, tokens)


def body(**fields: Any) -> dict[str, Any]:
    start = (NOW - timedelta(minutes=5)).astimezone().isoformat()
    end = (NOW + timedelta(hours=3)).astimezone().isoformat()
    return {"title": "文三路停水", "text": WATER, "start": start, "end": end,
            "seats": ["gjj"], "district": "西湖区", **fields}  # fmt: skip


async def test_admin_sets_a_notice_and_agents_see_it_as_a_kb_note(api: Api) -> None:
    r = await api.c.post("/api/admin/notices", json=body(), headers=api.as_("admin"))
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["state"] == "active" and made["seats"] == ["gjj"] and made["district"] == "西湖区"
    listed = (await api.c.get("/api/admin/notices", headers=api.as_("admin"))).json()
    assert [n["id"] for n in listed["notices"]] == [made["id"]]
    assert api.app.state.notices.store.active(datetime.now(UTC))[0].text == WATER
    found = await api.c.get("/api/kb/search", params={"q": "西湖区停水"}, headers=api.as_("a1002"))
    assert found.status_code == 200, found.text
    notes = found.json()["notes"]
    assert notes and notes[0]["article"]["id"] == f"notice-{made['id']}"
    ended = await api.c.post(f"/api/admin/notices/{made['id']}/end", headers=api.as_("admin"))
    assert ended.json()["state"] == "ended"
    again = await api.c.get("/api/kb/search", params={"q": "西湖区停水"}, headers=api.as_("a1002"))
    assert again.json()["notes"] == []


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"end": (NOW - timedelta(hours=1)).isoformat()}, "end must be after start"),
        ({"text": "停水" * 151}, "text"),
        ({"seats": ["nosuch"]}, "unknown seat"),
        ({"district": "火星区"}, "unknown district"),
        ({"start": "2026-10-01T08:00:00"}, "timezone"),
        ({"recording": "up-missing"}, "no uploaded prompt"),
        ({"who": "someone-else"}, "who"),
        ({"title": "警告\u202e"}, "control characters"),
    ],
)
async def test_a_bad_notice_is_refused_and_nothing_is_stored(
    api: Api, fields: dict, why: str
) -> None:
    r = await api.c.post("/api/admin/notices", json=body(**fields), headers=api.as_("admin"))
    assert r.status_code == 422 and why in r.json()["detail"], r.text
    assert api.app.state.notices.store.all() == []


@pytest.mark.parametrize("user", ["a1002", "sup"])
async def test_only_admins_touch_notices_and_refusals_are_audited(api: Api, user: str) -> None:
    h = api.as_(user)
    assert (await api.c.post("/api/admin/notices", json=body(), headers=h)).status_code == 403
    assert (await api.c.get("/api/admin/notices", headers=h)).status_code == 403
    assert (
        await api.c.put("/api/admin/prompts/up-x", content=b"RIFF", headers=h)
    ).status_code == 403
    assert (await api.c.get("/api/admin/prompts/up-x/audio", headers=h)).status_code == 403
    audit = (await api.c.get("/api/admin/audit", headers=api.as_("admin"))).json()
    rows = audit if isinstance(audit, list) else next(iter(audit.values()))
    refused = [a for a in rows if a.get("who") == user and a.get("outcome") == 403]
    assert len(refused) >= 4, rows[:3]
    assert api.app.state.notices.store.all() == []


# ---- prompt uploads ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    d = tmp_path_factory.mktemp("audio")
    subprocess.run(["sox", "-n", "-r", "24000", "-c", "2", str(d / "t.wav"), "synth", "1.5",
                    "sine", "440"], check=True)  # fmt: skip
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(d / "t.wav"), str(d / "t.mp3")], check=True)
    return (d / "t.mp3").read_bytes()


async def test_an_uploaded_mp3_becomes_an_8khz_prompt_to_listen_to(api: Api, mp3: bytes) -> None:
    h = api.as_("admin")
    assert len(mp3) > 0
    r = await api.c.put("/api/admin/prompts/up-water", content=mp3, headers=h)
    assert r.status_code == 201, r.text
    assert 1.4 < r.json()["seconds"] < 1.7
    wav = await api.c.get("/api/admin/prompts/up-water/audio", headers=h)
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
    rate = int.from_bytes(wav.content[24:28], "little")
    channels = int.from_bytes(wav.content[22:24], "little")
    assert (rate, channels) == (8000, 1)
    listed = (await api.c.get("/api/admin/prompts", headers=h)).json()["prompts"]
    assert listed == ["up-water"]
    made = await api.c.post("/api/admin/notices", json=body(recording="up-water"), headers=h)
    assert made.status_code == 201 and made.json()["prompt"] == "uploads/up-water"
    assert made.json()["voice_ready"] is True


@pytest.mark.parametrize(
    "content",
    [b"<html>not audio</html>" * 10, b"ID3" + b"\x00" * 500, b"RIFF\x00\x00\x00\x00WAVEjunk"],
)
async def test_a_fake_recording_is_refused(api: Api, content: bytes) -> None:
    r = await api.c.put("/api/admin/prompts/up-fake.mp3"[:-4], content=content,
                        headers=api.as_("admin"))  # fmt: skip
    assert r.status_code == 422, r.text
    assert not (Path(api.app.state.notices.uploads) / "up-fake.wav").exists()


async def test_upload_names_and_sizes_are_bounded(api: Api, mp3: bytes) -> None:
    h = api.as_("admin")
    assert (
        await api.c.put("/api/admin/prompts/../../etc", content=mp3, headers=h)
    ).status_code in (404, 422)
    assert (
        await api.c.put("/api/admin/prompts/greeting", content=mp3, headers=h)
    ).status_code == 422
    big = b"\xff\xfb" + b"\x00" * (4096 * 1024 + 10)
    assert (await api.c.put("/api/admin/prompts/up-big", content=big, headers=h)).status_code == 413
    agent_big = b"\x00" * (70 * 1024)
    r = await api.c.post("/api/admin/notices", content=agent_big, headers=api.as_("a1002"))
    assert r.status_code == 413  # the larger limit is for admins on the prompt path only


async def test_a_broken_notice_database_is_503_and_calls_go_on(tmp_path: Path) -> None:
    config = notices_config(tmp_path)
    (tmp_path / "a-file").write_text("x")
    data = config.model_dump(mode="json")
    data["notices"]["path"] = str(tmp_path / "a-file" / "n.sqlite3")
    broken = HotlineConfig.model_validate(data)
    access = fast_store(tmp_path / "access.sqlite3")
    access.add_user("admin", PASSWORD, "admin", None, None)
    app = make_app(broken, Services(), access=access)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as c:
        r = await c.post("/api/login", json={"name": "admin", "password": PASSWORD, "bearer": True})
        h = {"Authorization": f"Bearer {r.json()['token']}"}
        assert (await c.get("/api/admin/notices", headers=h)).status_code == 503

    class Broken:
        def active(self, at: datetime) -> list[Notice]:
            from notices.store import NoticeStoreError

            raise NoticeStoreError("disk gone")

    phone = CallerNotices(Broken(), tmp_path, "custom-x/")  # type: ignore[arg-type]
    assert await phone.for_call(NOW) == ()
