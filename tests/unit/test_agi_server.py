"""Calls through the FastAGI server, with a fake Asterisk on the other end of a real socket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator
from pathlib import Path

import pytest

from acd.interface import RouteDecision, RouteRequest
from agi_scripts.handlers import ivr as ivr_handler
from agi_scripts.protocol import split_words
from agi_scripts.server import AgiApp, AgiServer
from agi_scripts.session import AgiSession
from hotline import dialplan_vars as V
from hotline.config import HotlineConfig, load_config
from ivr.actions import (
    Action,
    CallInfo,
    Collect,
    Digits,
    EmergencyTransfer,
    Play,
    Result,
    Route,
)

CONFIG = load_config(Path(__file__).resolve().parents[2] / "hotline.yaml")
Answer = Callable[[list[str]], list[str]]


def env_block(route: str = "ivr", uniqueid: str = "1763841600.1", name: str = "张三") -> bytes:
    lines = [
        "agi_network: yes",
        f"agi_network_script: {route}",
        f"agi_request: agi://127.0.0.1:4573/{route}",
        "agi_channel: PJSIP/carrier-00000001",
        f"agi_uniqueid: {uniqueid}",
        "agi_callerid: 13800001111",
        f"agi_calleridname: {name}",
        "agi_dnid: 12345",
        "agi_extension: 12345",
        "agi_enhanced: 0.0",
    ]
    return ("\n".join(lines) + "\n\n").encode()


def menu_answers(keys: dict[str, str]) -> Answer:
    """Asterisk that plays every prompt to the end unless ``keys`` says which key the caller
    presses during it ("hotline/main-menu" -> "2"); SET VARIABLE succeeds; variables unset."""

    def answer(words: list[str]) -> list[str]:
        verb = " ".join(words[:2])
        if verb == "STREAM FILE":
            key = keys.get(words[2])
            return [f"200 result={ord(key) if key else 0} endpos=8000"]
        if verb == "WAIT FOR":
            key = keys.get("wait")
            return [f"200 result={ord(key) if key else 0}"]
        if verb == "GET VARIABLE":
            return ["200 result=0"]
        return ["200 result=1"]

    return answer


class FakeAsterisk:
    """Connects like res_agi, sends the environment, answers each command line."""

    def __init__(self, port: int, answer: Answer, env: bytes | None = None) -> None:
        self.port = port
        self.answer = answer
        self.env = env or env_block()
        self.lines: list[str] = []
        self.commands: list[list[str]] = []
        self.closed_by_server = False

    async def call(self, timeout: float = 5.0) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(self.env)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await reader.readline()
                    if not raw:
                        self.closed_by_server = True
                        break
                    line = raw.decode()
                    assert line.endswith("\n") and line.count("\n") == 1
                    self.lines.append(line[:-1])
                    words = split_words(line[:-1])
                    self.commands.append(words)
                    for out in self.answer(words):
                        if out.startswith("sleep "):
                            await asyncio.sleep(float(out[6:]))
                        else:
                            writer.write(out.encode() + b"\n")
        finally:
            writer.close()
        return self

    def variables(self) -> list[tuple[str, str]]:
        return [(w[2], w[3]) for w in self.commands if w[:2] == ["SET", "VARIABLE"]]

    def played(self) -> list[str]:
        return [w[2] for w in self.commands if w[:2] == ["STREAM", "FILE"]]


def main_menu_flow(config: HotlineConfig, call: CallInfo) -> Generator[Action, Result | None, None]:
    """A small stand-in for ivr.flow: greeting, main menu once, digit -> seat."""
    yield Play(("greeting",))
    result = yield Collect(("main-menu",), timeout_ms=5000)
    assert isinstance(result, Digits)
    target = config.menus["main"].options.get(result.value)
    if target is not None and target.kind == "seat":
        request = RouteRequest(call.call_id, call.caller, target.value, 0, {})
        yield Route(request, ivr_path=f"main>{result.value}")
    elif target is not None and target.kind == "menu":
        again = yield Collect(("emergency-menu",))
        assert isinstance(again, Digits)
        line = {"1": "110", "2": "119", "3": "120", "4": "122"}[again.value]
        path = f"main>9>emergency>{again.value}"
        yield EmergencyTransfer(line, f"key:{path}", ivr_path=path)
    else:
        path = f"main>{result.value or 't'}"
        yield Route(RouteRequest(call.call_id, call.caller, "zonghe"), ivr_path=path)


async def start(app: AgiApp) -> tuple[AgiServer, int]:
    server = AgiServer(app)
    _, port = await server.start("127.0.0.1", 0)
    return server, port


def make_app(flow=main_menu_flow, **kw) -> AgiApp:  # type: ignore[no-untyped-def]
    app = AgiApp(config=CONFIG, handlers={"ivr": ivr_handler.handle}, **kw)
    app.flow = flow
    return app


def other_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


async def test_caller_presses_2_reaches_gongjijin_queue() -> None:
    server, port = await start(make_app())
    ast = await FakeAsterisk(port, menu_answers({"hotline/main-menu": "2"})).call()
    await server.stop()

    assert ast.played() == ["hotline/greeting", "hotline/main-menu"]
    streams = [w for w in ast.commands if w[:2] == ["STREAM", "FILE"]]
    assert streams[0][3] == ""  # the greeting takes no keys
    assert streams[1][3] == "0123456789*#"  # the menu stops at the first key
    assert not [w for w in ast.commands if w[:2] == ["WAIT", "FOR"]]
    vars_ = dict(ast.variables())
    assert vars_[V.QUEUE] == "seat_gjj" and vars_[V.SEAT] == "gjj"
    assert vars_[V.IVR_PATH] == "main>2"
    assert ast.variables()[-1] == (V.ROUTE, "queue")
    assert ast.closed_by_server
    assert server.stats.completed == 1 and server.stats.active == 0


async def test_caller_who_presses_nothing_during_the_menu_gets_a_wait_then_general_seat() -> None:
    server, port = await start(make_app())
    ast = await FakeAsterisk(port, menu_answers({})).call()
    await server.stop()
    waits = [w for w in ast.commands if w[:2] == ["WAIT", "FOR"]]
    assert waits == [["WAIT", "FOR", "DIGIT", "5000"]]
    assert dict(ast.variables())[V.QUEUE] == "seat_zonghe"
    assert dict(ast.variables())[V.IVR_PATH] == "main>t"


async def test_caller_presses_9_then_2_goes_to_119_with_route_set_last() -> None:
    keys = {"hotline/main-menu": "9", "hotline/emergency-menu": "2"}
    server, port = await start(make_app())
    ast = await FakeAsterisk(port, menu_answers(keys)).call()
    await server.stop()
    vars_ = ast.variables()
    assert dict(vars_)[V.EMERGENCY_LINE] == "119"
    assert dict(vars_)[V.EMERGENCY_REASON] == "key:main>9>emergency>2"
    assert dict(vars_)[V.IVR_PATH] == "main>9>emergency>2"
    assert vars_[-1] == (V.ROUTE, "emergency")


async def test_caller_hangs_up_mid_menu_ends_quietly_with_nothing_left_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Asterisk answers the interrupted prompt with -1, then sends HANGUP; commands after
    that get 511.  The handler must end, log no warning or error, and leave no task."""
    hung_up = False

    def answer(words: list[str]) -> list[str]:
        nonlocal hung_up
        if hung_up:
            return ["511 Command Not Permitted on a dead channel or intercept routine"]
        if words[:3] == ["STREAM", "FILE", "hotline/main-menu"]:
            hung_up = True
            return ["200 result=-1 endpos=3120", "sleep 0.02", "HANGUP"]
        return menu_answers({})(words)

    caplog.set_level(logging.INFO, logger="agi_scripts")
    server, port = await start(make_app())
    ast = await FakeAsterisk(port, answer).call()
    for _ in range(3):
        await asyncio.sleep(0)

    assert ast.closed_by_server
    assert V.ROUTE not in dict(ast.variables())
    assert server.stats.hangups == 1 and server.stats.active == 0 and server.stats.failed == 0
    assert server.active_tasks == []
    assert other_tasks() == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("outcome=hangup" in r.getMessage() for r in caplog.records)
    await server.stop()


