"""Two ACD routers on one real Redis (acd/lease.py): both are fed the same AMI events, only
the leader acts; the standby takes over when the leader's lease is gone; a deposed leader's
late decision is refused inside the Lua script (fencing).  The lease's expiry is modelled by
deleting its key (what its TTL does), each router's local clock is a fake one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis import Redis
from test_acd_router import CONFIG, Clock, FakeAmi, run, wait_event

from acd import commands
from acd.commands import AgentCommand
from acd.lease import Fenced, Lease, holder
from acd.policy import AgentState
from acd.router import DIAL_CONTEXT, WAIT_CONTEXT, AcdRouter, engine_for


class Pair:
    """Routers ``a`` (router-1) and ``b`` (router-2) with their own AMI recorders and clocks."""

    def __init__(self, client: Redis) -> None:
        self.redis = client
        self.clock = Clock()
        self.routers: list[AcdRouter] = []
        self.amis: list[FakeAmi] = []
        self.local = [Clock(), Clock()]
        for i in (0, 1):
            name = f"router-{i + 1}"
            lease = Lease(client, name, 3.0, clock=self.local[i])
            router = AcdRouter(
                CONFIG, client, engine_for(CONFIG, client), name, clock=self.clock, lease=lease
            )
            ami = FakeAmi()
            router.ami = ami  # type: ignore[assignment]
            self.routers.append(router)
            self.amis.append(ami)
        self.a, self.b = self.routers

    def both(self, event: dict[str, str], first: int = 0) -> None:
        """One AMI event reaches both routers (as both follow the one Asterisk)."""
        for i in (first, 1 - first):
            run(self.routers[i].handle(event, self.amis[i]))  # type: ignore[arg-type]

    def login(self, router: AcdRouter, *agents: str) -> None:
        for agent in agents:
            run(router.apply(AgentCommand(op="login", agent_id=agent).fields()))  # type: ignore[arg-type]
            self.clock.now += 1

    def redirected(self) -> list[tuple[object, object]]:
        return [r for ami in self.amis for r in ami.redirects()]

    def expire_lease(self, index: int) -> None:
        """Router ``index`` stops renewing: its lease runs out (TTL) and its own clock says so."""
        self.redis.delete("acd:lease")
        self.local[index].now += 10


@pytest.fixture
def pair(acd_redis_port: int) -> Iterator[Pair]:
    client = Redis(port=acd_redis_port)
    client.flushdb()
    p = Pair(client)
    assert run_beat(p.a) and not run_beat(p.b)  # router-1 leads, router-2 stands by
    yield p
    client.close()


def run_beat(router: AcdRouter) -> bool:
    """One turn of the router's lease loop (a takeover finished) and of its heartbeat."""

    async def turn() -> bool:
        leads = await router.renew_lease()
        beat = await router.beat()
        return leads and beat

    return asyncio.run(turn())


def test_the_lease_has_one_holder_and_a_clean_stop_hands_it_over(acd_redis_port: int) -> None:
    client = Redis(port=acd_redis_port)
    client.flushdb()
    one, two = Lease(client, "router-1", 3.0), Lease(client, "router-2", 3.0)
    assert one.claim() and one.held()
    assert not two.claim() and not two.held()
    assert not one.claim() and one.held()  # a renewal, same token
    assert holder(client) == ("1", "router-1")
    one.release()
    assert two.claim() and holder(client) == ("2", "router-2")
    client.close()


def test_two_routers_fed_the_same_events_ring_each_agent_once_per_call(pair: Pair) -> None:
    agents = ("1002", "1009", "1008")
    pair.login(pair.a, *agents)
    calls = [f"1800.{i}" for i in range(6)]
    for i, uid in enumerate(calls):
        pair.both(wait_event(uid), first=i % 2)
    answer_offers(pair, calls)  # 1002 and 1009, the 公积金 agents
    pair.clock.now += 50  # past the 综合席 step: 1008 takes a 公积金 call too
    run(pair.a.execute(pair.a.engine.tick(pair.clock.now)))
    with pytest.raises(Fenced):  # a standby's engine decides nothing
        pair.b.engine.tick(pair.clock.now)
    answer_offers(pair, calls)
    assert sorted(c for c, _ in pair.redirected()) == [f"PJSIP/carrier-{u}" for u in calls[:3]]
    assert pair.amis[1].actions == []  # the standby did nothing at all
    for i, uid in enumerate(calls[:3]):
        pair.both({"Event": "Hangup", "Uniqueid": uid}, first=i % 2)
    pair.clock.now += 100  # wrap-up over: the agents take the other three
    run(pair.a.execute(pair.a.engine.tick(pair.clock.now)))
    answer_offers(pair, calls)
    channels = sorted(c for c, _ in pair.redirected())
    assert channels == [f"PJSIP/carrier-{u}" for u in calls]  # each call rung once
    holding = [pair.a.engine.agent_state(a)[2] for a in agents]
    assert sorted(holding) == calls[3:]  # each agent holds one call
    offered = sum(int(pair.redis.hget(f"acd:n:agent:{a}", "offered") or 0) for a in agents)
    answered = sum(int(pair.redis.hget(f"acd:n:agent:{a}", "answered") or 0) for a in agents)
    assert offered == answered == len(calls)


