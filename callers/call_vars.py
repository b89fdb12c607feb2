"""Caller-rule constants the dialplan needs (channel variable names live in
:mod:`hotline.dialplan_vars`)."""

HARASSMENT_FEATURE_CODE = "*66"
"""What an agent presses during a call to flag the caller for harassment (第二十九条)."""
