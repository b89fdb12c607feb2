"""What the console shows: drafts with caller numbers masked (第二十条).

The console returns full numbers only from the callback endpoint, where an agent needs them
to call the 诉求人 back.  Everything else goes through :func:`draft_view`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hotline.privacy import mask

NUMBER_KEYS = ("caller", "callback")
_DIGIT = "0-9０-９一二三四五六七八九零〇幺两"
_RUN = re.compile(rf"[{_DIGIT}](?:[{_DIGIT}\- ]*[{_DIGIT}])?")


def mask_text(text: str) -> str:
    """Numbers of 7 or more digits in free text (spoken or written, with dashes or spaces)
    keep their first 3 and last 4 digits: ``13805712345`` → ``138****2345``."""

    def hide(m: re.Match[str]) -> str:
        run = m.group(0)
        digits = [c for c in run if c not in "- "]
        if len(digits) < 7:
            return run
        return "".join(digits[:3]) + "*" * (len(digits) - 7) + "".join(digits[-4:])

    return _RUN.sub(hide, text)


def mask_number(value: object) -> str | None:
    if value in (None, ""):
        return None
    return mask(str(value))


def draft_view(draft: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stored draft for an agent's screen: numbers masked, texts with long numbers masked."""
    if draft is None:
        return None
    out = dict(draft)
    for key in NUMBER_KEYS:
        if key in out:
            out[key] = mask_number(out[key])
    for key in ("transcript", "summary"):
        if isinstance(out.get(key), str):
            out[key] = mask_text(out[key])
    demands = out.get("demands")
    if isinstance(demands, list):
        out["demands"] = [
            {**d, "summary": mask_text(str(d.get("summary") or ""))} if isinstance(d, dict) else d
            for d in demands
        ]
    return out
