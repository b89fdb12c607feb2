"""Render the Asterisk configuration of one instance from a validated :class:`HotlineConfig`.

``render(config, out_dir, instance)`` writes every ``templates/*.j2`` into ``out_dir``
atomically (a temporary sibling directory, then a rename).  Everything in the output is
derived from the config; nothing a caller sends ever reaches a template.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import ValidationError

from acd.callback import KEY as CALLBACK_KEY
from acd.queues import queue_name
from callers import call_vars
from hotline import dialplan_vars
from hotline.ami import CONSUMED_EVENTS
from hotline.config import Agent, ConfigError, HotlineConfig, Seat, load_config

TEMPLATES = Path(__file__).parent / "templates"
MODULE_DIR = "/usr/lib/x86_64-linux-gnu/asterisk/modules"
INSTANCE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

MODULES: tuple[str, ...] = (
    # sorcery, PJSIP and the SIP channel
    "res_sorcery_config",
    "res_sorcery_memory",
    "res_sorcery_astdb",
    "res_pjproject",
    "res_pjsip",
    "res_pjsip_session",
    "res_pjsip_pubsub",
    "res_pjsip_sdp_rtp",
    "res_pjsip_endpoint_identifier_ip",
    "res_pjsip_caller_id",
    "res_pjsip_rfc3326",
    "res_pjsip_nat",
    "res_pjsip_dtmf_info",
    "res_pjsip_header_funcs",
    "res_pjsip_diversion",
    "res_pjsip_refer",
    "res_pjsip_logger",
    "res_pjsip_authenticator_digest",
    "res_pjsip_outbound_authenticator_digest",
    "chan_pjsip",
    # media
    "res_rtp_asterisk",
    "res_timing_timerfd",
    "codec_ulaw",
    "codec_alaw",
    "codec_a_mu",
    "codec_g722",
    "codec_gsm",
    "codec_resample",
    "format_wav",
    "format_gsm",
    "format_pcm",
    "format_sln",
    "res_musiconhold",
    # bridging
    "bridge_simple",
    "bridge_native_rtp",
    "bridge_softmix",
    "bridge_holding",
    "bridge_builtin_features",
    "chan_bridge_media",
    # dialplan
    "pbx_config",
    "res_agi",
    "res_speech",
    "app_stack",
    "app_queue",
    "app_dial",
    "app_playback",
    "app_read",
    "app_verbose",
    "app_userevent",
    "app_mixmonitor",
    "app_chanspy",
    "app_echo",
    "app_senddtmf",
    "app_exec",
    "app_record",
    "app_softhangup",
    "app_channelredirect",
    "app_originate",
    "app_audiosocket",
    "res_audiosocket",
    "chan_audiosocket",
    "res_clioriginate",
    "func_channel",
    "func_callerid",
    "func_strings",
    "func_logic",
    "func_global",
    "func_cut",
    "func_math",
    "func_timeout",
    "func_uri",
    "func_hangupcause",
    "func_devstate",
    "func_dialplan",
    "func_db",
    "func_env",
    "func_sprintf",
    "func_rand",
    "func_volume",
    "func_pjsip_endpoint",
    "func_pjsip_contact",
    "func_pjsip_aor",
)
"""Every module the hotline needs, loaded with ``require``: one that does not load stops
Asterisk at start-up instead of failing a call later."""


@dataclass(frozen=True)
class QueueSpec:
    """One app_queue queue: a seat and the agents that answer it."""

    name: str
    seat: Seat
    agents: tuple[Agent, ...]
    strategy: str


def _comment(text: object) -> str:
    """A human-readable name, safe inside a ``;`` comment (control characters removed)."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", str(text))


def _var(name: str) -> str:
    if name not in (*dialplan_vars.ALL, dialplan_vars.AGI_STATUS):
        raise ValueError(f"{name!r} is not a name from hotline/dialplan_vars.py")
    return "${" + name + "}"


def _validated(config: HotlineConfig | str | Path) -> HotlineConfig:
    """The config re-validated, so an unvalidated object is refused too."""
    if isinstance(config, str | Path):
        return load_config(config)
    try:
        return HotlineConfig.model_validate(config.model_dump(mode="python"))
    except ValidationError as exc:
        problems: list[tuple[str, int | None, str]] = [
            (".".join(str(p) for p in e["loc"]) or "<root>", None, e["msg"]) for e in exc.errors()
        ]
        raise ConfigError("<config object>", problems) from None


def ami_permit(config: HotlineConfig) -> list[str]:
    """Networks allowed to log in to AMI: loopback, AMI's own address and ``ami.allow_from``
    (the config refuses AMI off loopback without it); everything else is denied."""
    return config.ami.allowed_peers.asterisk_acl()


def queues(config: HotlineConfig) -> list[QueueSpec]:
    """One queue per seat; the general seat rings its least recently used agent first."""
    return [
        QueueSpec(
            name=queue_name(seat.id),
            seat=seat,
            agents=tuple(a for a in config.agents if seat.id in a.seats),
            strategy="leastrecent" if seat.kind == "general" else "rrmemory",
        )
        for seat in config.seats
    ]


def agent_emergency_line(config: HotlineConfig) -> str:
    """The line an agent's feature code reaches: its digits when they name a configured line
    (``*119`` → 119), else 110."""
    digits = config.emergency.agent_feature_code.lstrip("*")
    return digits if digits in config.emergency.lines else "110"


@dataclass(frozen=True)
class QueueEmergency:
    """The dialplan-only emergency menu for callers waiting in a queue: ``exit_key`` leaves
    the queue (app_queue ``context=``), ``prompt`` is read with ``Read()``, ``keys`` map a
    digit to its line.  It works with the FastAGI server, Redis and speech all down."""

    exit_key: str
    prompt: str
    keys: tuple[tuple[str, str], ...]
    timeout_s: int
    attempts: int


