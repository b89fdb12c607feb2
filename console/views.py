"""What the console shows: drafts with caller numbers masked (第二十条).

The console returns full numbers only from the callback endpoint, where an agent needs them
to call the 诉求人 back.  Everything else goes through :func:`draft_view`, which lives with
the call's facts in :mod:`hotline.call` (one masking for every reader).
"""

from __future__ import annotations

from hotline.call import NUMBER_KEYS, draft_view, mask_text

__all__ = ["NUMBER_KEYS", "draft_view", "mask_text"]
