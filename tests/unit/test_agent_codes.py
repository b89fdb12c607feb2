"""Agents change their ACD state from the phone: the ``agent_codes`` config, the dialplan and
endpoint identification it renders, and the FastAGI handler (a fake session over a real
redis-server: the command lands in ``acd:commands``, the agent hears one prompt)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis as AsyncRedis
from redis_kit import free_port

from acd.agent_log import quick_client
from acd.commands import STREAM, AgentCommand
from acd.engine import RedisEngine
from acd.settings import AgentProfile
from agi_scripts.handlers import agent_codes
from agi_scripts.protocol import parse_env
from agi_scripts.server import AgiApp
from asterisk_conf.render import render_text
from hotline.config import AgentCodes, HotlineConfig, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "hotline.yaml"


@pytest.fixture(scope="module")
def config() -> HotlineConfig:
    return load_config(EXAMPLE)


# ---- config and the rendered Asterisk config ----------------------------------------------
def test_the_codes_map_to_commands_and_each_code_does_one_thing() -> None:
    assert AgentCodes().actions() == {
        "*20": ("login", None),
        "*21": ("ready", None),
        "*22": ("not_ready", "break"),
        "*23": ("not_ready", "after_call_work"),
        "*24": ("not_ready", "training"),
        "*25": ("not_ready", "meeting"),
        "*29": ("logout", None),
    }
    with pytest.raises(ValidationError, match=r"used twice: \*21"):
        AgentCodes(ready="*21", meeting="*21")
    for bad in ("22", "*2", "*2a", "*1234", "*22,1,Hangup()"):
        with pytest.raises(ValidationError):
            AgentCodes(ready=bad)


def test_a_code_that_is_the_emergency_feature_code_is_refused() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace('ready: "*21"', 'ready: "*119"')
    with pytest.raises(ValueError, match=r"agent_codes: \*119 is the emergency feature code"):
        parse_config(text)


def context_lines(text: str, name: str) -> list[str]:
    m = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", text, re.S | re.M)
    assert m, f"no context [{name}]"
    return [ln for ln in m.group(1).splitlines() if ln.startswith(("exten", " same"))]


def test_agents_phones_reach_the_handler_with_each_code_and_nothing_else(config) -> None:
    files = render_text(config, "demo")
    lines = context_lines(files["extensions.conf"], "from-agents")
    for code in config.agent_codes.actions():
        at = lines.index(f"exten => {code},1,Answer()")
        assert (
            lines[at + 1]
            == f" same => n,AGI(agi://{config.agi.host}:{config.agi.port}/agent_codes)"
        )
    assert lines[-1] == "exten => _[0-9*#].,1,Hangup(21)"  # anything else is refused
    assert sum(ln.startswith("exten") for ln in lines) == len(config.agent_codes.actions()) + 1


def test_each_agents_phone_is_identified_by_its_address_and_port(config) -> None:
    pjsip = render_text(config, "demo")["pjsip.conf"]
    for agent in config.agents:
        block = re.search(rf"^\[{agent.endpoint}\]\ntype = identify\n(.*?)\n\n", pjsip, re.S | re.M)
        assert block, agent.endpoint
        assert block.group(1).splitlines() == [
            f"endpoint = {agent.endpoint}",
            f"match = {agent.host}:{agent.port}",
        ]


# ---- the handler -----------------------------------------------------------------------------
class Phone:
    """The agent's channel as the handler sees it: the AGI environment and what it played."""

    def __init__(self, channel: str, dialled: str, *args: str) -> None:
        lines = [f"agi_arg_{i}: {a}" for i, a in enumerate(args, 1)]
        self.env = parse_env("\n".join(["agi_network_script: agent_codes",
                                        f"agi_channel: {channel}", f"agi_extension: {dialled}",
                                        "agi_callerid: 1003", *lines]) + "\n\n")  # fmt: skip
        self.call_id = "unknown"
        self.played: list[str] = []

    async def stream_file(self, prompt: str, escape_digits: str = "") -> None:
        self.played.append(prompt)


