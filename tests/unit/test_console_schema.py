"""Schemathesis against the console's OpenAPI schema (bounded: a few examples per operation,
about 150 requests in all): no 5xx, and every answer's status, content type and body are the
ones the schema documents (401/403/404/413/422 included)."""

from __future__ import annotations

import atexit
import contextlib
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from redis_kit import redis_server
from schemathesis import checks
from test_console import FakeThrottle, fast_store
from test_console_agent_state import on_redis

from console.app import Services, make_app
from console.feed import FeedHub
from console.follow import CallFollower
from hotline.config import load_config
from hotline.privacy import CallerKey
from tickets.sqlite import SqliteTicketStore

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "schema-check-password"
EXAMPLES = 6
"""Per operation and user (18 operations × 2 users ≈ 200 requests at most, a few seconds)."""
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
]


def _app(tmp: Path):
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    path = tmp / "h.yaml"
    path.write_text(text.replace("run/tickets.sqlite3", str(tmp / "t.sqlite3")))
    config = on_redis(load_config(path), REDIS_PORT)  # its own: no other test's state
    store = SqliteTicketStore(config.tickets.path, CallerKey(b"k" * 32))
    access = fast_store(tmp / "a.sqlite3")
    access.add_user("sup", PASSWORD, "supervisor")
    access.add_user("a1002", PASSWORD, "agent", "1002")
    hub = FeedHub()
    follower = CallFollower(config, hub, store, redis=None)
    follower.ami_connected = True  # as when AMI answers: the spy routes reach their own checks
    services = Services(store=store, throttle=FakeThrottle(), follower=follower, hub=hub)
    app = make_app(config, services, access=access)
    tokens = {n: access.login(n, PASSWORD, "127.0.0.1")[0] for n in ("sup", "a1002")}
    return app, tokens


def _tmp() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="console-schema-"))


_SERVERS = contextlib.ExitStack()
atexit.register(_SERVERS.close)
REDIS_PORT = _SERVERS.enter_context(redis_server(_tmp()))
"""A real redis-server for the routes that read the ACD's or the agents' state."""
APP, TOKENS = _app(_tmp())
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.mark.parametrize("user", ["sup", "a1002"])
@schema.exclude(path_regex=r"/feed$").parametrize()  # an endless SSE stream: tested by hand
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_console_answers_as_its_schema_says(case, user: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKENS[user]}"}, checks=CHECKS)


def test_the_schema_documents_the_refusals() -> None:
    spec = APP.openapi()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if path in ("/api/health",):
                continue
            codes = set(op["responses"])
            assert {"401", "403", "413", "422"} <= codes or path == "/api/login", (path, method)
            problem = op["responses"]["422"]["content"]["application/json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/Problem"}, (path, method)
