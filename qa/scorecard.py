"""Scores and the pre-filled scorecard.

:func:`total` turns one scorer's answers into a 0–100 score with the rubric's weights;
:func:`compare` shows where two scorers differ.  :func:`prefill` proposes, from a call's
transcript lines and record, an answer for every rubric item that has a ``check``
(greeting said, demand repeated back, callback number confirmed, closing phrase, no
forbidden words, wait time), each with the line or fact it rests on.  QA confirms or
corrects; nothing is saved from a proposal alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hotline.config import Qa, RubricItem
from hotline.privacy import mask_text, number_runs

GREETING_WITHIN_S = 20.0
"""The greeting counts when the agent says it this soon after the recording starts."""
CLOSING_LAST = 2
"""The closing phrase is looked for in the agent's last lines."""
REPEAT_PAIRS = 4
"""An agent line repeats the demand when it shares this many character pairs with a caller
line (and is not the greeting): a repeat in the agent's own words, misheard characters and
all (bench/qa_agreement.py's dev calls share 5–7)."""


class ScoreError(ValueError):
    """An answer that the rubric does not allow."""


def check_answers(rubric: Sequence[RubricItem], items: Mapping[str, Any]) -> dict[str, int | bool]:
    """The answers of one scorer, checked: known items only; yes/no items take a bool,
    1–5 items an int 1..5; every item answered."""
    known = {i.id: i for i in rubric}
    unknown = sorted(set(items) - set(known))
    if unknown:
        raise ScoreError(f"unknown rubric items: {', '.join(unknown)[:200]}")
    out: dict[str, int | bool] = {}
    for item in rubric:
        if item.id not in items:
            raise ScoreError(f"{item.id}: not answered")
        value = items[item.id]
        if item.kind == "yesno":
            if not isinstance(value, bool):
                raise ScoreError(f"{item.id}: answer true or false")
        elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise ScoreError(f"{item.id}: answer a whole number from 1 to 5")
        out[item.id] = value
    return out


def total(rubric: Sequence[RubricItem], items: Mapping[str, int | bool]) -> float:
    """0–100: each item's share of the weights, yes = full, no = 0, 1–5 linear (1 = 0)."""
    weights = sum(i.weight for i in rubric)
    got = 0.0
    for item in rubric:
        value = items[item.id]
        share = (1.0 if value else 0.0) if item.kind == "yesno" else (int(value) - 1) / 4
        got += item.weight * share
    return round(100.0 * got / weights, 1)


def compare(scores: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The difference of a call's first two scorers: items they answered differently and
    the gap between their totals; None with fewer than two."""
    if len(scores) < 2:
        return None
    a, b = scores[0], scores[1]
    differ = sorted(k for k in a["items"] if a["items"].get(k) != b["items"].get(k))
    return {
        "scorers": [a["scorer"], b["scorer"]],
        "items": differ,
        "total_gap": round(abs(float(a["total"]) - float(b["total"])), 1),
    }


# ---- the pre-filled scorecard -------------------------------------------------------------
@dataclass(frozen=True)
class Proposal:
    item: str
    value: bool | None
    """The proposed answer (None: nothing to go on)."""
    evidence: str
    at: float | None = None
    """Where the evidence line starts in the recording (seconds)."""

    def public(self) -> dict[str, Any]:
        return {"item": self.item, "value": self.value, "evidence": self.evidence, "at": self.at}


def _said(line: Mapping[str, Any]) -> str:
    return f"[{line['start']:.1f}s {line['speaker']}] {mask_text(str(line['text']))}"


def _pairs(text: str) -> set[str]:
    t = "".join(c for c in text if c.isalnum())
    return {t[i : i + 2] for i in range(len(t) - 1)}


def _find(lines: Sequence[Mapping[str, Any]], phrases: Sequence[str]) -> Mapping[str, Any] | None:
    return next((x for x in lines if any(p in str(x["text"]) for p in phrases)), None)


def prefill(
    qa: Qa, lines: Sequence[Mapping[str, Any]], record: Mapping[str, Any] | None = None
) -> list[Proposal]:
    """Proposals for the rubric items that have a ``check``; ``lines`` are transcript lines
    ``{speaker, start, end, text}``; ``record`` the call record's JSON (for the wait)."""
    agent = [x for x in lines if x["speaker"] == "agent"]
    caller = [x for x in lines if x["speaker"] == "caller"]
    out = []
    for item in qa.rubric:
        if not item.check:
            continue
        p = _CHECKS[item.check](qa, agent, caller, record or {})
        out.append(Proposal(item.id, p[0], p[1], p[2]))
    return out


Found = tuple[bool | None, str, float | None]


def _greeting(qa: Qa, agent: list, caller: list, record: Mapping[str, Any]) -> Found:
    early = [x for x in agent if x["start"] <= GREETING_WITHIN_S]
    hit = _find(early, qa.greetings)
    if hit:
        return True, _said(hit), hit["start"]
    if not agent:
        return None, "坐席没有可识别的话语", None
    return False, "开头未听到问候语：" + _said(agent[0]), agent[0]["start"]


def _repeat(qa: Qa, agent: list, caller: list, record: Mapping[str, Any]) -> Found:
    hit = _find(agent, qa.repeat_phrases)
    if hit:
        return True, _said(hit), hit["start"]
    for a in agent:
        if _find([a], qa.greetings):
            continue
        mine = _pairs(str(a["text"]))
        for c in caller:
            theirs = _pairs(str(c["text"]))
            if len(mine & theirs) >= REPEAT_PAIRS:
                return True, _said(a), a["start"]
    if not caller:
        return None, "来电人没有可识别的话语", None
    return False, "未发现复述诉求的话语", None


def _callback(qa: Qa, agent: list, caller: list, record: Mapping[str, Any]) -> Found:
    for a in agent:
        if any(p in str(a["text"]) for p in qa.callback_phrases) or number_runs(str(a["text"])):
            return True, _said(a), a["start"]
    return False, "坐席未核实回访号码", None


def _closing(qa: Qa, agent: list, caller: list, record: Mapping[str, Any]) -> Found:
    hit = _find(agent[-CLOSING_LAST:], qa.closings)
    if hit:
        return True, _said(hit), hit["start"]
    if not agent:
        return None, "坐席没有可识别的话语", None
    return False, "结尾未听到结束语：" + _said(agent[-1]), agent[-1]["start"]


def _forbidden(qa: Qa, agent: list, caller: list, record: Mapping[str, Any]) -> Found:
    for a in agent:
        word = next((w for w in qa.forbidden if w in str(a["text"])), None)
        if word:
            return False, f"禁语「{word}」：" + _said(a), a["start"]
    return True, "未发现禁语", None


def _wait(qa: Qa, agent: list, caller: list, record: Mapping[str, Any]) -> Found:
    started = record.get("started_at")
    legs = record.get("agents") or []
    if not isinstance(started, int | float) or not legs or not isinstance(legs[0], Mapping):
        return None, "通话记录中没有接通时间", None
    answered = legs[0].get("at")
    if not isinstance(answered, int | float):
        return None, "通话记录中没有接通时间", None
    wait = answered - started
    ok = wait <= qa.wait_max_s
    return ok, f"来电至坐席接听 {wait:.0f} 秒（上限 {qa.wait_max_s:.0f} 秒）", None


_CHECKS = {
    "greeting": _greeting,
    "repeat": _repeat,
    "callback": _callback,
    "closing": _closing,
    "forbidden": _forbidden,
    "wait": _wait,
}
