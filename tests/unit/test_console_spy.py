"""Listen, whisper, barge (console/spy.py) without a stack: the API over a fake AMI that
records the actions a supervisor's requests turn into, the audit log, and the config and
dialplan they rely on."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from access import AccessStore
from access.web import protect
from asterisk_conf.render import render_text
from console.feed import FeedHub
from console.follow import CallFollower
from console.spy import SpyDesk, spy_router
from hotline.ami import AmiError
from hotline.config import ConfigError, HotlineConfig, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "unit-spy-password"
CALL = "1700000000.10"
AGENT_UID = "1700000000.12"


class FakeAmi:
    """Answers like Asterisk: the call's channels, and every action's reply."""

    def __init__(self, channels: list[dict[str, str]], answer: bool = True) -> None:
        self.channels = channels
        self.answer = answer
        self.actions: list[tuple[str, dict]] = []

    async def action_list(self, name: str, **fields: object) -> list[dict[str, str]]:
        assert name == "CoreShowChannels"
        return self.channels

    async def action(self, name: str, **fields: object) -> dict[str, str]:
        self.actions.append((name, fields))
        if name == "Originate":
            if not self.answer:
                return {"Response": "Error", "Message": "Originate failed"}
            self.channels.append(
                {
                    "Channel": "PJSIP/supervisor9001-0000000c",
                    "Uniqueid": str(fields["ChannelId"]),
                    "Linkedid": "x",
                }
            )
        if name == "PlayDTMF" and fields["Channel"] not in {c["Uniqueid"] for c in self.channels}:
            return {"Response": "Error", "Message": "Channel not found"}
        return {"Response": "Success"}

    async def close(self) -> None:
        pass


def call_channels() -> list[dict[str, str]]:
    """The caller's and agent 1002's channels of call ``CALL``, and another agent's call.
    The caller's channel carries a caller number that looks like an agent id: never used."""
    return [
        {"Channel": "PJSIP/carrier-0000000a", "Uniqueid": CALL, "Linkedid": CALL,
         "CallerIDNum": "1002"},
        {"Channel": "PJSIP/agent1002-0000000b", "Uniqueid": AGENT_UID, "Linkedid": CALL},
        {"Channel": "PJSIP/agent1009-0000000d", "Uniqueid": "1700000000.20",
         "Linkedid": "1700000000.19"},
    ]  # fmt: skip


@pytest.fixture
def config(tmp_path: Path) -> HotlineConfig:
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    path = tmp_path / "h.yaml"
    path.write_text(text.replace("run/console-access.sqlite3", str(tmp_path / "a.sqlite3")))
    return load_config(path)


class Spy:
    def __init__(self, client, ami, follower, access, services) -> None:
        self.client, self.ami, self.follower = client, ami, follower
        self.access, self.services = access, services

    async def as_(self, name: str) -> dict[str, str]:
        r = await self.client.post(
            "/api/login", json={"name": name, "password": PASSWORD, "bearer": True}
        )
        assert r.status_code == 200, r.text
        self.client.cookies.clear()
        return {"Authorization": f"Bearer {r.json()['token']}"}

    async def agent_answers(self, agent: str = "1002", call: str = CALL) -> None:
        await self.follower.on_ami_event(
            {"Event": "AgentConnect", "Linkedid": call, "Channel": "PJSIP/carrier-0000000a",
             "CallerIDNum": "13900001111", "Interface": f"PJSIP/agent{agent}"}
        )  # fmt: skip

    def audit(self, who: str) -> list[dict]:
        return [r for r in self.access.audit(200, who) if "/spy" in r["action"]]


@pytest.fixture
async def spy(config, tmp_path):
    access = AccessStore(
        tmp_path / "access.sqlite3",
        hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )
    access.add_user("sup1", PASSWORD, "supervisor")
    access.add_user("agent1002", PASSWORD, "agent", "1002")
    ami = FakeAmi(call_channels())

    async def connect() -> FakeAmi:
        if ami.channels is None:
            raise AmiError("cannot connect to AMI at 127.0.0.1:5038")
        return ami

    follower = CallFollower(config, FeedHub(), None, redis=None)
    follower.ami_connected = True
    services = SimpleNamespace(follower=follower, desk=SpyDesk(config, connect=connect))
    app = FastAPI()
    protect(app, access, 64 * 1024)
    app.include_router(spy_router(config, services, services.desk))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        yield Spy(client, ami, follower, access, services)


URL = f"/api/supervisor/calls/{CALL}/spy"


