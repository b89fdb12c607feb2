"""``agi://…/ivr``: run the hotline call flow (``ivr.flow.call_flow``) on a FastAGI session.

The jobs live in their own modules: who is calling (:mod:`agi_scripts.call_start`), performing
the flow's actions (:mod:`agi_scripts.driver`), the typed end of the IVR
(:mod:`agi_scripts.outcome`).  ``HOTLINE_ROUTE`` is always set last, so a call that fails
half-way has no route and the dialplan sends it to the general seat.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from agi_scripts.call_start import SCREEN_BUDGET_S, call_info_from_env, read_call_info
from agi_scripts.driver import IvrDriver, prompt_path
from agi_scripts.services import FlowFactory
from agi_scripts.session import AgiSession
from hotline.calendar import DEFAULT_FILE
from hotline.config import HotlineConfig

if TYPE_CHECKING:
    from agi_scripts.server import AgiApp

__all__ = ["SCREEN_BUDGET_S", "IvrDriver", "call_info_from_env", "handle", "prompt_path"]


def default_flow(config: HotlineConfig) -> FlowFactory:
    """``ivr.flow.call_flow`` with the holiday data of ``calendar.holidays_file`` (re-read
    when the file changes; imported late so the server starts without it)."""
    from hotline.calendar import HolidayCalendar
    from ivr.flow import call_flow

    holidays = HolidayCalendar.load(config.calendar.holidays_file or DEFAULT_FILE)
    return partial(call_flow, holidays=holidays)


async def handle(session: AgiSession, app: AgiApp) -> None:
    """The FastAGI entry point for route ``ivr``."""
    if app.config is None:
        raise RuntimeError("the ivr handler needs a hotline config")
    call = await read_call_info(session, app, SCREEN_BUDGET_S)
    if app.notices is not None and call.started_at is not None:
        call = replace(call, notices=await app.notices.for_call(call.started_at))
    factory = app.flow or default_flow(app.config)
    await IvrDriver(session, app, call).run(factory(app.config, call))
