"""Names and port offsets of the real stacks the integration tests bring up.

Every stack is hotline.yaml with its ports moved by an offset (``offset_config``).  The base
comes from ``HOTLINE_ITEST_PORT_OFFSET`` (10 000) and ``HOTLINE_ITEST_INSTANCE`` (``itest``);
under pytest-xdist each worker ``gwN`` adds ``N × WORKER_STRIDE`` and appends ``-gwN`` to
the name, so workers run their stacks side by side.  Within one worker the stacks sit
``SLOTS`` apart: with these offsets no port of one stack (4573–4576, 5038, 5060–5062,
5101–5170, 6390 + offset) equals a port of another.
"""

from __future__ import annotations

import os
import re

BASE_OFFSET = int(os.environ.get("HOTLINE_ITEST_PORT_OFFSET", "10000"))
BASE_INSTANCE = os.environ.get("HOTLINE_ITEST_INSTANCE", "itest")
WORKER_STRIDE = 4500
SLOTS = {
    "calls": 0,
    "twolisten": 250,
    "security": 750,
    "kb": 2000,
    "rules": 500,
    "speech": 1000,
    "stack": 1500,
    "beside": 1250,
    "busy": 1750,
    "acd": 2250,
    "supervisor": 2500,
    "qa": 2750,
    "admin": 3000,
    "calendar": 3250,
    "callback": 3500,
    "acdpair": 3750,
    "acdprio": 4000,
    "acddefault": 4250,
}
"""The call scenarios' stack (``hotline``), the two-listen speech stack, the security
scenarios' stack (tests/security), the knowledge-base self-service stack, the caller-rules
stack, the speech stack, the stack that ``test_stack_up`` starts and stops and its two
short-lived neighbours, the ACD's, the supervisors' (wallboard, listen/barge), QA's
(recordings), the admins' (config apply) and the calendar's (hours, holidays, incident
notices, prompts) stacks; then the ACD's callback, two-router, priority and default-mode
stacks.  Checked for 4 workers: no difference between two offsets equals a
difference between two ports of one stack (agents' media ports 5150–5170 and the
key-pressing phone's 5807 included)."""


def worker() -> str:
    """The xdist worker id (``gw0``, ``gw1`` …), or ``""`` without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


def worker_index() -> int:
    m = re.fullmatch(r"gw(\d+)", worker())
    return int(m.group(1)) if m else 0


def stack_instance(kind: str) -> tuple[str, int]:
    """``(instance name, port offset)`` of the ``kind`` stack (a key of :data:`SLOTS`) on
    this worker: ``itest`` / ``itest-rules-gw1`` …"""
    name = BASE_INSTANCE if kind == "calls" else f"{BASE_INSTANCE}-{kind}"
    if worker():
        name += f"-{worker()}"
    return name, BASE_OFFSET + worker_index() * WORKER_STRIDE + SLOTS[kind]
