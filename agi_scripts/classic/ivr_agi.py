"""The hotline IVR as a classic AGI script (one process per call, stdin/stdout), on pyst2.

It drives the same ``ivr.flow.call_flow`` as the FastAGI ``ivr`` handler and sets the same
``HOTLINE_*`` variables, which shows the flow does not depend on the transport.  Dialplan::

    same => n,AGI(/opt/hotline/.venv/bin/python,-m,agi_scripts.classic.ivr_agi,/etc/hotline.yaml)

pyst2's own ``_quote`` wraps a value in double quotes without escaping ``"``, ``\\`` or line
breaks, so a caller ID name could end the command early and start another.  :class:`SafeAGI`
therefore quotes nothing itself (``_quote`` is the identity) and sends every argument of
every command through :func:`agi_scripts.protocol.build_command`, exactly once; replies are
read with :class:`agi_scripts.protocol.ReplyParser`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import logging
import os
import sys
from typing import Any, TextIO

from asterisk.agi import AGI, AGIAppError, AGIHangup

from agi_scripts.errors import AgiError, AgiHangup
from agi_scripts.handlers.ivr import (
    MAX_STEPS,
    FlowFactory,
    IvrPath,
    call_info_from_env,
    decide_route,
    menu_for,
    prompt_path,
    terminal_variables,
)
from agi_scripts.protocol import (
    ESCAPE_ALL,
    HANGUP,
    AgiEnv,
    ReplyParser,
    build_command,
    clean_text,
    reply_error,
)
from agi_scripts.server import AgiApp
from hotline import dialplan_vars as V
from hotline.config import ConfigError, HotlineConfig, load_config
from ivr.actions import (
    TERMINAL,
    Action,
    CallInfo,
    Collect,
    Digits,
    Done,
    EmergencyTransfer,
    Heard,
    Listen,
    Play,
    Result,
    Route,
)

log = logging.getLogger("agi_scripts.classic")


class SafeAGI(AGI):  # type: ignore[misc]
    """pyst2's AGI with our quoting and reply parsing, and bytes decoded leniently."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self._parser = ReplyParser()
        self._verb = ""
        super().__init__(
            stdin=stdin or io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"),
            stdout=stdout
            or io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", line_buffering=True),
            stderr=open(os.devnull, "w"),  # noqa: SIM115 - pyst2 echoes caller data there
        )

    def _quote(self, string: object) -> str:
        """Leave values raw: :meth:`send_command` quotes every argument exactly once."""
        return string if isinstance(string, str) else str(string)

    def send_command(self, command: str, *args: object) -> None:
        self._verb = command.strip()
        self.stdout.write(build_command(self._verb, *args).decode("utf-8"))
        self.stdout.flush()

    def get_result(self, stdin: object = None) -> dict[str, tuple[str, str]]:
        """One reply in pyst2's shape (``{'result': (value, data), 'endpos': (n, '')}``)."""
        while True:
            raw = self.stdin.readline()
            if not raw:
                raise AgiHangup("Asterisk closed the AGI pipe")
            event = self._parser.feed(raw.rstrip("\n"))
            if event is None:
                continue
            if event is HANGUP:
                raise AgiHangup("HANGUP")
            break
        err = reply_error(self._verb, event)  # type: ignore[arg-type]
        if err is not None:
            raise err
        result: dict[str, tuple[str, str]] = {"result": (event.result, event.data or "")}  # type: ignore[union-attr]
        for key, value in event.extra.items():  # type: ignore[union-attr]
            result[key] = (value, "")
        if event.result == "-1":  # type: ignore[union-attr]
            # -1 from a prompt may be a missing file; from anything else it is a hang-up.
            if self._got_sighup or self._verb != "STREAM FILE":
                raise AgiHangup(f"caller hung up during {self._verb}")
            raise AGIAppError(f"{self._verb} failed")
        return result


