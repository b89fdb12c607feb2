"""Operations scrape the FastAGI server's counters (issue 10): sessions, how they ended, and
events the IVR could not publish — on loopback, with no caller data."""

from __future__ import annotations

import socket
import urllib.request

from agi_scripts.metrics import serve_metrics
from agi_scripts.server import Stats


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_the_counters_are_read_at_scrape_time_and_name_no_caller() -> None:
    stats, dropped = Stats(), [0]
    port = free_port()
    assert serve_metrics(stats, port, lambda: dropped[0]) is not None
    before = scrape(port)
    assert before["hotline_agi_sessions_total"] == 0
    stats.sessions, stats.active, stats.completed, stats.failed = 5, 1, 3, 1
    dropped[0] = 2
    after = scrape(port)
    assert after["hotline_agi_sessions_total"] == 5
    assert after["hotline_agi_active_sessions"] == 1
    assert after['hotline_agi_outcomes_total{outcome="completed"}'] == 3
    assert after['hotline_agi_outcomes_total{outcome="failed"}'] == 1
    assert after["hotline_agi_events_dropped_total"] == 2
    assert not any("139" in k or "call_id" in k for k in after)


def test_a_port_in_use_is_logged_and_the_ivr_goes_on(caplog) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert serve_metrics(Stats(), port) is None
    assert "the IVR goes on" in caplog.text