async def test_hangup_while_a_command_is_in_flight_waits_for_its_reply() -> None:
    def answer(words: list[str]) -> list[str]:
        if words[:2] == ["WAIT", "FOR"]:
            return ["HANGUP", "sleep 0.05", "200 result=-1"]
        return menu_answers({})(words)

    server, port = await start(make_app())
    ast = await FakeAsterisk(port, answer).call()
    await server.stop()
    # the server read the reply before closing: nothing was sent after WAIT FOR DIGIT
    assert ast.commands[-1][:2] == ["WAIT", "FOR"]
    assert server.stats.hangups == 1


async def test_handler_bug_is_logged_with_call_id_and_route_stays_empty(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_flow(config: HotlineConfig, call: CallInfo) -> Generator[Action, object, None]:
        yield Play(("greeting",))
        raise ValueError("flow bug")

    server, port = await start(make_app(broken_flow))
    ast = await FakeAsterisk(port, menu_answers({}), env_block(uniqueid="1763841600.77")).call()
    await server.stop()
    assert ast.closed_by_server
    assert V.ROUTE not in dict(ast.variables())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "1763841600.77" in errors[0].getMessage()
    assert server.stats.failed == 1


async def test_asterisk_that_never_answers_times_out_and_the_call_goes_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, port = await start(make_app(command_timeout_s=0.2))
    ast = await FakeAsterisk(port, lambda words: []).call()
    await server.stop()
    assert ast.closed_by_server and len(ast.commands) == 1
    assert server.stats.timeouts == 1
    assert any("no reply to GET VARIABLE" in r.getMessage() for r in caplog.records)


async def test_acd_failure_still_reaches_the_general_seat() -> None:
    class BrokenRouter:
        async def route(self, request: RouteRequest) -> RouteDecision:
            raise ConnectionError("redis down")

    server, port = await start(make_app(router=BrokenRouter()))
    ast = await FakeAsterisk(port, menu_answers({"hotline/main-menu": "2"})).call()
    await server.stop()
    assert dict(ast.variables())[V.QUEUE] == "seat_zonghe"
    assert ast.variables()[-1] == (V.ROUTE, "queue")


async def test_unknown_emergency_line_from_a_flow_goes_to_a_person_not_a_dial() -> None:
    def bad_line_flow(config: HotlineConfig, call: CallInfo) -> Generator[Action, object, None]:
        yield EmergencyTransfer("999;Dial(PJSIP/x)", "key:9")

    server, port = await start(make_app(bad_line_flow))
    ast = await FakeAsterisk(port, menu_answers({})).call()
    await server.stop()
    assert V.EMERGENCY_LINE not in dict(ast.variables())
    assert dict(ast.variables())[V.QUEUE] == "seat_zonghe"


async def test_multi_digit_entry_reads_keys_one_wait_at_a_time() -> None:
    got: list[str] = []

    def pin_flow(config: HotlineConfig, call: CallInfo) -> Generator[Action, object, None]:
        result = yield Collect(("progress-menu",), max_digits=4, timeout_ms=3000)
        assert isinstance(result, Digits)
        got.append(result.value)
        yield Route(RouteRequest(call.call_id, call.caller, "zonghe"))

    keys = iter("23#")

    def answer(words: list[str]) -> list[str]:
        if words[:2] == ["STREAM", "FILE"]:
            return [f"200 result={ord('1')} endpos=100"]
        if words[:2] == ["WAIT", "FOR"]:
            return [f"200 result={ord(next(keys))}"]
        return menu_answers({})(words)

    server, port = await start(make_app(pin_flow))
    ast = await FakeAsterisk(port, answer).call()
    await server.stop()
    assert got == ["123"]
    assert len([w for w in ast.commands if w[:2] == ["WAIT", "FOR"]]) == 3


async def test_hostile_caller_name_never_becomes_a_second_command() -> None:
    async def echo_name(session: AgiSession, app: AgiApp) -> None:
        await session.set_variable("CALLERNAME", session.env["agi_calleridname"])
        await session.verbose(session.env["agi_calleridname"])

    name = '"x" \\"\t EXEC Dial PJSIP/9999@evil "'
    app = AgiApp(config=CONFIG, handlers={"echo": echo_name})
    server, port = await start(app)
    ast = await FakeAsterisk(port, menu_answers({}), env_block("echo", name=name)).call()
    await server.stop()
    assert ast.commands == [["SET", "VARIABLE", "CALLERNAME", name], ["VERBOSE", name, "1"]]
    assert len(ast.lines) == 2


async def test_unknown_route_hands_the_call_back_without_a_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, port = await start(make_app())
    ast = await FakeAsterisk(port, menu_answers({}), env_block("nosuch")).call()
    await server.stop()
    assert ast.commands == [] and ast.closed_by_server
    assert server.stats.unknown_route == 1
    assert any("no AGI handler for route 'nosuch'" in r.getMessage() for r in caplog.records)


async def test_reply_nobody_asked_for_ends_the_session_instead_of_shifting_answers() -> None:
    def answer(words: list[str]) -> list[str]:
        return ["200 result=0", "200 result=1 (injected)"]

    server, port = await start(make_app())
    ast = await FakeAsterisk(port, answer).call()
    await server.stop()
    assert ast.closed_by_server
    assert V.ROUTE not in dict(ast.variables())


async def test_fifty_calls_at_once_on_one_event_loop_each_get_their_own_route() -> None:
    server, port = await start(make_app())
    digits = "12345678" * 7
    calls = [
        FakeAsterisk(port, menu_answers({"hotline/main-menu": d}), env_block(uniqueid=f"c.{i}"))
        for i, d in enumerate(digits[:50])
    ]
    done = await asyncio.gather(*(c.call() for c in calls))
    await server.stop()
    for d, ast in zip(digits, done, strict=False):
        seat = CONFIG.menus["main"].options[d].value
        assert dict(ast.variables())[V.QUEUE] == f"seat_{seat}"
    assert server.stats.completed == 50 and server.stats.active == 0


async def test_stop_hands_calls_still_in_the_ivr_back_to_the_dialplan() -> None:
    def slow(words: list[str]) -> list[str]:
        if words[:2] == ["STREAM", "FILE"]:
            return ["sleep 1"]
        return menu_answers({})(words)

    server, port = await start(make_app())
    call = asyncio.create_task(FakeAsterisk(port, slow).call(timeout=10))
    await asyncio.sleep(0.2)
    await server.stop(drain_s=0.2)
    ast = await asyncio.wait_for(call, 8)
    assert ast.closed_by_server and V.ROUTE not in dict(ast.variables())
    assert server.active_tasks == []
    assert server.stats.handed_back == 1 and server.stats.hangups == 0


# ---- the real flow (ivr.flow) over FastAGI ----------------------------------------------
def real_app() -> AgiApp:
    return AgiApp(config=CONFIG, handlers={"ivr": ivr_handler.handle})


async def test_real_flow_caller_presses_2_hears_transfer_and_reaches_gongjijin() -> None:
    server, port = await start(real_app())
    ast = await FakeAsterisk(port, menu_answers({"hotline/main-menu": "2"})).call()
    await server.stop()
    assert ast.played() == ["hotline/greeting", "hotline/main-menu", "hotline/transfer"]
    vars_ = dict(ast.variables())
    assert (vars_[V.QUEUE], vars_[V.IVR_PATH], vars_[V.ROUTE]) == ("seat_gjj", "main>2", "queue")


async def test_real_flow_silent_caller_reaches_the_general_seat_after_the_retries() -> None:
    server, port = await start(real_app())
    ast = await FakeAsterisk(port, menu_answers({})).call()
    await server.stop()
    retries = CONFIG.menus["main"].retries
    assert ast.played().count("hotline/main-menu") == retries
    assert ast.played().count("hotline/no-input") == retries
    waits = [w for w in ast.commands if w[:2] == ["WAIT", "FOR"]]
    assert len(waits) == retries
    assert waits[0][3] == str(int(CONFIG.menus["main"].timeout_s * 1000))
    assert dict(ast.variables())[V.QUEUE] == "seat_zonghe"


async def test_real_flow_caller_presses_9_then_3_is_put_through_to_120() -> None:
    keys = {"hotline/main-menu": "9", "hotline/emergency-menu": "3"}
    server, port = await start(real_app())
    ast = await FakeAsterisk(port, menu_answers(keys)).call()
    await server.stop()
    assert "hotline/emergency-120" in ast.played()
    vars_ = ast.variables()
    assert dict(vars_)[V.EMERGENCY_LINE] == "120"
    assert dict(vars_)[V.EMERGENCY_REASON] == "key:main>9>emergency>3"
    assert vars_[-1] == (V.ROUTE, "emergency")


async def test_real_flow_suspended_caller_flag_from_the_dialplan_is_honoured() -> None:
    def answer(words: list[str]) -> list[str]:
        if words[:3] == ["GET", "VARIABLE", V.CALLER_FLAG]:
            return ["200 result=1 (suspended)"]
        return menu_answers({})(words)

    server, port = await start(real_app())
    ast = await FakeAsterisk(port, answer).call()
    await server.stop()
    assert "hotline/throttle-suspended" in ast.played()
    assert "hotline/main-menu" not in ast.played()
    assert dict(ast.variables())[V.ROUTE] == "hangup"


def test_calls_on_uvloop_the_loop_the_server_runs_on_in_production() -> None:
    """uvloop's transports are not asyncio.Transport subclasses; the server must not care."""
    import uvloop

    async def scenario() -> tuple[list[FakeAsterisk], AgiServer]:
        server, port = await start(make_app())
        calls = [FakeAsterisk(port, menu_answers({"hotline/main-menu": "7"})) for _ in range(5)]
        done = await asyncio.gather(*(c.call() for c in calls))
        await server.stop()
        return done, server

    done, server = uvloop.run(scenario())
    assert all(dict(a.variables())[V.QUEUE] == "seat_yibao" for a in done)
    assert server.stats.completed == 5


# ---- call id and caller rules at call start ---------------------------------------------
async def test_call_id_comes_from_the_dialplan_or_else_the_linkedid_which_is_published() -> None:
    def answer(words: list[str]) -> list[str]:
        if words[:3] == ["GET", "VARIABLE", "CHANNEL(linkedid)"]:
            return ["200 result=1 (1763841600.0)"]
        return menu_answers({"hotline/main-menu": "2"})(words)

    server, port = await start(make_app())
    ast = await FakeAsterisk(port, answer).call()
    await server.stop()
    assert dict(ast.variables())[V.CALL_ID] == "1763841600.0"

    def given(words: list[str]) -> list[str]:
        if words[:3] == ["GET", "VARIABLE", V.CALL_ID]:
            return ["200 result=1 (call-from-dialplan)"]
        return menu_answers({"hotline/main-menu": "2"})(words)

    server, port = await start(make_app())
    ast = await FakeAsterisk(port, given).call()
    await server.stop()
    assert V.CALL_ID not in dict(ast.variables())
    assert ["GET", "VARIABLE", "CHANNEL(linkedid)"] not in ast.commands


class FakeScreen:
    def __init__(self, flag: str, tickets: tuple[dict[str, str], ...] = ()) -> None:
        self.flag = flag
        self.open_tickets = tickets


class FakePolicy:
    """Stands in for callers.policy.CallerPolicy (unit test only)."""

    def __init__(self, flag: str, delay_s: float = 0.0) -> None:
        self.flag = flag
        self.delay_s = delay_s
        self.asked: list[tuple[str, str]] = []

    async def screen(self, caller: str, call_id: str) -> FakeScreen:
        self.asked.append((caller, call_id))
        await asyncio.sleep(self.delay_s)
        return FakeScreen(self.flag)


async def test_suspended_caller_from_the_caller_rules_hears_the_notice_and_is_flagged() -> None:
    app = real_app()
    policy = FakePolicy("suspended")
    app.policy = policy
    server, port = await start(app)
    ast = await FakeAsterisk(port, menu_answers({})).call()
    await server.stop()
    assert policy.asked == [("13800001111", "1763841600.1")]
    assert dict(ast.variables())[V.CALLER_FLAG] == "suspended"
    assert "hotline/throttle-suspended" in ast.played()
    assert dict(ast.variables())[V.ROUTE] == "hangup"


async def test_slow_caller_rules_do_not_hold_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ivr_handler, "SCREEN_BUDGET_S", 0.2)
    app = real_app()
    app.policy = FakePolicy("suspended", delay_s=5)
    server, port = await start(app)
    ast = await FakeAsterisk(port, menu_answers({"hotline/main-menu": "2"})).call()
    await server.stop()
    assert dict(ast.variables())[V.CALLER_FLAG] == "normal"
    assert dict(ast.variables())[V.QUEUE] == "seat_gjj"


