"""The 12345 IVR call flow: a pure generator driven by ``config.menus``.

A transport drives it::

    flow = call_flow(config, call)
    action = next(flow)
    while not isinstance(action, TERMINAL):
        action = flow.send(perform(action))   # Done / Digits / Heard

What a caller meets:

* a *suspended* caller (第二十九条) hears the suspension notice, may press 9 for an
  emergency-only menu, and is then hung up; emergency lines are never refused;
* outside business hours: ``closed_prompt``, then ``closed_target``;
* otherwise the greeting (once per call; it names 110/119/120/122 and key 9, and a key pressed
  during it counts: it leads the first menu round), the throttle notice for a *warned* caller
  (then greeting and notice are one uninterruptible Play), the progress offer when the
  caller has open demands (第十四条), then the ``main`` menu;
* self-service (第十一条, seats listed in ``kb.self_service`` only): a consultation (咨询)
  the knowledge base answers with confidence is played ("关于…，为您播报" and the spoken
  answer), then 1 hears it again, 2 ends the call as answered, 0 (or anything else,
  silence included) reaches an agent, who is told which article the caller heard;
* a menu: its prompts (interruptible) → a key → the key's target; an unknown key plays
  ``invalid_prompt``, silence ``no_input_prompt``, and the menu is offered again; after
  ``retries`` failed rounds the caller goes to ``on_exhausted`` (the general seat by default,
  at the ``exhausted`` rule's priority (``acd.priority_rules``, default
  :data:`EXHAUSTED_PRIORITY`: a caller who cannot use the keypad must reach a person);
* queue priority: the highest ``acd.priority_rules`` rule the call matches (the elderly key
  in the main menu, 2 in the progress offer for something new, no valid key; ivr/priority.py).

Every call ends in a terminal action within :data:`MAX_COLLECTS` menu rounds, whatever the
caller presses (a repeat key or menu loops cannot keep a caller in the IVR forever).
The path of valid choices (``main>9>emergency>2``) travels on every terminal action
(``ivr_path``; for the ACD also in ``RouteRequest.fields``) and into the emergency reason
(``key:main>9>emergency>2``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from acd.interface import RouteRequest
from hotline.calendar import DAYS, HolidayCalendar, weekday_open
from hotline.calendar import is_open as seat_is_open
from hotline.calendar import zone as _zone
from hotline.config import BusinessHours, HotlineConfig, Menu, Target
from ivr.actions import (
    Action,
    Article,
    CallInfo,
    Collect,
    Digits,
    EmergencyTransfer,
    Hangup,
    Heard,
    Listen,
    LookUp,
    Play,
    Result,
    Route,
)
from ivr.priority import priority_of, rule_key
from ivr.speak import MAX_NUMBER, say_date, say_number

GREETING = "greeting"
"""A menu whose first prompt is this plays it once, as a separate :class:`Play`."""
TRANSFER = "transfer"
GOODBYE = "goodbye"
ELDERLY_ACK = "elderly-ack"
"""Heard after the elderly key (已为您开通老年人优先服务), before the menu again."""
KEYS = frozenset("0123456789*#")
MAX_COLLECTS = 30
"""Menu rounds per call before the caller is sent to the general seat regardless."""
EXHAUSTED_PRIORITY = 1
"""Queue priority of a caller who could not choose (elderly callers are answered first)."""
SPEECH_SEAT_MIN_CONFIDENCE = 0.6
"""A spoken demand routes to its seat only at or above this confidence."""
SPEECH_OVERRIDE_MIN_CONFIDENCE = 0.8
"""A spoken seat overrides the seat the caller chose by key only at or above this."""
CONFIRM_KEY = "1"
CONFIRM_ROUNDS = 2
CONFIRM_TIMEOUT_MS = 5000
NOTICE_TIMEOUT_MS = 5000
SUSPENDED_TIMEOUT_MS = 5000
EMERGENCY_KEY = "9"
KB_MENU = "kb-menu"
"""重听请按1，问题已解决请按2，转人工服务请按0."""
KB_TIMEOUT_MS = 6000
KB_PLAYS = 3
"""How often a caller may hear an article (then an agent takes the call)."""
CONSULTATION = "咨询"
STATUS_PROMPTS = {
    "accepted": "status-accepted",
    "已受理": "status-accepted",
    "in_progress": "status-in-progress",
    "办理中": "status-in-progress",
    "done": "status-done",
    "已办结": "status-done",
}

STAY = ""
"""A handler's "continue in the current menu" (progress played, menu offered again)."""
Next = str | None
"""What a step returns: the menu to run next, :data:`STAY`, or ``None`` after a terminal."""
Step = Generator[Action, Result | None, Next]


