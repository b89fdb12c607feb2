"""Who may do what in the consoles: users with roles, passwords (argon2), sessions with expiry,
rate-limited logins and an audit log of every action, in one SQLite file (mode 0600).

:mod:`access.store` is the storage (used by ``hotline users`` and every console);
:mod:`access.web` plugs it into a FastAPI app (middleware, one dependency per role, login).
"""

from access.store import (
    ROLES,
    AccessError,
    AccessStore,
    LoginRefused,
    LoginThrottled,
    User,
)

__all__ = ["ROLES", "AccessError", "AccessStore", "LoginRefused", "LoginThrottled", "User"]