async def test_a_supervisor_listens_then_whispers_then_barges_then_hangs_up(spy) -> None:
    sup = await spy.as_("sup1")
    await spy.agent_answers()
    r = await spy.client.post(URL, json={"mode": "listen", "phone": "9001"}, headers=sup)
    assert r.status_code == 201, r.text
    name, originate = spy.ami.actions[0]
    assert name == "Originate"
    assert originate["Channel"] == "PJSIP/supervisor9001"
    assert (originate["Context"], originate["Exten"]) == ("hotline-spy", "listen")
    assert originate["Variable"] == f"HOTLINE_SPY_TARGET={AGENT_UID}"  # the agent's, by uniqueid
    channel = originate["ChannelId"]
    assert r.json() | {"started_at": 0} == {
        "call_id": CALL, "linkedid": CALL, "agent": "1002", "phone": "9001", "mode": "listen",
        "by": "sup1", "channel": channel, "target": AGENT_UID, "started_at": 0}  # fmt: skip

    listed = (await spy.client.get("/api/supervisor/calls", headers=sup)).json()
    assert listed["calls"][0]["spies"] == [{"phone": "9001", "mode": "listen", "by": "sup1"}]

    for mode, key in (("whisper", "5"), ("barge", "6"), ("listen", "4")):
        r = await spy.client.patch(URL, json={"mode": mode, "phone": "9001"}, headers=sup)
        assert r.status_code == 200 and r.json()["mode"] == mode, r.text
        assert spy.ami.actions[-1] == (
            "PlayDTMF",
            {"Channel": channel, "Digit": key, "Duration": 120, "Receive": True, "timeout": 5.0},
        )
    r = await spy.client.delete(URL, params={"phone": "9001"}, headers=sup)
    assert r.status_code == 200
    assert spy.ami.actions[-1] == ("Hangup", {"Channel": channel, "timeout": 5.0})
    r = await spy.client.patch(URL, json={"mode": "barge", "phone": "9001"}, headers=sup)
    assert r.status_code == 404

    details = [(r["outcome"], r["target"], r["detail"]) for r in spy.audit("sup1")]
    assert (201, f"call_id={CALL}", "spy start mode=listen phone=9001") in details
    assert (200, f"call_id={CALL}", "spy switch mode=barge phone=9001") in details
    assert (200, f"call_id={CALL}", "spy stop phone=9001") in details


async def test_an_agent_may_not_listen_and_the_refusal_is_audited(spy) -> None:
    agent = await spy.as_("agent1002")
    await spy.agent_answers()
    r = await spy.client.post(URL, json={"mode": "listen", "phone": "9001"}, headers=agent)
    assert r.status_code == 403
    r = await spy.client.get("/api/supervisor/calls", headers=agent)
    assert r.status_code == 403
    assert spy.ami.actions == []
    refused = spy.audit("agent1002")
    assert refused and refused[-1]["outcome"] == 403 and refused[-1]["target"] == f"call_id={CALL}"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"phone": "9001"}, "mode"),
        ({"mode": "shout", "phone": "9001"}, "mode"),
        ({"mode": "listen"}, "phone"),
        ({"mode": "listen", "phone": "9001\r\nAction: Originate"}, "phone"),
        ({"mode": "listen", "phone": "9001", "target": "PJSIP/agent1009"}, "target"),
        ({"mode": "listen", "phone": "9999"}, "phone"),
        ([], "body"),
    ],
)
async def test_bad_bodies_are_refused_with_the_field_and_nothing_rings(spy, body, field) -> None:
    sup = await spy.as_("sup1")
    await spy.agent_answers()
    r = await spy.client.post(URL, json=body, headers=sup)
    assert r.status_code == 422 and field in r.json()["detail"], r.text
    assert spy.ami.actions == []


async def test_a_call_not_on_an_agent_is_404_and_the_agent_is_found_by_uniqueid(spy) -> None:
    sup = await spy.as_("sup1")
    body = {"mode": "whisper", "phone": "9001"}
    assert (await spy.client.post(URL, json=body, headers=sup)).status_code == 404  # unknown
    await spy.agent_answers()
    spy.ami.channels[:] = [c for c in spy.ami.channels if "agent1002" not in c["Channel"]]
    r = await spy.client.post(URL, json=body, headers=sup)  # the agent's channel is gone
    assert r.status_code == 404 and "gone" in r.json()["detail"]
    assert spy.ami.actions == []
    r = await spy.client.delete(URL, params={"phone": "9001"}, headers=sup)
    assert r.status_code == 404


