"""The AGI wire format, with no I/O: environment block, replies, and safe command lines.

What Asterisk 22 (res_agi.c) does, and what this module relies on:

* The session starts with ``agi_<name>: <value>`` lines ended by one empty line.  Values are
  copied verbatim from the channel (a caller ID name is caller-controlled), so they are
  decoded as UTF-8 with replacement and never trusted.
* Every command gets one reply line ``<code> <text>``; ``200 result=N [(data)] [k=v ...]``
  on success; ``510 Invalid or unknown command``; ``511 Command Not Permitted on a dead
  channel or intercept routine``; ``520 Invalid command syntax.  Proper usage not
  available.`` or a ``520-...`` block of usage lines ended by ``520 End of proper usage.``.
* On FastAGI, when the channel hangs up Asterisk writes the line ``HANGUP`` (once, unless the
  channel variable ``AGISIGHUP`` is ``no``) and switches to *dead* mode: commands that cannot
  run on a dead channel get ``511``; the AGI ends only when we close the socket (or at once
  if ``AGIEXITONHANGUP`` is true).  A process AGI gets SIGHUP instead of the line.
* Asterisk reads a command with ``fgets`` into a 2048-byte buffer and splits it into words:
  ``"`` toggles quoting, ``\\`` makes the next character literal, space/tab separate words
  outside quotes.  A line longer than 2047 bytes is cut and its tail read as a *second*
  command, so :func:`build_command` refuses lines that long.
* Asterisk handles one command at a time and reads them through stdio: commands must not be
  pipelined (a second queued line can sit unread in its buffer).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, NamedTuple

from agi_scripts.errors import (
    AgiArgumentError,
    AgiDeadChannel,
    AgiError,
    AgiInvalidCommand,
    AgiProtocolError,
    AgiUsageError,
)

MAX_LINE_BYTES: Final = 2047
"""Longest command line (newline included) Asterisk reads as one command (AGI_BUF_LEN - 1)."""
HANGUP_LINE: Final = "HANGUP"
ESCAPE_ALL: Final = "0123456789*#"

_FORBIDDEN = re.compile(r"[\r\n\x00]")
_VERB = re.compile(r"^[A-Z]+( [A-Z]+)*$")
_VERBS_SEEN: set[str] = set()
_ENV_KEY = re.compile(r"^agi_[a-z0-9_]+$")
_REPLY = re.compile(r"^200 result=(?P<result>\S*)(?: \((?P<data>.*)\))?(?P<rest>(?: \S+)*)\s*$")


def decode(raw: bytes) -> str:
    """Bytes from Asterisk as text: UTF-8, undecodable bytes replaced, never an error."""
    return raw.decode("utf-8", "replace")


# ---- environment ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AgiEnv:
    """The ``agi_*`` variables Asterisk sent, plus lines that did not look like any."""

    values: dict[str, str]
    anomalies: tuple[str, ...] = ()

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    def __contains__(self, key: object) -> bool:
        return key in self.values

    @property
    def route(self) -> str:
        """The FastAGI route: ``ivr`` for ``agi://host:port/ivr?x=1`` (empty if none)."""
        script = self.get("agi_network_script")
        return script.split("?", 1)[0].strip("/")

    @property
    def args(self) -> tuple[str, ...]:
        """``agi_arg_1``, ``agi_arg_2`` … in order (the AGI() application's arguments)."""
        out = []
        n = 1
        while f"agi_arg_{n}" in self.values:
            out.append(self.values[f"agi_arg_{n}"])
            n += 1
        return tuple(out)


def parse_env(block: bytes | str) -> AgiEnv:
    """Parse an environment block (the lines before the first empty line).

    Lines that are not ``agi_<name>: <value>`` are kept in ``anomalies`` (as a repr) instead
    of failing: a hostile caller ID must not stop the call; it is logged and ignored.
    """
    text = decode(block) if isinstance(block, bytes) else block
    values: dict[str, str] = {}
    anomalies: list[str] = []
    for raw_line in text.split("\n"):
        line = raw_line.removesuffix("\r")
        if not line:
            if values or anomalies:
                break
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not _ENV_KEY.match(key):
            anomalies.append(repr(line[:200]))
            continue
        if key in values:
            anomalies.append(f"duplicate {key}")
            continue
        values[key] = value.removeprefix(" ")
    return AgiEnv(values, tuple(anomalies))


# ---- replies ----------------------------------------------------------------------------
_NO_EXTRA: Mapping[str, str] = MappingProxyType({})


class AgiReply(NamedTuple):
    """One reply.  ``result`` is a string: ``GET DATA`` answers digits (``"12#"``) or ``""``.
    (A named tuple: replies are made on every command, and this is the cheapest record.)"""

    code: int
    result: str = ""
    data: str | None = None
    """The parenthesised part: ``timeout``, ``dtmf``, a variable's value …"""
    extra: Mapping[str, str] = _NO_EXTRA
    """``key=value`` pairs after it: ``endpos``, ``digit`` … (read-only)."""
    text: str = ""
    """The raw line (for 5xx: the message; for 520 blocks: the usage text)."""

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def result_int(self) -> int:
        try:
            return int(self.result)
        except ValueError:
            raise AgiProtocolError(f"result is not a number: {self.text!r}") from None


