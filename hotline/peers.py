"""Who may connect to the hotline's own listeners (AMI, FastAGI, the speech socket, the
console, Redis).

A listener bound to loopback is reached only from this machine.  One bound anywhere else
needs an explicit ``allow_from`` list of peer networks in its config section (the config
refuses it otherwise); the peers then allowed are loopback, the listener's own address and
those networks — rendered into Asterisk's ``manager.conf`` permit lines and checked by every
Python server when it accepts a connection.  Redis cannot filter peers itself: it binds only
the configured address and relies on its password and the host's firewall (docs/security.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def network(value: str) -> Network:
    """One ``allow_from`` entry (``10.1.2.0/24``, ``10.1.2.7``, ``fd00::/64``); a network
    that admits every address (``0.0.0.0/0``) is not an allow-list and is refused."""
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not an address or network: {value!r}") from None
    if net.prefixlen == 0:
        raise ValueError(f"{value!r} admits every address: list the peers' networks")
    return net


@dataclass(frozen=True)
class Peers:
    """The peers one listener accepts."""

    networks: tuple[Network, ...]

    @classmethod
    def of(cls, host: str, allow_from: Iterable[str] = ()) -> Peers:
        """Loopback, ``host`` itself when it is one address, and ``allow_from``."""
        nets = list(LOOPBACK)
        try:
            own = ipaddress.ip_address(host)
        except ValueError:
            own = None
        if own is not None and not own.is_unspecified and not own.is_loopback:
            nets.append(ipaddress.ip_network(own))
        nets += [network(n) for n in allow_from]
        return cls(tuple(dict.fromkeys(nets)))

    def allows(self, peer: str | None) -> bool:
        """Whether a connection from address ``peer`` may proceed (unknown: no)."""
        if not peer:
            return False
        try:
            addr = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks)

    def asterisk_acl(self) -> list[str]:
        """``permit`` values for an Asterisk ACL (IPv4 as address/netmask)."""
        return [n.with_netmask if n.version == 4 else n.with_prefixlen for n in self.networks]


def peer_host(peername: object) -> str | None:
    """The address of a socket's ``peername`` (a tuple for IP sockets)."""
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return None


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class PeerFilter:
    """ASGI middleware: a request from a peer outside ``peers`` gets 403 and never reaches
    ``app`` (for the console when it listens off loopback)."""

    def __init__(self, app: ASGIApp, peers: Peers) -> None:
        self.app = app
        self.peers = peers

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            if not self.peers.allows(client[0] if client else None):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = b'{"detail":"this address may not use the console"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 403,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
