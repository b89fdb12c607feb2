"""Validate, diff, apply and roll back the hotline config without dropping a call.

``Lifecycle(config_path, store, instance, target)``:

* :meth:`Lifecycle.preview` validates new YAML text with the validator of ``hotline config
  check`` (plus the apply rules: no emergency line removed, ``admin.versions_db`` kept) and
  returns the YAML diff against what runs, the diff of every generated Asterisk file, the
  Asterisk reload commands those files need and what needs a restart.  Nothing is written.
* :meth:`Lifecycle.apply` does the same, then — holding the version store, refused with
  :class:`~admin.versions.StaleBase` if the edit's base no longer runs — writes the file
  (atomically, 0600), has the ``target`` (the running stack) render and reload only what
  changed, and records the new version.  A failure puts the old file and config back.
* :meth:`Lifecycle.rollback` applies an old version's text as a new version.

Secrets (``ami.secret``, ``redis.password``) never leave through :func:`mask`: the console
shows placeholders, and :func:`unmask` puts the running values back before validation.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from admin.versions import NoSuchVersion, StaleBase, Version, VersionStore
from asterisk_conf.render import render_text
from hotline import safe_yaml
from hotline.config import ConfigError, HotlineConfig, field_line, parse_config

__all__ = ["ApplyFailed", "ConfigError", "Lifecycle", "NoSuchVersion", "StaleBase"]

RELOADS: dict[str, str] = {
    "extensions.conf": "dialplan reload",
    "pjsip.conf": "module reload res_pjsip.so",
    "queues.conf": "queue reload all",
    "queuerules.conf": "queue reload rules",
    "musiconhold.conf": "module reload res_musiconhold.so",
    "manager.conf": "module reload manager",
    "rtp.conf": "module reload res_rtp_asterisk.so",
    "features.conf": "module reload features",
    "logger.conf": "logger reload",
    "cdr.conf": "module reload cdr",
    "cel.conf": "module reload cel",
    "acl.conf": "module reload acl",
}
"""A changed generated file → the Asterisk command that rereads it and keeps calls up.  A file
not listed here (``asterisk.conf``, ``modules.conf`` …) needs an Asterisk restart, which
drops calls: it is reported, never done by an apply."""

SERVICE_RESTART: dict[str, str] = {
    "ami": "Asterisk and every service (AMI address)",
    "agi": "Asterisk, FastAGI and speech (FastAGI address)",
    "redis": "FastAGI, console, records (Redis)",
    "throttle": "FastAGI and console (caller rules)",
    "tickets": "FastAGI and console (ticket store)",
    "calls": "records and console (call records)",
    "console": "console",
    "kb": "console and FastAGI (knowledge base)",
    "speech": "speech service (vocabulary, engine; speech.mode is live)",
    "city": "speech service (districts)",
}
"""Sections the running services read only at start: a change there is applied to the file
and reported as needing that restart."""

SECRET_FIELDS = (("ami", "secret"), ("redis", "password"))
EDITOR_FILE = "hotline.yaml"


class ApplyFailed(Exception):
    """The new config validated but could not be put in place; the old one runs again."""


class Target(Protocol):
    """The running instance an apply reaches (``runtime.stack.Stack`` through
    :class:`StackTarget`)."""

    def running(self) -> bool: ...

    def put_in_place(self, config: HotlineConfig, commands: list[str]) -> dict[str, str]:
        """Render ``config`` for Asterisk, run ``commands`` (AMI) and have the services
        that read the config reread it; raise on failure."""
        ...


@dataclass
class Preview:
    """What an apply of some text would do (nothing done yet)."""

    config: HotlineConfig
    text: str
    yaml_diff: str
    asterisk_diffs: dict[str, str]
    commands: list[str]
    restart_needed: list[str]
    services: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.yaml_diff)

    def as_dict(self, secrets: dict[str, str]) -> dict[str, object]:
        return {
            "yaml_diff": mask(self.yaml_diff, secrets),
            "asterisk_diffs": {k: mask(v, secrets) for k, v in self.asterisk_diffs.items()},
            "asterisk_commands": self.commands,
            "services_reread": self.services,
            "restart_needed": self.restart_needed,
        }


def secrets_of(*configs: HotlineConfig | None) -> dict[str, str]:
    """Secret value → placeholder, for every secret of ``configs``."""
    out: dict[str, str] = {}
    for cfg in configs:
        if cfg is None:
            continue
        for section, name in SECRET_FIELDS:
            value = getattr(getattr(cfg, section), name)
            if value:
                out[value] = f"hidden.{section}.{name}"
    return out


def mask(text: str, secrets: dict[str, str]) -> str:
    """``text`` with every secret value replaced by its placeholder."""
    for value, placeholder in sorted(secrets.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(value, placeholder)
    return text


def unmask(text: str, secrets: dict[str, str]) -> str:
    """Placeholders left in an edit become the running secrets again."""
    for value, placeholder in secrets.items():
        text = text.replace(placeholder, value)
    return text


def unified(old: str, new: str, name: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        f"a/{name}",
        f"b/{name}",
        n=3,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def apply_rules(old: HotlineConfig | None, new: HotlineConfig, text: str) -> list[tuple]:
    """Problems an apply refuses beyond the schema, as ``(field, line, message)``."""
    if old is None:
        return []
    out = []
    for line in sorted(set(old.emergency.lines) - set(new.emergency.lines)):
        out.append(
            (
                "emergency.lines",
                field_line(text, "emergency.lines"),
                f"emergency line {line} was removed: 110/119/120/122 stay reachable (第九条)",
            )
        )
    if old.admin.versions_db != new.admin.versions_db:
        out.append(
            (
                "admin.versions_db",
                field_line(text, "admin.versions_db"),
                "the version store cannot move by an apply (edit the file and restart)",
            )
        )
    return out


def changed_sections(old: HotlineConfig, new: HotlineConfig) -> set[str]:
    return {name for name in HotlineConfig.model_fields if getattr(old, name) != getattr(new, name)}


def restarts(old: HotlineConfig, new: HotlineConfig) -> list[str]:
    """What a change between ``old`` and ``new`` leaves to a restart (sorted, readable)."""
    out = set()
    sections = changed_sections(old, new)
    for section in sections & SERVICE_RESTART.keys():
        if (
            section == "speech"
            and old.speech.model_copy(update={"mode": new.speech.mode}) == new.speech
        ):
            continue
        out.add(f"{section}: restart {SERVICE_RESTART[section]}")
    if (old.sip.host, old.sip.port) != (new.sip.host, new.sip.port):
        out.add("sip: restart Asterisk (transport address; drops calls)")
    if "agents" in sections:
        out.add("agents: restart the console for the agent list of its screens")
    return sorted(out)


class Lifecycle:
    """The config at ``config_path`` of ``instance``, its versions in ``store``, applied to
    ``target`` (``None``: no running instance, the file and the versions only)."""

    def __init__(
        self,
        config_path: str | Path,
        store: VersionStore,
        instance: str = "demo",
        target: Target | None = None,
    ) -> None:
        self.path = Path(config_path)
        self.store = store
        self.instance = instance
        self.target = target

    # ---- what runs ----------------------------------------------------------------------
    def running(self) -> Version:
        """The running version; the file on disk is adopted as a new version when it
        differs (first use, or a hand edit since the last apply).  A file that does not
        validate is not adopted: :class:`ConfigError`."""
        text = safe_yaml.read_text(self.path)
        now = self.store.running()
        if now is not None and now.text == text:
            return now
        parse_config(text, str(self.path))
        return self.store.adopt(text)

    def running_config(self) -> HotlineConfig:
        return parse_config(self.running().text, str(self.path))

    def secrets(self) -> dict[str, str]:
        return secrets_of(self.running_config())

    # ---- preview ------------------------------------------------------------------------
    def validate(self, text: str, old: HotlineConfig | None) -> HotlineConfig:
        """``text`` as a config, or :class:`ConfigError` with each field and line."""
        new = parse_config(text, EDITOR_FILE)
        problems = apply_rules(old, new, text)
        if problems:
            raise ConfigError(EDITOR_FILE, problems)
        return new

    def preview(self, text: str, now: Version | None = None) -> Preview:
        """Validate ``text`` and compare it with what runs (``now``); writes nothing."""
        now = now or self.running()
        old = parse_config(now.text, str(self.path))
        new = self.validate(text, old)
        before = render_text(old, self.instance)
        after = render_text(new, self.instance)
        diffs = {
            name: unified(before.get(name, ""), after.get(name, ""), name)
            for name in sorted(before.keys() | after.keys())
            if before.get(name) != after.get(name)
        }
        commands, restart = [], restarts(old, new)
        for name in diffs:
            if name in RELOADS:
                if RELOADS[name] not in commands:
                    commands.append(RELOADS[name])
            else:
                restart.append(f"{name}: restart Asterisk (drops calls)")
        services = ["fastagi"] if text != now.text else []
        return Preview(
            new, text, unified(now.text, text, EDITOR_FILE), diffs, commands, restart, services
        )

    # ---- apply --------------------------------------------------------------------------
    def apply(
        self, text: str, base: int | None, who: str, comment: str, kind: str = "apply"
    ) -> tuple[Version, Preview, dict[str, str]]:
        """Validate, check the base, write, reload what changed, record.  Raises
        :class:`ConfigError` (nothing touched), :class:`StaleBase` (nothing touched) or
        :class:`ApplyFailed` (the old config put back)."""
        self.running()  # adopt a hand edit first: it is what an edit must be based on
        with self.store.applying(base) as tx:
            assert tx.running is not None  # running() adopted the file
            preview = self.preview(text, tx.running)
            if not preview.changed:
                return tx.running, preview, {"note": "no change: nothing applied"}
            old_text = tx.running.text
            _write(self.path, text)
            out: dict[str, str] = {}
            try:
                if self.target is not None and self.target.running():
                    out = self.target.put_in_place(preview.config, preview.commands)
                else:
                    out = {"note": "the instance is not running: the file takes effect at `up`"}
            except Exception as exc:
                _write(self.path, old_text)
                self._restore(old_text)
                raise ApplyFailed(f"not applied, the previous config runs: {exc}") from exc
            version = tx.record(text, who, comment, kind)
        return version, preview, out

    def _restore(self, old_text: str) -> None:
        if self.target is None or not self.target.running():
            return
        old = parse_config(old_text, str(self.path))
        with contextlib.suppress(Exception):  # the caller's error says what failed first
            self.target.put_in_place(old, list(dict.fromkeys(RELOADS.values())))

    def rollback(
        self, version: int, base: int | None, who: str, comment: str = ""
    ) -> tuple[Version, Preview, dict[str, str]]:
        """Apply version ``version``'s text as a new version."""
        old = self.store.get(version)
        why = comment or f"rollback to version {version}"
        return self.apply(old.text, base, who, why, kind="rollback")

    def diff(self, a: int, b: int | None = None) -> str:
        """The YAML diff from version ``a`` to ``b`` (default: the running one), masked."""
        va = self.store.get(a)
        vb = self.store.get(b) if b is not None else self.running()
        secrets = {**secrets_of(_quiet(va.text)), **secrets_of(_quiet(vb.text))}
        return mask(unified(va.text, vb.text, EDITOR_FILE), secrets)