async def test_ami_down_is_503_and_an_unanswered_phone_is_502(spy) -> None:
    sup = await spy.as_("sup1")
    await spy.agent_answers()
    body = {"mode": "barge", "phone": "9001"}
    spy.follower.ami_connected = False
    assert (await spy.client.post(URL, json=body, headers=sup)).status_code == 503
    spy.follower.ami_connected = True
    channels, spy.ami.channels = spy.ami.channels, None
    assert (await spy.client.post(URL, json=body, headers=sup)).status_code == 503
    spy.ami.channels, spy.ami.answer = channels, False
    r = await spy.client.post(URL, json=body, headers=sup)
    assert r.status_code == 502 and "did not answer" in r.json()["detail"]


async def test_when_the_call_ends_its_listening_sessions_are_forgotten(spy) -> None:
    sup = await spy.as_("sup1")
    await spy.agent_answers()
    body = {"mode": "barge", "phone": "9001"}
    assert (await spy.client.post(URL, json=body, headers=sup)).status_code == 201
    await spy.follower.on_ami_event(
        {"Event": "Hangup", "Linkedid": CALL, "Channel": "PJSIP/carrier-0000000a"}
    )
    listed = (await spy.client.get("/api/supervisor/calls", headers=sup)).json()
    assert listed["calls"] == []
    desk = spy.services.desk
    assert desk.sessions == {}


async def test_one_supervisor_phone_is_on_one_call_at_a_time(spy) -> None:
    sup = await spy.as_("sup1")
    await spy.agent_answers()
    body = {"mode": "listen", "phone": "9001"}
    assert (await spy.client.post(URL, json=body, headers=sup)).status_code == 201
    assert (await spy.client.post(URL, json=body, headers=sup)).status_code == 409
    spy.ami.channels.pop()  # the supervisor hung up their phone
    assert (await spy.client.post(URL, json=body, headers=sup)).status_code == 201


# ---- config and dialplan ------------------------------------------------------------------
def test_supervisors_phones_become_called_only_endpoints_and_a_spy_context(config) -> None:
    files = render_text(config, "unit")
    pjsip, ext = files["pjsip.conf"], files["extensions.conf"]
    assert "[supervisor9001]\ntype = endpoint" in pjsip
    assert "context = from-supervisors" in pjsip
    assert "contact = sip:supervisor9001@127.0.0.1:5121" in pjsip
    assert "[from-supervisors]\nexten => _[0-9*#].,1,Hangup(21)" in ext
    spy_context = ext[ext.index("[hotline-spy]") : ext.index("[from-supervisors]")]
    assert "Set(target=${FILTER(0-9.,${HOTLINE_SPY_TARGET})})" in spy_context
    assert 'GotoIf($["${target}" = ""]?done)' in spy_context  # never ChanSpy on everyone
    for mode, opts in (("listen", "qdEu"), ("whisper", "qdEuw"), ("barge", "qdEuB")):
        assert f"exten => {mode},1," in spy_context
        assert f"ChanSpy(${{target}},{opts})" in spy_context
    assert "require = app_chanspy.so" in files["modules.conf"]


@pytest.mark.parametrize(
    "supervisors, where",
    [
        ('[{id: "9001", name: a, host: 127.0.0.1, port: 5121}, '
         '{id: "9001", name: b, host: 127.0.0.1, port: 5122}]', "supervisors.1.id"),
        ('[{id: "9001", name: a, host: 127.0.0.1, port: 5101}]', "supervisors.0.port"),
        ('[{id: "boss", name: a, host: 127.0.0.1, port: 5121}]', "supervisors.0.id"),
        ('[{id: "9001", name: a, host: "x;y", port: 5121}]', "supervisors.0.host"),
    ],
)  # fmt: skip
def test_bad_supervisor_phones_are_refused_with_the_field(supervisors: str, where: str) -> None:
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    start = text.index("\nsupervisors:") + 1
    end = re.compile(r"^[a-z_]+:", re.M).search(text, start + 1).start()  # the next section
    bad = text[:start] + f"supervisors: {supervisors}\n" + text[end:]
    with pytest.raises(ConfigError) as err:
        parse_config(bad)
    assert any(p[0] == where for p in err.value.problems), err.value.problems


def test_an_older_config_without_supervisors_still_loads() -> None:
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    old = text[: text.index("\nsupervisors:")]
    assert parse_config(old).supervisors == ()
