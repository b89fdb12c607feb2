"""The AMI client against recorded Asterisk 22 manager traffic, replayed by a tiny fake server.

The transcripts below were recorded from Asterisk 22.10.1 (AMI 11.0.0) running the rendered
hotline config; ``{aid}`` stands for the ActionID of the action being answered.  The events of
a call (``USER_EVENTS``) are the HotlineFallback UserEvent of a real fail-open call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hotline.ami import DISCONNECTED, AmiClient, AmiError, encode_action, parse_message

BANNER = "Asterisk Call Manager/11.0.0\r\n"  # recorded

LOGIN_OK = "Response: Success\r\nActionID: {aid}\r\nMessage: Authentication accepted\r\n\r\n"
LOGIN_BAD = "Response: Error\r\nActionID: {aid}\r\nMessage: Authentication failed\r\n\r\n"
COMMAND_QUEUE_SHOW = (
    "Response: Success\r\nActionID: {aid}\r\nMessage: Command output follows\r\n"
    "Output: seat_gjj has 0 calls (max unlimited) in 'rrmemory' strategy (0s holdtime, 0s "
    "talktime), W:0, C:0, A:0, SL:0.0%, SL2:0.0% within 0s\r\n"
    "Output:    Members: \r\n"
    "Output:       agent1002 (PJSIP/agent1002) (ringinuse disabled) (Not in use) has taken no "
    "calls yet (login was 9 secs ago)\r\n"
    "Output:       agent1009 (PJSIP/agent1009) (ringinuse disabled) (Not in use) has taken no "
    "calls yet (login was 9 secs ago)\r\n"
    "Output:    No Callers\r\nOutput: \r\nOutput: \r\n\r\n"
)
QUEUE_STATUS = (
    "Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n"
    "Message: Queue status will follow\r\n\r\n"
    "Event: QueueParams\r\nQueue: seat_gjj\r\nMax: 0\r\nStrategy: rrmemory\r\nCalls: 0\r\n"
    "Holdtime: 0\r\nTalkTime: 0\r\nCompleted: 0\r\nAbandoned: 0\r\nServiceLevel: 0\r\n"
    "ServicelevelPerf: 0.0\r\nServicelevelPerf2: 0.0\r\nWeight: 0\r\nActionID: {aid}\r\n\r\n"
    "Event: QueueMember\r\nQueue: seat_gjj\r\nName: agent1002\r\nLocation: PJSIP/agent1002\r\n"
    "StateInterface: PJSIP/agent1002\r\nMembership: static\r\nPenalty: 0\r\nCallsTaken: 0\r\n"
    "LastCall: 0\r\nLastPause: 0\r\nLoginTime: 1795378273\r\nInCall: 0\r\nStatus: 1\r\n"
    "Paused: 0\r\nPausedReason: \r\nWrapuptime: 0\r\nActionID: {aid}\r\n\r\n"
    "Event: QueueMember\r\nQueue: seat_gjj\r\nName: agent1009\r\nLocation: PJSIP/agent1009\r\n"
    "StateInterface: PJSIP/agent1009\r\nMembership: static\r\nPenalty: 0\r\nCallsTaken: 0\r\n"
    "LastCall: 0\r\nLastPause: 0\r\nLoginTime: 1795378273\r\nInCall: 0\r\nStatus: 1\r\n"
    "Paused: 0\r\nPausedReason: \r\nWrapuptime: 0\r\nActionID: {aid}\r\n\r\n"
    "Event: QueueStatusComplete\r\nActionID: {aid}\r\nEventList: Complete\r\nListItems: 3\r\n"
    "\r\n"
)
QUEUE_STATUS_UNKNOWN = (
    "Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n"
    "Message: Queue status will follow\r\n\r\n"
    "Event: QueueStatusComplete\r\nActionID: {aid}\r\nEventList: Complete\r\nListItems: 0\r\n"
    "\r\n"
)
QUEUE_ADD_UNKNOWN = (
    "Response: Error\r\nActionID: {aid}\r\n"
    "Message: Unable to add interface to queue: No such queue\r\n\r\n"
)
PING = "Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\nTimestamp: 1795378296.067852\r\n\r\n"
USER_EVENTS = (  # recorded: a carrier call while the FastAGI server was down
    "Event: UserEvent\r\nPrivilege: user,all\r\nChannel: PJSIP/carrier-00000000\r\n"
    "ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: sipp\r\nCallerIDName: sipp\r\n"
    "ConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\nLanguage: zh\r\n"
    "AccountCode: \r\nContext: hotline-fallback\r\nExten: s\r\nPriority: 1\r\n"
    "Uniqueid: 1795379091.0\r\nLinkedid: 1795379091.0\r\nUserEvent: HotlineFallback\r\n"
    "CallId: 1795379091.0\r\nReason: agi-FAILURE\r\nRoute: \r\nAgiStatus: FAILURE\r\n"
    "Seat: zonghe\r\nQueue: seat_zonghe\r\n\r\n"
)


class FakeAsterisk:
    """Replays canned replies: ``script`` maps an action name (and for Command/QueueStatus a
    field value) to the bytes to send back, with ``{aid}`` replaced by the ActionID."""

    def __init__(self, script: dict[str, str], reverse_pairs: bool = False) -> None:
        self.script = script
        self.received: list[dict[str, str]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.chunk = 0
        self.reverse_pairs = reverse_pairs
        self._held: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        await self.send(writer, BANNER)
        buf = b""
        while True:
            data = await reader.read(4096)
            if not data:
                break
            buf += data
            while b"\r\n\r\n" in buf:
                block, _, buf = buf.partition(b"\r\n\r\n")
                msg = parse_message(block.decode())
                self.received.append(msg)
                await self.answer(writer, msg)
        writer.close()

    async def answer(self, writer: asyncio.StreamWriter, msg: dict[str, str]) -> None:
        name = msg["Action"]
        key = f"{name}:{msg.get('Command') or msg.get('Queue') or ''}"
        reply = self.script.get(key, self.script.get(name))
        if name == "Logoff":
            reply = (
                "Response: Goodbye\r\nActionID: {aid}\r\nMessage: Thanks for all the fish.\r\n\r\n"
            )
        if reply is None:
            reply = "Response: Error\r\nActionID: {aid}\r\nMessage: Invalid/unknown command\r\n\r\n"
        text = reply.replace("{aid}", msg["ActionID"])
        if self.reverse_pairs and name == "Ping":
            self._held.append(text)
            if len(self._held) == 2:
                for held in reversed(self._held):
                    await self.send(writer, held)
                self._held.clear()
            return
        await self.send(writer, text)
        if name == "Logoff":
            writer.close()

    async def send(self, writer: asyncio.StreamWriter, text: str) -> None:
        data = text.encode()
        if not self.chunk:
            writer.write(data)
        else:  # split at awkward places: inside lines, between CR and LF
            for i in range(0, len(data), self.chunk):
                writer.write(data[i : i + self.chunk])
                await writer.drain()
        await writer.drain()

    async def push(self, text: str) -> None:
        for writer in self.writers:
            await self.send(writer, text)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeAsterisk, int]]:
    script = {
        "Login": LOGIN_OK,
        "Command:queue show seat_gjj": COMMAND_QUEUE_SHOW,
        "QueueStatus:seat_gjj": QUEUE_STATUS,
        "QueueStatus:seat_none": QUEUE_STATUS_UNKNOWN,
        "QueueAdd:seat_none": QUEUE_ADD_UNKNOWN,
        "Ping": PING,
    }
    ast = FakeAsterisk(script)
    server = await asyncio.start_server(ast.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield ast, port
        for w in ast.writers:
            w.close()


async def login(port: int) -> AmiClient:
    return await AmiClient.connect("127.0.0.1", port, "hotline", "change-me-12345-ami", 2.0)


async def test_supervisor_logs_in_and_banner_is_kept(fake: tuple[FakeAsterisk, int]) -> None:
    ast, port = fake
    client = await login(port)
    assert client.banner == BANNER.strip()
    login_msg = ast.received[0]
    assert login_msg["Action"] == "Login"
    assert login_msg["Username"] == "hotline"
    assert login_msg["Secret"] == "change-me-12345-ami"
    await client.close()
    assert ast.received[-1]["Action"] == "Logoff"


async def test_wrong_secret_is_refused_with_asterisks_message(
    fake: tuple[FakeAsterisk, int],
) -> None:
    ast, port = fake
    ast.script["Login"] = LOGIN_BAD
    with pytest.raises(AmiError, match="Authentication failed"):
        await login(port)


async def test_nothing_listening_is_a_clear_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(AmiError, match=f"127.0.0.1:{port}"):
        await login(port)


async def test_queue_show_output_lines_are_joined(fake: tuple[FakeAsterisk, int]) -> None:
    _, port = fake
    client = await login(port)
    out = await client.command("queue show seat_gjj")
    lines = out.split("\n")
    assert lines[0].startswith("seat_gjj has 0 calls")
    members = [ln.split()[0] for ln in lines if "(PJSIP/" in ln]
    assert members == ["agent1002", "agent1009"]
    assert len(lines) == 7  # two trailing empty Output lines are kept
    await client.close()


async def test_byte_by_byte_delivery_parses_the_same(fake: tuple[FakeAsterisk, int]) -> None:
    ast, port = fake
    ast.chunk = 1
    client = await login(port)
    assert client.banner.startswith("Asterisk Call Manager/")
    out = await client.command("queue show seat_gjj")
    assert "PJSIP/agent1002" in out and out.count("\n") == 6
    await client.close()


async def test_queue_status_collects_members(fake: tuple[FakeAsterisk, int]) -> None:
    _, port = fake
    client = await login(port)
    events = await client.action_list("QueueStatus", Queue="seat_gjj")
    assert [e["Event"] for e in events] == ["QueueParams", "QueueMember", "QueueMember"]
    assert [e["Location"] for e in events[1:]] == ["PJSIP/agent1002", "PJSIP/agent1009"]
    assert events[1]["PausedReason"] == ""
    assert events[0]["Strategy"] == "rrmemory"
    await client.close()


async def test_unknown_queue_status_is_an_empty_list(fake: tuple[FakeAsterisk, int]) -> None:
    _, port = fake
    client = await login(port)
    assert await client.action_list("QueueStatus", Queue="seat_none") == []
    await client.close()


async def test_error_response_is_returned_and_list_error_raises(
    fake: tuple[FakeAsterisk, int],
) -> None:
    _, port = fake
    client = await login(port)
    reply = await client.action("QueueAdd", Queue="seat_none", Interface="PJSIP/agent1001")
    assert reply["Response"] == "Error"
    assert "No such queue" in reply["Message"]
    with pytest.raises(AmiError, match="No such queue"):
        await client.action_list("QueueAdd", Queue="seat_none", Interface="PJSIP/agent1001")
    await client.close()


async def test_fallback_event_reaches_subscriber(fake: tuple[FakeAsterisk, int]) -> None:
    ast, port = fake
    client = await login(port)
    events = client.subscribe()
    await ast.push(USER_EVENTS)
    fallback = await client.wait_for(
        lambda e: e.get("UserEvent") == "HotlineFallback", timeout=2, queue=events
    )
    assert fallback["Reason"] == "agi-FAILURE"
    assert fallback["Route"] == ""
    assert fallback["Queue"] == "seat_zonghe"
    assert fallback["CallId"] == fallback["Linkedid"]
    await client.close()


async def test_subscription_sees_only_events_after_it_started(
    fake: tuple[FakeAsterisk, int],
) -> None:
    ast, port = fake
    client = await login(port)
    early = client.subscribe()
    await ast.push(USER_EVENTS)
    await client.wait_for(lambda e: e.get("Event") == "UserEvent", 2, queue=early)
    late = client.subscribe()
    with pytest.raises(AmiError, match="no matching AMI event"):
        await client.wait_for(lambda e: e.get("Event") == "UserEvent", 0.3, queue=late)
    await client.close()


async def test_replies_out_of_order_are_matched_by_action_id() -> None:
    ast = FakeAsterisk(
        {
            "Login": LOGIN_OK,
            "Ping": "Response: Success\r\nActionID: {aid}\r\nTimestamp: {aid}\r\n\r\n",
        },
        reverse_pairs=True,
    )
    server = await asyncio.start_server(ast.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        client = await login(port)
        first, second = await asyncio.gather(client.action("Ping"), client.action("Ping"))
        assert first["ActionID"] != second["ActionID"]
        assert first["Timestamp"] == first["ActionID"]
        assert second["Timestamp"] == second["ActionID"]
        await client.close()


async def test_header_injection_is_refused_and_nothing_sent(
    fake: tuple[FakeAsterisk, int],
) -> None:
    ast, port = fake
    client = await login(port)
    before = len(ast.received)
    with pytest.raises(AmiError, match="line break"):
        await client.action("Originate", Channel="PJSIP/agent1001\r\nAction: Logoff")
    await client.action("Ping")
    assert [m["Action"] for m in ast.received[before:]] == ["Ping"]
    await client.close()


async def test_lost_connection_fails_pending_action_and_tells_subscribers(
    fake: tuple[FakeAsterisk, int],
) -> None:
    ast, port = fake
    client = await login(port)
    events = client.subscribe()
    ast.script["Ping"] = ""  # Asterisk never answers: then it goes away
    pending = asyncio.create_task(client.action("Ping", timeout=5))
    await asyncio.sleep(0.1)
    for w in ast.writers:
        w.close()
    with pytest.raises(AmiError, match="lost"):
        await pending
    last = await asyncio.wait_for(events.get(), 1)
    while last.get("Event") != DISCONNECTED:
        last = await asyncio.wait_for(events.get(), 1)
    assert client.closed
    with pytest.raises(AmiError, match="closed"):
        await client.action("Ping")


def test_list_values_repeat_the_header() -> None:
    data = encode_action(
        "Originate", "x1", {"Channel": "PJSIP/agent1001", "Variable": ["A=1", "B=2"]}
    ).decode()
    assert data.endswith("\r\n\r\n")
    assert data.count("Variable: ") == 2
    assert parse_message(data.strip())["Variable"] == "A=1\nB=2"