@pytest.fixture
async def app(config, acd_redis_port) -> AsyncIterator[AgiApp]:
    client = AsyncRedis(port=acd_redis_port)
    yield AgiApp(config=config, acd_redis=client)
    await client.aclose()


def sent(engine: RedisEngine) -> list[AgentCommand]:
    return [AgentCommand.parse(raw) for _, raw in engine._r.xrange(STREAM)]


async def test_agent_1002_dials_star_22_and_goes_on_a_break(app, engine) -> None:
    engine.login("1002", AgentProfile(skills={"gjj": 1}), time.time())
    phone = Phone("PJSIP/agent1002-0000001a", "*22")
    await agent_codes.handle(phone, app)  # type: ignore[arg-type]
    [cmd] = sent(engine)
    assert (cmd.op, cmd.agent_id, cmd.reason) == ("not_ready", "1002", "break")
    assert (cmd.source, cmd.by) == ("phone", "agent1002")
    assert phone.played == ["hotline/agent-code-break"]


async def test_the_endpoint_decides_the_agent_not_the_caller_id_or_arguments(app, engine) -> None:
    for agent in ("1002", "1003"):
        engine.login(agent, AgentProfile(skills={"gjj": 1}), time.time())
    phone = Phone("PJSIP/agent1002-0000001b", "*22", "1003")  # caller ID and argument say 1003
    await agent_codes.handle(phone, app)  # type: ignore[arg-type]
    assert [c.agent_id for c in sent(engine)] == ["1002"]


@pytest.mark.parametrize(
    "channel",
    [
        "PJSIP/carrier-00000001",  # a caller, not a phone
        "PJSIP/agent9999-00000002",  # no such agent in the config
        "PJSIP/agent1002",  # not a channel name Asterisk makes
        "SIP/agent1002-00000003",
        "PJSIP/agent1002-0000000c;agent1003",
    ],
)
async def test_a_code_from_anything_but_an_agents_phone_is_refused(app, engine, channel) -> None:
    engine.login("1002", AgentProfile(skills={"gjj": 1}), time.time())
    phone = Phone(channel, "*29")
    await agent_codes.handle(phone, app)  # type: ignore[arg-type]
    assert sent(engine) == []
    assert phone.played == ["hotline/agent-code-refused"]


async def test_a_code_that_does_not_fit_the_state_is_refused_and_nothing_sent(app, engine) -> None:
    for dialled in ("*21", "*22", "*29", "*99"):  # logged out: not ready, break, log out; unknown
        phone = Phone("PJSIP/agent1002-0000001c", dialled)
        await agent_codes.handle(phone, app)  # type: ignore[arg-type]
        assert phone.played == ["hotline/agent-code-refused"], dialled
    phone = Phone("PJSIP/agent1002-0000001d", "*20")
    await agent_codes.handle(phone, app)  # type: ignore[arg-type]
    assert [c.op for c in sent(engine)] == ["login"]
    assert phone.played == ["hotline/agent-code-login"]


async def test_redis_down_the_agent_hears_so_and_nothing_is_lost(config) -> None:
    down = config.model_copy(
        update={"redis": config.redis.model_copy(update={"port": free_port()})}
    )
    client = quick_client(down)
    phone = Phone("PJSIP/agent1002-0000001e", "*21")
    started = time.monotonic()
    await agent_codes.handle(phone, AgiApp(config=config, acd_redis=client))  # type: ignore[arg-type]
    assert phone.played == ["hotline/agent-code-unavailable"]
    assert time.monotonic() - started < agent_codes.REDIS_BUDGET_S + 1
    await client.aclose()
    phone = Phone("PJSIP/agent1002-0000001f", "*21")
    await agent_codes.handle(phone, AgiApp(config=config))  # type: ignore[arg-type]
    assert phone.played == ["hotline/agent-code-unavailable"]


def test_every_confirmation_prompt_exists_as_mandarin_audio() -> None:
    sounds = EXAMPLE.parent / "sounds" / "zh"
    names = {*agent_codes.DONE.values(), agent_codes.REFUSED, agent_codes.DOWN}
    assert len(names) == 9
    assert all((sounds / f"{n}.wav").stat().st_size > 1000 for n in names)