def _quiet(text: str) -> HotlineConfig | None:
    try:
        return parse_config(text)
    except ConfigError:
        return None


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text`` (mode 0600: it holds secrets)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StackTarget:
    """The running instance through ``runtime.stack.Stack``."""

    def __init__(self, stack: object) -> None:
        self.stack = stack

    def running(self) -> bool:
        return bool(self.stack.asterisk_running())  # type: ignore[attr-defined]

    def put_in_place(self, config: HotlineConfig, commands: list[str]) -> dict[str, str]:
        return self.stack.put_in_place(config, commands)  # type: ignore[attr-defined]


def open_lifecycle(
    config_path: str | Path,
    instance: str = "demo",
    run_dir: str | Path | None = None,
    rootfs: str | Path | None = None,
    stack: bool = True,
) -> Lifecycle:
    """The lifecycle of the config at ``config_path``: its versions in the store the config
    names (``admin.versions_db``) and, with ``stack``, the instance's running stack."""
    from hotline.config import load_config

    config = load_config(config_path)
    store = VersionStore(config.admin.versions_db)
    target = None
    if stack:
        from runtime.stack import Stack

        target = StackTarget(Stack(config_path, instance=instance, run_dir=run_dir, rootfs=rootfs))
    return Lifecycle(config_path, store, instance, target)
