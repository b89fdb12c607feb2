"""The Debian sid root filesystem that holds Asterisk 22, built once with mmdebstrap.

``ensure_rootfs()`` returns ``${HOTLINE_CACHE:-/var/cache/hotline}/rootfs-<hash>``, building
it if its stamp file is missing (or adopting a matching ``rootfs.tmp`` left by a manual
build).  Several instances share one rootfs; each has its own ``/etc/asterisk-<instance>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import shutil
import socket
import struct
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path

from runtime.procs import StackError

SUITE = "sid"
VARIANT = "apt"
PACKAGES = ("asterisk", "asterisk-modules", "asterisk-core-sounds-en-gsm")
APT_OPTIONS = ('Acquire::Check-Valid-Until "false"',)
STAMP = ".hotline-rootfs-complete"
SOUNDS_DIR = "usr/share/asterisk/sounds/zh/hotline"
MOH_DIR = "usr/share/asterisk/moh-hotline"


def cache_dir() -> Path:
    return Path(os.environ.get("HOTLINE_CACHE", "/var/cache/hotline"))


def package_key() -> str:
    """What the rootfs is made of; its hash names the directory."""
    return f"{SUITE}|{VARIANT}|{','.join(sorted(PACKAGES))}|{';'.join(APT_OPTIONS)}"


def rootfs_path() -> Path:
    digest = hashlib.sha256(package_key().encode()).hexdigest()[:12]
    return cache_dir() / f"rootfs-{digest}"


def is_complete(root: Path) -> bool:
    try:
        return (root / STAMP).read_text().strip() == package_key()
    except OSError:
        return False


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def installed_packages(root: Path) -> set[str]:
    """Packages marked installed in the rootfs's dpkg database."""
    try:
        text = (root / "var/lib/dpkg/status").read_text(errors="replace")
    except OSError:
        return set()
    out: set[str] = set()
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Status") == "install ok installed" and "Package" in fields:
            out.add(fields["Package"])
    return out


def _ensure_mmdebstrap() -> str:
    found = shutil.which("mmdebstrap")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "mmdebstrap"], check=True)
    found = shutil.which("mmdebstrap")
    if not found:
        raise StackError("mmdebstrap is not installed and apt-get could not install it")
    return found


def build(target: Path) -> float:
    """Build a fresh rootfs into ``target`` with mmdebstrap; return the seconds it took."""
    tool = _ensure_mmdebstrap()
    tmp = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    argv = [tool, f"--variant={VARIANT}"]
    argv += [f"--aptopt={opt}" for opt in APT_OPTIONS]
    argv += [f"--include={','.join(PACKAGES)}", SUITE, str(tmp)]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StackError(
            f"mmdebstrap failed ({proc.returncode}):\n" + "\n".join(proc.stderr.splitlines()[-20:])
        )
    (tmp / STAMP).write_text(package_key() + "\n")
    tmp.rename(target)
    return time.monotonic() - started


def ensure_rootfs() -> Path:
    """The complete rootfs, built (or adopted from ``rootfs.tmp``) if needed."""
    root = rootfs_path()
    with _lock(cache_dir() / ".rootfs.lock"):
        if not is_complete(root):
            shutil.rmtree(root, ignore_errors=True)
            manual = cache_dir() / "rootfs.tmp"
            if manual.is_dir() and set(PACKAGES) <= installed_packages(manual):
                (manual / STAMP).write_text(package_key() + "\n")
                manual.rename(root)
            else:
                build(root)
        prepare(root)
    return root


def prepare(root: Path) -> None:
    """Name resolution that never stalls: hosts with this machine's name, no DNS servers."""
    host = socket.gethostname()
    hosts = f"127.0.0.1\tlocalhost {host}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    etc = root / "etc"
    if not (etc / "hosts").exists() or (etc / "hosts").read_text() != hosts:
        (etc / "hosts").write_text(hosts)
    resolv = etc / "resolv.conf"
    if resolv.is_symlink() or not resolv.exists() or resolv.read_text():
        resolv.unlink(missing_ok=True)
        resolv.write_text("")


def install_sounds(root: Path, sounds: Path) -> int:
    """Copy the repo's ``sounds/zh/*.wav`` prompts into the rootfs; return how many."""
    dest = root / SOUNDS_DIR
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for wav in sorted(sounds.glob("*.wav")):
        target = dest / wav.name
        if not target.exists() or target.read_bytes() != wav.read_bytes():
            shutil.copyfile(wav, target)
        count += 1
    return count


def install_hold_music(root: Path, sounds: Path) -> Path:
    """Music on hold for the queues: ``sounds/zh/moh/*.wav`` if present, else a soft
    generated two-tone chime (8 kHz 16-bit mono) so callers never wait in silence."""
    dest = root / MOH_DIR
    dest.mkdir(parents=True, exist_ok=True)
    provided = sorted((sounds / "moh").glob("*.wav"))
    if provided:
        for wav in provided:
            shutil.copyfile(wav, dest / wav.name)
        return dest
    target = dest / "chime.wav"
    if not target.exists():
        rate, frames = 8000, bytearray()
        for freq, seconds in ((523.25, 0.6), (659.25, 0.6), (783.99, 0.9), (0.0, 2.0)):
            n = int(rate * seconds)
            for i in range(n):
                env = min(1.0, i / 400, (n - i) / 800)
                value = 0.12 * env * math.sin(2 * math.pi * freq * i / rate) if freq else 0.0
                frames += struct.pack("<h", int(value * 32767))
        with wave.open(str(target), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(bytes(frames))
    return dest
