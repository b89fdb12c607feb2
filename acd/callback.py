"""Callbacks instead of waiting (docs/acd.md "Callbacks"): the rules shared by the waiting
room's FastAGI handlers (offer, number confirmation) and the router (who dials what).

Pure: no I/O.  A callback number is digits only, 7–12 of them after
:func:`hotline.privacy.normalize` (a mobile, a landline with or without its area code); it
crosses processes only encrypted with the PII key (:class:`hotline.privacy.CallerKey`, the
key the ticket store uses), as a Fernet token, and is never logged.
"""

from __future__ import annotations

import re

from hotline.config import AcdCallback
from hotline.privacy import is_mobile, normalize

KEY = "1"
"""The key a waiting caller presses to be called back (the prompt says 1)."""
MIN_DIGITS = 7
MAX_DIGITS = 12
TOKEN = re.compile(r"[A-Za-z0-9_=-]{40,400}")
"""A Fernet token (url-safe base64) as it may appear in a UserEvent; anything else is refused."""


def callback_number(text: str | None) -> str | None:
    """The mainland number to call back (a mobile, a landline with its area code, or a local
    7–8 digit number), or ``None`` (withheld, letters, wrong length, abroad)."""
    if text is None or len(text) > 32:
        return None
    raw = text.strip().replace(" ", "").replace("-", "")
    if raw.startswith(("+", "00")) and not raw.startswith(("+86", "0086")):
        return None  # abroad: not dialled through the carrier trunk
    n = normalize(text)
    if n is None or not n.isdigit() or not MIN_DIGITS <= len(n) <= MAX_DIGITS:
        return None
    landline = n[0] == "0" and n[1] != "0" and len(n) >= 10
    local = len(n) <= 8 and n[0] not in "01"
    return n if is_mobile(n) or landline or local else None


def last_four(number: str) -> tuple[str, ...]:
    """The digit prompts of the number's last four digits (what the caller hears back)."""
    return tuple(f"digit-{d}" for d in number[-4:])


def should_offer(wait_s: float | None, settings: AcdCallback) -> bool:
    """Offer a callback when enabled and the estimated wait reaches the threshold; an
    unknown wait (nobody serving the skill is logged in) counts as long."""
    if not settings.enabled:
        return False
    return wait_s is None or wait_s >= settings.offer_after_s


def dial_string(number: str, trunk: str = "carrier") -> str:
    """The channel the router originates for a callback (digits only reach it)."""
    if callback_number(number) != number:
        raise ValueError("not a callback number")
    return f"PJSIP/{number}@{trunk}"
