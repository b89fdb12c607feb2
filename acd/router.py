"""The ACD router: Asterisk carries the media, the Redis engine decides (docs/acd.md).

One process (``python -m acd serve``) follows AMI and

- turns ``AcdWait`` (a caller entered ``[hotline-acd-wait]``) into ``engine.enqueue`` and
  marks the channel queued (``HOTLINE_ACD_QUEUED``);
- carries out every offer: ``Setvar HOTLINE_ACD_AGENT`` + ``Redirect`` of the caller's channel
  into ``[hotline-acd-dial]``, which rings the agent's endpoint for ``acd.ring_timeout_s``;
- ``DialEnd`` of that dial: ANSWER → ``accept``; NOANSWER/BUSY/… → ``no_answer`` (the agent
  goes not ready, the call is re-offered from the head of its queue);
- ``Hangup`` of a routed caller → ``hangup`` (abandoned with its wait, or the agent's
  wrap-up); ``AcdLeave`` (emergency key, fail-open) → ``hangup`` too;
- runs the engine's timers (escalation steps, wrap-up ends, the ring safety net);
- applies the agents' state commands (``acd.commands``, consumer group ``acd-router``);
- reconciles on every AMI login (its own start, a reconnect, Asterisk's restart) and on
  ``FullyBooted``: calls whose channel is gone are released, live waiting channels the
  engine does not know are queued again, lost offers are carried out again;
- callbacks (``acd/callback_router.py``): ``AcdCallback`` keeps a waiting caller's place
  without the channel; their offer originates the call back; ``AcdCallbackUp`` /
  ``AcdCallbackFailed`` follow it;
- proves it is alive: a Redis key with a TTL and the Asterisk global ``HOTLINE_ACD_BEAT``,
  which the dialplan checks before routing to it (stale → the app_queue queues).

With ``acd.routers`` > 1 each router holds a :class:`acd.lease.Lease`: only the leader
handles events, timers and commands, beats into Asterisk and carries out offers; a standby
follows AMI, and when it takes the lease it claims the agents' pending commands and
reconciles (docs/acd.md, "Two routers").

Calls are known only by their channel's ``Uniqueid`` (an AMI field Asterisk sets), never by
a caller field.  The channel name for the Redirect is kept in Redis (``acd:chan``) so that a
restarted router finds it again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from acd import commands
from acd.announce import entry_estimate
from acd.call_commands import PriorityCommand, is_call_command
from acd.callback_router import CallbackMixin, TicketSink
from acd.commands import AgentCommand, CommandError, Op, Source
from acd.engine import RedisEngine
from acd.lease import Lease
from acd.policy import Offer, Refused, check_id
from acd.reentry import ReentryKeys
from hotline import dialplan_vars as V
from hotline.ami import AmiClient, AmiError
from hotline.config import HotlineConfig

log = logging.getLogger("acd.router")

WAIT_CONTEXT = V.ACD_WAIT_CONTEXT
DIAL_CONTEXT = V.ACD_DIAL_CONTEXT
DIAL_STEP = frozenset({DIAL_CONTEXT, V.QUEUE_PREP_CONTEXT})
"""Where a caller offered to an agent may be when the channels are listed: the Dial context
or the subroutine it runs before ringing (judged "elsewhere", the agent would be freed while
his phone is about to ring)."""
RING_GRACE_S = 3.0
"""The engine's own ring timer runs this much longer than the dial's time-out: normally the
``DialEnd`` decides; the timer only catches a lost event."""
NOT_ANSWERED = frozenset({"NOANSWER", "BUSY", "CHANUNAVAIL", "CONGESTION"})
READY_LINE = "ACD router: following AMI"
COMMAND_BLOCK_MS = 1000
"""How long one read of the command stream waits for a new command."""
MAX_PRIORITY_TEXT = 3
REDIRECT_SETTLE_S = 2.0
"""A Redirect sent just before a reconciliation's channel list has landed by then."""
MISSED_MAX = 20_000
"""A standby keeps at most this many recent dial-end, hang-up and leave events."""
REPLAY_LEASES = 3
"""A new leader replays the events of the last this many leases (plus a heartbeat)."""
PRIORITY_FIELD = "QueuePriority"
"""The ``AcdWait`` field with the call's queue priority (``HOTLINE_PRIORITY``)."""


