"""Queue naming and the static router used until live agent state lands."""

from __future__ import annotations

from acd.interface import RouteDecision, RouteRequest


def queue_name(seat_id: str) -> str:
    """The app_queue queue that serves a seat (``gjj`` → ``seat_gjj``)."""
    return f"seat_{seat_id}"


class StaticQueueRouter:
    """Routes a skill to its seat's app_queue queue; unknown skills go to the general seat."""

    def __init__(self, seat_ids: list[str], general_seat: str) -> None:
        self._seats = frozenset(seat_ids)
        self._general = general_seat

    async def route(self, request: RouteRequest) -> RouteDecision:
        seat = request.skill if request.skill in self._seats else self._general
        return RouteDecision(queue=queue_name(seat), priority=request.priority, seat=seat)