class Hangup:
    """The marker :class:`ReplyParser` returns for Asterisk's ``HANGUP`` line."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "HANGUP"


HANGUP: Final = Hangup()


def parse_reply_line(line: str) -> AgiReply:
    """Parse one complete single-line reply (``200 …``, ``510 …``, ``511 …``, ``520 …``)."""
    if line.startswith("200 result=") and "(" not in line:
        # the common case, without a regex: ``200 result=N [k=v ...]``
        words = line[11:].split()
        if not words or "=" in words[0]:
            words.insert(0, "")
        extra: dict[str, str] = {}
        for pair in words[1:]:
            key, sep, value = pair.partition("=")
            if not sep:
                raise AgiProtocolError(f"unparsable reply {line[:200]!r}")
            extra[key] = value
        return AgiReply(200, words[0], None, extra, line)
    if line.startswith("200 "):
        m = _REPLY.match(line)
        if m is None:
            raise AgiProtocolError(f"unparsable reply {line[:200]!r}")
        extra = {}
        for pair in m.group("rest").split():
            key, sep, value = pair.partition("=")
            if sep:
                extra[key] = value
        return AgiReply(200, m.group("result"), m.group("data"), extra, line)
    code_text = line[:3]
    if len(line) >= 3 and code_text.isdigit() and (len(line) == 3 or line[3] in " -"):
        return AgiReply(int(code_text), text=line[4:])
    raise AgiProtocolError(f"not an AGI reply: {line[:200]!r}")


class ReplyParser:
    """Turns lines from Asterisk into :class:`AgiReply` or :data:`HANGUP`.

    Feed it each line (without the newline); it returns ``None`` while inside a multi-line
    ``520-`` usage block and the whole block as one reply when ``520 End …`` arrives.
    """

    __slots__ = ("_usage",)

    def __init__(self) -> None:
        self._usage: list[str] | None = None

    def feed(self, line: str) -> AgiReply | Hangup | None:
        line = line.removesuffix("\r")
        if self._usage is not None:
            if line.startswith("520 "):
                usage = "\n".join(self._usage)
                self._usage = None
                return AgiReply(520, text=usage)
            self._usage.append(line)
            return None
        if line.startswith("200 "):  # the hot path
            return parse_reply_line(line)
        if line == HANGUP_LINE:
            return HANGUP
        if line.startswith("520-"):
            self._usage = []
            return None
        return parse_reply_line(line)


def reply_error(command: str, reply: AgiReply) -> AgiError | None:
    """The typed error for a non-200 reply, or ``None`` for 200."""
    if reply.code == 200:
        return None
    if reply.code == 510:
        return AgiInvalidCommand(command)
    if reply.code == 511:
        return AgiDeadChannel(f"{command!r}: {reply.text}")
    if reply.code == 520:
        return AgiUsageError(command, reply.text)
    return AgiError(f"{command!r}: {reply.code} {reply.text}")


# ---- commands ---------------------------------------------------------------------------
def quote(value: object) -> str:
    """Make ``value`` exactly one AGI word: double-quoted, ``\\`` and ``"`` escaped.

    CR, LF and NUL are refused (:class:`AgiArgumentError`): they would end the command line
    (or the C string) early and let the rest be read as another command.  Use
    :func:`clean_text` first for text that may contain them (caller-controlled data).
    """
    text = value if isinstance(value, str) else str(value)
    if _FORBIDDEN.search(text):
        raise AgiArgumentError(f"control character in AGI argument {text[:60]!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def clean_text(value: object, limit: int = 512) -> str:
    """Caller-controlled text made sendable: CR/LF/NUL become spaces, at most ``limit``
    characters, lone surrogates replaced."""
    text = value if isinstance(value, str) else str(value)
    text = _FORBIDDEN.sub(" ", text)[:limit]
    return text.encode("utf-8", "replace").decode("utf-8")


def build_command(verb: str, *args: object) -> bytes:
    """The bytes of one command line: ``VERB "arg1" "arg2"\\n``.

    ``verb`` is a fixed command name (``STREAM FILE``); every argument goes through
    :func:`quote`.  The result always holds exactly one newline, at the end, and fits
    Asterisk's line buffer, or :class:`AgiArgumentError` is raised and nothing is sent.
    """
    if verb not in _VERBS_SEEN:
        if not _VERB.match(verb):
            raise AgiArgumentError(f"not an AGI command name: {verb[:60]!r}")
        if len(_VERBS_SEEN) < 256:
            _VERBS_SEEN.add(verb)
    line = verb
    for arg in args:
        line += " " + quote(arg)
    try:
        data = (line + "\n").encode("utf-8")
    except UnicodeEncodeError:
        raise AgiArgumentError(f"unencodable text in {verb} arguments") from None
    if len(data) > MAX_LINE_BYTES:
        raise AgiArgumentError(
            f"{verb} line is {len(data)} bytes; Asterisk reads at most {MAX_LINE_BYTES}"
        )
    return data


def split_words(line: str) -> list[str]:
    """Split a command line the way Asterisk's ``parse_args`` does (for tests and checks)."""
    words: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    in_word = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and not in_word:
                in_word = True
            continue
        if ch in " \t" and not quoted and not escaped:
            if in_word:
                words.append("".join(cur))
                cur = []
                in_word = False
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        escaped = False
        in_word = True
        cur.append(ch)
    if in_word:
        words.append("".join(cur))
    return words
