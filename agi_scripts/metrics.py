"""The FastAGI server's own counters for Prometheus (issue 10's "AGI sessions and errors").

Served on loopback only, at ``agi.port + 3`` (the speech service is ``+ 1``, the console
``+ 2``), by ``prometheus-client``'s small HTTP server in a thread: a Prometheus on the same
host scrapes it (docker/prometheus.yml).  Counters only, never a caller's number or a call id.
The values are read from :class:`agi_scripts.server.Stats` at scrape time; a port that cannot
be bound is logged and the IVR goes on without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

log = logging.getLogger("agi.metrics")

PORT_OFFSET = 3
"""``agi.port + 3``: the metrics port of a stack (moved with the rest by a test offset)."""
HOST = "127.0.0.1"
OUTCOMES = ("completed", "hangups", "timeouts", "failed", "unknown_route", "handed_back")
"""How a session ended (fields of ``Stats``): ``failed`` is a handler error or an AGI error,
after which the dialplan's fail-open path takes the call."""


class AgiCollector:
    """Reads the server's ``Stats`` (and the event stream's dropped count) at scrape time."""

    def __init__(self, stats: Any, dropped: Callable[[], int] | None = None) -> None:
        self.stats = stats
        self.dropped = dropped

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        yield CounterMetricFamily(
            "hotline_agi_sessions", "FastAGI sessions started (calls entering the IVR)",
            value=s.sessions,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "hotline_agi_active_sessions", "Calls in the IVR now", value=s.active
        )
        outcomes = CounterMetricFamily(
            "hotline_agi_outcomes", "FastAGI sessions by how they ended", labels=["outcome"]
        )
        for name in OUTCOMES:
            outcomes.add_metric([name], getattr(s, name))
        yield outcomes
        yield CounterMetricFamily(
            "hotline_agi_commands", "AGI commands sent to Asterisk", value=s.commands
        )
        yield CounterMetricFamily(
            "hotline_agi_refused_peers", "Connections refused (not in agi.allow_from)",
            value=s.refused_peers,
        )  # fmt: skip
        if self.dropped is not None:
            yield CounterMetricFamily(
                "hotline_agi_events_dropped",
                "Call events the IVR could not publish (Redis down: the call went on)",
                value=self.dropped(),
            )


def serve_metrics(
    stats: Any, port: int, dropped: Callable[[], int] | None = None, host: str = HOST
) -> CollectorRegistry | None:
    """Start the loopback metrics server; ``None`` (logged) when the port cannot be bound."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(AgiCollector(stats, dropped))
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.error("AGI metrics not served on %s:%d (%s); the IVR goes on", host, port, exc)
        return None
    log.info("AGI metrics on http://%s:%d/metrics", host, port)
    return registry