def queue_emergency(config: HotlineConfig) -> QueueEmergency:
    """The menu the main menu's emergency key leads to (``9`` → ``menu:emergency``); without
    one, key 9 and the configured lines on 1, 2, 3 … in numeric order."""
    menus = config.menus
    main = menus.get("main") or next(iter(menus.values()))
    for key, target in sorted(main.options.items()):
        if target.kind != "menu" or target.value not in menus:
            continue
        menu = menus[target.value]
        keys = tuple(
            (digit, t.value)
            for digit, t in sorted(menu.options.items())
            if t.kind == "emergency" and digit.isdigit()
        )
        if keys and key.isdigit():
            return QueueEmergency(
                key, menu.prompts[-1], keys, max(1, round(menu.timeout_s)), menu.retries
            )
    lines = sorted(config.emergency.lines)
    return QueueEmergency(
        "9", "emergency-menu", tuple((str(i + 1), line) for i, line in enumerate(lines)), 5, 2
    )


def context(config: HotlineConfig, instance: str) -> dict[str, object]:
    """Everything the templates see."""
    general = config.general_seat
    return {
        "config": config,
        "instance": instance,
        "V": dialplan_vars,
        "header": f"Generated by asterisk_conf.render from the hotline config; instance "
        f"{instance}. Do not edit: change the YAML and run `hotline config render`.",
        "etc_dir": f"/etc/asterisk-{instance}",
        "module_dir": MODULE_DIR,
        "modules": MODULES,
        "agi_url": f"agi://{config.agi.host}:{config.agi.port}/ivr",
        "ami_permit": ami_permit(config),
        "ami_events": CONSUMED_EVENTS,
        "queues": queues(config),
        "general_seat": general.id,
        "general_queue": queue_name(general.id),
        "emergency_lines": sorted(config.emergency.lines),
        "emergency_named": sorted(config.emergency.lines.items()),
        "moh_dir": "/usr/share/asterisk/moh-hotline",
        "agent_emergency_line": agent_emergency_line(config),
        "R": call_vars,
        "queue_emergency": queue_emergency(config),
        "agi_base": f"agi://{config.agi.host}:{config.agi.port}",
        "acd": config.acd,
        "acd_stale_s": max(1, round(config.acd.stale_s)),
        "acd_ack_s": max(1, round(config.acd.ack_s)),
        "acd_ring_s": max(1, round(config.acd.ring_timeout_s)),
        "acd_announce_s": config.acd.announce_s,
        "acd_callback": acd_callback(config),
        "agent_codes": sorted(config.agent_codes.actions().items()),
        "recording": config.recording,
        "queue_record": queue_record(config),
        "dial_record": dial_record(config),
        "record_name": RECORD_NAME,
    }


def acd_callback(config: HotlineConfig) -> dict[str, object] | None:
    """The waiting room's callback offer (``acd.callback``; router mode), or ``None``: its key,
    and how many 100 ms waits the dialplan gives the router to register a callback."""
    if config.acd.mode != "router" or not config.acd.callback.enabled:
        return None
    if queue_emergency(config).exit_key == CALLBACK_KEY:
        raise ValueError(f"acd.callback: key {CALLBACK_KEY} is the waiting room's emergency key")
    return {"key": CALLBACK_KEY, "ack_ticks": max(10, round(config.acd.ack_s * 10))}


RECORD_NAME = "hotline/${FILTER(0-9.,${CHANNEL(linkedid)})}_${FILTER(0-9.,${UNIQUEID})}"
"""A recording's files in the spool's ``monitor/hotline``: ``<call id>_<leg uniqueid>_<side>.wav``
(``recordings.mover`` parses the same shape)."""


def queue_record(config: HotlineConfig) -> str:
    """Queue()'s trailing arguments: the agent-side recording gosub when only agent calls
    are recorded (``recording.include_ivr`` records from the answer instead)."""
    r = config.recording
    return ",,,,,hotline-agent-record" if r.enabled and not r.include_ivr else ""


def dial_record(config: HotlineConfig) -> str:
    """The same recording for the ACD router's Dial (``U()``: a gosub on the agent's channel
    once it answered), so routed calls are recorded like queued ones."""
    r = config.recording
    return "U(hotline-agent-record)" if r.enabled and not r.include_ivr else ""


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["comment"] = _comment
    env.filters["sip_host"] = lambda host: f"[{host}]" if ":" in host else host
    env.globals["var"] = _var
    return env


def render_text(config: HotlineConfig, instance: str = "demo") -> dict[str, str]:
    """File name → rendered text, without writing anything."""
    if not INSTANCE_RE.match(instance):
        raise ValueError(f"instance name {instance!r} must match {INSTANCE_RE.pattern}")
    cfg = _validated(config)
    env = _environment()
    ctx = context(cfg, instance)
    return {
        name.removesuffix(".j2"): env.get_template(name).render(ctx)
        for name in sorted(p.name for p in TEMPLATES.glob("*.j2"))
    }


def render(config: HotlineConfig | str | Path, out_dir: str | Path, instance: str = "demo") -> Path:
    """Render the config of ``instance`` into ``out_dir`` (replaced atomically).

    Raises :class:`ConfigError` for an invalid config and ``ValueError`` for a bad instance
    name; in both cases nothing is written.
    """
    cfg = _validated(config)
    files = render_text(cfg, instance)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, text in files.items():
            # manager.conf holds the AMI secret: every file is for Asterisk (root) only
            fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        tmp.chmod(0o700)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{tmp.name}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
