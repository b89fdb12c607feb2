"""Channel variables of the caller rules (issue 4), beside :mod:`hotline.dialplan_vars`.

Kept here until they move into ``hotline/dialplan_vars.py``; the templates see them through
``var()`` like every other name.
"""

NOTICE = "HOTLINE_NOTICE"
"""The out-of-scope notice a caller heard (第九条 2–4): ``litigation``, ``privacy`` …"""
STARTED = "HOTLINE_STARTED"
"""Unix time the call was answered (for the call's duration at hang-up)."""
CALLER_NUM = "HOTLINE_CALLER_NUM"
"""The caller's number, inherited by the agent's channel (harassment feature code)."""
QUEUE_KEY = "HOTLINE_QUEUE_KEY"
"""The key a caller pressed in the dialplan-only emergency menu."""
HARASSMENT_FEATURE_CODE = "*66"
"""What an agent presses during a call to flag the caller for harassment (第二十九条)."""

ALL = (NOTICE, STARTED, CALLER_NUM, QUEUE_KEY)
