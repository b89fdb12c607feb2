"""``/metrics`` in the Prometheus text format (``prometheus-client``), from the wallboard's
subscriber: nothing is read from Redis or SQLite per scrape.

Counters and histograms are fed by the facts the live model reports for each event
(:class:`supervise.live.Fact`); gauges (waiting callers per seat, agents by state, open
screens, the board's own failure counts) are read from the board at scrape time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as PCounter
from prometheus_client import Histogram as PHistogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from supervise.live import AGENT_STATES, Fact

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WAIT_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10)


class HotlineMetrics:
    """A registry of its own (no process-wide default metrics)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.offered = PCounter(
            "hotline_calls_offered", "Calls that joined a seat's queue", ["seat"], registry=r
        )
        self.answered = PCounter(
            "hotline_calls_answered", "Queued calls answered by an agent", ["seat"], registry=r
        )
        self.abandoned = PCounter(
            "hotline_calls_abandoned", "Callers who hung up while waiting", ["seat"], registry=r
        )
        self.wait = PHistogram(
            "hotline_queue_wait_seconds",
            "Wait in the queue until answered or abandoned",
            ["seat", "outcome"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.handle = PHistogram(
            "hotline_call_talk_seconds",
            "Answered calls: answer to hang-up",
            ["seat"],
            buckets=(30, 60, 120, 180, 300, 600, 1200),
            registry=r,
        )
        self.emergency = PCounter(
            "hotline_emergency_transfers", "Calls sent to an emergency line", ["line"], registry=r
        )
        self.draft_latency = PHistogram(
            "hotline_speech_draft_latency_seconds",
            "End of speech to the ticket draft",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fail_open = PCounter(
            "hotline_fail_open",
            "Calls the dialplan sent to the general seat's queue because something failed",
            ["reason"],
            registry=r,
        )
        self.board: Any = None

    def observe(self, facts: Iterable[Fact]) -> None:
        for f in facts:
            if f.name == "offered":
                self.offered.labels(f.key).inc()
            elif f.name == "answered":
                self.answered.labels(f.key).inc()
                self.wait.labels(f.key, "answered").observe(f.value)
            elif f.name == "abandoned":
                self.abandoned.labels(f.key).inc()
                self.wait.labels(f.key, "abandoned").observe(f.value)
            elif f.name == "handled":
                self.handle.labels(f.key).observe(f.value)
            elif f.name == "emergency":
                self.emergency.labels(f.key).inc()
            elif f.name == "fallback":
                self.fail_open.labels(f.key).inc()
            elif f.name == "draft_latency":
                self.draft_latency.observe(f.value)

    def attach(self, board: Any) -> None:
        """Read gauges from ``board`` at scrape time."""
        self.board = board
        self.registry.register(_BoardCollector(board))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _BoardCollector(Collector):
    def __init__(self, board: Any) -> None:
        self.board = board

    def collect(self) -> Iterator[Any]:
        b = self.board
        snap = b.model.snapshot()
        waiting = GaugeMetricFamily("hotline_calls_waiting", "Callers waiting now", labels=["seat"])
        longest = GaugeMetricFamily(
            "hotline_longest_wait_seconds", "Longest wait now", labels=["seat"]
        )
        for s in snap["seats"]:
            waiting.add_metric([s["id"]], s["waiting"])
            longest.add_metric([s["id"]], s["longest_wait_s"])
        states = Counter(a["state"] for a in snap["agents"])
        agents = GaugeMetricFamily("hotline_agents", "Agents by state", labels=["state"])
        for state in (*AGENT_STATES, "unknown"):
            agents.add_metric([state], states.get(state, 0))
        yield from (waiting, longest, agents)
        yield GaugeMetricFamily(
            "hotline_wallboard_screens", "Open wallboard screens", value=b.screens
        )
        yield GaugeMetricFamily(
            "hotline_wallboard_stream_connected",
            "Reading the call event stream",
            value=int(b.connected),
        )
        failures = CounterMetricFamily(
            "hotline_wallboard_failures",
            "The board's failed reads and refused entries",
            labels=["what"],
        )
        failures.add_metric(["redis_read"], b.read_errors)
        failures.add_metric(["malformed_event"], b.refused)
        failures.add_metric(["alert_not_published"], b.alerts_dropped)
        yield failures
        active = GaugeMetricFamily(
            "hotline_alerts_active", "Active supervisor alerts", labels=["kind"]
        )
        kinds = Counter(kind for kind, _ in b.alerts)
        for kind in ("service_level", "wait", "not_ready", "hotspot"):
            active.add_metric([kind], kinds.get(kind, 0))
        yield active
