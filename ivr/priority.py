"""Queue priority from the configured rules (``acd.priority_rules``), pure.

The call flow collects *facts* while the caller moves through the menus (``elderly``: the
elderly key in the main menu; ``new_facts``: something new on an open demand;
``exhausted``: no valid key); the call's priority is the highest priority of the rules its
facts match, 0 when none does.
"""

from __future__ import annotations

from collections.abc import Iterable

from hotline.config import PriorityRule


def priority_of(rules: Iterable[PriorityRule], facts: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """``(priority, facts that matched a rule, in rule order)``."""
    have = set(facts)
    matched = [r for r in rules if r.when in have]
    return max((r.priority for r in matched), default=0), tuple(r.when for r in matched)


def rule_key(rules: Iterable[PriorityRule], when: str) -> str | None:
    """The key of the ``when`` rule (``None``: no such rule, the key does nothing)."""
    return next((r.key for r in rules if r.when == when), None)