class ClassicIvr:
    """Runs the flow on a :class:`SafeAGI`; blocking, one call per process."""

    def __init__(self, agi: SafeAGI, app: AgiApp, flow: FlowFactory) -> None:
        self.agi = agi
        self.app = app
        self.flow = flow
        self.path = IvrPath()

    def call_info(self) -> CallInfo:
        call_id = self._get(V.CALL_ID)
        flag = self._get(V.CALLER_FLAG)
        return call_info_from_env(AgiEnv(dict(self.agi.env)), call_id or None, flag)

    def _get(self, name: str) -> str | None:
        res = self.agi.execute("GET VARIABLE", name)
        value, data = res["result"]
        return data if value == "1" else None

    def run(self) -> Action | None:
        assert self.app.config is not None
        call = self.call_info()
        flow = self.flow(self.app.config, call)
        action = next(flow)
        for _ in range(MAX_STEPS):
            if isinstance(action, TERMINAL):
                flow.close()
                self.finish(action)  # type: ignore[arg-type]
                return action
            result = self.perform(action)
            try:
                action = flow.send(result)
            except StopIteration:
                return None
        flow.close()
        return None

    def play(self, prompt: str, escape: str) -> str:
        try:
            return str(self.agi.stream_file(prompt_path(prompt), escape))
        except AGIAppError:
            self.agi.test_hangup()
            log.warning("prompt %s could not be played", prompt)
            return ""

    def perform(self, action: Action) -> Result:
        if isinstance(action, Play):
            for prompt in action.prompts:
                self.play(prompt, "")
            return Done()
        if isinstance(action, Collect):
            digits = ""
            for prompt in action.prompts:
                digits = self.play(prompt, ESCAPE_ALL)
                if digits:
                    break
            while len(digits) < action.max_digits:
                if digits.endswith("#") and action.max_digits > 1:
                    break
                key = self.agi.wait_for_digit(action.timeout_ms)
                if not key:
                    break
                digits += key
            if action.max_digits > 1:
                digits = digits.removesuffix("#")
            self.path.collected(menu_for(self.app.config, action.prompts), digits)
            return Digits(digits)
        if isinstance(action, Listen):
            return Heard()  # speech runs on the FastAGI side only
        raise TypeError(f"not an IVR action: {action!r}")

    def finish(self, action: Route | EmergencyTransfer | Any) -> None:
        cfg = self.app.config
        assert cfg is not None
        if isinstance(action, EmergencyTransfer) and action.line not in cfg.emergency.lines:
            from acd.interface import RouteRequest

            action = Route(RouteRequest("classic", "", cfg.general_seat.id, 9))
        decision = None
        if isinstance(action, Route):
            decision = asyncio.run(decide_route(self.app, action.request))
        for name, value in terminal_variables(action, str(self.path), decision):
            self.agi.set_variable(name, clean_text(value, 1024))


def load_flow(spec: str) -> FlowFactory:
    """``module:function`` → the flow factory (default ``ivr.flow:call_flow``)."""
    module, _, func = spec.partition(":")
    return getattr(importlib.import_module(module), func or "call_flow")  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ivr_agi", description="classic AGI hotline IVR")
    parser.add_argument("config", nargs="?", default=os.environ.get("HOTLINE_CONFIG"))
    parser.add_argument("--flow", default="ivr.flow:call_flow", help="module:function")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    agi = SafeAGI()  # reads the environment first, as Asterisk expects
    try:
        config: HotlineConfig = load_config(args.config or "hotline.yaml")
        flow = load_flow(args.flow)
    except (ConfigError, ImportError, AttributeError) as exc:
        # Nothing set: the dialplan sends the caller to the general seat.
        log.error("ivr_agi cannot start: %s", exc)
        agi.verbose(f"hotline ivr_agi cannot start: {str(exc).splitlines()[0]}", 1)
        return 1
    try:
        ClassicIvr(agi, AgiApp(config=config), flow).run()
    except (AgiHangup, AGIHangup):
        return 0
    except AgiError as exc:
        log.warning("AGI error: %s", exc)
        return 1
    except Exception:
        log.exception("ivr_agi failed; the dialplan falls back")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
