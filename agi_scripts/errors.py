"""Typed AGI failures.

Every error a handler can see from the AGI layer derives from :class:`AgiError`, so a
handler that wants to fail open catches one class.  :class:`AgiHangup` is not a fault: the
caller went away, and the session ends quietly.
"""

from __future__ import annotations


class AgiError(Exception):
    """Base class of everything the AGI layer raises."""


class AgiHangup(AgiError):
    """The caller hung up (``HANGUP`` line, ``result=-1`` on a wait, or the socket closed)."""


class AgiDeadChannel(AgiHangup):
    """``511 Command Not Permitted on a dead channel``: the channel is already hung up."""


class AgiUsageError(AgiError):
    """``520`` invalid command syntax; ``usage`` holds Asterisk's usage text, if sent."""

    def __init__(self, command: str, usage: str = "") -> None:
        self.command = command
        self.usage = usage
        super().__init__(f"invalid syntax for {command!r}" + (f": {usage}" if usage else ""))


class AgiInvalidCommand(AgiError):
    """``510 Invalid or unknown command``."""

    def __init__(self, command: str) -> None:
        self.command = command
        super().__init__(f"Asterisk does not know the command {command!r}")


class AgiTimeout(AgiError):
    """No reply from Asterisk within the command's time limit; the session is unusable."""


class AgiProtocolError(AgiError):
    """Something on the wire that is not AGI (garbled reply, replies out of step)."""


class AgiArgumentError(AgiError, ValueError):
    """An argument or command that cannot be sent safely (control characters, too long)."""