def answer_offers(pair: Pair, calls: list[str]) -> None:
    """Every call now ringing an agent is answered; both routers see the DialEnd."""
    for i, uid in enumerate(calls):
        state = pair.a.engine.call_state(uid)
        if state is not None and state[0] == "reserved":
            answer = {"Event": "DialEnd", "Uniqueid": uid, "DialStatus": "ANSWER",
                      "DestChannel": f"PJSIP/agent{state[1]}-0000000{i}"}  # fmt: skip
            pair.both(answer, first=i % 2)


def test_leader_killed_the_standby_takes_over_and_reconciles_what_it_missed(
    pair: Pair,
) -> None:
    a, b = pair.a, pair.b
    pair.login(a, "1002", "1008")
    pair.both(wait_event("1801.1"))  # offered to 1002 by router-1
    # router-1 read an agent's command but died before applying it
    pair.redis.xadd(commands.STREAM, AgentCommand(op="login", agent_id="1009").fields())
    pair.redis.xreadgroup(commands.GROUP, "router-1", {commands.STREAM: ">"}, count=10)
    pair.expire_lease(0)
    # while nobody leads: 1801.1 is answered and ends, 1801.2 arrives
    pair.both({"Event": "DialEnd", "Uniqueid": "1801.1", "DialStatus": "ANSWER",
               "DestChannel": "PJSIP/agent1002-00000001"})  # fmt: skip
    pair.both({"Event": "Hangup", "Uniqueid": "1801.1"})
    pair.both(wait_event("1801.2", skill="zonghe"))
    assert not a.leader and pair.a.engine.call_state("1801.2") is None
    pair.amis[1].channels = [
        {"Uniqueid": "1801.2", "Channel": "PJSIP/carrier-1801.2", "Context": WAIT_CONTEXT},
    ]  # fmt: skip
    pair.amis[1].vars[("PJSIP/carrier-1801.2", "HOTLINE_SEAT")] = "zonghe"
    assert run_beat(b) and b.leader
    assert holder(pair.redis) == ("2", "router-2")
    # the answer and the hang-up it saw while standing by are applied: counted answered
    assert b.engine.agent_state("1002")[0] == AgentState.WRAPUP
    assert pair.redis.hget("acd:n:agent:1002", "answered") == b"1"
    assert pair.redis.hget("acd:n:skill:gjj", "abandoned") is None
    assert b.engine.call_state("1801.2") == ("reserved", "1008")
    assert pair.amis[1].redirects() == [("PJSIP/carrier-1801.2", DIAL_CONTEXT)]
    # the dead leader's unapplied command is applied by the new leader
    stop = asyncio.Event()

    async def commands_until_applied() -> None:
        task = asyncio.create_task(b.command_loop(stop))
        for _ in range(200):  # bounded: at most 10 s
            if _known(b, "1009"):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(commands_until_applied())
    assert b.engine.agent_state("1009")[0] == AgentState.READY
    assert pair.redis.xpending(commands.STREAM, commands.GROUP)["pending"] == 0


def test_a_missed_answer_is_taken_from_the_bridged_channel(pair: Pair) -> None:
    a, b = pair.a, pair.b
    pair.login(a, "1002")
    pair.both(wait_event("1803.1"))
    pair.expire_lease(0)  # the answer's DialEnd reached neither router (AMI reconnect)
    pair.amis[1].channels = [{"Uniqueid": "1803.1", "Channel": "PJSIP/carrier-1803.1",
                              "Context": DIAL_CONTEXT, "BridgeId": "b-1"}]  # fmt: skip
    assert run_beat(b)
    assert b.engine.agent_state("1002")[:3] == (AgentState.ON_CALL, "", "1803.1")


