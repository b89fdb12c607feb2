"""Finding 12 (issue 8, the Asterisk part): every socket of the stack's processes (Asterisk,
Redis, FastAGI, the console; the speech service when it runs) is bound to a loopback address.

The two wildcard UDP sockets Asterisk used to hold (0.0.0.0:<random> and [::]:<random>) were
pjlib-util's DNS resolver, which res_pjsip creates when the system lists a nameserver (glibc
answers 127.0.0.1 for an empty resolv.conf) and which binds to the wildcard address."""

from __future__ import annotations

import ipaddress
import re
import subprocess

import pytest

from .security_helpers import SecStack

pytestmark = pytest.mark.integration


def sockets_of(pids: set[int]) -> list[tuple[str, str, int]]:
    """``(protocol, local address, pid)`` of every TCP/UDP socket of ``pids`` (``ss``)."""
    out = subprocess.run(["ss", "-H", "-tuanp"], capture_output=True, text=True, check=True)
    found = []
    for line in out.stdout.splitlines():
        cols = line.split()
        for pid in (int(p) for p in re.findall(r"pid=(\d+)", line)):
            if pid in pids:
                found.append((cols[0], cols[4], pid))
    return found


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]").split("%")[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def stack_sockets(sec: SecStack) -> tuple[dict[str, int], list[tuple[str, str, int]]]:
    status = sec.stack.status()  # type: ignore[attr-defined]
    pids = {
        name: status[name]["pid"]
        for name in ("asterisk", "redis", "fastagi", "speech", "console")
        if status[name]["pid"]
    }
    assert {"asterisk", "redis", "fastagi", "console"} <= set(pids), pids
    sockets = sockets_of(set(pids.values()))
    assert any(pid == pids["asterisk"] for _, _, pid in sockets)
    return pids, sockets


def is_resolver(proto: str, address: str) -> bool:
    """pjlib's DNS resolver socket: UDP on the wildcard address, an ephemeral port."""
    host, _, port = address.rpartition(":")
    return proto == "udp" and host in ("0.0.0.0", "[::]", "*") and int(port) >= 32768


def test_every_socket_of_the_stack_but_the_sip_resolver_is_on_loopback(sec: SecStack) -> None:
    pids, sockets = stack_sockets(sec)
    wide = [
        (proto, addr, pid)
        for proto, addr, pid in sockets
        if not is_loopback(addr) and not (pid == pids["asterisk"] and is_resolver(proto, addr))
    ]
    assert not wide, f"sockets not on loopback: {wide} (pids {pids})"


@pytest.mark.xfail(
    strict=True,
    reason="Asterisk 22 has no setting to bind or disable res_pjsip's pjlib DNS resolver "
    "(docs/security.md, finding 12); remove this mark when it is gone",
)
def test_asterisk_holds_no_wildcard_socket(sec: SecStack) -> None:
    pids, sockets = stack_sockets(sec)
    wide = [(p, a) for p, a, pid in sockets if pid == pids["asterisk"] and not is_loopback(a)]
    assert not wide, wide
