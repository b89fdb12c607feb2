"""The hand-off between the IVR and the ACD.

The IVR builds a :class:`RouteRequest`; a :class:`Router` turns it into a
:class:`RouteDecision` that the dialplan executes (join an app_queue queue).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RouteRequest:
    call_id: str
    caller: str
    skill: str
    """A seat id from the config (``gjj``, ``zonghe`` …)."""
    priority: int = 0
    fields: dict[str, object] = field(default_factory=dict)
    """What the IVR collected: IVR path, ticket draft, caller flag …"""


@dataclass(frozen=True, slots=True)
class RouteDecision:
    queue: str
    """The app_queue queue the caller joins."""
    priority: int = 0
    timeout_s: int = 0
    """0: wait until answered."""
    seat: str = ""
    """The seat the queue serves (``""``: the request's skill)."""


class Router(Protocol):
    async def route(self, request: RouteRequest) -> RouteDecision:
        """Choose the queue for a caller; must not raise for an unknown skill (fall back
        to the general seat)."""
        ...