def _known(router: AcdRouter, agent: str) -> bool:
    return router.redis.exists(f"acd:a:{agent}") == 1


def test_a_deposed_leaders_late_decision_is_refused(pair: Pair) -> None:
    a, b = pair.a, pair.b
    pair.login(a, "1002")
    pair.expire_lease(0)
    assert run_beat(b)  # router-2 leads with token 2
    # router-1 wakes up late with token 1: the script refuses, nothing changes
    with pytest.raises(Fenced):
        a.engine.enqueue("1802.1", "gjj", 0, pair.clock.now)
    assert a.engine.call_state("1802.1") is None
    assert b.engine.agent_state("1002")[0] == AgentState.READY
    # its handlers ignore events and its own beat neither leads nor reaches Asterisk
    pair.amis[0].actions.clear()
    run(a.handle(wait_event("1802.1"), pair.amis[0]))  # type: ignore[arg-type]
    assert not run_beat(a) and pair.amis[0].actions == []  # no Redirect, no beat
    # the new leader takes the call
    run(b.handle(wait_event("1802.1"), pair.amis[1]))  # type: ignore[arg-type]
    assert pair.amis[1].redirects() == [("PJSIP/carrier-1802.1", DIAL_CONTEXT)]


def test_config_starts_one_router_unless_told_and_a_lease_must_outlast_two_beats() -> None:
    from test_config import example_text, problems_of

    from hotline.config import parse_config

    assert CONFIG.acd.routers == 1 and CONFIG.acd.lease_s == 3
    text = example_text().replace("  routers: 1 ", "  routers: 2 ")
    assert parse_config(text).acd.routers == 2
    (field, _line, msg), *_ = problems_of(text.replace("  lease_s: 3 ", "  lease_s: 1.5 "))
    assert field == "acd" and "lease_s" in msg


class Snapshots(FakeAmi):
    """Answers each CoreShowChannels with the next list (the last one again at the end)."""

    def __init__(self, *lists: list[dict[str, str]]) -> None:
        super().__init__()
        self.lists = list(lists)

    async def action_list(self, name: str, timeout: float = 10.0) -> list[dict[str, str]]:
        return self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]


def waiting_room(uid: str) -> dict[str, str]:
    return {"Uniqueid": uid, "Channel": f"PJSIP/carrier-{uid}", "Context": WAIT_CONTEXT}


def test_takeover_resends_a_lost_redirect_but_not_one_that_was_on_its_way(pair: Pair) -> None:
    a, b = pair.a, pair.b
    pair.login(a, "1002", "1009")
    for uid in ("1804.1", "1804.2"):  # router-1 decides both offers, dies before the Redirects
        pair.redis.hset(a.chan_key, uid, f"PJSIP/carrier-{uid}")
        a.engine.enqueue(uid, "gjj", 0, pair.clock.now)
    assert pair.amis[0].redirects() == []
    assert {b.engine.call_state(u)[1] for u in ("1804.1", "1804.2")} == {"1002", "1009"}  # type: ignore[index]
    pair.expire_lease(0)
    # at the takeover both callers are still in the waiting room; two seconds later 1804.2
    # has moved to its agent (its Redirect was on its way), 1804.1 has not
    dialing = {**waiting_room("1804.2"), "Context": DIAL_CONTEXT}
    ami = Snapshots([waiting_room("1804.1"), waiting_room("1804.2")],
                    [waiting_room("1804.1"), dialing])  # fmt: skip
    b.ami = ami  # type: ignore[assignment]
    pair.amis[1] = ami
    b.settle_s = 0.0
    assert run_beat(b)
    assert ami.redirects() == [("PJSIP/carrier-1804.1", DIAL_CONTEXT)]


def test_a_call_queued_after_the_channel_list_was_taken_is_not_released(pair: Pair) -> None:
    a = pair.a
    pair.login(a, "1002")

    class Late(FakeAmi):
        async def action_list(self, name: str, timeout: float = 10.0) -> list[dict[str, str]]:
            # while Asterisk answers, the caller's AcdWait is handled (it is not in the list)
            await a.handle(wait_event("1805.1"), self)  # type: ignore[arg-type]
            return []

    a.ami = Late()  # type: ignore[assignment]
    run(a.reconcile())
    assert a.engine.call_state("1805.1") == ("reserved", "1002")
