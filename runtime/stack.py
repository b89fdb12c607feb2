"""One running hotline instance: Asterisk (chroot), Redis and the FastAGI server.

::

    stack = Stack("hotline.yaml", instance="demo")
    stack.up()          # idempotent: builds what is missing, starts what is not running
    stack.status()      # JSON-able dict
    stack.reload()      # re-render, validate, reload Asterisk without dropping calls
    stack.down()

Instances share the rootfs but nothing else: ``/etc/asterisk-<instance>`` and
``/var/{run,log,spool,lib,cache}/asterisk-<instance>`` inside the rootfs, and
``<run_dir>/<instance>/`` outside it (PID files, logs, the rendered config for reading).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from acd.router import READY_LINE as ACD_READY
from asterisk_conf.render import INSTANCE_RE, MODULE_DIR, MODULES, render
from calls.bridge import BRIDGE_READY
from hotline.ami import AmiClient, AmiError
from hotline.config import ConfigError, HotlineConfig, load_config
from runtime import rootfs as rootfs_mod
from runtime.procs import (
    StackError,
    alive,
    port_open,
    private_file,
    read_pid,
    spawn,
    stop,
    tail,
    udp_port_bound,
    wait_gone,
)

REPO = Path(__file__).resolve().parents[1]
REDIS_USER = "redis"
"""Redis runs as this user (Debian's redis-server package creates it); ``nobody`` if absent."""


def redis_user() -> str:
    try:
        pwd.getpwnam(REDIS_USER)
    except KeyError:
        return "nobody"
    return REDIS_USER


def redis_conf(host: str, port: int, password: str) -> str:
    """The stack's redis.conf: loopback/config address, password, AOF every second."""
    return "\n".join(
        [
            f"bind {host}",
            f"port {port}",
            "protected-mode yes",
            f"requirepass {password}",
            "dir .",
            'save ""',
            "appendonly yes",
            "appendfsync everysec",
            "daemonize no",
            "",
        ]
    )


DEFAULT_RUN_DIR = REPO / "run"
READY_TIMEOUT_S = 60.0


class Stack:
    """The processes of one instance, driven through PID files (safe to re-create)."""

    def __init__(
        self,
        config_path: str | Path,
        instance: str = "demo",
        run_dir: str | Path | None = None,
        rootfs: str | Path | None = None,
    ) -> None:
        if not INSTANCE_RE.match(instance):
            raise ValueError(f"instance name {instance!r} must match {INSTANCE_RE.pattern}")
        self.config_path = Path(config_path).resolve()
        self.instance = instance
        self.run = Path(run_dir or DEFAULT_RUN_DIR).resolve() / instance
        self.config_error: ConfigError | None = None
        try:
            self.config: HotlineConfig = load_config(self.config_path)
        except ConfigError as exc:
            # A file broken after `up` must not keep `down`/`status` from working: fall back
            # to the copy the running instance was started with; `up`/`reload` still refuse.
            if not self._last_good.exists():
                raise
            self.config = load_config(self._last_good)
            self.config_error = exc
        self._rootfs = Path(rootfs) if rootfs else None
        self.timings: dict[str, float] = {}
        self._records_log_from = 0
        """Where the records process's latest run starts in its log."""
        self._acd_log_from = 0

    # ---- paths ------------------------------------------------------------------------
    @property
    def _last_good(self) -> Path:
        return self.run / "config-in-use.yaml"

    def _make_run_dir(self) -> None:
        """``<run_dir>/<instance>``: PID files, logs and the config copy, for root only."""
        self.run.mkdir(parents=True, exist_ok=True)
        self.run.chmod(0o700)

    def _keep_last_good(self) -> None:
        """The config this instance runs with (it holds secrets: mode 0600)."""
        with os.fdopen(private_file(self._last_good, append=False), "wb") as out:
            out.write(self.config_path.read_bytes())

    @property
    def rootfs(self) -> Path:
        return self._rootfs or rootfs_mod.rootfs_path()

    @property
    def etc_in_root(self) -> str:
        return f"/etc/asterisk-{self.instance}"

    @property
    def asterisk_conf(self) -> str:
        return f"{self.etc_in_root}/asterisk.conf"

    def _inside(self, path: str) -> Path:
        return self.rootfs / path.lstrip("/")

    @property
    def asterisk_log(self) -> Path:
        return self._inside(f"/var/log/asterisk-{self.instance}/messages.log")

    def _pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def _logfile(self, name: str) -> Path:
        return self.run / f"{name}.log"

    # ---- whole stack ------------------------------------------------------------------
    def up(self, require_fastagi: bool = False, speech: bool = True) -> dict[str, object]:
        """Build what is missing and start what is not running (the speech service too
        unless ``speech`` is False); return :meth:`status`."""
        if self.config_error is not None:
            raise self.config_error
        self._make_run_dir()
        self._keep_last_good()
        started = time.monotonic()
        if self._rootfs is None:
            self._rootfs = rootfs_mod.ensure_rootfs()
        else:
            rootfs_mod.prepare(self._rootfs)
        self.timings["rootfs_s"] = round(time.monotonic() - started, 3)
        before = self.status()
        try:
            self.link_kb_sounds()
            self.link_notice_sounds()
            self.start_redis()
            self.start_fastagi(required=require_fastagi)
            self.start_records()
            self.start_acd()
            self.start_recordings()
            self.start_asterisk()
            self.wait_records_bridge()
            self.wait_acd()
            if speech:
                self.start_speech()
            self.start_console()
        except BaseException:
            # leave running only what was running before this call
            stops = {
                "asterisk": self.stop_asterisk,
                "fastagi": self.stop_fastagi,
                "speech": self.stop_speech,
                "console": self.stop_console,
                "records": self.stop_records,
                "acd": self.stop_acd,
                "recordings": self.stop_recordings,
                "redis": self.stop_redis,
            }
            for name, stop_component in stops.items():
                if not before[name]["running"]:  # type: ignore[index]
                    stop_component()
            raise
        return self.status()

    def down(self) -> dict[str, bool]:
        """Stop every component of this instance; return which ones were running."""
        return {
            "asterisk": self.stop_asterisk(),
            "fastagi": self.stop_fastagi(),
            "speech": self.stop_speech(),
            "console": self.stop_console(),
            "records": self.stop_records(),
            "acd": self.stop_acd(),
            "recordings": self.stop_recordings(),
            "redis": self.stop_redis(),
            "demo_phones": self.stop_demo_phones() > 0,
        }

    def status(self) -> dict[str, object]:
        cfg = self.config
        ast_pid = read_pid(self._pidfile("asterisk"))
        redis_pid = read_pid(self._pidfile("redis"))
        agi_pid = read_pid(self._pidfile("fastagi"))
        speech_pid = read_pid(self._pidfile("speech"))
        console_pid = read_pid(self._pidfile("console"))
        records_pid = read_pid(self._pidfile("records"))
        acd_pid = read_pid(self._pidfile("acd"))
        ast_running = alive(ast_pid, "asterisk")
        return {
            "instance": self.instance,
            "config": str(self.config_path),
            "rootfs": str(self.rootfs),
            "run_dir": str(self.run),
            "asterisk": {
                "running": ast_running,
                "pid": ast_pid if ast_running else None,
                "sip": f"udp:{cfg.sip.host}:{cfg.sip.port}",
                "sip_bound": ast_running and udp_port_bound(cfg.sip.port),
                "ami": f"tcp:{cfg.ami.host}:{cfg.ami.port}",
                "ami_listening": ast_running and port_open(cfg.ami.host, cfg.ami.port),
                "config_dir": str(self._inside(self.etc_in_root)),
                "log": str(self.asterisk_log),
            },
            "redis": {
                "running": alive(redis_pid, "redis-server"),
                "pid": redis_pid if alive(redis_pid, "redis-server") else None,
                "listen": f"tcp:{cfg.redis.host}:{cfg.redis.port}",
                "listening": port_open(cfg.redis.host, cfg.redis.port),
            },
            "fastagi": {
                "available": self.fastagi_available(),
                "running": alive(agi_pid, "agi_scripts"),
                "pid": agi_pid if alive(agi_pid, "agi_scripts") else None,
                "listen": f"tcp:{cfg.agi.host}:{cfg.agi.port}",
                "listening": port_open(cfg.agi.host, cfg.agi.port),
                "log": str(self._logfile("fastagi")),
            },
            "speech": {
                "available": self.speech_available(),
                "running": alive(speech_pid, "speech"),
                "pid": speech_pid if alive(speech_pid, "speech") else None,
                "listen": f"tcp:{cfg.agi.host}:{self.speech_port}",
                "listening": port_open(cfg.agi.host, self.speech_port),
                "log": str(self._logfile("speech")),
            },
            "console": {
                "enabled": cfg.console.enabled,
                "running": alive(console_pid, "console"),
                "pid": console_pid if alive(console_pid, "console") else None,
                "url": f"http://{cfg.console.host}:{cfg.console_port}/",
                "listening": port_open(cfg.console.host, cfg.console_port),
                "log": str(self._logfile("console")),
            },
            "records": {
                "running": alive(records_pid, "calls"),
                "pid": records_pid if alive(records_pid, "calls") else None,
                "store": str(cfg.calls.path),
                "log": str(self._logfile("records")),
            },
            "acd": {
                "mode": cfg.acd.mode,
                "running": alive(acd_pid, "acd"),
                "pid": acd_pid if alive(acd_pid, "acd") else None,
                "log": str(self._logfile("acd")),
                "routers": {
                    f"router-{i}": self.acd_router_pid(i) for i in range(1, cfg.acd.routers + 1)
                },
            },
            "recordings": {
                "running": alive(read_pid(self._pidfile("recordings")), "recordings"),
                "store": str(cfg.recording.store_dir),
                "log": str(self._logfile("recordings")),
            },
            "timings": dict(self.timings),
        }

    # ---- Asterisk ---------------------------------------------------------------------
    def render_config(self) -> Path:
        """Render this instance's config into the rootfs (and a copy under run/ to read)."""
        render(self.config, self.run / "asterisk-etc", self.instance)
        return render(self.config, self._inside(self.etc_in_root), self.instance)

    def _prepare_dirs(self) -> None:
        for sub in ("run", "log", "spool", "lib", "cache"):
            path = self._inside(f"/var/{sub}/asterisk-{self.instance}")
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)  # logs, recordings and the astdb hold caller data (第二十条)
        self._inside(f"/var/spool/asterisk-{self.instance}/monitor/hotline").mkdir(
            parents=True, exist_ok=True
        )
        missing = [m for m in MODULES if not self._inside(f"{MODULE_DIR}/{m}.so").exists()]
        if missing:
            raise StackError(f"Asterisk modules missing from {self.rootfs}: {', '.join(missing)}")
        sounds = REPO / "sounds" / "zh"
        self.timings["prompts_installed"] = rootfs_mod.install_sounds(self.rootfs, sounds)
        rootfs_mod.install_hold_music(self.rootfs, sounds)

    def link_kb_sounds(self) -> Path | None:
        """The knowledge base's spoken answers are written where Asterisk (in the chroot)
        plays them: ``kb.spoken_dir`` becomes a link to ``<rootfs>/…/sounds/zh/hotline/
        kb-<instance>`` (an existing real directory is left alone: the IVR then offers
        nothing, see ``kb.phone``)."""
        return self._link_sounds(Path(self.config.kb.spoken_dir), f"kb-{self.instance}")

    def link_notice_sounds(self) -> Path | None:
        """Incident notices' audio and uploaded prompts (``notices.sounds_dir``) the same
        way: a link to ``<rootfs>/…/sounds/zh/hotline/custom-<instance>``."""
        return self._link_sounds(Path(self.config.notices.sounds_dir), f"custom-{self.instance}")

    def _link_sounds(self, link: Path, name: str) -> Path | None:
        target = self.rootfs / rootfs_mod.SOUNDS_DIR / name
        target.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and link.resolve() != target.resolve():
            link.unlink()
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target, target_is_directory=True)
        return target if link.resolve() == target.resolve() else None

    def asterisk_running(self) -> bool:
        return alive(read_pid(self._pidfile("asterisk")), "asterisk")

    def start_asterisk(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Render the config, start Asterisk in the chroot and wait until it is ready."""
        if self.asterisk_running():
            self.wait_ready(timeout)
            return
        if os.geteuid() != 0:
            raise StackError("Asterisk runs with chroot in the rootfs: run `hotline up` as root")
        self._check_ports_free()
        self.render_config()
        self._prepare_dirs()
        ctl = self._inside(f"/var/run/asterisk-{self.instance}/asterisk.ctl")
        ctl.unlink(missing_ok=True)
        started = time.monotonic()
        spawn(
            ["chroot", str(self.rootfs), "asterisk", "-f", "-C", self.asterisk_conf],
            self._pidfile("asterisk"),
            self._logfile("asterisk"),
        )
        self.wait_ready(timeout)
        self.timings["asterisk_ready_s"] = round(time.monotonic() - started, 3)

    def _check_ports_free(self) -> None:
        cfg = self.config
        busy = []
        if udp_port_bound(cfg.sip.port):
            busy.append(f"SIP udp {cfg.sip.port}")
        if port_open(cfg.ami.host, cfg.ami.port):
            busy.append(f"AMI tcp {cfg.ami.host}:{cfg.ami.port}")
        if busy:
            raise StackError(
                f"cannot start Asterisk for instance {self.instance!r}: "
                f"{' and '.join(busy)} already in use by another process"
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until AMI login works and the PJSIP transport is listed; StackError (with the log
        tail) if Asterisk exits or is not ready within ``timeout``."""
        deadline = time.monotonic() + timeout
        last = "not started"
        while time.monotonic() < deadline:
            if not self.asterisk_running():
                raise StackError(
                    f"Asterisk ({self.instance}) exited during start-up.\n"
                    f"--- {self._logfile('asterisk')}\n{tail(self._logfile('asterisk'))}\n"
                    f"--- {self.asterisk_log}\n{tail(self.asterisk_log)}"
                )
            try:
                out = asyncio.run(self._ami_command("pjsip show transports", 2.0))
                if "transport-udp" in out:
                    # reloads are refused ("request queued") until Asterisk has fully booted
                    self.cli("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
                    return
                last = f"transport not listed yet: {out.strip()[-200:]}"
            except (AmiError, OSError) as exc:
                last = str(exc)
            time.sleep(0.05)
        raise StackError(
            f"Asterisk ({self.instance}) not ready after {timeout:.0f} s: {last}\n"
            f"--- {self.asterisk_log}\n{tail(self.asterisk_log)}"
        )

    async def _ami_command(self, command: str, timeout: float = 5.0) -> str:
        cfg = self.config.ami
        client = await AmiClient.connect(cfg.host, cfg.port, cfg.username, cfg.secret, timeout)
        try:
            return await client.command(command, timeout)
        finally:
            await client.close()

    def cli(self, command: str, timeout: float = 15.0) -> str:
        """Run an Asterisk CLI command (``asterisk -rx`` in the chroot) and return its output."""
        proc = subprocess.run(
            ["chroot", str(self.rootfs), "asterisk", "-C", self.asterisk_conf, "-rx", command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise StackError(f"asterisk -rx {command!r} failed: {proc.stderr or proc.stdout}")
        return proc.stdout

    def loaded_modules(self) -> set[str]:
        out = self.cli("module show")
        return {line.split()[0].removesuffix(".so") for line in out.splitlines() if ".so" in line}

    def stop_asterisk(self) -> bool:
        pidfile = self._pidfile("asterisk")
        pid = read_pid(pidfile)
        if not alive(pid, "asterisk"):
            pidfile.unlink(missing_ok=True)
            return False
        with contextlib.suppress(StackError, subprocess.TimeoutExpired):
            self.cli("core stop now", timeout=10)
        if pid and wait_gone(pid, 10):
            pidfile.unlink(missing_ok=True)
            return True
        return stop(pidfile, "asterisk")

    def reload(self) -> dict[str, str]:
        """Re-read and validate the config, re-render it and reload Asterisk's modules in
        place (calls in progress stay up).  An invalid file raises ConfigError and changes
        nothing."""
        new = load_config(self.config_path)
        self.config_error = None
        restart = self._needs_restart(new)
        self.config = new
        self.render_config()
        self._keep_last_good()
        out: dict[str, str] = {}
        for command in (
            "module reload res_pjsip.so",
            "dialplan reload",
            "queue reload all",
            "module reload res_musiconhold.so",
            "module reload manager",
        ):
            out[command] = self.cli(command).strip()
            if "cannot reload" in out[command] or "failed" in out[command].lower():
                raise StackError(f"{command!r} did not take effect: {out[command]}")
        out["fastagi"] = self.reread_fastagi()
        if restart:
            out["warning"] = f"needs a restart to take effect: {', '.join(restart)}"
        return out

    def put_in_place(self, config: HotlineConfig, commands: list[str]) -> dict[str, str]:
        """Run ``config`` (already validated and written to the config file): render it for
        Asterisk, run ``commands`` over AMI (reloads that keep calls up: see
        ``admin.lifecycle.RELOADS``) and have FastAGI reread the file.  Raises StackError
        when a reload did not take effect."""
        self.config = config
        self.config_error = None
        self.render_config()
        self._keep_last_good()
        out: dict[str, str] = {}
        for command in commands:
            try:
                out[command] = asyncio.run(self._ami_command(command, 15.0)).strip()
            except (AmiError, OSError) as exc:
                raise StackError(f"{command!r} failed over AMI: {exc}") from exc
            if "cannot reload" in out[command] or "failed" in out[command].lower():
                raise StackError(f"{command!r} did not take effect: {out[command]}")
        out["fastagi"] = self.reread_fastagi()
        return out

    def reread_fastagi(self, timeout: float = 10.0) -> str:
        """SIGHUP to the FastAGI server: it rereads the config file for the calls that start
        from then on (calls in progress finish on the config they started with).  Waits for
        its log to confirm; StackError when it refused the file or did not answer."""
        pid = read_pid(self._pidfile("fastagi"))
        if not alive(pid, "agi_scripts"):
            return "not running"
        log_file = self._logfile("fastagi")
        start = log_file.stat().st_size if log_file.exists() else 0
        os.kill(pid, signal.SIGHUP)  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(log_file, "rb") as fh:
                fh.seek(start)
                text = fh.read().decode(errors="replace")
            for line in text.splitlines():
                if "config reread:" in line:
                    return line.split("config reread:", 1)[1].strip()
                if "config reread refused" in line:
                    raise StackError(f"FastAGI kept its config: {line}")
            time.sleep(0.05)
        raise StackError(f"FastAGI (pid {pid}) did not confirm rereading the config")

    def _needs_restart(self, new: HotlineConfig) -> list[str]:
        old = self.config
        changed = []
        if (old.sip.host, old.sip.port) != (new.sip.host, new.sip.port):
            changed.append("sip transport address")
        if (old.ami.host, old.ami.port) != (new.ami.host, new.ami.port):
            changed.append("AMI address")
        return changed

    # ---- Redis ------------------------------------------------------------------------
    @property
    def redis_dir(self) -> Path:
        """Redis's private data directory (its AOF)."""
        return self.run / "redis"

    def start_redis(self, timeout: float = 10.0) -> None:
        """Redis on the config's host:port: protected mode, ``requirepass`` from the config,
        the 第二十九条 state persisted (AOF, fsync every second) in :attr:`redis_dir` (mode
        0700), run as the unprivileged :data:`REDIS_USER`."""
        cfg = self.config.redis
        if alive(read_pid(self._pidfile("redis")), "redis-server"):
            return
        if not cfg.password:
            raise StackError("redis.password is not set in the config: Redis needs a password")
        if port_open(cfg.host, cfg.port):
            raise StackError(f"Redis port {cfg.host}:{cfg.port} is already in use")
        server = shutil.which("redis-server")
        if server is None:
            raise StackError("redis-server is not installed (apt-get install redis-server)")
        self._make_run_dir()
        user = redis_user()
        uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
        data = self.redis_dir
        data.mkdir(mode=0o700, exist_ok=True)
        os.chown(data, uid, gid)
        data.chmod(0o700)
        for path in data.rglob("*"):  # an AOF written by an earlier (root) Redis
            os.chown(path, uid, gid)
        spawn(
            [server, "-"],  # the config (with the password) on stdin: in no file, no argv
            self._pidfile("redis"),
            self._logfile("redis"),
            cwd=data,  # entered before the switch to `user`: the run dir stays root's
            user=user,
            stdin_data=redis_conf(cfg.host, cfg.port, cfg.password).encode(),
        )
        self._wait_port("redis", "redis-server", cfg.host, cfg.port, timeout)

    def stop_redis(self) -> bool:
        return stop(self._pidfile("redis"), "redis-server")

    # ---- FastAGI ----------------------------------------------------------------------
    @staticmethod
    def fastagi_available() -> bool:
        return (REPO / "agi_scripts" / "__main__.py").exists() or (
            importlib.util.find_spec("agi_scripts.__main__") is not None
        )

    def start_fastagi(self, required: bool = True, timeout: float = 20.0) -> bool:
        """Start ``python -m agi_scripts serve``; False (or StackError if ``required``) when
        the module is missing or it does not listen."""
        cfg = self.config.agi
        if alive(read_pid(self._pidfile("fastagi")), "agi_scripts"):
            return True
        if not self.fastagi_available():
            if required:
                raise StackError("agi_scripts has no __main__ yet: FastAGI cannot start")
            return False
        if port_open(cfg.host, cfg.port):
            raise StackError(f"FastAGI port {cfg.host}:{cfg.port} is already in use")
        env = self._service_env()
        spawn(
            [sys.executable, "-m", "agi_scripts", "serve", "--config", str(self.config_path)],
            self._pidfile("fastagi"),
            self._logfile("fastagi"),
            cwd=REPO,
            env=env,
        )
        try:
            self._wait_port("fastagi", "agi_scripts", cfg.host, cfg.port, timeout)
        except StackError:
            if required:
                raise
            return False
        return True

    def stop_fastagi(self) -> bool:
        return stop(self._pidfile("fastagi"), "agi_scripts")

    # ---- speech service (AudioSocket) ---------------------------------------------------
    @property
    def speech_port(self) -> int:
        """The speech service's AudioSocket port: the FastAGI port + 1 (4574 for the demo);
        exported to FastAGI and the service as ``HOTLINE_SPEECH_PORT``."""
        return self.config.agi.port + 1

    def _service_env(self) -> dict[str, str]:
        return dict(
            os.environ,
            HOTLINE_INSTANCE=self.instance,
            HOTLINE_RUN_DIR=str(self.run.parent),
            HOTLINE_ROOTFS=str(self.rootfs),
            HOTLINE_SPEECH_PORT=str(self.speech_port),
            HOTLINE_SPEECH_AUDIO_DIR=str(self.run / "speech-audio"),
            PYTHONUNBUFFERED="1",
        )

    @staticmethod
    def speech_available() -> bool:
        return (REPO / "speech" / "__main__.py").exists()

    def start_speech(self, required: bool = False, timeout: float = 120.0) -> bool:
        """Start ``python -m speech serve`` (loads the recogniser, so allow time); False (or
        StackError if ``required``) when it is missing or does not listen.  Without it a
        caller asked to speak is handled by keys / a person (fail open)."""
        host = self.config.agi.host
        if alive(read_pid(self._pidfile("speech")), "speech"):
            return True
        if not self.speech_available() or port_open(host, self.speech_port):
            if required:
                raise StackError(f"speech service cannot start on {host}:{self.speech_port}")
            return False
        spawn(
            [
                *(sys.executable, "-m", "speech", "serve", "--config", str(self.config_path)),
                *("--host", host, "--port", str(self.speech_port)),
            ],
            self._pidfile("speech"),
            self._logfile("speech"),
            cwd=REPO,
            env=self._service_env(),
        )
        try:
            self._wait_port("speech", "speech", host, self.speech_port, timeout)
        except StackError:
            if required:
                raise
            return False
        return True

    def stop_speech(self) -> bool:
        return stop(self._pidfile("speech"), "speech")

    # ---- agent console ----------------------------------------------------------------
    def start_console(self, required: bool = False, timeout: float = 30.0) -> bool:
        """Start ``python -m console serve`` on ``console_port`` (loopback) when the config
        enables it; False (or StackError if ``required``) otherwise.  Users log in as
        themselves (``hotline users add``).
        Calls never depend on it."""
        c = self.config.console
        if alive(read_pid(self._pidfile("console")), "console"):
            return True
        if not c.enabled or port_open(c.host, self.config.console_port):
            if required:
                raise StackError(f"console cannot start on {c.host}:{self.config.console_port}")
            return False
        spawn(
            [sys.executable, "-m", "console", "serve", "--config", str(self.config_path)],
            self._pidfile("console"),
            self._logfile("console"),
            cwd=REPO,
            env=self._service_env(),
        )
        try:
            self._wait_port("console", "console", c.host, self.config.console_port, timeout)
        except StackError:
            if required:
                raise
            return False
        return True

    def stop_console(self) -> bool:
        return stop(self._pidfile("console"), "console")

    # ---- call records (AMI bridge + record keeper) -------------------------------------
    def start_records(self, timeout: float = 10.0) -> bool:
        """Start ``python -m calls serve`` (the AMI bridge and the record keeper); False
        if it did not come up.  Calls never depend on it."""
        pidfile = self._pidfile("records")
        if alive(read_pid(pidfile), "calls"):
            return True
        log_file = self._logfile("records")
        self._records_log_from = log_file.stat().st_size if log_file.exists() else 0
        argv = [sys.executable, "-m", "calls", "serve", "--config", str(self.config_path)]
        spawn(argv, pidfile, self._logfile("records"), cwd=REPO, env=self._service_env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "call records:" in self._logfile("records").read_text(errors="replace"):
                return True
            if not alive(read_pid(pidfile)):
                break
            time.sleep(0.05)
        return alive(read_pid(pidfile), "calls")

    def wait_records_bridge(self, timeout: float = 20.0) -> bool:
        """Wait until the records process's AMI bridge has logged in (after Asterisk is up):
        before that, a call's start and caller would not reach its record.  False (logged in
        ``timings``) when it did not within ``timeout``; calls never depend on it."""
        started = time.monotonic()
        ready = self._wait_line("records", "calls", BRIDGE_READY, self._records_log_from, timeout)
        self.timings["records_bridge_s"] = round(time.monotonic() - started, 3)
        self.timings["records_bridge_ready"] = ready
        return ready

    def _wait_line(self, name: str, marker: str, line: str, offset: int, timeout: float) -> bool:
        """Whether ``line`` appears in process ``name``'s log after ``offset`` within
        ``timeout`` (False at once when the process is gone)."""
        started = time.monotonic()
        pidfile, log_file = self._pidfile(name), self._logfile(name)
        while time.monotonic() - started < timeout and alive(read_pid(pidfile), marker):
            with contextlib.suppress(OSError), open(log_file, "rb") as f:
                f.seek(offset)
                if line.encode() in f.read():
                    return True
            time.sleep(0.05)
        return False

    def stop_records(self) -> bool:
        return stop(self._pidfile("records"), "calls")

    # ---- the ACD router (acd.mode: router) -----------------------------------------------
    @staticmethod
    def acd_process(index: int) -> str:
        """Pidfile/log name of router ``index`` (1: ``acd``, its name ``router-1``)."""
        return "acd" if index == 1 else f"acd-{index}"

    def start_acd(self, timeout: float = 10.0) -> bool:
        """Start ``python -m acd serve`` when ``acd.mode`` is ``router`` (``acd.routers`` of
        them, ``router-1`` …); False if the first is not running.  Calls never depend on it:
        without its heartbeat they go to app_queue."""
        if self.config.acd.mode != "router":
            return False
        for index in range(2, self.config.acd.routers + 1):
            self.start_acd_router(index, timeout)
        return self.start_acd_router(1, timeout)

    def start_acd_router(self, index: int, timeout: float = 10.0) -> bool:
        """Start router ``index`` (``router-<index>``) unless it runs."""
        name = self.acd_process(index)
        pidfile = self._pidfile(name)
        if alive(read_pid(pidfile), "acd"):
            return True
        log_file = self._logfile(name)
        if index == 1:
            self._acd_log_from = log_file.stat().st_size if log_file.exists() else 0
        argv = [sys.executable, "-m", "acd", "serve", "--config", str(self.config_path),
                "--name", f"router-{index}"]  # fmt: skip
        spawn(argv, pidfile, log_file, cwd=REPO, env=self._service_env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ACD router " in log_file.read_text(errors="replace"):
                return True
            if not alive(read_pid(pidfile)):
                break
            time.sleep(0.05)
        return alive(read_pid(pidfile), "acd")

    def wait_acd(self, timeout: float = 20.0) -> bool:
        """Wait until the router follows AMI (after Asterisk is up); False (in ``timings``)
        when it did not within ``timeout``."""
        if self.config.acd.mode != "router":
            return False
        started = time.monotonic()
        ready = self._wait_line("acd", "acd", ACD_READY, self._acd_log_from, timeout)
        for index in range(2, self.config.acd.routers + 1):
            name = self.acd_process(index)
            ready = ready and self._wait_line(name, "acd", ACD_READY, 0, timeout)
        self.timings["acd_ready_s"] = round(time.monotonic() - started, 3)
        self.timings["acd_ready"] = ready
        return ready

    def stop_acd(self) -> bool:
        extra = [stop(self._pidfile(self.acd_process(i)), "acd") for i in range(2, 5)]
        return stop(self._pidfile("acd"), "acd") or any(extra)

    def acd_router_pid(self, index: int) -> int | None:
        """PID of router ``index`` when it runs."""
        pid = read_pid(self._pidfile(self.acd_process(index)))
        return pid if alive(pid, "acd") else None

    # ---- recordings (issue 11) ----------------------------------------------------------
    @property
    def recording_spool(self) -> Path:
        """Where MixMonitor writes this instance's recordings (inside the rootfs, 0700)."""
        return self._inside(f"/var/spool/asterisk-{self.instance}/monitor/hotline")

    def start_recordings(self, timeout: float = 10.0) -> bool:
        """Start ``python -m recordings serve`` when recording is on; False if it did not
        come up.  Calls never depend on it (unmoved files wait in the spool)."""
        pidfile = self._pidfile("recordings")
        if not self.config.recording.enabled:
            return False
        if alive(read_pid(pidfile), "recordings"):
            return True
        self.recording_spool.mkdir(parents=True, exist_ok=True)
        argv = [
            *(sys.executable, "-m", "recordings", "serve", "--config", str(self.config_path)),
            *("--spool", str(self.recording_spool)),
        ]
        log_file = self._logfile("recordings")
        start = log_file.stat().st_size if log_file.exists() else 0
        spawn(argv, pidfile, log_file, cwd=REPO, env=self._service_env())
        if self._wait_line("recordings", "recordings", "recordings: watching", start, timeout):
            return True
        return alive(read_pid(pidfile), "recordings")

    def stop_recordings(self) -> bool:
        return stop(self._pidfile("recordings"), "recordings")

    # ---- demo phones ------------------------------------------------------------------
    def _phones(self) -> list[tuple[str, str, int]]:
        cfg = self.config
        out = [(a.endpoint, a.host, a.port) for a in cfg.agents]
        out.append(("emergency-trunk", cfg.trunks.emergency.host, cfg.trunks.emergency.port))
        return out

    def start_demo_phones(self) -> list[str]:
        """sipp UAS phones that answer every agent endpoint and the emergency trunk (for a
        demo without real phones); return what listens where."""
        sipp = shutil.which("sipp")
        if sipp is None:
            raise StackError("sipp is not installed (apt-get install sip-tester)")
        out = []
        for name, host, port in self._phones():
            pidfile = self._pidfile(f"phone-{name}")
            if not alive(read_pid(pidfile), "sipp"):
                # -ci: sipp's control socket on the phone's own address, not 0.0.0.0:8888
                argv = [sipp, "-sn", "uas", "-i", host, "-p", str(port), "-ci", host, "-nostdin"]
                spawn(argv, pidfile, self._logfile(f"phone-{name}"), cwd=self.run)
            out.append(f"{name} udp:{host}:{port} (sipp uas pid {read_pid(pidfile)})")
        return out

    def stop_demo_phones(self) -> int:
        return sum(stop(self._pidfile(f"phone-{name}"), "sipp") for name, _, _ in self._phones())

    # ---- helpers ----------------------------------------------------------------------
    def _wait_port(self, name: str, marker: str, host: str, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pid = read_pid(self._pidfile(name))
        while time.monotonic() < deadline:
            if port_open(host, port):
                return
            if not alive(pid):  # no marker: right after fork the child is still "python"
                break
            time.sleep(0.05)
        stop(self._pidfile(name), None)
        raise StackError(
            f"{name} did not listen on {host}:{port}.\n--- {self._logfile(name)}\n"
            f"{tail(self._logfile(name))}"
        )
