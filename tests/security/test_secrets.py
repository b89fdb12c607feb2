"""Finding 5 (issue 8): files with secrets and logs are for root only, no secret is written to
a log (a token sent as ``?token=`` or a bearer header included), and Redis wants a password, runs in
protected mode and not as root."""

from __future__ import annotations

import contextlib
import os
import secrets as secrets_mod
import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .security_helpers import INSTANCE, SecStack

pytestmark = pytest.mark.integration


def readable_by_others(path: Path) -> bool:
    """Whether a user other than the owner (and its group) can read ``path``: the file is
    world-readable and every directory above it world-searchable."""
    if not path.stat().st_mode & stat.S_IROTH:
        return False
    return all(p.stat().st_mode & stat.S_IXOTH for p in path.parents)


def instance_files(sec: SecStack) -> list[Path]:
    rootfs = sec.stack.rootfs  # type: ignore[attr-defined]
    roots = [sec.tmp / "run" / INSTANCE, rootfs / "etc" / f"asterisk-{INSTANCE}"]
    roots.append(rootfs / "var" / "log" / f"asterisk-{INSTANCE}")
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


def test_files_with_secrets_and_every_log_are_private(sec: SecStack) -> None:
    run = sec.tmp / "run" / INSTANCE
    rootfs = sec.stack.rootfs  # type: ignore[attr-defined]
    for secret_file in (
        run / "config-in-use.yaml",
        run / "asterisk-etc" / "manager.conf",
        rootfs / "etc" / f"asterisk-{INSTANCE}" / "manager.conf",
    ):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600, secret_file
    logs = [p for p in instance_files(sec) if p.suffix == ".log" or p.name == "messages.log"]
    assert len(logs) >= 4, logs  # asterisk, fastagi, console, redis, messages
    exposed = [p for p in instance_files(sec) if readable_by_others(p)]
    assert not exposed, exposed


def test_no_secret_lands_in_a_log(sec: SecStack) -> None:
    c = sec.config
    token, bearer = secrets_mod.token_urlsafe(24), secrets_mod.token_urlsafe(24)
    url = f"http://{c.console.host}:{c.console_port}/api/no-such-page?token={token}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {bearer}"})
    with contextlib.suppress(urllib.error.HTTPError):  # refused: no such session
        urllib.request.urlopen(request, timeout=5).close()
    secrets = [c.ami.secret, c.redis.password, token, bearer]
    logs = [p for p in instance_files(sec) if p.suffix == ".log" or p.name == "messages.log"]
    assert any(p.name == "console.log" for p in logs), logs
    leaks = [(p, s) for p in logs for s in secrets if s and s.encode() in p.read_bytes()]
    assert not leaks, leaks


def test_redis_needs_its_password_is_protected_and_not_root(sec: SecStack) -> None:
    r = sec.config.redis
    with socket.create_connection((r.host, r.port), timeout=3) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(4096).startswith(b"-NOAUTH")
        s.sendall(f"AUTH {r.password}\r\nCONFIG GET protected-mode\r\n".encode())
        reply = b""
        while reply.count(b"\r\n") < 6:  # +OK, then a 2-element array
            reply += s.recv(4096)
        assert reply.startswith(b"+OK") and b"yes" in reply.split(b"protected-mode", 1)[1]
    pid = sec.stack.status()["redis"]["pid"]  # type: ignore[attr-defined,index]
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert "0" not in uids, status
    data = sec.stack.redis_dir  # type: ignore[attr-defined]
    assert stat.S_IMODE(data.stat().st_mode) == 0o700 and data.stat().st_uid == int(uids[0])
    assert os.path.isdir(data / "appendonlydir")