def engine_for(config: HotlineConfig, client: Any) -> RedisEngine:
    """The engine with the config's policy; its ring timer is the safety net behind the
    dialplan's ``Dial`` time-out."""
    settings = config.acd_settings()
    settings = settings.model_copy(
        update={"ring_timeout_s": settings.ring_timeout_s + RING_GRACE_S}
    )
    return RedisEngine(client, settings)


class AcdRouter(CallbackMixin):
    """The router's state and handlers; ``redis`` is a sync ``redis.Redis`` client (short
    socket time-outs), ``engine`` a :class:`RedisEngine` on it; ``tickets`` makes a ticket
    of a callback given up."""

    def __init__(
        self,
        config: HotlineConfig,
        redis: Any,
        engine: RedisEngine,
        name: str = "router-1",
        clock: Callable[[], float] = time.time,
        blocking_redis: Any = None,
        tickets: TicketSink | None = None,
        lease: Lease | None = None,
        reentry: ReentryKeys | None = None,
    ) -> None:
        self.config = config
        self.redis = redis
        self.blocking_redis = blocking_redis or redis
        """For the blocking read of the command stream: its socket time-out must exceed
        :data:`COMMAND_BLOCK_MS` (the decision client's is short)."""
        self.engine = engine
        self.name = name
        self.clock = clock
        self.profiles = config.acd_profiles()
        self.tickets = tickets
        self.ami: AmiClient | None = None
        self.chan_key = engine.prefix + "chan"
        self.beat_key = f"{engine.prefix}router:{name}"
        self._installed = False
        self.reentry = reentry or ReentryKeys(config.tickets.key_file)
        """Caller number → re-entry key (keyed hash; withheld numbers get none)."""
        self._reconciling: asyncio.Task[None] | None = None
        self.lease = lease
        """None: the only router (always leads, decisions unfenced)."""
        if lease is not None:
            engine.fence = "0"  # no lease has token 0: refused until this router leads
        self._claim_pending = False
        self._taking_over = False
        self.settle_s = REDIRECT_SETTLE_S
        """How long a reconciliation waits before it sends a reserved call's Redirect again."""
        self._takeover: asyncio.Task[None] | None = None
        self._missed: collections.deque[tuple[float, dict[str, str]]] = collections.deque(
            maxlen=MISSED_MAX
        )

    @property
    def leader(self) -> bool:
        """Whether this router may decide and act now."""
        return self.lease is None or self.lease.held()

    # ---- AMI ------------------------------------------------------------------------------
    def connected(self, client: AmiClient | None) -> None:
        """Each AMI login (the router's start, a reconnect, Asterisk's restart): reconcile.
        Asterisk's ``FullyBooted`` comes with the login reply, before events are followed."""
        self.ami = client
        if client is not None:
            if self.leader:
                loop = asyncio.get_running_loop()
                self._reconciling = loop.create_task(self._reconcile_logged())
            print(READY_LINE, flush=True)

    async def handle(self, event: dict[str, str], client: AmiClient) -> None:
        """One AMI event (``follow_events`` calls it in order); a standby (or a leader
        still replaying) only keeps the dial ends, hang-ups and leaves its takeover replays."""
        self.ami = client
        if not self.leader or self._taking_over:
            if _replayed(event):
                self._missed.append((time.monotonic(), event))
            return
        await self._apply(event)

    async def _apply(self, event: dict[str, str]) -> None:
        kind = event.get("Event")
        try:
            if kind == "UserEvent":
                sub = event.get("UserEvent")
                if sub == "AcdWait":
                    await self._on_wait(event)
                elif sub == "AcdLeave":
                    await self._release(event.get("Uniqueid", ""), event.get("Reason", ""))
                elif sub == "AcdCallback":
                    await self._on_callback(event)
                elif sub == "AcdCallbackUp":
                    await self._on_callback_up(event)
                elif sub == "AcdCallbackFailed":
                    await self._on_callback_failed(event)
            elif kind == "DialEnd":
                await self._on_dial_end(event)
            elif kind == "Hangup":
                await self._release(event.get("Uniqueid", ""), "hangup")
            elif kind == "FullyBooted":  # beside the events (it may wait settle_s)
                self._reconciling = asyncio.get_running_loop().create_task(self._reconcile_logged())
        except RedisError as exc:
            log.error("Redis unavailable for %s: %s", kind, exc)
        except Refused as exc:  # Fenced: another router leads now
            log.warning("%s not handled: %s", kind, exc)

    async def _on_wait(self, event: dict[str, str]) -> None:
        call_id, channel = event.get("Uniqueid", ""), event.get("Channel", "")
        try:
            check_id("call", call_id)
        except Refused as exc:
            log.warning("AcdWait ignored: %s", exc)
            return
        skill = event.get("Skill", "")
        # not "Priority": every channel event already has one (the dialplan step); AMI would
        # deliver both, joined
        text = event.get(PRIORITY_FIELD, "")[:MAX_PRIORITY_TEXT]
        priority = int(text) if text.isdigit() else 0
        rkey = self.reentry.key_for(event.get("CallerIDNum"))
        try:
            self.redis.hset(self.chan_key, call_id, channel)
            offers = self.engine.enqueue(call_id, skill, priority, self.clock(), reentry_key=rkey)
        except Refused as exc:
            log.warning("call %s not queued: %s", call_id, exc)
            return
        except RedisError as exc:  # fail open at once (the dialplan would after ack_s)
            log.error("call %s to app_queue: Redis unavailable (%s)", call_id, exc)
            await self._act("Redirect", Channel=channel, Context=WAIT_CONTEXT,
                            Exten="fallback", Priority=1)  # fmt: skip
            return
        if all(o.call_id != call_id for o in offers):
            self._note_estimate(call_id)
        await self._act("Setvar", Channel=channel, Variable=V.ACD_QUEUED, Value="1")
        log.info("call %s waiting for %s (priority %d)", call_id, skill or "-", priority)
        await self.execute(offers)

    def _note_estimate(self, call_id: str) -> None:
        """Record the wait a caller queued now would hear announced (the announcement's own
        estimate), so the engine can compare it with the real wait.  Best effort: a failure
        costs only the statistic."""
        try:
            place = entry_estimate(
                self.redis,
                call_id,
                prefix=self.engine.prefix,
                handle_s=self.config.acd.default_handle_s,
            )
            if place is not None and place.wait_s is not None:
                self.engine.note_estimate(call_id, place.wait_s)
        except Exception as exc:  # only the statistic is lost; the call is queued
            log.warning("call %s: no entry estimate (%s: %s)", call_id, type(exc).__name__, exc)

    async def _on_dial_end(self, event: dict[str, str]) -> None:
        call_id = event.get("Uniqueid", "")
        dest = event.get("DestChannel", "")
        status = event.get("DialStatus", "")
        if not call_id or not dest.startswith("PJSIP/agent"):
            return
        state = self.engine.call_state(call_id) if _is_id(call_id) else None
        if state is None or state[0] != "reserved":
            return
        agent = state[1]
        if dest.rpartition("-")[0] != f"PJSIP/agent{agent}":
            return
        now = self.clock()
        try:
            if status == "ANSWER":
                self.engine.accept(agent, call_id, now)
                log.info("call %s answered by agent %s", call_id, agent)
            elif status in NOT_ANSWERED:
                log.info("agent %s did not answer call %s (%s)", agent, call_id, status)
                await self.execute(self.engine.no_answer(agent, call_id, now))
        except Refused as exc:  # the ring timer was first
            log.info("dial end of call %s: %s", call_id, exc)

    async def _release(self, call_id: str, why: str) -> None:
        if not _is_id(call_id) or not self.redis.hexists(self.chan_key, call_id):
            return
        offers = self.engine.hangup(call_id, self.clock())
        self.redis.hdel(self.chan_key, call_id)
        self.redis.hdel(self.cb_key, call_id)
        log.info("call %s left the ACD (%s)", call_id, why or "-")
        await self.execute(offers)

    # ---- offers ---------------------------------------------------------------------------
    async def execute(self, offers: list[Offer]) -> None:
        """Ring each offer's agent: Redirect the caller into the Dial context.  A channel
        that is gone releases its call (and the agent takes the next one)."""
        todo = list(offers)
        while todo:
            offer = todo.pop(0)
            raw = self.redis.hget(self.chan_key, offer.call_id)
            channel = raw.decode() if isinstance(raw, bytes) else raw
            if self.ami is None:
                log.error("offer %s → %s not carried out: no AMI", offer.call_id, offer.agent_id)
                continue  # the engine's ring timer re-queues it
            if not self.leader:  # the next leader's reconciliation sends the Redirect
                log.warning("offer %s → %s dropped: no longer leader", offer.call_id,
                            offer.agent_id)  # fmt: skip
                continue
            if not channel and self.engine.callback_tries(offer.call_id) is not None:
                todo += await self._originate(offer)  # the agent is reserved: call back
                continue
            ok = bool(channel) and await self._act(
                "Setvar", Channel=channel, Variable=V.ACD_AGENT, Value=offer.agent_id
            )
            ok = ok and await self._act(
                "Redirect", Channel=channel, Context=DIAL_CONTEXT, Exten="s", Priority=1
            )
            if ok:
                log.info("call %s offered to agent %s", offer.call_id, offer.agent_id)
                continue
            log.warning("call %s is gone; agent %s freed", offer.call_id, offer.agent_id)
            self.redis.hdel(self.chan_key, offer.call_id)
            todo += self.engine.hangup(offer.call_id, self.clock())

    async def _act(self, action: str, **fields: object) -> bool:
        if self.ami is None:
            return False
        try:
            reply = await self.ami.action(action, timeout=5.0, **fields)
        except AmiError as exc:
            log.warning("AMI %s failed: %s", action, exc)
            return False
        return reply.get("Response") == "Success"

    # ---- reconciliation -------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Make the engine agree with Asterisk's live channels.  Only calls the engine knew
        before the channel list was taken, and whose state has not changed since (events go
        on meanwhile), are judged; a lost Redirect is sent again only when the call is still
        in the waiting room :attr:`settle_s` later (one in flight has landed by then)."""
        if self.ami is None:
            return
        before = self._engine_calls()
        live = await self._channels()
        if live is None:
            return
        now = self.clock()
        offers: list[Offer] = []
        lost: dict[str, tuple[str, str]] = {}
        released = requeued = accepted = 0
        for call_id, state in before.items():
            if self.engine.call_state(call_id) != state:
                continue  # changed meanwhile: its events are being handled
            chan = live.get(call_id)
            if state is None:
                continue
            if (
                chan is None
                and not self.redis.hexists(self.chan_key, call_id)
                and self.engine.callback_tries(call_id) is not None
            ):
                continue  # a callback: no channel by design (reserved: the ring timer)
            where = chan.get("Context", "") if chan else ""
            expected = WAIT_CONTEXT if state[0] == "waiting" else DIAL_CONTEXT
            if where == V.ACD_CALLBACK_CONTEXT and state[0] != "waiting":
                expected = where  # a called-back caller hearing the greeting
            if chan is not None and state[0] == "reserved" and where == WAIT_CONTEXT:
                lost[call_id] = state  # the Redirect was lost, or is on its way
                continue
            if expected == DIAL_CONTEXT and where in DIAL_STEP:
                where = DIAL_CONTEXT
            if chan is not None and state[0] == "reserved" and where == DIAL_CONTEXT:
                if chan.get("BridgeId"):  # talking to the agent: the DialEnd was missed
                    with contextlib.suppress(Refused):
                        self.engine.accept(state[1], call_id, now)
                        accepted += 1
                continue
            if chan is None or where != expected:
                offers += self.engine.hangup(call_id, now)
                self.redis.hdel(self.chan_key, call_id)
                released += 1
        for call_id, chan in live.items():
            if chan.get("Context") != WAIT_CONTEXT or not _is_id(call_id):
                continue
            if self.engine.call_state(call_id) is not None:
                continue
            skill = await self._getvar(chan["Channel"], V.SEAT)
            prio = await self._getvar(chan["Channel"], V.PRIORITY)
            number = await self._getvar(chan["Channel"], "CALLERID(num)")
            await self._on_wait(
                {"Uniqueid": call_id, "Channel": chan["Channel"], "Skill": skill,
                 PRIORITY_FIELD: prio, "CallerIDNum": number}
            )  # fmt: skip
            requeued += 1
        await self.execute(offers)
        if lost:
            await asyncio.sleep(self.settle_s)
            later = await self._channels() or {}
            for call_id, state in lost.items():
                still = later.get(call_id, {}).get("Context") == WAIT_CONTEXT
                if still and self.engine.call_state(call_id) == state:
                    offers = [Offer(call_id, state[1], self.clock())]
                    await self.execute(offers)
        log.info("reconciled: %d calls released, %d re-queued, %d answered, %d offers sent "
                 "again", released, requeued, accepted, len(lost))  # fmt: skip

    def _engine_calls(self) -> dict[str, tuple[str, str]]:
        calls: dict[str, tuple[str, str]] = {}
        prefix = self.engine.prefix + "c:"
        for key in self.redis.scan_iter(match=prefix + "*", count=500):
            call_id = (key.decode() if isinstance(key, bytes) else key)[len(prefix) :]
            state = self.engine.call_state(call_id)
            if state is not None:
                calls[call_id] = state
        return calls

    async def _channels(self) -> dict[str, dict[str, str]] | None:
        assert self.ami is not None
        try:
            channels = await self.ami.action_list("CoreShowChannels", timeout=10.0)
        except AmiError as exc:
            log.error("reconcile: %s", exc)
            return None
        return {c.get("Uniqueid", ""): c for c in channels}

    async def _reconcile_logged(self) -> None:
        try:
            await self.reconcile()
        except RedisError as exc:
            log.error("reconcile: Redis unavailable (%s)", exc)

    async def _getvar(self, channel: str, name: str) -> str:
        if self.ami is None:
            return ""
        try:
            reply = await self.ami.action("Getvar", Channel=channel, Variable=name)
        except AmiError:
            return ""
        return reply.get("Value", "")

    def sign_in_configured(self) -> list[str]:
        """``acd.login_at_start``: a login command (source ``system``) for each agent of the
        config the engine has never seen; the leader applies it like any other, so with
        several routers a second login is refused, and an agent who signed out stays out.
        Returns the agents asked for (none when Redis does not answer: logged, calls fail
        open to app_queue until the router beats)."""
        if not self.config.acd.login_at_start:
            return []
        asked = []
        try:
            _create_group(self.redis)  # else the group, made later at "$", skips these
            for agent_id in self.profiles:
                try:
                    self.engine.agent_state(agent_id)
                    continue  # known: signed in or out by a person, left as it is
                except Refused:
                    pass
                cmd = AgentCommand(
                    op=Op.LOGIN, agent_id=agent_id, source=Source.SYSTEM, by="login_at_start"
                )
                self.redis.xadd(commands.STREAM, cmd.fields(), maxlen=commands.MAXLEN,
                                approximate=True)  # fmt: skip
                asked.append(agent_id)
        except RedisError as exc:
            log.error("agents not signed in at start: Redis unavailable (%s)", exc)
        if asked:
            log.info("signing in %d agents at start (acd.login_at_start)", len(asked))
        return asked

    # ---- loops ----------------------------------------------------------------------------
    def claim_lease(self) -> bool:
        """Renew or take the lease; True when this router has just become the leader (its
        engine decides with the new token at once; events wait for :meth:`take_over`)."""
        if self.lease is None or not self.lease.claim():
            return False
        self.engine.fence = self.lease.token
        self._taking_over = True
        return True

    async def renew_lease(self) -> bool:
        """Claim the lease and, when newly leading, take over before returning; whether
        this router leads."""
        if self.claim_lease():
            await self.take_over()
        return self.leader

    async def lease_loop(self, stop: asyncio.Event) -> None:
        """Renew the lease twice a heartbeat, apart from AMI (a slow Asterisk must not cost
        the lease); a takeover runs beside it."""
        while not stop.is_set():
            try:
                if self.claim_lease():
                    self._takeover = asyncio.get_running_loop().create_task(self.take_over())
            except RedisError as exc:
                log.error("lease: Redis unavailable (%s)", exc)
            await _sleep(stop, self.config.acd.heartbeat_s / 2)

    async def beat(self) -> bool:
        """Prove liveness; False (no beat into Asterisk) when Redis does not answer or
        another router leads."""
        try:
            if not self._installed or not self.redis.exists(self.engine.prefix + "skills"):
                self.engine.install()  # a Redis that restarted empty gets the policy again
                self._installed = True
            ttl = max(1, round(self.config.acd.stale_s))
            self.redis.set(self.beat_key, repr(self.clock()), ex=ttl)
        except RedisError as exc:
            log.error("no heartbeat: Redis unavailable (%s)", exc)
            return False
        if not self.leader:
            return False
        await self._act("Setvar", Variable=V.ACD_BEAT, Value=str(int(self.clock())))
        return True

    async def take_over(self) -> None:
        """This router has just taken the lease: decide with its token, take the agents'
        commands another router read but did not apply, and reconcile with Asterisk."""
        assert self.lease is not None and self.lease.token is not None
        log.warning("router %s leads (fence %s)", self.name, self.lease.token)
        print(f"ACD router {self.name}: leading (fence {self.lease.token})", flush=True)
        self._claim_commands()
        self._claim_pending = True
        await self._replay_missed()
        await self._reconcile_logged()

    async def _replay_missed(self) -> None:
        """Apply the answers, hang-ups and leaves this router saw as a standby since the old
        leader may have stopped: each is a no-op when the old leader had applied it (an
        answer of a call no longer reserved by that agent, a hang-up of a call gone), so the
        counters count each call once.  Waiting callers are found by the reconciliation."""
        window = REPLAY_LEASES * (self.lease.ttl_ms / 1000 if self.lease else 0)
        since = time.monotonic() - window - self.config.acd.heartbeat_s
        replayed = 0
        try:
            while self._missed:  # events that arrive meanwhile queue up behind
                seen, event = self._missed.popleft()
                if seen >= since:
                    replayed += 1
                    await self._apply(event)
        finally:
            self._taking_over = False
        log.info("replayed %d events seen while standing by", replayed)

    def _claim_commands(self) -> None:
        try:
            _create_group(self.redis)
            start = "0-0"
            for _ in range(100):
                got = self.redis.xautoclaim(
                    commands.STREAM, commands.GROUP, self.name, 0, start_id=start, count=100
                )
                start = got[0].decode() if isinstance(got[0], bytes) else got[0]
                if start == "0-0":
                    break
        except RedisError as exc:
            log.error("commands not claimed: %s", exc)

    async def heartbeat_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.beat()
            await _sleep(stop, self.config.acd.heartbeat_s)

    async def timer_loop(self, stop: asyncio.Event, step_s: float = 0.1) -> None:
        """Run the engine's due timers (escalation, wrap-up, ring safety net)."""
        while not stop.is_set():
            if not self.leader:
                await _sleep(stop, step_s)
                continue
            try:
                due = self.engine.next_due()
                if due is not None and due <= self.clock():
                    await self.execute(self.engine.tick(self.clock()))
            except RedisError as exc:
                log.error("timers: Redis unavailable (%s)", exc)
                await _sleep(stop, 1.0)
            except Refused as exc:  # Fenced: another router leads now
                log.warning("timers: %s", exc)
            await _sleep(stop, step_s)

    async def command_loop(self, stop: asyncio.Event) -> None:
        """Apply the agents' state commands, each once (pending ones first after a restart)."""
        ready = False
        pending = True
        while not stop.is_set():
            if not self.leader:
                await _sleep(stop, 0.1)
                continue
            if self._claim_pending:
                self._claim_pending, pending = False, True
            try:
                if not ready:
                    _create_group(self.redis)
                    ready = True
                start = "0" if pending else ">"
                got = await asyncio.to_thread(
                    self.blocking_redis.xreadgroup, commands.GROUP, self.name,
                    {commands.STREAM: start}, count=50,
                    block=None if pending else COMMAND_BLOCK_MS,
                )  # fmt: skip
                entries = got[0][1] if got else []
                pending = pending and bool(entries)
                for entry_id, fields in entries:
                    await self.apply(fields)
                    self.redis.xack(commands.STREAM, commands.GROUP, entry_id)
            except RedisError as exc:
                log.error("commands: Redis unavailable (%s)", exc)
                ready, pending = False, True
                await _sleep(stop, 1.0)

    async def apply(self, fields: dict[Any, Any]) -> None:
        """One stream entry: checked again, applied to the engine, its offers carried out."""
        if is_call_command(fields):
            self.apply_call(fields)
            return
        try:
            cmd = AgentCommand.parse(fields)
        except CommandError as exc:
            log.warning("command refused: %s", exc)
            return
        now = self.clock()
        try:
            if cmd.op is Op.LOGIN:
                profile = self.profiles.get(cmd.agent_id)
                if profile is None:
                    raise Refused(f"agent {cmd.agent_id} is not in the config")
                offers = self.engine.login(cmd.agent_id, profile, now)
            elif cmd.op is Op.READY:
                offers = self.engine.ready(cmd.agent_id, now)
            elif cmd.op is Op.NOT_READY:
                assert cmd.reason is not None
                self.engine.not_ready(cmd.agent_id, cmd.reason, now)
                offers = []
            else:
                offers = self.engine.logout(cmd.agent_id, now)
        except Refused as exc:
            log.info("%s of agent %s refused: %s", cmd.op, cmd.agent_id, exc)
            return
        log.info("agent %s: %s (%s)", cmd.agent_id, cmd.op, cmd.source)
        await self.execute(offers)

    def apply_call(self, fields: dict[Any, Any]) -> None:
        """A supervisor's priority for a waiting call (re-scored in one Lua call)."""
        try:
            cmd = PriorityCommand.parse(fields)
            self.engine.reprioritize(cmd.call_id, cmd.priority, self.clock(), by=cmd.by)
        except (CommandError, Refused) as exc:
            log.info("priority command refused: %s", exc)
            return
        log.info("call %s: priority %d by %s (%s)", cmd.call_id, cmd.priority,
                 cmd.by or "-", cmd.source)  # fmt: skip


def _replayed(event: dict[str, str]) -> bool:
    kind = event.get("Event")
    return kind in ("DialEnd", "Hangup") or (
        kind == "UserEvent" and event.get("UserEvent") == "AcdLeave"
    )


def _create_group(redis: Any) -> None:
    try:
        redis.xgroup_create(commands.STREAM, commands.GROUP, id="$", mkstream=True)
    except RedisError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _is_id(value: str) -> bool:
    try:
        check_id("call", value)
    except Refused:
        return False
    return True


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
