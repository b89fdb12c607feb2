"""Re-entry keys: a caller who hangs up while waiting and calls again within
``acd.reentry_s`` gets the old place back (docs/acd.md).

The key is the keyed hash of the caller's normalised number (:class:`hotline.privacy.CallerKey`,
the same secret as the ticket store and the call records), never the number itself; a
withheld or unusable number gets no key (such callers are never taken for one another).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hotline.privacy import CallerKey, normalize

log = logging.getLogger("acd.reentry")

MAX_NUMBER = 32
"""Longer caller numbers are not numbers (E.164 has at most 15 digits): no key."""
RETRY_S = 60.0
"""A PII key that could not be read is tried again after this long (no keys meanwhile)."""


class ReentryKeys:
    """Caller number → re-entry key; the PII key is read lazily from ``key_file``."""

    def __init__(self, key_file: str | Path | None, caller_key: CallerKey | None = None) -> None:
        self.key_file = key_file
        self._key = caller_key
        self._failed_at: float | None = None

    def _caller_key(self) -> CallerKey | None:
        if self._key is not None:
            return self._key
        if self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_S:
            return None
        try:
            self._key = CallerKey.from_file(self.key_file)
        except (OSError, ValueError) as exc:
            log.error("no PII key (%s): calls get no re-entry key", exc)
            self._failed_at = time.monotonic()
        return self._key

    def key_for(self, number: str | None) -> str:
        """The re-entry key of ``number`` ("" when withheld, unusable or no PII key)."""
        if not number or len(number) > MAX_NUMBER:
            return ""
        national = normalize(number)
        if national is None:
            return ""
        caller_key = self._caller_key()
        return "" if caller_key is None else caller_key.hash(national)
