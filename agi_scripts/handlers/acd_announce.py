"""``agi://…/acd_announce``: a caller waiting for the ACD router hears their place and the
estimated wait ("您前面还有三位来电在等待。预计等待约五分钟。").

Run by ``[hotline-acd-wait]`` every ``acd.announce_s`` seconds once the router queued the
call.  The call is the channel's ``agi_uniqueid`` (the id the router enqueued from
``AcdWait``), never a caller field.  The handler only reads the queue
(:func:`acd.announce.waiting_place`).  Redis down or slow: the caller hears "请您耐心等待"
and keeps waiting; a call no longer waiting (already offered) hears nothing.  Every prompt
is interruptible by the emergency exit key (the AGI's argument), which is handed back in
``HOTLINE_ACD_KEY`` for the dialplan to follow.  With ``acd.callback`` on and the estimate at
least ``offer_after_s`` (or unknown), "如需回拨，请按1。" follows and key 1 interrupts too
(``HOTLINE_ACD_CB_OFFER`` lets it work during the music afterwards)::

    AGI(agi://…/acd_announce,<exit key>)
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from acd import callback
from acd.announce import Place, waiting_place
from agi_scripts.driver import prompt_path
from agi_scripts.protocol import clean_text
from agi_scripts.session import AgiSession
from hotline import dialplan_vars as V
from ivr.speak import say_number

if TYPE_CHECKING:
    from agi_scripts.server import AgiApp

log = logging.getLogger("agi_scripts.handlers.acd_announce")

REDIS_BUDGET_S = 1.0
"""How long the announcement waits for the ACD's Redis (the caller hears music meanwhile)."""
MAX_MINUTES = 20
"""Longer estimates are announced as "超过二十分钟"."""
PATIENCE = ("acd-patience",)


def count(n: int) -> tuple[str, ...]:
    """A number before a measure word: 两 for a bare 2 (两位, 两分钟), else :func:`say_number`."""
    return ("num-liang",) if n == 2 else say_number(n)


def announcement(place: Place | None) -> tuple[str, ...]:
    """The prompts for a caller's place: the callers ahead ("您是下一位" for none), then the
    wait in whole minutes (rounded up, at least one), "超过二十分钟" past
    :data:`MAX_MINUTES`, "请您耐心等待" when unknown."""
    if place is None:
        return PATIENCE
    said = ("acd-ahead", *count(place.position - 1), "acd-callers")
    if place.position <= 1:
        said = ("acd-next",)  # nobody ahead: "您是下一位"
    if place.wait_s is None:
        return (*said, *PATIENCE)
    minutes = max(1, math.ceil(place.wait_s / 60))
    if minutes > MAX_MINUTES:
        return (*said, "acd-wait-long")
    return (*said, "acd-wait-about", *count(minutes), "acd-minutes")


def exit_key(args: tuple[str, ...]) -> str:
    """The emergency exit key the dialplan passes as the first argument (one digit, else 9)."""
    key = args[0].strip() if args else ""
    return key if len(key) == 1 and key in "0123456789*#" else "9"


async def handle(session: AgiSession, app: AgiApp) -> None:
    call_id = clean_text(session.env.get("agi_uniqueid"), 64).strip()
    session.call_id = call_id or "unknown"
    queued, wait_s = False, None
    if app.acd_redis is None:
        log.warning("call %s: no ACD Redis configured; no announcement", session.call_id)
        prompts: tuple[str, ...] = PATIENCE
    else:
        try:
            handle_s = app.config.acd.default_handle_s
            place = await asyncio.wait_for(
                waiting_place(app.acd_redis, call_id, handle_s=handle_s), REDIS_BUDGET_S
            )
        except Exception as exc:  # Redis down or slow: the caller waits on, told to be patient
            log.warning("call %s: ACD unavailable (%s: %s)", call_id, type(exc).__name__, exc)
            prompts = PATIENCE
        else:
            if place is None:
                log.info("call %s: not waiting any more; no announcement", call_id)
                return
            prompts = announcement(place)
            queued, wait_s = True, place.wait_s
            log.info("call %s: place %d for %s", call_id, place.position, place.skill)
    key = exit_key(session.env.args)
    cb_settings = app.config.acd.callback if app.config is not None else None
    if queued and cb_settings is not None and callback.should_offer(wait_s, cb_settings):
        prompts = (*prompts, "acd-cb-offer")  # "如需挂机等待回拨，请按1…"
        key += callback.KEY
        await session.set_variable(V.ACD_CB_OFFER, "1")
    for name in prompts:
        pressed = await session.stream_file(prompt_path(name), key)
        if pressed:
            await session.set_variable(V.ACD_KEY, pressed)
            return