# ---- the wire in pieces, and things that are not Asterisk -------------------------------
async def test_env_and_replies_arriving_byte_by_byte_still_make_one_call() -> None:
    server, port = await start(make_app())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for b in env_block():
        writer.write(bytes([b]))
        await writer.drain()
    answer = menu_answers({"hotline/main-menu": "4"})
    variables: dict[str, str] = {}
    async with asyncio.timeout(10):
        while raw := await reader.readline():
            words = split_words(raw.decode()[:-1])
            if words[:2] == ["SET", "VARIABLE"]:
                variables[words[2]] = words[3]
            for out in answer(words):
                for piece in (out[:5], out[5:9], out[9:] + "\n"):
                    writer.write(piece.encode())
                    await writer.drain()
                    await asyncio.sleep(0)
    writer.close()
    await server.stop()
    assert variables[V.QUEUE] == "seat_sifa" and variables[V.ROUTE] == "queue"


async def test_a_client_that_never_sends_an_agi_environment_is_dropped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agi_scripts import server as server_mod

    monkeypatch.setattr(server_mod, "ENV_TIMEOUT_S", 0.3)
    server, port = await start(make_app())
    server.sweep_s = 0.1
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # closed by the server, nothing sent
    writer.close()
    await server.stop()
    assert server.stats.sessions == 0
    assert any("no AGI environment" in r.getMessage() for r in caplog.records)
