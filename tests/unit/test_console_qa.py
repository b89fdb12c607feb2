"""QA in the console (issue 11): a QA user finds a recorded call by a word of its transcript,
plays its decrypted audio, scores it; agents are refused and every attempt is audited."""

from __future__ import annotations

import csv
import io
import time
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_console import PASSWORD, fast_store
from test_console_kb import Client

from console.app import Services, make_app
from hotline.privacy import CallerKey
from recordings.index import TLine
from recordings.seed import local_config, seed_call
from speech.stereo import rms, split

REPO = Path(__file__).resolve().parents[2]
CALL = "1733150000.41"
OTHER = "1733150100.77"
USERS = (("a1002", "agent", "1002"), ("sup", "supervisor", None), ("qa1", "qa", None),
         ("qa2", "qa", None))  # fmt: skip
ALL_YES = {"greeting": True, "repeat": True, "callback": True, "closing": True,
           "forbidden": True, "wait": True, "attitude": 5}  # fmt: skip


def wav(path: Path, freq: float, at: float, seconds: float, total: float = 4.0) -> Path:
    x = np.zeros(int(total * 8000), dtype=np.int16)
    t = np.arange(int(seconds * 8000)) / 8000
    x[int(at * 8000) : int(at * 8000) + t.size] = (6000 * np.sin(2 * np.pi * freq * t)).astype(
        np.int16
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(x.tobytes())
    return path


@pytest.fixture
def qa_config(tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("HOTLINE_RECORDING_KEY", raising=False)
    monkeypatch.delenv("HOTLINE_PII_KEY", raising=False)
    config = local_config(REPO / "hotline.yaml", tmp_path)
    hashed = CallerKey.from_file(config.tickets.key_file).hash("13805712345")
    lines = [TLine("agent", 0.2, 1.0, "您好，很高兴为您服务"),
             TLine("caller", 2.0, 3.0, "我要投诉小区噪音扰民")]  # fmt: skip
    seed_call(config, CALL, wav(tmp_path / "c.wav", 300, 2.0, 1.0),
              wav(tmp_path / "a.wav", 700, 0.2, 0.8), lines, at=time.time() - 600,
              caller_hash=hashed)  # fmt: skip
    other = [TLine("caller", 2.0, 3.0, "公积金怎么提取")]
    seed_call(config, OTHER, tmp_path / "c.wav", tmp_path / "a.wav", other,
              at=time.time() - 300, agent="1009")  # fmt: skip
    return config


@pytest.fixture
async def api(tmp_path: Path, qa_config):  # type: ignore[no-untyped-def]
    access = fast_store(tmp_path / "access.sqlite3")
    for name, role, agent in USERS:
        access.add_user(name, PASSWORD, role, agent)
    app = make_app(qa_config, Services(), access=access)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        yield client, Client(client), access
    app.state.qa._index and app.state.qa._index.close()
    access.close()


async def test_qa_finds_the_call_by_a_word_its_caller_said(api) -> None:
    client, users, _ = api
    qa = await users.as_("qa1")
    r = await client.get("/api/qa/calls", params={"words": "噪音"}, headers=qa)
    assert r.status_code == 200, r.text
    (found,) = r.json()["calls"]
    assert found["call_id"] == CALL and found["agents"] == ["1002"]
    assert found["caller"] == "138****2345" and found["outcome"] == "agent"
    everything = (await client.get("/api/qa/calls", headers=qa)).json()["calls"]
    assert [c["call_id"] for c in everything] == [OTHER, CALL]  # newest first
    by_agent = await client.get("/api/qa/calls", params={"agent": "1009"}, headers=qa)
    assert [c["call_id"] for c in by_agent.json()["calls"]] == [OTHER]
    since = await client.get("/api/qa/calls", params={"since": time.time() - 400}, headers=qa)
    assert [c["call_id"] for c in since.json()["calls"]] == [OTHER]


async def test_a_supervisor_finds_a_call_by_the_callers_full_number(api) -> None:
    client, users, access = api
    sup = await users.as_("sup")
    r = await client.get("/api/qa/calls", params={"caller": "+86 138-0571-2345"}, headers=sup)
    assert [c["call_id"] for c in r.json()["calls"]] == [CALL]
    bad = await client.get("/api/qa/calls", params={"caller": "anonymous"}, headers=sup)
    assert bad.status_code == 422
    entry = next(a for a in access.audit(20) if a["action"] == "GET /api/qa/calls")
    assert "13805712345" not in str(access.audit(50))
    assert entry["who"] == "sup"


async def test_the_recording_plays_decrypted_with_both_sides_and_its_waveform(api) -> None:
    client, users, access = api
    qa = await users.as_("qa1")
    detail = (await client.get(f"/api/qa/calls/{CALL}", headers=qa)).json()
    (rec,) = detail["recordings"]
    assert [x["speaker"] for x in detail["transcript"]] == ["agent", "caller"]
    r = await client.get(f"/api/qa/recordings/{rec['id']}/audio", headers=qa)
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    caller, agent, rate = split(r.content)
    assert rms(caller[2 * rate : 3 * rate]) > 1000 and rms(agent[2 * rate : 3 * rate]) == 0
    assert rms(agent[int(0.3 * rate) : rate]) > 1000
    peaks = (await client.get(f"/api/qa/recordings/{rec['id']}/peaks", headers=qa)).json()
    assert peaks["duration_s"] == 4.0 and len(peaks["caller"]) == 600
    played = [a for a in access.audit(20) if a["action"].endswith("/audio")]
    assert played[0]["who"] == "qa1" and played[0]["outcome"] == 200
    assert played[0]["detail"] == f"played recording of call {CALL}"


async def test_an_agent_asking_for_a_recording_is_refused_and_audited(api) -> None:
    client, users, access = api
    agent = await users.as_("a1002")
    rec_id = f"{CALL}_{CALL}"
    r = await client.get(f"/api/qa/recordings/{rec_id}/audio", headers=agent)
    assert r.status_code == 403 and r.content[:4] != b"RIFF"
    assert (await client.get("/api/qa/calls", headers=agent)).status_code == 403
    refused = [a for a in access.audit(20) if a["action"].endswith("/audio")]
    assert refused[0]["who"] == "a1002" and refused[0]["outcome"] == 403
    assert refused[0]["target"] == f"rec_id={rec_id}"


async def test_two_qa_scores_are_saved_compared_and_exported_to_csv(api) -> None:
    client, users, _ = api
    qa1, qa2 = await users.as_("qa1"), await users.as_("qa2")
    r = await client.put(f"/api/qa/calls/{CALL}/score", json={"items": ALL_YES}, headers=qa1)
    assert r.status_code == 200 and r.json()["total"] == 100.0
    worse = {**ALL_YES, "closing": False, "attitude": 3}
    r = await client.put(
        f"/api/qa/calls/{CALL}/score", json={"items": worse, "note": "=cmd|x"}, headers=qa2
    )
    assert r.json()["difference"]["items"] == ["attitude", "closing"]
    detail = (await client.get(f"/api/qa/calls/{CALL}", headers=qa1)).json()
    assert detail["difference"]["total_gap"] == pytest.approx(100 - r.json()["total"])
    text = (await client.get("/api/qa/scores.csv", headers=qa1)).text.lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(x["call_id"], x["scorer"]) for x in rows] == [(CALL, "qa1"), (CALL, "qa2")]
    assert rows[1]["closing"] == "False" and rows[1]["note"] == "'=cmd|x"  # no formula


@pytest.mark.parametrize(
    "body",
    [
        {"items": {**ALL_YES, "attitude": 9}},
        {"items": {**ALL_YES, "made_up": True}},
        {"items": {"greeting": True}},
        {"items": ALL_YES, "extra": 1},
    ],
)
async def test_a_score_the_rubric_does_not_allow_is_refused(api, body) -> None:  # type: ignore[no-untyped-def]
    client, users, _ = api
    qa = await users.as_("qa1")
    r = await client.put(f"/api/qa/calls/{CALL}/score", json=body, headers=qa)
    assert r.status_code == 422
    assert (await client.get(f"/api/qa/calls/{CALL}", headers=qa)).json()["scores"] == []


async def test_only_qa_scores_and_bad_ids_are_refused(api) -> None:
    client, users, _ = api
    sup = await users.as_("sup")
    r = await client.put(f"/api/qa/calls/{CALL}/score", json={"items": ALL_YES}, headers=sup)
    assert r.status_code == 403
    qa = await users.as_("qa1")
    for path in ("/api/qa/calls/..%2Fetc", "/api/qa/recordings/x/audio"):
        assert (await client.get(path, headers=qa)).status_code in (404, 422)
    missing = await client.get("/api/qa/recordings/1.1_1.1/audio", headers=qa)
    assert missing.status_code == 404
    unrecorded = await client.put("/api/qa/calls/1.2/score", json={"items": ALL_YES}, headers=qa)
    assert unrecorded.status_code == 404


async def test_the_page_is_served_and_failures_are_shown_to_supervisors(api, qa_config) -> None:
    client, users, _ = api
    assert "通话质检" in (await client.get("/qa")).text
    from recordings.index import RecordingIndex

    idx = RecordingIndex(qa_config.recording.index)
    idx.failed(CALL, "OSError errno 28")
    idx.close()
    sup = await users.as_("sup")
    h = (await client.get("/api/qa/health", headers=sup)).json()
    assert h["not_stored"]["count"] == 1 and h["not_stored"]["last"][0]["call_id"] == CALL
