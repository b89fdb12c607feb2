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

from agi_scripts.call_start import read_call_info
from agi_scripts.driver import IvrDriver
from agi_scripts.errors import AgiError, AgiHangup
from agi_scripts.protocol import HANGUP, AgiEnv, ReplyParser, build_command, clean_text, reply_error
from agi_scripts.server import AgiApp
from agi_scripts.services import FlowFactory
from hotline.config import ConfigError, HotlineConfig, load_config
from ivr.actions import Action

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


class ClassicSession:
    """The coroutine API of :class:`agi_scripts.session.AgiSession` over a blocking
    :class:`SafeAGI`, so the classic script runs the one :class:`IvrDriver`."""

    def __init__(self, agi: SafeAGI) -> None:
        self.agi = agi
        self.env = AgiEnv(dict(agi.env))
        self.call_id = self.env.get("agi_uniqueid") or "?"
        self.hung_up = False

    async def stream_file(self, prompt: str, escape_digits: str = "") -> str:
        try:
            return str(self.agi.stream_file(prompt, escape_digits))
        except AGIAppError:
            self.agi.test_hangup()
            log.warning("prompt %s could not be played", prompt)
            return ""

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        return str(self.agi.wait_for_digit(timeout_ms)) or None

    async def get_variable(self, name: str) -> str | None:
        value, data = self.agi.execute("GET VARIABLE", name)["result"]
        return data if value == "1" else None

    async def set_variable(self, name: str, value: object) -> None:
        self.agi.set_variable(name, clean_text(str(value), 1024))


class ClassicIvr:
    """Runs the flow on a :class:`SafeAGI` with the FastAGI handler's driver; one call per
    process.  Speech runs on the FastAGI side only (no listener: Listen hears nothing)."""

    def __init__(self, agi: SafeAGI, app: AgiApp, flow: FlowFactory) -> None:
        self.session = ClassicSession(agi)
        self.app = app
        self.flow = flow

    def run(self) -> Action | None:
        return asyncio.run(self._run())

    async def _run(self) -> Action | None:
        assert self.app.config is not None
        session: Any = self.session
        call = await read_call_info(session, self.app)
        return await IvrDriver(session, self.app, call).run(self.flow(self.app.config, call))


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
