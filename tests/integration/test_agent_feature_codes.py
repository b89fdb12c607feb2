"""Agents change their ACD state from the phone, through real Asterisk, FastAGI and Redis
(stack slot ``acd``): a sipp phone sending from an agent's fixed address and port dials a
feature code; Asterisk identifies the endpoint by that address, the ``agent_codes`` handler
appends the command to ``acd:commands`` (source ``phone``) and plays the confirmation.

No ACD router runs here: the agents are logged in on a real ``RedisEngine`` by the test
(the router's part), so that each command fits the state it is checked against.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from instances import stack_instance
from redis import Redis

from acd.commands import STREAM, AgentCommand
from acd.engine import RedisEngine
from acd.settings import AcdSettings, AgentProfile
from hotline import safe_yaml
from hotline.config import HotlineConfig, load_config
from testphones.sipp import CallerSpec, SippResult, free_udp_port, run_caller

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INSTANCE, OFFSET = stack_instance("acd")


class Stack:
    def __init__(self, config: HotlineConfig, stack: object, tmp: Path, log_start: int) -> None:
        self.config, self.stack, self.tmp, self.log_start = config, stack, tmp, log_start
        self.redis = Redis(**config.redis.client_kwargs())  # type: ignore[arg-type]
        self.calls = 0

    def asterisk_log(self) -> str:
        with open(self.stack.asterisk_log, "rb") as fh:  # type: ignore[attr-defined]
            fh.seek(self.log_start)
            return fh.read().decode(errors="replace")

    def dial(self, code: str, port: int) -> SippResult:
        """A phone at 127.0.0.1:``port`` dials ``code`` and stays until Asterisk hangs up."""
        self.calls += 1
        sip = self.config.sip
        spec = CallerSpec(sip.host, sip.port, dialed=code, caller="1000", local_ip="127.0.0.1",
                          local_port=port, hold_s=8.0)  # fmt: skip
        return run_caller(spec, self.tmp / f"dial-{self.calls}", 30)

    def commands(self) -> list[AgentCommand]:
        return [AgentCommand.parse(raw) for _, raw in self.redis.xrange(STREAM)]


@pytest.fixture(scope="module")
def acd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from conftest import _why_not_runnable

    from runtime.procs import StackError
    from runtime.stack import Stack as RealStack
    from testphones.sipp import offset_config

    reason = _why_not_runnable()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("hotline-acd")
    data = offset_config(safe_yaml.load_file(REPO / "hotline.yaml"), OFFSET, tmp)
    data.setdefault("speech", {})["mode"] = "off"
    data["acd"]["mode"] = "app_queue"  # no router: the test plays its part
    config_path = tmp / f"{INSTANCE}.yaml"
    config_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    config = load_config(config_path)
    stack = RealStack(config_path, instance=INSTANCE, run_dir=tmp / "run")
    try:
        try:
            stack.up(require_fastagi=True, speech=False)
        except StackError as exc:
            pytest.fail(f"the acd stack did not come up: {exc}", pytrace=False)
        log_start = stack.asterisk_log.stat().st_size
        stack.cli("agi set debug on")
        s = Stack(config, stack, tmp, log_start)
        engine = RedisEngine(s.redis, AcdSettings())
        engine.install()
        for agent in ("1002", "1003"):  # the router's part: both agents are logged in, ready
            engine.login(agent, AgentProfile(skills={"gjj": 1}), time.time())
        yield s
        s.redis.close()
    finally:
        stack.down()


def agent_port(config: HotlineConfig, agent_id: str) -> int:
    return next(a.port for a in config.agents if a.id == agent_id)


def test_agent_1002_dials_star_22_and_the_break_is_asked_for_by_phone(acd: Stack) -> None:
    code = acd.config.agent_codes.not_ready_break
    result = acd.dial(code, agent_port(acd.config, "1002"))
    assert result.successful == 1, result.as_dict()
    [cmd] = [c for c in acd.commands() if c.agent_id == "1002"]
    assert (cmd.op, cmd.reason, cmd.source, cmd.by) == ("not_ready", "break", "phone", "agent1002")
    asked = r'AGI Rx << STREAM FILE "hotline/agent-code-break" ""\n'
    played = re.search(asked + r".*AGI Tx >> 200 result=0 endpos=(\d+)", acd.asterisk_log())
    assert played and int(played.group(1)) > 1000  # the confirmation was heard to its end


def test_a_phone_changes_only_its_own_agent_and_an_unknown_phone_nothing(acd: Stack) -> None:
    before = len(acd.commands())
    # agent 1003's phone dials the same code: the command is for 1003, never for 1002
    result = acd.dial(acd.config.agent_codes.not_ready_break, agent_port(acd.config, "1003"))
    assert result.successful == 1, result.as_dict()
    new = acd.commands()[before:]
    assert [(c.agent_id, c.op, c.by) for c in new] == [("1003", "not_ready", "agent1003")]
    # a phone at an address no agent has is not identified: refused before the dialplan
    stranger = acd.dial(acd.config.agent_codes.ready, free_udp_port("127.0.0.1"))
    assert stranger.successful == 0
    assert len(acd.commands()) == before + 1


def test_the_records_process_keeps_each_agents_state_changes(acd: Stack) -> None:
    """``python -m calls serve`` copies ``acd:log`` into the call records' store."""
    import asyncio

    from calls.store import SqliteCallStore

    async def kept() -> list[tuple[float, str, str]]:
        store = SqliteCallStore(acd.config.calls.path)
        try:
            return await store.agent_states("1002", 0.0, time.time() + 60)
        finally:
            await store.close()

    deadline = time.monotonic() + 20
    while not (states := asyncio.run(kept())) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [s for _, s, _ in states][:1] == ["ready"]  # logged in ready by the fixture