@dataclass
class _Call:
    """Per-call state of the flow."""

    config: HotlineConfig
    info: CallInfo
    path: list[str] = field(default_factory=list)
    collects: int = 0
    greeted: bool = False
    intro_extra: tuple[str, ...] = ()
    via: str = "key"
    clock: datetime | None = None
    holidays: HolidayCalendar = field(default_factory=HolidayCalendar)
    facts: set[str] = field(default_factory=set)
    """What the priority rules match on (``elderly``, ``new_facts``; ivr/priority.py)."""

    @property
    def ivr_path(self) -> str:
        return ">".join(self.path)


Handler = Callable[[_Call, Target], Step]


# ---- entry point ------------------------------------------------------------------------
def call_flow(
    config: HotlineConfig,
    call: CallInfo,
    now: datetime | None = None,
    holidays: HolidayCalendar | None = None,
) -> Generator[Action, Result | None, None]:
    """The IVR for one call.  ``now`` (default ``call.started_at``) decides business hours
    and seat hours (with ``holidays``, the statutory holidays and 调休 days); without a clock
    the hotline and every seat count as open."""
    clock = now if now is not None else call.started_at
    c = _Call(config, call, clock=clock, holidays=holidays or HolidayCalendar())
    if call.caller_flag == "suspended":
        yield from _suspended(c)
        return
    nxt: Next
    everyone = _notices_for(call, None)
    if everyone:
        c.path.append("notice")
    if clock is not None and not is_open(config.business_hours, clock):
        c.greeted = True
        c.path.append("closed")
        c.via = "closed"
        yield Play((config.business_hours.closed_prompt, *everyone))
        nxt = yield from _goto(c, config.business_hours.closed_target)
    else:
        if call.caller_flag == "warning":
            c.intro_extra = ("throttle-warning",)
        c.intro_extra += everyone
        nxt = "main"
        if call.open_tickets:
            nxt = yield from _offer_progress(c)
        if nxt == "main" and config.speech.mode == "before_menu":
            nxt = yield from _speak_first(c)
    while nxt:
        nxt = yield from _run_menu(c, nxt)


