"""Background processes with PID files: start, find, stop, and wait for a TCP port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


class StackError(RuntimeError):
    """A component could not be built, started or reached; the message says why."""


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file ('' when it does not exist)."""
    try:
        data = path.read_bytes()[-16384:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def alive(pid: int | None, marker: str | None = None) -> bool:
    """Whether ``pid`` runs (and is not a zombie) and, if given, has ``marker`` in its
    command line (so a recycled PID is not mistaken for ours)."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rpartition(")")[2].split()[0] == "Z":
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        return False
    if marker is None:
        return True
    for _ in range(20):  # the command line reads empty for a moment while a process execs
        cmdline = _cmdline(pid)
        if cmdline:
            return any(marker in part for part in cmdline)
        time.sleep(0.01)
    return Path(f"/proc/{pid}").exists()


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def private_file(path: Path, append: bool = True) -> int:
    """Open ``path`` for writing, mode 0600 (also when it existed with another mode): logs
    and files with secrets are never world-readable.  Returns the file descriptor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def spawn(
    argv: list[str],
    pidfile: Path,
    logfile: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
    stdin_data: bytes | None = None,
) -> int:
    """Start ``argv`` in its own session (as ``user`` when given, umask 077, ``stdin_data`` on
    its standard input), output appended to ``logfile`` (mode 0600); record its PID."""
    with os.fdopen(private_file(logfile), "ab") as log:
        log.write(f"--- {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL if stdin_data is None else subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            umask=0o077,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    if stdin_data is not None and proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(stdin_data)
        proc.stdin.close()
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def stop(pidfile: Path, marker: str | None, timeout: float = 10.0) -> bool:
    """SIGTERM the process in ``pidfile`` (SIGKILL after ``timeout``); True if it ran.
    ``marker`` must appear in its command line (None: a child we just started)."""
    pid = read_pid(pidfile)
    ran = alive(pid, marker)
    if ran and pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5.0)
    pidfile.unlink(missing_ok=True)
    return ran


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def udp_port_bound(port: int) -> bool:
    """Whether some process has a UDP socket bound to ``port`` (from /proc/net/udp*)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local = row.split()[1]
            if int(local.rpartition(":")[2], 16) == port:
                return True
    return False
