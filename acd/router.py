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
- proves it is alive: a Redis key with a TTL and the Asterisk global ``HOTLINE_ACD_BEAT``,
  which the dialplan checks before routing to it (stale → the app_queue queues).

Calls are known only by their channel's ``Uniqueid`` (an AMI field Asterisk sets), never by
a caller field.  The channel name for the Redirect is kept in Redis (``acd:chan``) so that a
restarted router finds it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from acd import commands
from acd.call_commands import PriorityCommand, is_call_command
from acd.commands import AgentCommand, CommandError, Op
from acd.engine import RedisEngine
from acd.policy import Offer, Refused, check_id
from acd.reentry import ReentryKeys
from hotline import dialplan_vars as V
from hotline.ami import AmiClient, AmiError
from hotline.config import HotlineConfig

log = logging.getLogger("acd.router")

WAIT_CONTEXT = "hotline-acd-wait"
DIAL_CONTEXT = V.ACD_DIAL_CONTEXT
RING_GRACE_S = 3.0
"""The engine's own ring timer runs this much longer than the dial's time-out: normally the
``DialEnd`` decides; the timer only catches a lost event."""
NOT_ANSWERED = frozenset({"NOANSWER", "BUSY", "CHANUNAVAIL", "CONGESTION"})
READY_LINE = "ACD router: following AMI"
COMMAND_BLOCK_MS = 1000
"""How long one read of the command stream waits for a new command."""
MAX_PRIORITY_TEXT = 3
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


class AcdRouter:
    """The router's state and handlers; ``redis`` is a sync ``redis.Redis`` client (short
    socket time-outs), ``engine`` a :class:`RedisEngine` on it."""

    def __init__(
        self,
        config: HotlineConfig,
        redis: Any,
        engine: RedisEngine,
        name: str = "router-1",
        clock: Callable[[], float] = time.time,
        blocking_redis: Any = None,
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
        self.ami: AmiClient | None = None
        self.chan_key = engine.prefix + "chan"
        self.beat_key = f"{engine.prefix}router:{name}"
        self._installed = False
        self.reentry = reentry or ReentryKeys(config.tickets.key_file)
        """Caller number → re-entry key (keyed hash; withheld numbers get none)."""
        self._reconciling: asyncio.Task[None] | None = None

    # ---- AMI ------------------------------------------------------------------------------
    def connected(self, client: AmiClient | None) -> None:
        """Each AMI login (the router's start, a reconnect, Asterisk's restart): reconcile.
        Asterisk's ``FullyBooted`` comes with the login reply, before events are followed."""
        self.ami = client
        if client is not None:
            self._reconciling = asyncio.get_running_loop().create_task(self._reconcile_logged())
            print(READY_LINE, flush=True)

    async def handle(self, event: dict[str, str], client: AmiClient) -> None:
        """One AMI event (``follow_events`` calls it in order)."""
        self.ami = client
        kind = event.get("Event")
        try:
            if kind == "UserEvent":
                sub = event.get("UserEvent")
                if sub == "AcdWait":
                    await self._on_wait(event)
                elif sub == "AcdLeave":
                    await self._release(event.get("Uniqueid", ""), event.get("Reason", ""))
            elif kind == "DialEnd":
                await self._on_dial_end(event)
            elif kind == "Hangup":
                await self._release(event.get("Uniqueid", ""), "hangup")
            elif kind == "FullyBooted":
                await self.reconcile()
        except RedisError as exc:
            log.error("Redis unavailable for %s: %s", kind, exc)

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
        await self._act("Setvar", Channel=channel, Variable=V.ACD_QUEUED, Value="1")
        log.info("call %s waiting for %s (priority %d)", call_id, skill or "-", priority)
        await self.execute(offers)

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
        """Make the engine agree with Asterisk's live channels."""
        if self.ami is None:
            return
        try:
            channels = await self.ami.action_list("CoreShowChannels", timeout=10.0)
        except AmiError as exc:
            log.error("reconcile: %s", exc)
            return
        live = {c.get("Uniqueid", ""): c for c in channels}
        now = self.clock()
        offers: list[Offer] = []
        released = requeued = 0
        prefix = self.engine.prefix + "c:"
        for key in self.redis.scan_iter(match=prefix + "*", count=500):
            call_id = (key.decode() if isinstance(key, bytes) else key)[len(prefix) :]
            state = self.engine.call_state(call_id)
            chan = live.get(call_id)
            if state is None:
                continue
            where = chan.get("Context", "") if chan else ""
            expected = WAIT_CONTEXT if state[0] == "waiting" else DIAL_CONTEXT
            if chan is not None and state[0] == "reserved" and where == WAIT_CONTEXT:
                offers.append(Offer(call_id, state[1], now))  # the Redirect was lost
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
        log.info("reconciled: %d calls released, %d re-queued", released, requeued)
        await self.execute(offers)

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

    # ---- loops ----------------------------------------------------------------------------
    async def beat(self) -> bool:
        """Prove liveness; False (no beat) when Redis does not answer."""
        try:
            if not self._installed or not self.redis.exists(self.engine.prefix + "skills"):
                self.engine.install()  # a Redis that restarted empty gets the policy again
                self._installed = True
            ttl = max(1, round(self.config.acd.stale_s))
            self.redis.set(self.beat_key, repr(self.clock()), ex=ttl)
        except RedisError as exc:
            log.error("no heartbeat: Redis unavailable (%s)", exc)
            return False
        await self._act("Setvar", Variable=V.ACD_BEAT, Value=str(int(self.clock())))
        return True

    async def heartbeat_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.beat()
            await _sleep(stop, self.config.acd.heartbeat_s)

    async def timer_loop(self, stop: asyncio.Event, step_s: float = 0.1) -> None:
        """Run the engine's due timers (escalation, wrap-up, ring safety net)."""
        while not stop.is_set():
            try:
                due = self.engine.next_due()
                if due is not None and due <= self.clock():
                    await self.execute(self.engine.tick(self.clock()))
            except RedisError as exc:
                log.error("timers: Redis unavailable (%s)", exc)
                await _sleep(stop, 1.0)
            await _sleep(stop, step_s)

    async def command_loop(self, stop: asyncio.Event) -> None:
        """Apply the agents' state commands, each once (pending ones first after a restart)."""
        ready = False
        pending = True
        while not stop.is_set():
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
