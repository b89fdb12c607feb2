"""Users, sessions, login failures and the audit log in one SQLite file (mode 0600).

Passwords are hashed with argon2id (``argon2-cffi``, its default RFC 9106 parameters); a
session is a random token of which only the SHA-256 is stored, valid until its expiry, and
revoked when the user's password changes or the user is disabled.  Failed logins are counted
per user name and per client address within a window (durable across restarts).  Methods are
synchronous (SQLite): call them from async code with ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hotline.config import HotlineConfig

ROLES = ("agent", "supervisor", "admin", "qa", "department")
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
PASSWORD_MIN, PASSWORD_MAX = 12, 256
FIELD_MAX = 200
"""Longest text kept in an audit field (paths and details are cut, never refused)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, agent TEXT, hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, department TEXT);
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY, name TEXT NOT NULL, expires REAL NOT NULL, address TEXT);
CREATE TABLE IF NOT EXISTS login_failures (at REAL NOT NULL, name TEXT, address TEXT);
CREATE INDEX IF NOT EXISTS login_failures_at ON login_failures (at);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, who TEXT, role TEXT,
    action TEXT NOT NULL, target TEXT, address TEXT, outcome INTEGER NOT NULL, detail TEXT);
"""


class AccessError(ValueError):
    """Bad input to a user command (unknown role, short password, existing user …)."""


class LoginRefused(Exception):
    """Wrong name or password, or a disabled user (one answer for all three)."""


class LoginThrottled(Exception):
    """Too many failed logins for this user name or this address; retry after ``retry_s``."""

    def __init__(self, retry_s: int) -> None:
        super().__init__(f"too many failed logins; retry in {retry_s} s")
        self.retry_s = retry_s


@dataclass(frozen=True)
class User:
    name: str
    role: str
    agent: str | None = None
    """The agent id (``agents[].id`` in the config) a user of role ``agent`` answers as."""
    disabled: bool = False
    department: str | None = None
    """The department (承办单位) a user of role ``department`` acts for."""

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "agent": self.agent,
            "department": self.department,
        }


@dataclass(frozen=True)
class Limits:
    session_s: float = 8 * 3600
    failures_per_user: int = 5
    failures_per_address: int = 20
    window_s: float = 15 * 60


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _cut(value: object) -> str | None:
    if value is None:
        return None
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= FIELD_MAX else text[: FIELD_MAX - 1] + "…"


class AccessStore:
    """The access database at ``path`` (created 0600 with its folder 0700 if missing)."""

    def __init__(
        self,
        path: str | Path,
        limits: Limits = Limits(),
        *,
        clock: Callable[[], float] = time.time,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.path = Path(path)
        self.limits = limits
        self.clock = clock
        self._ph = hasher or PasswordHasher()
        self._dummy = self._ph.hash(secrets.token_hex(16))
        self._lock = threading.Lock()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(self.path, 0o600)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=DELETE")
        self._db.executescript(_SCHEMA)

    @classmethod
    def from_config(cls, config: HotlineConfig, **kwargs: Any) -> AccessStore:
        c = config.console
        limits = Limits(
            session_s=c.session_minutes * 60,
            failures_per_user=c.login_failures_per_user,
            failures_per_address=c.login_failures_per_address,
            window_s=c.login_window_minutes * 60,
        )
        return cls(c.users_db, limits, **kwargs)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ---- users --------------------------------------------------------------------------
    def add_user(
        self,
        name: str,
        password: str,
        role: str,
        agent: str | None = None,
        department: str | None = None,
    ) -> User:
        if not NAME.match(name):
            raise AccessError(f"a user name is 1-32 of A-Z a-z 0-9 _ . - (got {name!r:.40})")
        if role not in ROLES:
            raise AccessError(f"role {role!r:.20} is not one of {', '.join(ROLES)}")
        if (role == "agent") != bool(agent):
            raise AccessError("a user of role 'agent' needs --agent ID (and only that role)")
        if agent is not None and not NAME.match(agent):
            raise AccessError(f"bad agent id {agent!r:.40}")
        if (role == "department") != bool(department):
            raise AccessError("a user of role 'department' needs --department (and only that role)")
        if department is not None and not (
            len(department) <= 64 and department.strip() and department.isprintable()
        ):
            raise AccessError("a department is 1-64 printable characters")
        digest = self._ph.hash(self._checked(password))
        try:
            self._run(
                "INSERT INTO users (name, role, agent, hash, created, department) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, role, agent, digest, self.clock(), department),
            )
        except sqlite3.IntegrityError:
            raise AccessError(f"user {name!r} exists (use passwd or disable)") from None
        return User(name, role, agent, department=department)

    def set_password(self, name: str, password: str) -> None:
        """A new password; the user's sessions end."""
        digest = self._ph.hash(self._checked(password))
        self._existing(name)
        self._run("UPDATE users SET hash = ? WHERE name = ?", (digest, name))
        self._run("DELETE FROM sessions WHERE name = ?", (name,))

    def disable(self, name: str) -> None:
        """The user can no longer log in; their sessions end."""
        self._existing(name)
        self._run("UPDATE users SET disabled = 1 WHERE name = ?", (name,))
        self._run("DELETE FROM sessions WHERE name = ?", (name,))

    def users(self) -> list[User]:
        rows = self._run("SELECT name, role, agent, disabled, department FROM users ORDER BY name")
        return [User(n, r, a, bool(d), dep) for n, r, a, d, dep in rows]

    def _existing(self, name: str) -> None:
        if not self._run("SELECT 1 FROM users WHERE name = ?", (name,)):
            raise AccessError(f"no user {name!r:.40}")

    @staticmethod
    def _checked(password: str) -> str:
        if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
            raise AccessError(f"a password is {PASSWORD_MIN}-{PASSWORD_MAX} characters")
        return password

    # ---- logins and sessions -----------------------------------------------------------
    def login(self, name: str, password: str, address: str) -> tuple[str, User, float]:
        """A new session ``(token, user, expires)`` for a right name and password.

        Raises :class:`LoginThrottled` when this name or address failed too often within the
        window (before the password is even checked), else :class:`LoginRefused`."""
        now = self.clock()
        self._throttle(name, address, now)
        rows = self._run(
            "SELECT name, role, agent, disabled, hash, department FROM users WHERE name = ?",
            (name,),
        )
        ok = False
        if rows:
            n, role, agent, disabled, digest, department = rows[0]
            try:
                ok = self._ph.verify(digest, password) and not disabled
            except (VerificationError, InvalidHashError):
                ok = False
        else:  # the same work for an unknown name: no user enumeration by timing
            with contextlib.suppress(VerificationError):
                self._ph.verify(self._dummy, password)
        if not ok:
            self._run(
                "INSERT INTO login_failures (at, name, address) VALUES (?, ?, ?)",
                (now, _cut(name), address),
            )
            raise LoginRefused("wrong user name or password")
        token = secrets.token_urlsafe(32)
        expires = now + self.limits.session_s
        self._run(
            "INSERT INTO sessions (token, name, expires, address) VALUES (?, ?, ?, ?)",
            (_hash_token(token), n, expires, address),
        )
        self._run("DELETE FROM sessions WHERE expires < ?", (now,))
        return token, User(n, role, agent, department=department), expires

    def _throttle(self, name: str, address: str, now: float) -> None:
        since = now - self.limits.window_s
        self._run("DELETE FROM login_failures WHERE at < ?", (since,))
        for column, value, limit in (
            ("name", _cut(name), self.limits.failures_per_user),
            ("address", address, self.limits.failures_per_address),
        ):
            rows = self._run(
                f"SELECT COUNT(*), MIN(at) FROM login_failures WHERE {column} = ? AND at >= ?",
                (value, since),
            )
            count, first = rows[0]
            if count >= limit:
                raise LoginThrottled(max(1, int(first + self.limits.window_s - now) + 1))

    def session(self, token: str) -> User | None:
        """The user of a live session, or None (unknown, expired or disabled)."""
        if not token or len(token) > 128:
            return None
        rows = self._run(
            "SELECT u.name, u.role, u.agent, u.department FROM sessions s JOIN users u "
            "ON u.name = s.name WHERE s.token = ? AND s.expires > ? AND u.disabled = 0",
            (_hash_token(token), self.clock()),
        )
        if not rows:
            return None
        name, role, agent, department = rows[0]
        return User(name, role, agent, department=department)

    def logout(self, token: str) -> None:
        self._run("DELETE FROM sessions WHERE token = ?", (_hash_token(token),))

    # ---- audit --------------------------------------------------------------------------
    def record(
        self,
        action: str,
        outcome: int,
        *,
        who: str | None = None,
        role: str | None = None,
        target: str | None = None,
        address: str | None = None,
        detail: str | None = None,
    ) -> None:
        """One audit entry: who did what to which target from where, and the outcome (an
        HTTP status).  Never give it caller numbers (第二十条): targets are call ids."""
        self._run(
            "INSERT INTO audit (at, who, role, action, target, address, outcome, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.clock(), _cut(who), role, _cut(action), _cut(target), _cut(address),
             int(outcome), _cut(detail)),
        )  # fmt: skip

    def audit(self, count: int = 100, who: str | None = None) -> list[dict[str, Any]]:
        """Newest first, at most ``count``; one user's when ``who`` is given."""
        sql = "SELECT id, at, who, role, action, target, address, outcome, detail FROM audit"
        args: tuple = ()
        if who is not None:
            sql, args = sql + " WHERE who = ?", (who,)
        rows = self._run(sql + " ORDER BY id DESC LIMIT ?", (*args, count))
        keys = ("id", "at", "who", "role", "action", "target", "address", "outcome", "detail")
        out = []
        for row in rows:
            entry = dict(zip(keys, row, strict=True))
            entry["at"] = datetime.fromtimestamp(entry["at"], UTC).isoformat()
            out.append(entry)
        return out
