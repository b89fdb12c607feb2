"""The real stack: Asterisk 22 in the rootfs chroot, Redis and FastAGI, brought up by
``runtime.Stack`` beside any demo instance (its own ports and directories).

Scenario: an operator brings up a test instance, a carrier call arrives while the IVR server
is down (the caller still waits for a person), the operator adds an agent and reloads with
the call in progress, a broken edit is refused, and ``down`` leaves nothing running.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from instances import stack_instance
from redis import Redis
from rules_helpers import AGENT_KEYS_UAS, rfc4733_pcap

from acd.queues import queue_name
from asterisk_conf.render import MODULES
from hotline import safe_yaml
from hotline.ami import AmiClient
from hotline.call import answered_by
from hotline.config import ConfigError, HotlineConfig, load_config
from runtime import Stack, StackError
from runtime.procs import alive, port_open, udp_port_bound
from testphones.sipp import control_args

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="Asterisk runs in a chroot: needs root"),
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed"),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "hotline.yaml"
INSTANCE, _OFFSET = stack_instance("stack")


def ports_at(offset: int) -> dict[str, int]:
    """The demo ports (5060/5038/4573/6390/51xx) moved by ``offset`` (instances.py), so a
    stack here collides with no other test stack of this or another worker."""
    return {
        "sip": 5060 + offset,
        "ami": 5038 + offset,
        "agi": 4573 + offset,
        "redis": 6390 + offset,
        "carrier": 5061 + offset,
        "emergency": 5062 + offset,
        "agent_base": 5100 + offset,
    }


PORTS = ports_at(_OFFSET)


def write_config(path: Path, ports: dict[str, int], extra_agent: bool = False) -> HotlineConfig:
    """The example config moved to ``ports`` (optionally with a second 公积金 agent)."""
    data = safe_yaml.load_file(EXAMPLE)
    for key in ("sip", "ami", "agi", "redis"):
        data[key]["port"] = ports[key]
    for trunk in ("carrier", "emergency"):
        data["trunks"][trunk]["port"] = ports[trunk]
    for agent in data["agents"]:
        agent["port"] = ports["agent_base"] + agent["port"] % 100
    if extra_agent:
        data["agents"].append(
            {"id": "1010", "name": "公积金坐席2", "host": "127.0.0.1",
             "port": ports["agent_base"] + 10, "seats": ["gjj"]}
        )  # fmt: skip
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_config(path)


async def ami_command(config: HotlineConfig, command: str) -> str:
    a = config.ami
    client = await AmiClient.connect(a.host, a.port, a.username, a.secret)
    try:
        return await client.command(command)
    finally:
        await client.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("stack")
    cfg_path = base / "hotline.yaml"
    config = write_config(cfg_path, PORTS)
    assert config.sip.port == PORTS["sip"] and config.agents[0].port == PORTS["agent_base"] + 1
    s = Stack(cfg_path, instance=INSTANCE, run_dir=base / "run")
    s.down()
    try:
        s.up()
        yield s
    finally:
        s.down()


def test_stack_is_up_with_ami_login_and_every_port(stack: Stack) -> None:
    cfg = stack.config
    status = stack.status()
    assert status["asterisk"]["running"] and status["asterisk"]["sip_bound"]
    assert status["redis"]["listening"]
    for service in ("fastagi", "speech"):
        if status[service]["available"]:
            assert status[service]["listening"], f"{service}: see {status[service]['log']}"
    assert udp_port_bound(cfg.sip.port)
    uptime = asyncio.run(ami_command(cfg, "core show uptime"))
    assert "System uptime" in uptime
    print(f"\nAsterisk start-to-ready: {stack.timings.get('asterisk_ready_s')} s")
    assert Redis(**cfg.redis.client_kwargs()).ping()


def test_ami_admits_loopback_only_in_the_running_asterisk(stack: Stack) -> None:
    # issue 8, finding 11: what Asterisk made of the rendered manager.conf ACL
    out = stack.cli(f"manager show user {stack.config.ami.username}")
    rules = [ln.split(":", 1)[1].split() for ln in out.splitlines() if ln.strip()[:2] in
             {f"{i}:" for i in range(10)}]  # fmt: skip
    assert rules == [
        ["deny", "-", "0.0.0.0/0.0.0.0"],
        ["deny", "-", "::/::"],
        ["allow", "-", "127.0.0.0/255.0.0.0"],
        ["allow", "-", "::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
    ]


def test_every_required_module_is_loaded(stack: Stack) -> None:
    assert set(MODULES) - stack.loaded_modules() == set()


def test_every_agent_is_a_pjsip_endpoint(stack: Stack) -> None:
    out = asyncio.run(ami_command(stack.config, "pjsip show endpoints"))
    for agent in stack.config.agents:
        assert f"Endpoint:  {agent.endpoint} " in out
        assert f"sip:{agent.endpoint}@{agent.host}:{agent.port}" in out
    assert "Endpoint:  carrier " in out and "Endpoint:  emergency " in out


def test_every_seat_queue_exists_with_its_agents(stack: Stack) -> None:
    out = stack.cli("queue show")
    for seat in stack.config.seats:
        name = queue_name(seat.id)
        block = out.split(f"{name} has ", 1)[1].split("\n\n", 1)[0]
        members = {ln.split()[0] for ln in block.splitlines() if "(PJSIP/" in ln}
        assert members == {a.endpoint for a in stack.config.agents if seat.id in a.seats}


def test_call_fails_open_with_ivr_down_and_survives_reload(stack: Stack, tmp_path: Path) -> None:
    cfg = stack.config
    stack.stop_fastagi()
    assert not port_open(cfg.agi.host, cfg.agi.port)
    # A carrier call (sipp on the carrier's address) that stays 20 s: no agent phone runs,
    # so it waits in the general seat's queue.
    caller = subprocess.Popen(
        [
            *("sipp", "-sn", "uac", "-s", cfg.hotline.number, f"{cfg.sip.host}:{cfg.sip.port}"),
            *("-i", cfg.trunks.carrier.host, "-p", str(PORTS["carrier"]), "-m", "1"),
            *("-d", "20000", "-nostdin", "-timeout", "60"),
            *control_args(cfg.trunks.carrier.host),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        general = queue_name(cfg.general_seat.id)
        deadline = time.monotonic() + 10
        waiting = ""
        while time.monotonic() < deadline:
            waiting = stack.cli(f"queue show {general}")
            if "PJSIP/carrier-" in waiting:
                break
            time.sleep(0.2)
        assert "PJSIP/carrier-" in waiting, waiting
        channel = next(w for w in waiting.split() if w.startswith("PJSIP/carrier-"))

        # The operator adds agent 1010 to the 公积金 seat and reloads with the call waiting.
        write_config(stack.config_path, PORTS, extra_agent=True)
        result = stack.reload()
        assert "warning" not in result
        assert "reloaded successfully" in result["module reload res_pjsip.so"]
        assert "agent1010" in stack.cli("queue show seat_gjj")
        assert "agent1010" in stack.cli("pjsip show endpoints")
        assert channel in stack.cli("core show channels concise")
        assert caller.poll() is None  # the caller is still connected
    finally:
        caller.terminate()
        caller.wait(10)
        stack.start_fastagi(required=False)


def test_agent_feature_code_sends_the_caller_to_the_emergency_trunk(
    stack: Stack, tmp_path: Path
) -> None:
    cfg = stack.config
    code = cfg.emergency.agent_feature_code
    line = code.lstrip("*")
    pcap = tmp_path / "keys.pcap"
    rfc4733_pcap(pcap, code)
    scenario = tmp_path / "agent.xml"
    scenario.write_text(AGENT_KEYS_UAS.replace("KEYS_PCAP", str(pcap)))
    general = [a for a in cfg.agents if cfg.general_seat.id in a.seats]
    procs: list[subprocess.Popen[bytes]] = []

    def sipp(*args: str) -> None:
        procs.append(
            subprocess.Popen(
                ["sipp", *args, "-nostdin", "-timeout", "60"],
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    async def scenario_run() -> dict[str, dict[str, str]]:
        a = cfg.ami
        client = await AmiClient.connect(a.host, a.port, a.username, a.secret)
        events = client.subscribe()
        try:
            for n, agent in enumerate(general):
                sipp(
                    *("-sf", str(scenario), "-i", agent.host, "-p", str(agent.port), "-m", "1"),
                    *("-mi", agent.host, "-mp", str(PORTS["agent_base"] + 50 + 2 * n)),
                    *control_args(agent.host),
                )
            trunk = cfg.trunks.emergency
            sipp("-sn", "uas", "-i", trunk.host, "-p", str(trunk.port), "-m", "1", "-trace_msg",
                 *control_args(trunk.host))  # fmt: skip
            await asyncio.sleep(0.5)
            sipp(
                *("-sn", "uac", "-s", cfg.hotline.number, f"{cfg.sip.host}:{cfg.sip.port}"),
                *("-i", cfg.trunks.carrier.host, "-p", str(PORTS["carrier"]), "-m", "1"),
                *("-d", "8000", *control_args(cfg.trunks.carrier.host)),
            )
            seen: dict[str, dict[str, str]] = {}
            async with asyncio.timeout(30):
                while "DialEnd" not in seen:
                    e = await events.get()
                    name = e.get("UserEvent") or e.get("Event", "")
                    if name in ("HotlineFallback", "HotlineEmergency"):
                        seen.setdefault(name, e)
                    if answered_by(e):  # app_queue's AgentConnect or the router's DialEnd
                        seen.setdefault("answered", e)
                    if name == "DialEnd" and e.get("DestChannel", "").startswith(
                        "PJSIP/emergency-"
                    ):
                        seen["DialEnd"] = e
            return seen
        finally:
            await client.close()

    stack.stop_fastagi()
    try:
        seen = asyncio.run(scenario_run())
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        stack.start_fastagi(required=False)
    assert seen["HotlineFallback"]["Reason"].startswith("agi-")
    agent = f"agent{answered_by(seen['answered'])}"
    emergency = seen["HotlineEmergency"]
    assert emergency["Line"] == line
    assert emergency["Reason"] == f"agent:{agent}"
    # sipp's built-in caller sends "sipp" as its number: not a number, so withheld (issue 8)
    assert emergency["CallerIDNum"] == "anonymous"
    assert seen["DialEnd"]["DialStatus"] == "ANSWER"
    invite = next(
        (tmp_path / f).read_text()
        for f in os.listdir(tmp_path)
        if f.startswith("uas_") and f.endswith("_messages.log")
    )
    assert f"INVITE sip:{line}@" in invite
    assert "sip:anonymous@" in invite.split("INVITE sip:", 1)[1].split("\n\n", 1)[0]


def test_broken_edit_is_refused_and_nothing_changes(stack: Stack) -> None:
    etc = stack.rootfs / f"etc/asterisk-{stack.instance}"
    before = (etc / "queues.conf").read_text()
    good = stack.config_path.read_text(encoding="utf-8")
    data = safe_yaml.load(good)
    data["agents"][-1]["seats"] = ["nowhere"]
    stack.config_path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    try:
        with pytest.raises(ConfigError, match="nowhere"):
            stack.reload()
        assert (etc / "queues.conf").read_text() == before
        assert stack.asterisk_running()
        assert stack.config.agents[-1].endpoint in stack.cli("queue show seat_gjj")
        # the operator can still see and stop the instance while the file is broken
        with pytest.raises(ConfigError):
            Stack(stack.config_path, instance="never-started", run_dir=stack.run.parent)
        same = Stack(stack.config_path, instance=stack.instance, run_dir=stack.run.parent)
        assert same.config_error is not None
        assert same.status()["asterisk"]["running"]
        with pytest.raises(ConfigError):
            same.up()
    finally:
        stack.config_path.write_text(good, encoding="utf-8")
    assert "dialplan reload" in stack.reload()


def test_second_instance_runs_beside_and_stops_alone(stack: Stack, tmp_path: Path) -> None:
    name, offset = stack_instance("beside")
    write_config(tmp_path / "other.yaml", ports_at(offset))
    other = Stack(tmp_path / "other.yaml", instance=name, run_dir=tmp_path / "run")
    try:
        other.up(speech=False)
        assert asyncio.run(ami_command(other.config, "core show uptime"))
        assert other.rootfs == stack.rootfs
    finally:
        other.down()
    assert not other.asterisk_running()
    assert not port_open(other.config.ami.host, other.config.ami.port)
    assert stack.asterisk_running()
    assert asyncio.run(ami_command(stack.config, "core show uptime"))


def test_taken_ami_port_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    name, offset = stack_instance("busy")
    write_config(tmp_path / "busy.yaml", ports_at(offset))
    busy = Stack(tmp_path / "busy.yaml", instance=name, run_dir=tmp_path / "run")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((busy.config.ami.host, busy.config.ami.port))
        squatter.listen()
        with pytest.raises(StackError, match=f"AMI tcp .*:{busy.config.ami.port} already in use"):
            busy.up(speech=False)
    status = busy.status()
    assert [status[n]["running"] for n in ("asterisk", "redis", "fastagi", "speech")] == [
        False,
        False,
        False,
        False,
    ]
    assert not port_open(busy.config.redis.host, busy.config.redis.port)


def test_down_leaves_no_process(stack: Stack) -> None:
    names = ("asterisk", "redis", "fastagi", "speech")
    pids = [stack.status()[name]["pid"] for name in names]
    stopped = stack.down()
    assert stopped["asterisk"] and stopped["redis"]
    for pid in pids:
        assert not alive(pid)
    cfg = stack.config
    assert not port_open(cfg.ami.host, cfg.ami.port)
    assert not port_open(cfg.redis.host, cfg.redis.port)
    assert not port_open(cfg.agi.host, cfg.agi.port)
    assert not port_open(cfg.agi.host, stack.speech_port)
    assert not udp_port_bound(cfg.sip.port)
    assert all(stack.status()[name]["running"] is False for name in names)
