"""The supervisors' alerts (no I/O): from the wallboard's figures, and the 第二十一条 hotspot
from the ticket drafts.

* ``service_level``: a seat's service level today under ``supervise.service_level_target``
  (once it has ``alert_min_offered`` calls offered);
* ``wait``: a seat's longest waiting caller over ``supervise.wait_alert_s``;
* ``not_ready``: an agent not ready for longer than ``supervise.not_ready_alert_s``;
* ``hotspot``: a surge of similar matters — the same demand type, seat or department in the
  same district — in the last ``hotspot_window_min`` minutes.

How "usual" is computed for the hotspot: the drafts of that matter and district created in
the *same clock window* (e.g. 14:05–15:05) on each of the previous ``hotspot_history_days``
days, averaged per day: λ.  λ is never taken below ``hotspot_floor_per_hour`` (scaled to the
window), so a matter never seen before is not a surge at its second call.  The window's count
``n`` raises the alert when ``n ≥ hotspot_min_count`` and the Poisson tail
``P(X ≥ n | λ) < hotspot_p``: a rare matter needs a few calls, a common one many more than
its usual share.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hotline.call import decode_message

DIMENSIONS = ("type", "seat", "department")
"""What makes matters "similar" (each with the district)."""
LABELS = {"type": "类型", "seat": "席位", "department": "部门"}


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    """``service_level``, ``wait``, ``not_ready``, ``hotspot``."""
    key: str
    """What it is about (a seat, an agent, ``type:噪音扰民:西湖区``): one alert per kind+key."""
    text: str
    """For the screen (Chinese)."""
    value: float
    threshold: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def live_alerts(snapshot: dict[str, Any], cfg: Any) -> list[Alert]:
    """Alerts on the wallboard's figures (``cfg``: ``hotline.config.Supervise``)."""
    out: list[Alert] = []
    for s in snapshot["seats"]:
        sl = s["service_level"]
        if (
            sl is not None
            and s["offered"] >= cfg.alert_min_offered
            and sl < cfg.service_level_target
        ):
            out.append(
                Alert(
                    "service_level",
                    s["id"],
                    f"{s['name']} 服务水平 {sl:.0%} 低于目标 {cfg.service_level_target:.0%}",
                    sl,
                    cfg.service_level_target,
                )
            )
        if s["longest_wait_s"] > cfg.wait_alert_s:
            out.append(
                Alert(
                    "wait",
                    s["id"],
                    f"{s['name']} 有来电已等待 {s['longest_wait_s']:.0f} 秒",
                    s["longest_wait_s"],
                    cfg.wait_alert_s,
                )
            )
    for a in snapshot["agents"]:
        if a["state"] == "not_ready" and (a["in_state_s"] or 0) > cfg.not_ready_alert_s:
            out.append(
                Alert(
                    "not_ready",
                    a["id"],
                    f"坐席 {a['name']} 未就绪已 {a['in_state_s'] / 60:.0f} 分钟",
                    a["in_state_s"],
                    cfg.not_ready_alert_s,
                )
            )
    return out


def poisson_tail(n: int, lam: float) -> float:
    """``P(X ≥ n)`` for ``X ~ Poisson(lam)`` (summed from ``n`` up, in log space)."""
    if n <= 0:
        return 1.0
    total, k = 0.0, n
    while True:
        term = math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1))
        total += term
        k += 1
        if term < total * 1e-12 or k > n + 10_000:
            return min(1.0, total)


def matters(draft: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The ``(dimension, value, district)`` groups one draft counts in (none without a
    district)."""
    district = draft.get("district")
    if not isinstance(district, str) or not district:
        return []
    out = []
    for dim in DIMENSIONS:
        value = draft.get(dim)
        if isinstance(value, str) and value:
            out.append((dim, value[:50], district[:50]))
    return out


def parse_rows(
    rows: Iterable[tuple[str, str]], zone: ZoneInfo
) -> list[tuple[datetime, list[tuple[str, str, str]]]]:
    """``(draft JSON, created_at)`` rows → ``(when, groups)``; unreadable rows are skipped."""
    out = []
    for text, created in rows:
        draft = decode_message(text)
        try:
            at = datetime.fromisoformat(created)
        except (TypeError, ValueError):
            continue
        if draft is not None:
            out.append((at if at.tzinfo else at.replace(tzinfo=zone), matters(draft)))
    return out


def hotspot_windows(now: datetime, cfg: Any) -> list[tuple[datetime, datetime]]:
    """The current window first, then the same clock window on each previous day."""
    width = timedelta(minutes=cfg.hotspot_window_min)
    return [
        (now - width - timedelta(days=d), now - timedelta(days=d))
        for d in range(cfg.hotspot_history_days + 1)
    ]


def hotspots(
    drafts: list[tuple[datetime, list[tuple[str, str, str]]]], now: datetime, cfg: Any
) -> list[Alert]:
    """Surges of similar matters in the window ending ``now`` (see the module docstring)."""
    windows = hotspot_windows(now, cfg)
    current: Counter[tuple[str, str, str]] = Counter()
    history: Counter[tuple[str, str, str]] = Counter()
    for at, groups in drafts:
        for i, (lo, hi) in enumerate(windows):
            if lo <= at < hi:
                (current if i == 0 else history).update(groups)
                break
    floor = cfg.hotspot_floor_per_hour * cfg.hotspot_window_min / 60
    out = []
    for group, n in sorted(current.items()):
        if n < cfg.hotspot_min_count:
            continue
        usual = max(history[group] / cfg.hotspot_history_days, floor)
        p = poisson_tail(n, usual)
        if p < cfg.hotspot_p:
            dim, value, district = group
            text = (
                f"热点：{district} {LABELS[dim]}「{value}」近 {cfg.hotspot_window_min} 分钟 "
                f"{n} 件，平时约 {usual:.1f} 件"
            )
            out.append(Alert("hotspot", f"{dim}:{value}:{district}", text, n, round(usual, 2)))
    return out