# ---- menus ------------------------------------------------------------------------------
def _split_greeting(menu: Menu) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(prompts played once, prompts offered every round)."""
    if menu.prompts[0] == GREETING and len(menu.prompts) > 1:
        return (GREETING,), menu.prompts[1:]
    return (), menu.prompts


def _intro(c: _Call, menu: Menu) -> Generator[Action, Result | None, tuple[str, ...]]:
    """The greeting, once per call.  Returned, to lead the first menu round, so that a
    caller may press a key (9 for an emergency) while it plays; a *warned* caller hears it
    with the 第二十九条 notice as one uninterruptible :class:`Play` instead."""
    if c.greeted:
        return ()
    c.greeted = True
    once = _split_greeting(menu)[0]
    if c.info.caller_flag == "warning":
        yield Play((*once, *c.intro_extra))
        return ()
    return (*once, *c.intro_extra)


def _collect(
    c: _Call, prompts: tuple[str, ...], timeout_ms: int
) -> Generator[Action, Result | None, str]:
    """One menu round; returns the key ("" for silence, "?" for anything unusable)."""
    c.collects += 1
    result = yield Collect(prompts, max_digits=1, timeout_ms=timeout_ms)
    if not isinstance(result, Digits) or not result.value:
        return ""
    key = result.value[0]
    return key if key in KEYS else "?"


def _run_menu(c: _Call, name: str, *, emergency_only: bool = False) -> Step:
    """Offer menu ``name`` until a valid key leads somewhere or its retries run out."""
    menu = _emergency_menu(c.config)[1] if emergency_only else c.config.menus[name]
    options = menu.options
    if emergency_only:
        options = {k: t for k, t in options.items() if t.kind == "emergency"}
    c.path.append(name)
    lead = yield from _intro(c, menu)
    prompts = _split_greeting(menu)[1]
    failures = 0
    while True:
        if c.collects >= MAX_COLLECTS:
            c.via = "limit"
            return (yield from _route(c, c.config.general_seat.id))
        key = yield from _collect(c, (*lead, *prompts), int(menu.timeout_s * 1000))
        lead = ()
        target = options.get(key)
        if target is not None and target.kind == "repeat":
            continue
        if target is None and name == "main" and not emergency_only and key == _elderly_key(c):
            c.facts.add("elderly")  # 老年人: told so, the menu again, no failure counted
            c.path.append(key)
            lead = (ELDERLY_ACK,)
            continue
        if target is not None:
            c.path.append(key)
            if c.via == "exhausted":  # a choice made after all: no longer a keypad failure
                c.via = "key"
            nxt = yield from HANDLERS[target.kind](c, target)
            if nxt == STAY:
                continue
            return nxt
        failures += 1
        yield Play((menu.no_input_prompt if key == "" else menu.invalid_prompt,))
        if failures >= menu.retries:
            if emergency_only:
                return (yield from _goodbye(c, "suspended"))
            c.via = "exhausted"
            return (yield from _goto(c, menu.on_exhausted))


def _goto(c: _Call, target: Target) -> Step:
    """Follow a target outside a menu round (on_exhausted, closed_target)."""
    if target.kind == "repeat":
        return (yield from _route(c, c.config.general_seat.id))
    nxt = yield from HANDLERS[target.kind](c, target)
    return "main" if nxt == STAY else nxt


# ---- target handlers --------------------------------------------------------------------
def _route(c: _Call, seat_id: str, extra: Mapping[str, object] | None = None) -> Step:
    """Terminal: "正在为您转接人工坐席" then the ACD."""
    facts = c.facts | ({"exhausted"} if c.via == "exhausted" else set())
    priority, matched = priority_of(c.config.acd.priority_rules, facts)
    fields: dict[str, object] = {
        "ivr_path": c.ivr_path,
        "caller_flag": c.info.caller_flag,
        "via": c.via,
        **(extra or {}),
    }
    if matched:
        fields["priority_rules"] = ",".join(matched)
    notice = str((extra or {}).get("out_of_scope") or "")
    yield Play((TRANSFER,))
    request = RouteRequest(c.info.call_id, c.info.caller, seat_id, priority, fields)
    yield Route(request, ivr_path=c.ivr_path, notice=notice, via=c.via)
    return None


def _emergency_transfer(c: _Call, line: str, reason: str) -> Step:
    """Terminal: "正在为您转接119…" then the emergency trunk."""
    yield Play((f"emergency-{line}",))
    yield EmergencyTransfer(line, reason=reason, ivr_path=c.ivr_path)
    return None


def _goodbye(c: _Call, reason: str, notice: str = "") -> Step:
    yield Play((GOODBYE,))
    yield Hangup(reason, ivr_path=c.ivr_path, notice=notice)
    return None


def _notices_for(call: CallInfo, seat: str | None) -> tuple[str, ...]:
    """Prompts of the incident notices (第十三条) for all callers (``seat`` None) or for
    callers choosing ``seat``; the transport passes only notices in their window."""
    if seat is None:
        return tuple(n.prompt for n in call.notices if not n.seats)
    return tuple(n.prompt for n in call.notices if seat in n.seats)


def _seat(c: _Call, target: Target) -> Step:
    """A seat chosen by key: its incident notices first; a seat closed now (hours, holidays,
    调休) plays its ``closed_prompt`` and sends the caller to its ``closed_target``; with
    ``speech.mode: after_choice`` the caller then says the matter (it pre-fills the ticket)."""
    notices = _notices_for(c.info, target.value)
    if notices:
        c.path.append("notice")
        yield Play(notices)
    hours = c.config.calendar.seats.get(target.value)
    if (
        hours is not None
        and c.clock is not None
        and not seat_is_open(c.config, target.value, c.clock, c.holidays)
    ):
        c.path.append("closed")
        c.via = "seat_closed"
        yield Play((hours.closed_prompt,))
        alternative = hours.closed_target
        if alternative.kind == "seat":  # one hop: the alternative is not checked again
            return (yield from _route(c, alternative.value, {"closed_seat": target.value}))
        return (yield from _speech(c, alternative))
    if c.config.speech.mode == "after_choice":
        draft = yield from _listen(c, "demand")
        return (yield from _after_speech(c, draft, chosen=target.value))
    return (yield from _route(c, target.value))


def _menu(c: _Call, target: Target) -> Step:
    return target.value
    yield  # unreachable: makes this a generator like every handler


def _emergency(c: _Call, target: Target) -> Step:
    return (yield from _emergency_transfer(c, target.value, f"key:{c.ivr_path}"))


def _notice(c: _Call, target: Target) -> Step:
    """第九条 2–4: tell the caller why 12345 does not take the matter; 0 reaches a person,
    anything else ends the call.  Issue 4 refines this seam."""
    rule = c.config.caller_rules.out_of_scope.get(target.value)
    if rule is None:  # an unknown rule: fail open to a person
        return (yield from _route(c, c.config.general_seat.id))
    key = yield from _collect(c, (rule.prompt,), NOTICE_TIMEOUT_MS)
    if key == "0":
        c.path.append("0")
        return (yield from _route(c, c.config.general_seat.id, {"out_of_scope": target.value}))
    return (yield from _goodbye(c, f"notice:{target.value}", notice=target.value))


def _listen(
    c: _Call, what: str, max_s: float | None = None
) -> Generator[Action, Result | None, dict[str, object] | None]:
    """ "请简要说出您要反映的事项" (``speak-<what>``): the ticket draft, or ``None``."""
    speech = c.config.speech
    result = yield Listen(
        f"speak-{what}", max_s=max_s or speech.listen_max_s, silence_ms=speech.silence_ms
    )
    if isinstance(result, Heard) and isinstance(result.draft, dict):
        return result.draft
    return None


def _speech(c: _Call, target: Target) -> Step:
    """A menu option that lets the caller speak (``speak-<value>``) and routes by the draft.
    ``speech:message`` (the closed-hours default) takes a message and says goodbye."""
    draft = yield from _listen(c, target.value, 60.0 if target.value == "message" else None)
    if target.value == "message":
        line = _spoken_emergency(c.config, draft)
        if line and (yield from _confirm_emergency(c, line)):
            return (yield from _emergency_transfer(c, line, _speech_reason(draft, line)))
        return (yield from _goodbye(c, "message"))
    return (yield from _after_speech(c, draft, chosen=None))


def _after_speech(c: _Call, draft: Mapping[str, object] | None, chosen: str | None) -> Step:
    """Act on what the caller said: an emergency (confirmed by the caller) → its line; an
    out-of-scope matter → its notice (第九条); otherwise a seat — a spoken seat when confident
    (stricter when it would override the caller's key ``chosen``), else ``chosen``, else the
    general seat.  The draft travels to the ACD with the call."""
    line = _spoken_emergency(c.config, draft)
    if line and (yield from _confirm_emergency(c, line)):
        return (yield from _emergency_transfer(c, line, _speech_reason(draft, line)))
    extra: dict[str, object] = {"draft": dict(draft)} if draft else {}
    oos = str(draft.get("out_of_scope") or "") if draft else ""
    if oos in c.config.caller_rules.out_of_scope:
        c.via = "speech"
        return (yield from _notice(c, Target(kind="notice", value=oos)))
    needed = SPEECH_SEAT_MIN_CONFIDENCE if chosen is None else SPEECH_OVERRIDE_MIN_CONFIDENCE
    spoken = _confident_seat(c.config, draft, needed)
    if spoken and spoken != chosen:
        c.via = "speech"
    seat = spoken or chosen or c.config.general_seat.id
    if draft and seat in c.config.kb.self_service and draft.get("type") == CONSULTATION:
        article = yield from _self_service(c, str(draft.get("transcript") or ""))
        if article is None:
            return None  # answered: the call has ended
        if article.id:
            extra["kb_played"] = {"article": article.id, "version": article.version,
                                  "title": article.title}  # fmt: skip
    return (yield from _route(c, seat, extra))


def _self_service(c: _Call, transcript: str) -> Generator[Action, Result | None, Article | None]:
    """第十一条: play the knowledge base's article for a consultation, then 1 again, 2
    answered (the call ends: ``None``), anything else an agent (the article played, or an
    empty one when nothing was offered)."""
    if not transcript.strip():
        return Article()
    found = yield LookUp(transcript)
    if not isinstance(found, Article) or not found.id:
        return Article()
    c.path.append("kb")
    for _ in range(KB_PLAYS):
        key = yield from _collect(c, (found.about, found.answer, KB_MENU), KB_TIMEOUT_MS)
        if key == "1":
            c.path.append("1")
            continue
        if key == "2":
            c.path.append("2")
            yield from _goodbye(c, "self_served")
            return None
        if key == "0":
            c.path.append("0")
        break
    return found


def _spoken_emergency(config: HotlineConfig, draft: Mapping[str, object] | None) -> str:
    line = str(draft.get("emergency") or "") if draft else ""
    return line if line in config.emergency.lines else ""


def _speech_reason(draft: Mapping[str, object] | None, line: str) -> str:
    words = draft.get("emergency_words") if draft else None
    said = "、".join(str(w) for w in words) if isinstance(words, list | tuple) else ""
    return f"speech:{said or line}"


def _confirm_emergency(c: _Call, line: str) -> Generator[Action, Result | None, bool]:
    """ "您反映的情况可能需要转接119，转接请按1，不需要请按2": 1 → transfer, another key → go
    on.  Silence, asked twice, transfers: a caller in an emergency may be unable to press."""
    c.path.append(f"confirm-{line}")
    for _ in range(CONFIRM_ROUNDS):
        key = yield from _collect(c, (f"confirm-emergency-{line}",), CONFIRM_TIMEOUT_MS)
        if key:
            c.path.append(key)
            return key == CONFIRM_KEY
    return True


def _speak_first(c: _Call) -> Step:
    """``speech.mode: before_menu``: greeting, then the caller says the matter; the main menu
    only when nothing usable was heard."""
    lead = yield from _intro(c, c.config.menus["main"])
    if lead:
        yield Play(lead)
    c.path.append("speech")
    draft = yield from _listen(c, "demand")
    usable = draft and (
        _spoken_emergency(c.config, draft)
        or str(draft.get("out_of_scope") or "") in c.config.caller_rules.out_of_scope
        or _confident_seat(c.config, draft, SPEECH_SEAT_MIN_CONFIDENCE)
    )
    if not usable:
        return "main"
    return (yield from _after_speech(c, draft, chosen=None))


def _confident_seat(
    config: HotlineConfig, draft: Mapping[str, object] | None, needed: float
) -> str | None:
    if not draft:
        return None
    seat = draft.get("seat")
    confidence = draft.get("confidence")
    score = confidence.get("seat") if isinstance(confidence, Mapping) else None
    known = {s.id for s in config.seats}
    if seat in known and isinstance(score, int | float) and score >= needed:
        return str(seat)
    return None


def _progress(c: _Call, target: Target) -> Step:
    """第十四条: the newest open demand's status and dates, then the menu again."""
    tickets = c.info.open_tickets
    if tickets:
        details = progress_details(tickets[0], c.config.business_hours.timezone)
        yield Play((*_progress_head(tickets), *details))
    else:
        yield Play(("progress-none",))
    return STAY


def _offer_progress(c: _Call) -> Step:
    """A caller with open demands: "您有一件诉求正在办理。听取进度请按1，反映新的诉求请按2"."""
    main = c.config.menus["main"]
    lead = yield from _intro(c, main)
    key = yield from _collect(
        c,
        (*lead, *_progress_head(c.info.open_tickets), "progress-menu"),
        int(main.timeout_s * 1000),
    )
    if key == "1":
        c.path += ["progress", "1"]
        yield Play(progress_details(c.info.open_tickets[0], c.config.business_hours.timezone))
    elif key and key == rule_key(c.config.acd.priority_rules, "new_facts"):
        c.facts.add("new_facts")  # something new on an open demand (反映新的诉求)
        c.path += ["progress", key]
    return "main"


def _elderly_key(c: _Call) -> str | None:
    return rule_key(c.config.acd.priority_rules, "elderly")


HANDLERS: dict[str, Handler] = {
    "seat": _seat,
    "menu": _menu,
    "emergency": _emergency,
    "notice": _notice,
    "speech": _speech,
    "progress": _progress,
}


# ---- suspended callers (第二十九条) --------------------------------------------------------
def _emergency_menu(config: HotlineConfig) -> tuple[str, Menu]:
    """The configured menu that offers emergency lines, or the standard four-line menu."""
    for name, menu in config.menus.items():
        if any(t.kind == "emergency" for t in menu.options.values()):
            return name, menu
    options = {str(i): f"emergency:{line}" for i, line in enumerate(config.emergency.lines, 1)}
    return "emergency", Menu.model_validate({"prompts": ["emergency-menu"], "options": options})


def _suspended(c: _Call) -> Step:
    """Suspension notice (it still names the emergency lines); 9 → emergency-only menu."""
    c.greeted = True
    c.path.append("suspended")
    key = yield from _collect(c, ("throttle-suspended",), SUSPENDED_TIMEOUT_MS)
    if key != EMERGENCY_KEY:
        return (yield from _goodbye(c, "suspended"))
    c.path.append(key)
    return (yield from _run_menu(c, _emergency_menu(c.config)[0], emergency_only=True))


# ---- business hours and progress --------------------------------------------------------
def is_open(hours: BusinessHours, now: datetime) -> bool:
    """Whether seats are staffed at ``now`` (aware: converted to ``hours.timezone``; naive:
    taken as local).  A close time at or before the open time runs past midnight.  An unknown
    timezone counts as open (fail open)."""
    if hours.always_open:
        return True
    if now.tzinfo is not None:
        tz = _zone(hours.timezone)
        if tz is None:
            return True
        now = now.astimezone(tz)
    today, yesterday = DAYS[now.weekday()], DAYS[(now.weekday() - 1) % 7]
    return weekday_open(hours.hours, today, yesterday, now.hour * 60 + now.minute)


def _as_date(value: object, zone: ZoneInfo | None) -> date | None:
    """A ticket date (``date``, ``datetime`` or ISO text) as a local calendar date; an aware
    time is converted to the hotline's timezone first.  Anything else: ``None``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is not None and zone is not None:
            value = value.astimezone(zone)
        return value.date()
    return value if isinstance(value, date) else None


def _progress_head(tickets: tuple[Mapping[str, object], ...]) -> tuple[str, ...]:
    if len(tickets) == 1:
        return ("progress-intro",)
    count = say_number(min(len(tickets), MAX_NUMBER))
    return ("you-have", *count, "jian", "demands-pending", "latest-demand")


def progress_details(
    ticket: Mapping[str, object], timezone: str = "Asia/Shanghai"
) -> tuple[str, ...]:
    """Prompt names for one demand: status, 受理日期 …, 预计反馈日期 … (what is known).
    Keys as in ``tickets.Ticket.to_json``: ``status``, ``created_at``, ``feedback_due``."""
    zone = _zone(timezone)
    out: list[str] = []
    status = STATUS_PROMPTS.get(str(ticket.get("status", "")))
    if status:
        out.append(status)
    received = _as_date(ticket.get("created_at"), zone)
    if received:
        out += ["received-on", *say_date(received)]
    due = _as_date(ticket.get("feedback_due"), zone)
    if due and status != "status-done":
        out += ["feedback-by", *say_date(due)]
    return tuple(out) or ("progress-intro",)
