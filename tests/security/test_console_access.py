"""Issue 8, findings 6–9, against a real console process (``python -m console serve``, as the
Stack starts it; no Asterisk needed, Redis pointed at a closed port): agents log in as
themselves, a 100 MB body without a session is refused without the process growing, a flag
that could not be stored says so, and the live schema holds under schemathesis."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from access import AccessStore
from hotline import safe_yaml

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "security-scenario-pw"


@dataclass
class Console:
    url: str
    pid: int
    users_db: Path

    def login(self, name: str) -> dict[str, str]:
        body = {"name": name, "password": PASSWORD, "bearer": True}
        r = httpx.post(f"{self.url}/api/login", json=body)
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("console-sec")
    data = safe_yaml.load_file(REPO / "hotline.yaml")
    data["tickets"].update(path=str(tmp / "t.sqlite3"), key_file=str(tmp / "pii.key"))
    data["throttle"]["key_file"] = str(tmp / "pii.key")
    data["redis"]["port"] = _free_port()  # nothing listens: the caller rules are down
    data["ami"]["port"] = _free_port()
    data["console"]["users_db"] = str(tmp / "users" / "access.sqlite3")
    path = tmp / "h.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    users = AccessStore(data["console"]["users_db"])  # what `hotline users add` does
    for agent in ("1002", "1009"):
        users.add_user(f"agent{agent}", PASSWORD, "agent", agent)
    users.add_user("sup1", PASSWORD, "supervisor")
    users.add_user("admin1", PASSWORD, "admin")
    users.close()
    port = _free_port()
    log = (tmp / "console.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "console", "serve", "--config", str(path), "--port", str(port)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"the console did not start: {(tmp / 'console.log').read_text()}")
        yield Console(f"http://127.0.0.1:{port}", proc.pid, Path(data["console"]["users_db"]))
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_6_each_agent_logs_in_as_themselves_and_sees_only_their_own_feed(console) -> None:
    a1002, a1009 = console.login("agent1002"), console.login("agent1009")
    with httpx.Client(base_url=console.url, timeout=10) as http:
        with http.stream("GET", "/api/agents/1002/feed", headers=a1002) as own:
            assert own.status_code == 200
            assert next(own.iter_lines()) == "event: hello"
        other = http.get("/api/agents/1002/feed", headers=a1009)
        token = a1002["Authorization"][7:]
        in_url = http.get("/api/agents/1002/current", params={"token": token})
        log = http.get("/api/admin/audit", headers=console.login("admin1")).json()["records"]
    assert other.status_code == 403 and in_url.status_code == 401
    refused = next(x for x in log if x["who"] == "agent1009" and x["outcome"] == 403)
    assert refused["action"] == "GET /api/agents/{agent_id}/feed"
    assert refused["target"] == "agent_id=1002" and refused["address"] == "127.0.0.1"
    assert stat.S_IMODE(console.users_db.stat().st_mode) == 0o600


def test_7_a_100_mb_body_without_a_session_is_refused_and_the_console_does_not_grow(
    console,
) -> None:
    before = console.rss_kb()
    chunk, total, sent = b"x" * (1 << 20), 100 << 20, 0
    with socket.create_connection(("127.0.0.1", int(console.url.rsplit(":", 1)[1]))) as s:
        s.sendall(
            b"POST /api/supervisor/callers/harassment HTTP/1.1\r\nHost: c\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % total
        )
        s.settimeout(10)
        try:
            while sent < total:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the console answered and closed: the rest was never read
            pass
        answer = s.recv(200)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert console.rss_kb() - before < 20_000, (before, console.rss_kb())  # was +312 MB


def test_8_a_flag_that_could_not_be_stored_says_so_and_a_huge_note_is_refused(console) -> None:
    sup = console.login("sup1")
    with httpx.Client(base_url=console.url, timeout=10, headers=sup) as http:
        huge = http.post(
            "/api/supervisor/callers/harassment",
            json={"caller": "13900001111", "note": "x" * 10_000_000, "request_id": "sec-8-0001"},
        )
        down = http.post(
            "/api/supervisor/callers/harassment",
            json={"caller": "13900001111", "note": "辱骂", "request_id": "sec-8-0002"},
        )
    assert huge.status_code == 413
    assert down.status_code == 503 and "not stored" in down.json()["detail"]


def test_9_the_live_console_answers_as_its_schema_says(console) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import checks

    schema = schemathesis.openapi.from_url(f"{console.url}/openapi.json")
    auth = console.login("sup1")
    ops = [op.ok() for op in schema.get_all_operations()]
    ops = [op for op in ops if not op.path.endswith("/feed")]
    assert len(ops) >= 15
    done = 0
    for op in ops:

        @settings(
            max_examples=3,
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def run(case) -> None:
            nonlocal done
            case.call_and_validate(
                headers=auth,
                checks=[
                    checks.not_a_server_error,
                    checks.status_code_conformance,
                    checks.content_type_conformance,
                    checks.response_schema_conformance,
                ],
            )
            done += 1

        run()
    assert done >= len(ops)
