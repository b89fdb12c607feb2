"""Every channel variable the dialplan and the AGI handlers share, named once.

The Jinja templates in ``asterisk_conf`` receive this module as ``V`` so that a name is
spelled in exactly one place (``${{ '{' }}{{ V.SEAT }}{{ '}' }}``).
"""

# Set by the IVR (AGI) for the dialplan.
ROUTE = "HOTLINE_ROUTE"
"""What the dialplan does after the IVR: ``queue``, ``emergency`` or ``hangup``."""
QUEUE = "HOTLINE_QUEUE"
"""The app_queue queue to join (from the ACD's routing decision)."""
SEAT = "HOTLINE_SEAT"
"""The seat id chosen (``gjj``, ``zonghe`` …)."""
PRIORITY = "HOTLINE_PRIORITY"
"""Queue priority for the caller (higher is answered first)."""
EMERGENCY_LINE = "HOTLINE_EMERGENCY"
"""110/119/120/122 when ROUTE is ``emergency``."""
EMERGENCY_REASON = "HOTLINE_EMERGENCY_REASON"
"""Why the emergency line was chosen (``key:9-2``, ``speech:着火``)."""
IVR_PATH = "HOTLINE_IVR_PATH"
"""The IVR steps the caller went through, ``>``-separated (``main>2``)."""
CALL_ID = "HOTLINE_CALL_ID"
"""Our call id (Asterisk's linkedid), used by the ACD, tickets and the agent screen."""
CALLER_FLAG = "HOTLINE_CALLER_FLAG"
"""Caller-rule stage shown to the agent (``normal``/``warning``/``suspended``)."""

NOTICE = "HOTLINE_NOTICE"
"""The out-of-scope notice a caller heard (第九条 2–4): ``litigation``, ``privacy`` …"""

# Set by the dialplan itself.
STARTED = "HOTLINE_STARTED"
"""Unix time the call was answered (for the call's duration at hang-up)."""
CALLER_NUM = "HOTLINE_CALLER_NUM"
"""The caller's number, inherited by the agent's channel (harassment feature code)."""
QUEUE_KEY = "HOTLINE_QUEUE_KEY"
"""The key a caller pressed in the dialplan-only emergency menu."""
CID_DIGITS = "HOTLINE_CID_DIGITS"
"""The digits of the INVITE's caller number (while [from-carrier] normalises it)."""
CID_PLUS = "HOTLINE_CID_PLUS"
"""``+`` when the INVITE's caller number starts with one (the same step)."""
# The ACD router (acd/router.py) and its contexts.
ACD_BEAT = "HOTLINE_ACD_BEAT"
"""Global: Unix time of the router's last heartbeat (set by AMI ``Setvar``)."""
ACD_QUEUED = "HOTLINE_ACD_QUEUED"
"""Set to 1 on the waiting channel by the router once the call is in its queue."""
ACD_SINCE = "HOTLINE_ACD_SINCE"
"""Unix time the caller entered the router's waiting context."""
ACD_AGENT = "HOTLINE_ACD_AGENT"
"""The agent id the router offers the call to (set before its Redirect to the Dial context)."""
ACD_SAID = "HOTLINE_ACD_SAID"
"""Unix time of the waiting caller's last position announcement (``acd.announce_s``)."""
ACD_KEY = "HOTLINE_ACD_KEY"
"""The key a waiting caller pressed during the announcement (the emergency exit key)."""
FLAGGED_BY = "HOTLINE_FLAGGED_BY"
"""On an agent's channel: the endpoint that pressed the harassment feature code."""
ACD_WAIT_CONTEXT = "hotline-acd-wait"
"""The ACD router's waiting room: music, announcements, the emergency exit; the router
queues a caller on its ``AcdWait`` event and redirects him out of it to ring an agent."""
ACD_DIAL_CONTEXT = "hotline-acd-dial"
"""The context the ACD router redirects a waiting caller into to ring the offered agent: its
``DialEnd`` with ``DialStatus: ANSWER`` is the router's "agent answered" (what app_queue's
``AgentConnect`` is for queued calls)."""
QUEUE_PREP_CONTEXT = "hotline-queue-prep"
"""The subroutine a caller runs just before ringing agents (app_queue's queues and the ACD's
Dial context): while in it, a channel offered to an agent is still on its way to ring him."""
ACD_CB_OFFER = "HOTLINE_ACD_CB_OFFER"
"""1 once a waiting caller was offered a callback (key 1 then works during the music too)."""
ACD_CB_TOKEN = "HOTLINE_ACD_CB_TOKEN"
"""The confirmed callback number, encrypted with the PII key (set by ``acd_callback``)."""
ACD_CB_OK = "HOTLINE_ACD_CB_OK"
"""Set to 1 by the router once the callback is registered (the caller may hang up)."""
ACD_CB_TRIES = "HOTLINE_ACD_CB_TRIES"
"""The waiting room's count of 100 ms waits for the router's callback acknowledgement."""
ACD_CALLBACK_CONTEXT = "hotline-acd-callback"
"""The context the router originates a callback into: the answered caller hears a greeting,
then the reserved agent is rung (``[hotline-acd-dial]``); ``failed`` reports a callback the
caller did not answer (Asterisk runs it with ``REASON``)."""
SPY_TARGET = "HOTLINE_SPY_TARGET"
"""The uniqueid of the agent's channel a supervisor's phone listens to (set by the
console's AMI Originate into :data:`SPY_CONTEXT`)."""
AGI_STATUS = "AGISTATUS"
"""Asterisk's result of AGI(): SUCCESS, FAILURE, NOTFOUND or HANGUP."""

ALL = (
    ROUTE,
    QUEUE,
    SEAT,
    PRIORITY,
    EMERGENCY_LINE,
    EMERGENCY_REASON,
    IVR_PATH,
    CALL_ID,
    CALLER_FLAG,
    NOTICE,
    STARTED,
    CALLER_NUM,
    QUEUE_KEY,
    CID_DIGITS,
    CID_PLUS,
    ACD_BEAT,
    ACD_QUEUED,
    ACD_SINCE,
    ACD_AGENT,
    ACD_SAID,
    ACD_KEY,
    ACD_CB_OFFER,
    ACD_CB_TOKEN,
    ACD_CB_OK,
    ACD_CB_TRIES,
    FLAGGED_BY,
    SPY_TARGET,
)

# Listening to an agent's call (console/spy.py): the supervisor's phone is originated into
# SPY_CONTEXT at the mode's extension, which runs ChanSpy on the agent's channel by uniqueid.
SPY_CONTEXT = "hotline-spy"
SPY_COMMON_OPTIONS = "qdEu"
"""ChanSpy: no beep, DTMF 4/5/6 switch mode, end with the agent's channel, target by uniqueid."""
SPY_MODES: dict[str, str] = {"listen": "", "whisper": "w", "barge": "B"}
"""Mode → the ChanSpy option added (listen: the supervisor only hears)."""
SPY_DTMF: dict[str, str] = {"listen": "4", "whisper": "5", "barge": "6"}
"""Mode → the key that switches ChanSpy (option ``d``) into it during the call."""
