"""Listeners off loopback (issue 8, finding 11): refused unless the config lists the peers
that may connect; then manager.conf, FastAGI, the speech socket and the console admit those
peers only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from agi_scripts.server import AgiApp, AgiConnection, AgiServer
from asterisk_conf.render import render_text
from hotline.config import ConfigError, HotlineConfig, parse_config
from hotline.peers import PeerFilter, Peers, network

EXAMPLE = Path(__file__).resolve().parents[2] / "hotline.yaml"
OUTSIDER = "203.0.113.9"


def example() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def with_section(section: str, lines: str) -> str:
    """The example with ``lines`` (indented two spaces) as the first lines of ``section``,
    replacing its ``host`` line when it has one."""
    rows = example().splitlines(keepends=True)
    at = next(i for i, row in enumerate(rows) if row.startswith(f"{section}:"))
    rest = rows[at + 1 :]
    if rest and rest[0].startswith("  host:"):
        rest = rest[1:]
    return "".join([*rows[: at + 1], lines, *rest])


def problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "net.yaml")
    return info.value.problems


def line_of(text: str, needle: str) -> int:
    return next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith(needle))


@pytest.mark.parametrize("section", ["ami", "agi", "redis", "console"])
def test_a_listener_off_loopback_without_allow_list_is_refused(section: str) -> None:
    host = "10.20.0.5"
    text = with_section(section, f"  host: {host}\n")
    [(field, line, message)] = problems(text)
    assert (field, line) == (f"{section}.allow_from", line_of(text, f"{section}:"))
    assert f"host {host} is not loopback" in message and "allow_from" in message


def test_ami_on_every_address_is_refused_as_in_the_finding() -> None:
    text = with_section("ami", "  host: 0.0.0.0\n")
    [(field, _, message)] = problems(text)
    assert field == "ami.allow_from" and "host 0.0.0.0 is not loopback" in message


@pytest.mark.parametrize("entry", ["0.0.0.0/0", "::/0", "10.0.0.300", "everyone"])
def test_an_allow_list_entry_that_is_not_a_peer_network_is_refused(entry: str) -> None:
    text = with_section("ami", f"  host: 0.0.0.0\n  allow_from: ['{entry}']\n")
    [(field, line, message)] = problems(text)
    assert (field, line) == ("ami.allow_from", line_of(text, "  allow_from:"))
    assert repr(entry) in message


def test_redis_cannot_listen_on_every_address_even_with_an_allow_list() -> None:
    text = with_section("redis", "  host: 0.0.0.0\n  allow_from: [10.20.0.0/24]\n")
    [(field, _, message)] = problems(text)
    assert field == "redis.host" and "Redis cannot check its peers" in message


def test_loopback_listeners_need_no_allow_list_and_admit_only_loopback() -> None:
    config = parse_config(example())
    for section in (config.ami, config.agi, config.redis, config.console):
        assert section.allowed_peers.networks == Peers.of("127.0.0.1").networks
    assert Peers.of("127.0.0.1").asterisk_acl() == ["127.0.0.0/255.0.0.0", "::1/128"]


def manager_conf(config: HotlineConfig) -> list[str]:
    return [line.strip() for line in render_text(config)["manager.conf"].splitlines()]


def test_manager_conf_on_loopback_denies_everything_but_loopback() -> None:
    lines = manager_conf(parse_config(example()))
    assert "bindaddr = 127.0.0.1" in lines
    assert [x for x in lines if x.startswith(("permit", "deny"))] == [
        "deny = 0.0.0.0/0.0.0.0",
        "deny = ::/0",
        "permit = 127.0.0.0/255.0.0.0",
        "permit = ::1/128",
    ]


def test_manager_conf_off_loopback_permits_exactly_the_allow_list() -> None:
    text = with_section(
        "ami", "  host: 0.0.0.0\n  allow_from: [10.20.0.0/24, 10.30.1.7, 'fd00:12::/64']\n"
    )
    lines = manager_conf(parse_config(text))
    assert "bindaddr = 0.0.0.0" in lines
    assert [x for x in lines if x.startswith(("permit", "deny"))] == [
        "deny = 0.0.0.0/0.0.0.0",
        "deny = ::/0",
        "permit = 127.0.0.0/255.0.0.0",
        "permit = ::1/128",
        "permit = 10.20.0.0/255.255.255.0",
        "permit = 10.30.1.7/255.255.255.255",
        "permit = fd00:12::/64",
    ]
    assert "permit = 0.0.0.0/0.0.0.0" not in lines


def test_ami_on_one_address_also_admits_that_address() -> None:
    text = with_section("ami", "  host: 10.20.0.5\n  allow_from: [10.20.0.9]\n")
    permits = [x for x in manager_conf(parse_config(text)) if x.startswith("permit")]
    assert permits[-2:] == [
        "permit = 10.20.0.5/255.255.255.255",
        "permit = 10.20.0.9/255.255.255.255",
    ]


def test_peers_match_addresses_by_network() -> None:
    peers = Peers.of("0.0.0.0", ["10.20.0.0/24"])
    assert peers.allows("127.0.0.1") and peers.allows("::1")
    assert peers.allows("10.20.0.77") and peers.allows("::ffff:10.20.0.77")
    assert not peers.allows("10.20.1.77")
    assert not peers.allows(OUTSIDER)
    assert not peers.allows(None) and not peers.allows("not-an-address")
    with pytest.raises(ValueError, match="admits every address"):
        network("0.0.0.0/0")


class FakeTransport:
    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.closed = False

    def get_extra_info(self, name: str) -> object:
        return (self.peer, 40000) if name == "peername" else None

    def close(self) -> None:
        self.closed = True


def agi_config(allow: str) -> HotlineConfig:
    return parse_config(with_section("agi", f"  host: 0.0.0.0\n  allow_from: [{allow}]\n"))


async def test_fastagi_closes_a_connection_from_outside_the_allow_list() -> None:
    server = AgiServer(AgiApp(config=agi_config("10.20.0.0/24")))
    outsider, asterisk = FakeTransport(OUTSIDER), FakeTransport("10.20.0.3")
    AgiConnection(server).connection_made(outsider)  # type: ignore[arg-type]
    AgiConnection(server).connection_made(asterisk)  # type: ignore[arg-type]
    assert outsider.closed and not asterisk.closed
    assert server.stats.refused_peers == 1 and len(server._connections) == 1


async def test_fastagi_without_config_admits_loopback_only() -> None:
    server = AgiServer(AgiApp(config=None))
    local, outsider = FakeTransport("127.0.0.1"), FakeTransport(OUTSIDER)
    AgiConnection(server).connection_made(local)  # type: ignore[arg-type]
    AgiConnection(server).connection_made(outsider)  # type: ignore[arg-type]
    assert (local.closed, outsider.closed) == (False, True)


class FakeWriter(FakeTransport):
    async def wait_closed(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self.closed


async def test_speech_socket_closes_a_connection_from_outside_the_allow_list() -> None:
    from speech.service import SpeechService

    service = SpeechService(agi_config("10.20.0.0/24"), recognizer=None, redis=None)  # type: ignore[arg-type]
    writer = FakeWriter(OUTSIDER)
    reader = asyncio.StreamReader()
    await service._handle(reader, writer)  # type: ignore[arg-type]
    assert writer.closed and service.refused_peers == 1
    assert not service._writers


async def test_console_filter_answers_403_outside_the_allow_list() -> None:
    reached: list[str] = []

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        reached.append(scope["client"][0])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guarded = PeerFilter(app, Peers.of("0.0.0.0", ["10.20.0.0/24"]))
    for client, status in ((OUTSIDER, 403), ("10.20.0.8", 200), ("127.0.0.1", 200)):
        transport = httpx.ASGITransport(app=guarded, client=(client, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
            assert (await http.get("/")).status_code == status, client
    assert reached == ["10.20.0.8", "127.0.0.1"]


def test_the_production_config_lists_the_compose_network_for_every_listener() -> None:
    from hotline.config import load_config

    docker = load_config(EXAMPLE.parent / "docker" / "hotline.docker.yaml")
    for section in (docker.ami, docker.agi, docker.redis, docker.console):
        assert section.allow_from == ("172.28.0.0/24",)
        assert not section.allowed_peers.allows(OUTSIDER)
    acl = [x for x in manager_conf(docker) if x.startswith("permit")]
    assert acl[-1] == "permit = 172.28.0.0/255.255.255.0"
