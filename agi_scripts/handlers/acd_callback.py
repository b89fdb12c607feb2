"""``agi://…/acd_callback``: a waiting caller who pressed 1 confirms the number to be called
back on; the waiting room then asks the router to keep the place (docs/acd.md "Callbacks").

The caller's own number (``agi_callerid``, normalised by ``[from-carrier]``) is read back by
its last four digits ("回拨号码尾号为 1 2 3 4，确认请按1，改用其他号码请按2"); 2, or a
withheld or unusable own number, asks for one keyed in ("请输入回拨号码，以井号键结束"), 7–12
digits, read back the same way.  Three tries, then the caller simply keeps waiting.  The
confirmed number leaves the handler only encrypted (``HOTLINE_ACD_CB_TOKEN``, the PII key of
the ticket store) and is never logged.  The emergency exit key (the AGI's argument) leaves the
dialogue for the emergency menu (``HOTLINE_ACD_KEY``), as during the music::

    AGI(agi://…/acd_callback,<exit key>)
"""

from __future__ import annotations

import logging
from functools import cache
from typing import TYPE_CHECKING

from acd.callback import MAX_DIGITS, callback_number, last_four
from agi_scripts.driver import prompt_path
from agi_scripts.handlers.acd_announce import exit_key
from agi_scripts.protocol import clean_text
from agi_scripts.session import AgiSession
from hotline import dialplan_vars as V
from hotline.privacy import CallerKey

if TYPE_CHECKING:
    from agi_scripts.server import AgiApp

log = logging.getLogger("agi_scripts.handlers.acd_callback")

TRIES = 3
KEY_WAIT_MS = 5000
DIGIT_WAIT_MS = 4000


@cache
def _caller_key(path: str) -> CallerKey:
    return CallerKey.from_file(path)


async def _play(session: AgiSession, names: tuple[str, ...], keys: str) -> str | None:
    """Play prompts; the first key pressed (one of ``keys``) stops them."""
    for name in names:
        pressed = await session.stream_file(prompt_path(name), keys)
        if pressed:
            return pressed
    return None


async def confirm_number(session: AgiSession, own: str | None, emergency: str) -> str | None:
    """The dialogue: the confirmed number, ``emergency`` when the caller pressed the exit
    key, or ``None`` (no confirmation after :data:`TRIES` prompts)."""
    number = own
    for _ in range(TRIES):
        if number is None:
            typed = await session.get_data(
                prompt_path("acd-cb-enter"), DIGIT_WAIT_MS, MAX_DIGITS + 1
            )
            number = callback_number(typed if typed.isdigit() else None)
            if number is None:
                await _play(session, ("acd-cb-invalid",), "")
                continue
        keys = f"12{emergency}"
        said = ("acd-cb-number", *last_four(number), "acd-cb-confirm")
        pressed = await _play(session, said, keys) or await session.wait_for_digit(KEY_WAIT_MS)
        if pressed == emergency:
            return emergency
        if pressed == "1":
            return number
        if pressed == "2":
            number = None
    return None


async def handle(session: AgiSession, app: AgiApp) -> None:
    call_id = clean_text(session.env.get("agi_uniqueid"), 64).strip()
    session.call_id = call_id or "unknown"
    if app.config is None or not app.config.acd.callback.enabled:
        log.warning("call %s: callbacks are not enabled", session.call_id)
        return
    emergency = exit_key(session.env.args)
    own = callback_number(clean_text(session.env.get("agi_callerid"), 32).strip())
    number = await confirm_number(session, own, emergency)
    if number == emergency:
        await session.set_variable(V.ACD_KEY, emergency)
        return
    if number is None:
        log.info("call %s: callback not confirmed; the caller keeps waiting", call_id)
        return
    try:
        token = _caller_key(str(app.config.tickets.key_file)).encrypt(number)
    except (OSError, ValueError) as exc:  # no PII key: the caller keeps waiting
        log.error("call %s: callback number not kept (%s)", call_id, type(exc).__name__)
        return
    await session.set_variable(V.ACD_CB_TOKEN, token)
    how = "own" if number == own else "keyed"
    log.info("call %s: callback number confirmed (%s)", call_id, how)
