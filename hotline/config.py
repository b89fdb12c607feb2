"""The one hotline configuration: a YAML file validated with pydantic.

Everything else (the generated Asterisk config, the IVR, the ACD, the caller rules) reads
its settings from a validated :class:`HotlineConfig`.  A file that does not validate is
refused with the field and the line at fault (:class:`ConfigError`), before anything is
rendered for Asterisk.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hotline import peers, safe_yaml
from hotline.acd_settings import (
    GENERAL,
    AcdSettings,
    AgentProfile,
    CallbackPolicy,
    SkillPolicy,
    Step,
)

ID = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
"""Identifiers that end up in Asterisk config (queue, endpoint, context names): ASCII only."""
DIGIT = Annotated[str, Field(pattern=r"^[0-9*#]$")]
PROMPT = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
"""A prompt name: a file in the prompt directory without extension (``greeting``)."""
EMERGENCY_LINES = ("110", "119", "120", "122")
NAME = Annotated[str, Field(min_length=1, max_length=64)]
"""A human-readable name (a seat, an agent, the city, a matter): short, never empty."""
WORD = Annotated[str, Field(min_length=1, max_length=32)]
"""A word or phrase matched in speech (vocabulary, emergency and out-of-scope words)."""
PATH = Annotated[str, Field(min_length=1, max_length=1024)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", value):
            raise ValueError(f"not an IP address or host name: {value!r}") from None
    return value


class HostPort(_Model):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)

    _check_host = field_validator("host")(_host)


class Sip(_Model):
    """Where Asterisk's PJSIP transport listens, and when a carrier call whose audio stopped
    is hung up."""

    host: str = "127.0.0.1"
    port: int = Field(default=5060, ge=1, le=65535)
    external_address: str | None = None
    rtp_timeout_s: int = Field(default=30, ge=5, le=3600)
    """A carrier call that sends no RTP for this long (caller gone without a BYE) is hung up,
    in the IVR, in a queue or talking to an agent (PJSIP ``rtp_timeout``)."""
    rtp_timeout_hold_s: int = Field(default=120, ge=5, le=7200)
    """The same while the carrier has put the call on hold (``rtp_timeout_hold``)."""
    rtp_ports: tuple[int, int] = (10000, 20000)
    """Asterisk's RTP port range (``rtp.conf`` rtpstart/rtpend): keep it clear of every fixed
    port on the machine (SIP, AMI, FastAGI, Redis, phones), or a call's media may take one."""

    _check_host = field_validator("host")(_host)

    @field_validator("rtp_ports")
    @classmethod
    def _rtp_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if not (1024 <= low < high <= 65535 and high - low >= 100):
            raise ValueError("rtp_ports: [low, high] with 1024 <= low, high <= 65535, 100+ ports")
        return value


class Trunk(_Model):
    """A SIP peer identified by its address: the carrier that delivers 12345 calls, or the
    emergency trunk that reaches 110/119/120/122."""

    host: str
    port: int = Field(default=5060, ge=1, le=65535)
    codecs: tuple[Literal["ulaw", "alaw", "g722"], ...] = ("alaw", "ulaw")

    _check_host = field_validator("host")(_host)


class Trunks(_Model):
    carrier: Trunk
    emergency: Trunk


class _Listener(_Model):
    """A listener of the hotline's own (AMI, FastAGI + speech socket, Redis, console): on
    loopback by default; any other ``host`` needs ``allow_from``, the peer networks that may
    connect (``hotline/peers.py`` renders and enforces it)."""

    host: str = "127.0.0.1"
    allow_from: tuple[str, ...] = Field(default=(), max_length=256, validate_default=True)
    """Peer networks (``10.1.2.0/24``, ``10.1.2.7``) besides loopback and ``host`` itself."""

    _check_host = field_validator("host")(_host)

    @field_validator("allow_from")
    @classmethod
    def _allow_list_off_loopback(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple:
        for entry in value:
            peers.network(entry)
        host = info.data.get("host")
        if host is not None and not peers.is_loopback(host) and not value:
            raise ValueError(
                f"host {host} is not loopback: listening there needs allow_from, the list of "
                "peer networks that may connect (e.g. allow_from: [10.1.2.0/24])"
            )
        return value

    @property
    def allowed_peers(self) -> peers.Peers:
        """Who may connect: loopback, ``host`` itself and ``allow_from``."""
        return peers.Peers.of(self.host, self.allow_from)


class Ami(_Listener):
    port: int = Field(default=5038, ge=1, le=65535)
    username: ID = "hotline"
    secret: str = Field(min_length=12, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")


class Agi(_Listener):
    """The FastAGI server; the speech service's AudioSocket listens on the same host (port +
    1) and accepts the same peers."""

    port: int = Field(default=4573, ge=1, le=65535)


class Redis(_Listener):
    port: int = Field(default=6390, ge=1, le=65535)
    db: int = Field(default=0, ge=0, le=15)
    timeout_ms: int = Field(default=50, ge=1, le=5000)
    """A Redis answer slower than this counts as a failure; callers are then treated as normal."""
    password: str | None = Field(default=None, min_length=16, pattern=r"^[A-Za-z0-9_.-]+$")
    """``requirepass`` of the stack's Redis; every client sends it.  ``hotline up`` refuses to
    start Redis without one."""

    @field_validator("host")
    @classmethod
    def _one_address(cls, value: str) -> str:
        if value in ("0.0.0.0", "::"):
            raise ValueError(
                "Redis cannot check its peers: bind it to one address (loopback, or this "
                "host's address on the network its clients use), not every address"
            )
        return value

    def client_kwargs(self) -> dict[str, object]:
        """Connection arguments for ``redis.Redis`` / ``redis.asyncio.Redis``."""
        return {"host": self.host, "port": self.port, "db": self.db, "password": self.password}


class Seat(_Model):
    """A seat group: a 专席 (specialist) or the 综合席 (general seats)."""

    id: ID
    name: str = Field(min_length=1, max_length=32)
    kind: Literal["specialist", "general"] = "specialist"
    prompt: PROMPT | None = None
    """The prompt that names this seat in the main menu (``seat-gjj``)."""


class Agent(_Model):
    """An agent's phone: a SIP endpoint at a fixed address, and the seats it may answer."""

    id: Annotated[str, Field(pattern=r"^[0-9]{3,8}$")]
    name: str = Field(min_length=1, max_length=32)
    host: str
    port: int = Field(ge=1, le=65535)
    seats: tuple[ID, ...] = Field(min_length=1)
    levels: dict[ID, Annotated[int, Field(ge=1, le=9)]] = Field(default_factory=dict)
    """The ACD router's skill level per seat of this agent (1 = primary, the default)."""

    _check_host = field_validator("host")(_host)

    @property
    def endpoint(self) -> str:
        return f"agent{self.id}"


class Supervisor(_Model):
    """A supervisor's phone: a SIP endpoint at a fixed address, only ever called (to listen
    to, whisper to or barge into an agent's call)."""

    id: Annotated[str, Field(pattern=r"^[0-9]{3,8}$")]
    name: str = Field(min_length=1, max_length=32)
    host: str
    port: int = Field(ge=1, le=65535)

    _check_host = field_validator("host")(_host)

    @property
    def endpoint(self) -> str:
        return f"supervisor{self.id}"


TARGET_KINDS = ("seat", "menu", "emergency", "notice", "speech", "progress", "repeat")


class Target(_Model):
    """Where a menu choice leads: ``seat:gjj``, ``menu:emergency``, ``emergency:119``,
    ``notice:litigation``, ``speech:demand``, ``progress:latest`` or ``repeat:menu``."""

    kind: Literal["seat", "menu", "emergency", "notice", "speech", "progress", "repeat"]
    value: str

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: object) -> object:
        if isinstance(data, str):
            kind, sep, value = data.partition(":")
            if not sep or not value:
                raise ValueError(f"a target is 'kind:value' with kind one of {TARGET_KINDS}")
            return {"kind": kind, "value": value}
        return data

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class Menu(_Model):
    """A DTMF menu: prompts, digit → target, time-out, retries, invalid/no-input handling."""

    prompts: tuple[PROMPT, ...] = Field(min_length=1)
    options: dict[DIGIT, Target] = Field(min_length=1)
    timeout_s: float = Field(default=5.0, gt=0, le=30)
    retries: int = Field(default=3, ge=1, le=9)
    invalid_prompt: PROMPT = "invalid"
    no_input_prompt: PROMPT = "no-input"
    on_exhausted: Target = Target(kind="seat", value="zonghe")
    """Where a caller goes after ``retries`` rounds without a valid choice."""


class DayHours(_Model):
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(min_length=1)
    open: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    close: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-4]):[0-5][0-9]$")]


class BusinessHours(_Model):
    """When seats are staffed.  12345 in Hangzhou answers 24/7; smaller cities close at night."""

    timezone: str = "Asia/Shanghai"
    always_open: bool = True
    hours: tuple[DayHours, ...] = ()
    closed_prompt: PROMPT = "closed"
    closed_target: Target = Target(kind="speech", value="message")


class SeatHours(_Model):
    """One seat's staffed hours (``calendar.seats.<seat>``): weekday ranges, what a statutory
    holiday does, and where a caller who chooses the seat while it is closed goes."""

    hours: tuple[DayHours, ...] = Field(min_length=1, max_length=21)
    holidays: Literal["closed", "open"] = "closed"
    """``closed``: no service on the days the holiday data marks off (法定节假日)."""
    makeup_as: Literal["mon", "tue", "wed", "thu", "fri"] = "mon"
    """A 调休 make-up working day (a Saturday or Sunday) has this weekday's hours."""
    closed_prompt: PROMPT = "seat-closed"
    """Played when the caller chose the seat while it is closed (then ``closed_target``)."""
    closed_target: Target = Target(kind="seat", value="zonghe")
    """Where the caller goes instead: ``seat:<id>`` (the 综合席 by default) or
    ``speech:message`` (a message with the caller's number for a callback, on a ticket)."""


class Calendar(_Model):
    """Per-seat business hours and the holiday data (``hotline/calendar.py``,
    docs/calendar.md).  Emergency lines are never subject to hours."""

    holidays_file: str = Field(default="", max_length=1024)
    """Mainland China's statutory holidays and 调休 make-up working days, year by year;
    empty: the file shipped in the package (``hotline/data/holidays_cn.yaml``)."""
    seats: dict[ID, SeatHours] = Field(default_factory=dict, max_length=200)
    """Seats with hours; a seat not listed is always open."""


class Emergency(_Model):
    """Emergency lines (第九条): reached by key from any menu, by speech, or by an agent's
    feature code; always through the emergency trunk with the caller's number preserved."""

    lines: dict[Literal["110", "119", "120", "122"], NAME] = Field(
        default={"110": "公安", "119": "消防", "120": "急救", "122": "交通事故"}
    )
    agent_feature_code: Annotated[str, Field(pattern=r"^\*[0-9]{2,3}$")] = "*119"


class OutOfScope(_Model):
    """A matter 12345 does not take (第九条 2–4): the caller hears ``prompt`` and is offered the
    general seat.  ``words`` are matched on characters and pinyin by the speech extractor."""

    name: NAME
    words: tuple[WORD, ...] = Field(min_length=1, max_length=500)
    prompt: PROMPT


def _default_emergency_words() -> dict[str, tuple[str, ...]]:
    return {
        "119": ("着火", "火灾", "冒烟", "起火", "失火", "烧起来"),
        "120": ("晕倒", "昏迷", "受伤", "急救", "没有呼吸", "流血", "心脏病", "救护车"),
        "122": ("车祸", "追尾", "撞车", "被车撞", "交通事故"),
        "110": ("打架", "抢劫", "小偷", "持刀", "拿着刀", "杀人", "报警", "斗殴"),
    }


def _default_out_of_scope() -> dict[str, OutOfScope]:
    return {
        "litigation": OutOfScope(
            name="诉讼", words=("起诉", "诉讼", "打官司", "告到法院"), prompt="notice-legal"
        ),
        "arbitration": OutOfScope(name="仲裁", words=("仲裁",), prompt="notice-legal"),
        "reconsideration": OutOfScope(name="行政复议", words=("行政复议",), prompt="notice-legal"),
        "petition": OutOfScope(name="信访", words=("信访", "上访"), prompt="notice-legal"),
        "supervision": OutOfScope(
            name="纪检监察", words=("纪委", "纪检", "监察委"), prompt="notice-legal"
        ),
        "disclosure": OutOfScope(
            name="政府信息公开", words=("信息公开", "依申请公开"), prompt="notice-legal"
        ),
        "secrets": OutOfScope(
            name="国家秘密、商业秘密",
            words=("国家秘密", "商业秘密", "机密"),
            prompt="notice-secret",
        ),
        "privacy": OutOfScope(
            name="个人隐私",
            words=("个人隐私", "查别人", "查一下他的", "他的手机号", "他的住址"),
            prompt="notice-secret",
        ),
        "non_government": OutOfScope(
            name="非政务服务",
            words=("帮我买", "点外卖", "讲个笑话", "算命", "彩票"),
            prompt="notice-nongov",
        ),
    }


class CallerRules(_Model):
    """Rule tables for callers (第九条): emergency words per line, out-of-scope matters."""

    emergency_words: dict[
        Literal["110", "119", "120", "122"], Annotated[tuple[WORD, ...], Field(max_length=500)]
    ] = Field(default_factory=_default_emergency_words)
    out_of_scope: dict[ID, OutOfScope] = Field(
        default_factory=_default_out_of_scope, max_length=100
    )


class City(_Model):
    """The city the hotline serves; its districts feed address extraction and analytics."""

    name: NAME = "杭州市"
    districts: Annotated[tuple[NAME, ...], Field(max_length=500)] = (
        "上城区", "拱墅区", "西湖区", "滨江区", "萧山区", "余杭区", "临平区", "钱塘区",
        "富阳区", "临安区", "桐庐县", "淳安县", "建德市",
    )  # fmt: skip


class Speech(_Model):
    """Speech recognition settings; ``vocabulary`` biases recognition (Whisper prompt, Vosk
    phrase list) together with seat names and districts."""

    engine: Literal["auto", "vosk", "whisper"] = "auto"
    mode: Literal["off", "after_choice", "before_menu"] = "off"
    """When the caller is asked to say the matter (请简要说出您要反映的事项): ``after_choice`` —
    once a seat is chosen by key (the draft pre-fills the ticket; only a confident spoken seat
    overrides the key); ``before_menu`` — before the main menu, which is offered only when
    nothing usable was heard; ``off`` — only where a menu option ``speech:…`` leads."""
    listen_max_s: float = Field(default=20.0, gt=0, le=120)
    silence_ms: int = Field(default=1500, ge=300, le=10_000)
    vocabulary: Annotated[tuple[WORD, ...], Field(max_length=2000)] = (
        "12345", "咨询", "投诉", "举报", "建议", "求助", "表扬", "公积金", "社保", "医保",
        "营业执照", "噪音", "油烟", "施工", "拖欠工资", "限行", "学区", "小区", "物业",
    )  # fmt: skip


PHONE = Annotated[str, Field(pattern=r"^\+?[0-9][0-9 -]{1,24}[0-9]$")]
"""A telephone number: digits with optional spaces or dashes and a leading ``+``."""


class ThrottleLimits(_Model):
    """Counters at which a throttle stage starts (a counter reaching its limit triggers it).
    Calls are counted before the current one: ``calls_per_hour: 5`` acts on the 6th call."""

    calls_per_hour: int = Field(ge=1, le=10_000)
    calls_per_day: int = Field(ge=1, le=100_000)
    minutes_per_day: int = Field(ge=1, le=1440)
    no_demand_per_day: int = Field(ge=1, le=100_000)
    """Calls that ended without a registrable demand (诉求)."""
    harassment_flags: int = Field(ge=1, le=1000)
    """Calls an agent flagged as harassment within ``harassment_window_days``."""


class Throttle(_Model):
    """Repeat-caller rules (第二十九条): normal → warning (notice + agent flag) → suspended for
    ``suspension_minutes`` → listed for referral after ``referral_after`` suspensions.  Never
    applies to emergency lines, allow-listed or withheld numbers; fails open."""

    enabled: bool = True
    warning: ThrottleLimits = ThrottleLimits(
        calls_per_hour=5, calls_per_day=12, minutes_per_day=60, no_demand_per_day=4,
        harassment_flags=1,
    )  # fmt: skip
    suspension: ThrottleLimits = ThrottleLimits(
        calls_per_hour=8, calls_per_day=20, minutes_per_day=120, no_demand_per_day=8,
        harassment_flags=2,
    )  # fmt: skip
    grace_minutes: int = Field(default=10, ge=0, le=1440)
    """合理时间: the least time between a caller's first warning and a suspension."""
    suspension_minutes: int = Field(default=1440, ge=1, le=60 * 24 * 90)
    harassment_window_days: int = Field(default=30, ge=1, le=365)
    referral_after: int = Field(default=3, ge=1, le=100)
    """Suspensions within ``referral_window_days`` after which a caller is listed for referral."""
    referral_window_days: int = Field(default=180, ge=1, le=3650)
    allow_list: Annotated[tuple[PHONE, ...], Field(max_length=10_000)] = ()
    """Numbers never throttled (e.g. community workers, test lines)."""
    failure_cooldown_ms: int = Field(default=1000, ge=0, le=60_000)
    """After a Redis failure, decide without Redis (fail open) for this long."""
    key_file: PATH = "run/secrets/pii.key"
    """Secret for hashing caller numbers in Redis keys (created 0600 if missing)."""

    @model_validator(mode="after")
    def _suspension_above_warning(self) -> Throttle:
        low = [
            name
            for name in ThrottleLimits.model_fields
            if getattr(self.suspension, name) < getattr(self.warning, name)
        ]
        if low:
            raise ValueError(f"suspension limits below warning limits: {', '.join(low)}")
        return self


class Tickets(_Model):
    """The ticket store (第十四条 progress): SQLite by default, or a city's ticket system
    over HTTP (``tickets/http.py`` documents the JSON API)."""

    backend: Literal["sqlite", "http"] = "sqlite"
    path: PATH = "run/tickets.sqlite3"
    url: str | None = Field(default=None, max_length=2048)
    timeout_ms: int = Field(default=2000, ge=1, le=60_000)
    feedback_days: int = Field(default=15, ge=1, le=365)
    """Default feedback period (反馈期限) for a new ticket."""
    key_file: PATH = "run/secrets/pii.key"
    """Secret for hashing and encrypting caller numbers (created 0600 if missing)."""


class Console(_Listener):
    """The consoles (``python -m console serve``): live feed per agent, draft API, supervisor
    and admin endpoints.  Loopback only.  Users log in as themselves (``hotline users add``);
    users, sessions and the audit log live in ``users_db`` (SQLite, mode 0600)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    """``None``: the FastAGI port + 2 (4575), so an offset test instance moves with it."""
    users_db: str = "run/console-access.sqlite3"
    session_minutes: int = Field(default=480, ge=5, le=24 * 60)
    """A login lasts one shift at most; logging out, a new password or ``disable`` end it."""
    max_body_kb: int = Field(default=64, ge=1, le=10 * 1024)
    """Larger request bodies are refused (413) before they are read."""
    login_failures_per_user: int = Field(default=5, ge=1, le=1000)
    login_failures_per_address: int = Field(default=20, ge=1, le=10_000)
    login_window_minutes: int = Field(default=15, ge=1, le=24 * 60)
    """Failed logins counted per user name and per client address within this window."""

    _check_host = field_validator("host")(_host)

    @model_validator(mode="before")
    @classmethod
    def _tokens_were_replaced(cls, data: object) -> object:
        if isinstance(data, dict) and ({"token", "supervisor_token"} & data.keys()):
            raise ValueError(
                "console.token and console.supervisor_token were replaced by users: remove "
                "them and create users with `hotline users add NAME --role ROLE [--agent ID]`"
            )
        return data


class Calls(_Model):
    """The call event stream (Redis Streams on ``redis``) and the call record store."""

    stream_maxlen: int = Field(default=200_000, ge=1_000, le=10_000_000)
    """At most this many events are kept in the stream (older ones are trimmed)."""
    retention_days: float = Field(default=7.0, gt=0, le=90)
    """Events older than this are trimmed from the stream (records stay in the store)."""
    claim_idle_s: float = Field(default=60.0, ge=1.0, le=86_400.0)
    """An event left unacknowledged this long by a consumer (one that died or hangs) is
    claimed by another consumer of the same group (``XAUTOCLAIM``)."""
    path: str = "run/calls.sqlite3"
    """The call record store (SQLite)."""


class Supervise(_Model):
    """The supervisors' wallboard, alerts, reports and ``/metrics`` (``supervise/``, served by
    the console), and listening to agents' calls (``console/spy.py``)."""

    service_level_s: float = Field(default=20.0, gt=0, le=600)
    """A call answered within this many seconds of joining its seat's queue is in service level."""
    service_level_target: float = Field(default=0.8, gt=0, le=1)
    """Alert when a seat's service level today falls under this (once ``alert_min_offered``)."""
    alert_min_offered: int = Field(default=10, ge=1, le=100_000)
    wait_alert_s: float = Field(default=60.0, gt=0, le=3600)
    """Alert when a caller has waited longer than this."""
    not_ready_alert_s: float = Field(default=900.0, gt=0, le=86_400)
    """Alert when an agent has been not ready longer than this."""
    ring_s: int = Field(default=20, ge=5, le=120)
    """Listen/whisper/barge (console/spy.py): how long the supervisor's phone rings before
    the attempt is given up."""
    hotspot_window_min: int = Field(default=60, ge=5, le=24 * 60)
    hotspot_history_days: int = Field(default=28, ge=1, le=365)
    """The usual rate of a matter: its drafts in the same hour of day over this many days."""
    hotspot_min_count: int = Field(default=8, ge=2, le=10_000)
    hotspot_floor_per_hour: float = Field(default=0.5, gt=0, le=1000)
    """The usual rate is never taken lower than this (a matter never seen before)."""
    hotspot_p: float = Field(default=1e-4, gt=0, lt=0.5)
    """Raise the hotspot when P(Poisson(usual) ≥ count) is under this."""
    push_interval_ms: int = Field(default=200, ge=20, le=5000)
    """Screens get at most one update per interval (changes within it are merged)."""
    metrics_token: str | None = Field(default=None, min_length=16, max_length=128,
                                      pattern=r"^[A-Za-z0-9_.-]+$")  # fmt: skip
    """``/metrics`` also answers a request with ``Authorization: Bearer <token>``."""
    metrics_allow_from: tuple[str, ...] = Field(default=("127.0.0.1", "::1"), max_length=256)
    """Peers that may read ``/metrics`` without the token (loopback by default)."""

    @field_validator("metrics_allow_from")
    @classmethod
    def _metrics_peers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            peers.network(entry)  # refuses a network that admits everyone
        return value


class Kb(_Model):
    """The knowledge base (``kb/``, 第十一至十三条): the agents' search under ``/api/kb`` of
    the console and, per seat, callers' self-service in the IVR (off unless listed)."""

    enabled: bool = True
    path: str = "run/kb.sqlite3"
    """Articles, versions and the review workflow (SQLite)."""
    import_sample: bool = True
    """On first start (no article yet) import and publish ``kb/data/sample_kb.md`` (SAMPLE
    content, not official policy)."""
    calibration: str = "kb/data/calibration.json"
    """Confidence weights and the self-service ``threshold`` (``python -m kb.evaluate --fit``)."""
    spoken_dir: str = "run/kb-sounds"
    """Spoken answers as ``kb-<id>.wav`` (synthesised at publish time)."""
    self_service: tuple[ID, ...] = ()
    """Seats whose callers may hear an article themselves (第十一条); none by default."""


def _specialist_steps() -> tuple[Step, ...]:
    return (Step(level=1, after_s=0), Step(level=2, after_s=20), Step(level=GENERAL, after_s=45))


class AcdCallback(_Model):
    """Callbacks instead of waiting (``acd.mode: router``; docs/acd.md "Callbacks"): a caller
    whose estimated wait reaches ``offer_after_s`` is offered key 1, confirms a number (their
    own, read back by its last four digits, or keyed in) and hangs up keeping their place;
    when their turn comes the router reserves the agent, then calls them back."""

    enabled: bool = False
    offer_after_s: float = Field(default=120.0, ge=0, le=7200, allow_inf_nan=False)
    """Offered when the announced estimate is at least this (or unknown: nobody logged in)."""
    retries: int = Field(default=2, ge=0, le=10)
    """A callback not answered (no answer, busy, unreachable) is tried again this often,
    then becomes a ticket for follow-up."""
    retry_after_s: float = Field(default=120.0, ge=1, le=86_400, allow_inf_nan=False)
    """Time between a failed callback and the next try (the agent is free meanwhile)."""
    ring_s: float = Field(default=30.0, ge=5, le=120, allow_inf_nan=False)
    """How long the caller's phone rings for a callback."""


CALLBACK_SETUP_S = 15.0
"""Beyond the caller's ring and the agent's ring: the carrier's call set-up and the greeting
the called-back caller hears (the engine's safety-net timer for a callback offer)."""
PRIORITY_FACTS = ("exhausted", "elderly", "new_facts")
"""What a priority rule matches on (docs/acd.md "Priority rules")."""


class PriorityRule(_Model):
    """One queue-priority rule the IVR applies (``acd.priority_rules``):

    - ``exhausted``: the caller made no valid choice in a menu (no key);
    - ``elderly``: the caller pressed ``key`` in the main menu (老年人优先);
    - ``new_facts``: a caller with an open demand pressed ``key`` in the progress offer
      (反映新的诉求: something new since the demand was taken).
    A call gets the highest priority of the rules it matches."""

    when: Literal["exhausted", "elderly", "new_facts"]
    priority: int = Field(ge=1, le=100)
    key: DIGIT | None = None

    @model_validator(mode="after")
    def _key_fits(self) -> PriorityRule:
        if self.when == "exhausted" and self.key is not None:
            raise ValueError("the 'exhausted' rule takes no key")
        if self.when != "exhausted" and self.key is None:
            raise ValueError(f"the {self.when!r} rule needs a key")
        return self


def _priority_rules() -> tuple[PriorityRule, ...]:
    return (PriorityRule(when="exhausted", priority=1),)


class Acd(_Model):
    """How calls reach agents (docs/acd.md).  ``app_queue``: static app_queue queues, one
    per seat.  ``router``: the ACD router (``python -m acd serve``) decides in Redis and
    carries calls by AMI Redirect; when its heartbeat is missing (router or Redis down)
    calls go to the app_queue queues as before."""

    mode: Literal["app_queue", "router"] = "app_queue"
    """``app_queue`` for a config without this section (its agents are static members, as
    before); the shipped hotline.yaml routes with the router."""
    login_at_start: bool = False
    """Agents of ``agents`` the router has never seen are signed in (ready) when it starts
    (a lab, a demo, a small centre whose seats are always staffed).  Off: agents sign in at
    their phone (``agent_codes.login``) or the console; an agent who signed out stays out."""
    specialist_steps: tuple[Step, ...] = Field(
        default_factory=_specialist_steps, min_length=1, max_length=9
    )
    """Escalation of every specialist seat without its own entry in ``skills``."""
    skills: dict[ID, SkillPolicy] = Field(default_factory=dict, max_length=200)
    """Per seat id: its own steps and service-level target."""
    service_level_s: float = Field(default=20.0, gt=0, le=3600, allow_inf_nan=False)
    priority_boost: float = Field(default=1.0, ge=0, le=100, allow_inf_nan=False)
    max_priority: int = Field(default=9, ge=0, le=100)
    priority_rules: tuple[PriorityRule, ...] = Field(
        default_factory=_priority_rules, max_length=len(PRIORITY_FACTS)
    )
    """Queue priorities the IVR gives (elderly key, new facts, no key); each fact once."""
    wrapup_s: float = Field(default=15.0, ge=0, le=3600, allow_inf_nan=False)
    ring_timeout_s: float = Field(default=15.0, ge=2, le=300, allow_inf_nan=False)
    reentry_s: float = Field(default=120.0, ge=0, le=86_400, allow_inf_nan=False)
    heartbeat_s: float = Field(default=1.0, ge=0.2, le=30, allow_inf_nan=False)
    """How often the router proves it is alive (Redis key with a TTL, Asterisk global)."""
    stale_s: float = Field(default=5.0, ge=1, le=120, allow_inf_nan=False)
    """A heartbeat older than this: calls go to app_queue (also callers already waiting)."""
    ack_s: float = Field(default=4.0, ge=1, le=60, allow_inf_nan=False)
    """A waiting call the router has not queued within this time goes to app_queue."""
    announce_s: int = Field(default=30, ge=0, le=600)
    """Every this many seconds a caller waiting for the router hears their position and the
    estimated wait (``agi://…/acd_announce``); 0: music on hold only."""
    callback: AcdCallback = Field(default_factory=AcdCallback)
    """Callbacks instead of waiting (router mode only)."""
    routers: int = Field(default=1, ge=1, le=4)
    """ACD routers the Stack starts (``router-1`` …); more than one: one leads by a lease in
    Redis, the others stand by and take over when it dies (docs/acd.md, "Two routers")."""
    lease_s: float = Field(default=3.0, ge=0.5, le=60, allow_inf_nan=False)
    """With several routers: the leader's lease; a standby takes over at most this plus
    ``heartbeat_s`` after the leader's last renewal."""
    default_handle_s: float = Field(default=300.0, gt=0, le=7200, allow_inf_nan=False)
    """Handle time (talk + wrap-up) the wait estimate uses for a skill until the router has
    kept handle times of its calls in Redis (``acd:h:<skill>``)."""

    @field_validator("specialist_steps")
    @classmethod
    def _steps_valid(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        try:
            SkillPolicy(steps=steps)
        except ValidationError as exc:
            raise ValueError("; ".join(e["msg"] for e in exc.errors())) from None
        return steps

    @model_validator(mode="after")
    def _timers_valid(self) -> Acd:
        if self.stale_s <= self.heartbeat_s:
            raise ValueError("stale_s must be longer than heartbeat_s")
        if self.routers > 1 and self.lease_s < 2 * self.heartbeat_s:
            raise ValueError("lease_s must be at least twice heartbeat_s (renewed every beat)")
        facts = [r.when for r in self.priority_rules]
        twice = sorted({f for f in facts if facts.count(f) > 1})
        if twice:
            raise ValueError(f"priority_rules: one rule per fact; twice: {', '.join(twice)}")
        over = [r.when for r in self.priority_rules if r.priority > self.max_priority]
        if over:
            raise ValueError(f"priority_rules: {', '.join(over)} above max_priority")
        return self


AGENT_CODE = Annotated[str, Field(pattern=r"^\*[0-9]{2,3}$")]


class AgentCodes(_Model):
    """Feature codes an agent dials from the phone to change the ACD state (docs/acd.md):
    the agent is the endpoint the call comes from, never a number the phone sends."""

    login: AGENT_CODE = "*20"
    ready: AGENT_CODE = "*21"
    not_ready_break: AGENT_CODE = "*22"
    after_call_work: AGENT_CODE = "*23"
    training: AGENT_CODE = "*24"
    meeting: AGENT_CODE = "*25"
    logout: AGENT_CODE = "*29"

    @model_validator(mode="after")
    def _distinct(self) -> AgentCodes:
        codes = list(self.model_dump().values())
        twice = sorted({c for c in codes if codes.count(c) > 1})
        if twice:
            raise ValueError(f"each code must do one thing; used twice: {', '.join(twice)}")
        return self

    def actions(self) -> dict[str, tuple[str, str | None]]:
        """Code → (command op, not-ready reason or None)."""
        reasons = {"not_ready_break": "break", "after_call_work": "after_call_work",
                   "training": "training", "meeting": "meeting"}  # fmt: skip
        return {
            code: (("not_ready", reasons[name]) if name in reasons else (name, None))
            for name, code in self.model_dump().items()
        }


class Recording(_Model):
    """Call recordings (issue 11): every call that reaches an agent, caller and agent on
    separate channels (MixMonitor ``r()``/``t()``), moved after hang-up by
    ``python -m recordings serve`` into ``store_dir`` (outside the Asterisk rootfs), encrypted
    with AES-GCM, and deleted after ``retention_days``."""

    enabled: bool = True
    include_ivr: bool = False
    """Also record the IVR part and the wait (from the answer; one channel is the caller)."""
    store_dir: PATH = "run/recordings"
    """Encrypted recordings (``<call id>-<leg>.rec``, mode 0600; the folder 0700)."""
    index: PATH = "run/recordings.sqlite3"
    """Recordings, transcripts (FTS5) and QA scores (SQLite)."""
    retention_days: float = Field(default=180.0, gt=0, le=3650)
    key_file: PATH = "run/secrets/recording.key"
    """The recording key (hex, created 0600 if missing); ``$HOTLINE_RECORDING_KEY`` wins."""
    settle_s: float = Field(default=1.0, ge=0.2, le=30)
    """A finished call's files are moved once untouched this long."""
    orphan_after_s: float = Field(default=600.0, ge=10, le=86_400)
    """Files of a call with no ended record are moved anyway once untouched this long."""
    transcribe: bool = True
    """Transcribe each channel after the move (background, one at a time, niced)."""


class RubricItem(_Model):
    id: ID
    name: NAME
    weight: float = Field(default=1.0, gt=0, le=100)
    kind: Literal["yesno", "scale5"] = "yesno"
    check: Literal["", "greeting", "repeat", "callback", "closing", "forbidden", "wait"] = ""
    """What the pre-filled scorecard proposes for this item (``""``: nothing)."""


class Qa(_Model):
    """Quality assurance: the scoring rubric and what the pre-filled scorecard looks for."""

    rubric: tuple[RubricItem, ...] = Field(
        default=(
            RubricItem(id="greeting", name="规范问候语", weight=2, check="greeting"),
            RubricItem(id="repeat", name="复述诉求", weight=2, check="repeat"),
            RubricItem(id="callback", name="核实回访号码", weight=2, check="callback"),
            RubricItem(id="closing", name="规范结束语", weight=1, check="closing"),
            RubricItem(id="forbidden", name="无服务禁语", weight=3, check="forbidden"),
            RubricItem(id="wait", name="等待时长合理", weight=1, check="wait"),
            RubricItem(id="attitude", name="服务态度", weight=3, kind="scale5"),
        ),
        min_length=1,
        max_length=50,
    )
    greetings: tuple[WORD, ...] = ("您好", "你好", "很高兴为您服务", "12345")
    """Whisper writes 您好 as 你好 and 12345 as 一二三四五 (bench/qa_agreement.py, dev calls)."""
    repeat_phrases: tuple[WORD, ...] = ("您反映的是", "您是说", "您的诉求是", "确认一下")
    callback_phrases: tuple[WORD, ...] = ("联系电话", "回访", "号码", "电话")
    closings: tuple[WORD, ...] = ("感谢您", "再见", "还有其他", "祝您")
    forbidden: tuple[WORD, ...] = (
        "不知道",
        "不归我们管",
        "自己去",
        "没办法",
        "烦不烦",
        "你听不懂吗",
    )
    wait_max_s: float = Field(default=60.0, gt=0, le=3600)
    """Queue wait above this fails the ``wait`` item."""

    @field_validator("rubric")
    @classmethod
    def _unique(cls, items: tuple[RubricItem, ...]) -> tuple[RubricItem, ...]:
        ids = [i.id for i in items]
        if len(set(ids)) != len(ids):
            raise ValueError("rubric item ids must be unique")
        return items


class Admin(_Model):
    """The config lifecycle (``admin/``): every applied version of this file, who applied it,
    when and why, in ``versions_db`` (SQLite, mode 0600: versions hold the secrets)."""

    versions_db: PATH = "run/config-versions.sqlite3"


class Notices(_Model):
    """Incident notices (第十三条, ``notices/``): set in the console, kept outside this file
    (``path``, SQLite 0600), so they take effect without an apply.  ``sounds_dir`` holds
    their audio and uploaded prompts; it must be (a link to) a directory inside Asterisk's
    hotline prompts (the stack makes the link)."""

    enabled: bool = True
    path: str = "run/notices.sqlite3"
    sounds_dir: str = "run/custom-sounds"
    max_upload_kb: int = Field(default=4096, ge=64, le=50 * 1024)
    """Largest prompt upload (wav/mp3/m4a) accepted."""


class HotlineInfo(_Model):
    name: NAME = "12345政务服务便民热线"
    number: Annotated[str, Field(pattern=r"^[0-9]{3,8}$")] = "12345"
    prompt_language: Annotated[str, Field(pattern=r"^[a-z]{2}$")] = "zh"


class HotlineConfig(_Model):
    hotline: HotlineInfo = HotlineInfo()
    sip: Sip = Sip()
    trunks: Trunks
    ami: Ami
    agi: Agi = Agi()
    redis: Redis = Redis()
    seats: tuple[Seat, ...] = Field(min_length=1, max_length=200)
    agents: tuple[Agent, ...] = Field(default=(), max_length=5000)
    menus: dict[ID, Menu] = Field(max_length=200)
    business_hours: BusinessHours = BusinessHours()
    emergency: Emergency = Emergency()
    caller_rules: CallerRules = CallerRules()
    city: City = City()
    speech: Speech = Speech()
    throttle: Throttle = Throttle()
    tickets: Tickets = Tickets()
    console: Console = Console()
    calls: Calls = Calls()
    kb: Kb = Kb()
    acd: Acd = Acd()
    agent_codes: AgentCodes = AgentCodes()
    supervisors: tuple[Supervisor, ...] = Field(default=(), max_length=500)
    supervise: Supervise = Supervise()
    recording: Recording = Recording()
    qa: Qa = Qa()
    admin: Admin = Admin()
    calendar: Calendar = Calendar()
    notices: Notices = Notices()

    @model_validator(mode="after")
    def _cross_check(self) -> HotlineConfig:
        problems = self.cross_problems()
        if problems:
            raise ValueError("; ".join(f"{where}: {msg}" for where, msg in problems))
        return self

    def cross_problems(self) -> list[tuple[str, str]]:
        """Problems that span sections, as ``(dotted.field, message)``."""
        out: list[tuple[str, str]] = []
        seat_ids = [s.id for s in self.seats]
        for i, seat_id in enumerate(seat_ids):
            if seat_ids.index(seat_id) != i:
                out.append((f"seats.{i}.id", f"duplicate seat id {seat_id!r}"))
        if sum(s.kind == "general" for s in self.seats) != 1:
            out.append(("seats", "exactly one seat must be kind 'general' (综合席)"))
        agent_ids = [a.id for a in self.agents]
        for i, agent in enumerate(self.agents):
            if agent_ids.index(agent.id) != i:
                out.append((f"agents.{i}.id", f"duplicate agent id {agent.id!r}"))
            for seat in agent.seats:
                if seat not in seat_ids:
                    out.append((f"agents.{i}.seats", f"unknown seat {seat!r}"))
        sup_ids = [s.id for s in self.supervisors]
        for i, sup in enumerate(self.supervisors):
            if sup_ids.index(sup.id) != i:
                out.append((f"supervisors.{i}.id", f"duplicate supervisor id {sup.id!r}"))
            if (sup.host, sup.port) in {(a.host, a.port) for a in self.agents}:
                out.append((f"supervisors.{i}.port", "an agent's phone has this address"))
        if "main" not in self.menus:
            out.append(("menus", "a menu named 'main' is required"))
        for name, menu in self.menus.items():
            for digit, target in menu.options.items():
                out += self._target_problems(f"menus.{name}.options.{digit}", target)
            out += self._target_problems(f"menus.{name}.on_exhausted", menu.on_exhausted)
        out += self._target_problems(
            "business_hours.closed_target", self.business_hours.closed_target
        )
        for seat_id, hours in self.calendar.seats.items():
            where = f"calendar.seats.{seat_id}"
            if seat_id not in seat_ids:
                out.append((where, f"unknown seat {seat_id!r}"))
            target = hours.closed_target
            if target.kind not in ("seat", "speech") or target == Target(
                kind="seat", value=seat_id
            ):
                out.append((f"{where}.closed_target", "seat:<another seat> or speech:message"))
            out += self._target_problems(f"{where}.closed_target", target)
        for i, seat in enumerate(self.kb.self_service):
            if seat not in seat_ids:
                out.append((f"kb.self_service.{i}", f"unknown seat {seat!r}"))
        out += self._acd_problems(seat_ids)
        if self.emergency.agent_feature_code in self.agent_codes.actions():
            code = self.emergency.agent_feature_code
            out.append(("agent_codes", f"{code} is the emergency feature code"))
        return out

    def _acd_problems(self, seat_ids: list[str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for seat in self.acd.skills:
            if seat not in seat_ids:
                out.append((f"acd.skills.{seat}", f"unknown seat {seat!r}"))
        for i, agent in enumerate(self.agents):
            for seat in agent.levels:
                if seat not in agent.seats:
                    out.append((f"agents.{i}.levels.{seat}", f"{seat!r} is not in its seats"))
        main = self.menus.get("main")
        for i, rule in enumerate(self.acd.priority_rules):
            where = f"acd.priority_rules.{i}.key"
            if rule.when == "elderly" and main is not None and rule.key in main.options:
                out.append((where, f"key {rule.key} already leads somewhere in menus.main"))
            if rule.when == "new_facts" and rule.key == "1":
                out.append((where, "key 1 of the progress offer plays the progress"))
        general = next((s.id for s in self.seats if s.kind == "general"), None)
        if general in self.acd.skills and self.acd.skills[general].general_tier is None:
            out.append((f"acd.skills.{general}", "the general seat needs a 'general' step"))
        if self.acd.callback.enabled and self.acd.mode != "router":
            out.append(("acd.callback.enabled", "callbacks need acd.mode: router"))
        return out

    def acd_settings(self) -> AcdSettings:
        """The ACD policy: one skill per seat (the general seat: its agents at once)."""
        acd, skills = self.acd, {}
        for seat in self.seats:
            if seat.id in acd.skills:
                skills[seat.id] = acd.skills[seat.id]
            elif seat.kind == "general":
                skills[seat.id] = SkillPolicy(
                    service_level_s=acd.service_level_s, steps=(Step(level=GENERAL, after_s=0),)
                )
            else:
                skills[seat.id] = SkillPolicy(
                    service_level_s=acd.service_level_s, steps=acd.specialist_steps
                )
        return AcdSettings(
            skills=skills,
            priority_boost=acd.priority_boost,
            max_priority=acd.max_priority,
            wrapup_s=acd.wrapup_s,
            ring_timeout_s=acd.ring_timeout_s,
            reentry_s=acd.reentry_s,
            fallback_skill=self.general_seat.id,
            callback=CallbackPolicy(
                ring_s=acd.callback.ring_s + CALLBACK_SETUP_S,
                retries=acd.callback.retries,
                retry_after_s=acd.callback.retry_after_s,
            ),
        )

    def acd_profiles(self) -> dict[str, AgentProfile]:
        """Each agent's skills: its specialist seats at their ``levels`` (default 1);
        the general seat makes it a 综合席 agent."""
        general = self.general_seat.id
        return {
            a.id: AgentProfile(
                skills={s: a.levels.get(s, 1) for s in a.seats if s != general},
                general=general in a.seats,
            )
            for a in self.agents
        }

    def _target_problems(self, where: str, target: Target) -> list[tuple[str, str]]:
        if target.kind == "seat" and target.value not in {s.id for s in self.seats}:
            return [(where, f"unknown seat {target.value!r}")]
        if target.kind == "menu" and target.value not in self.menus:
            return [(where, f"unknown menu {target.value!r}")]
        if target.kind == "emergency" and target.value not in self.emergency.lines:
            return [(where, f"unknown emergency line {target.value!r}")]
        return []

    @property
    def general_seat(self) -> Seat:
        return next(s for s in self.seats if s.kind == "general")

    def seat(self, seat_id: str) -> Seat:
        return next(s for s in self.seats if s.id == seat_id)

    @property
    def console_port(self) -> int:
        """Where the agent console listens (``console.port``, else the FastAGI port + 2)."""
        return self.console.port or self.agi.port + 2


class ConfigError(ValueError):
    """A config file that cannot be used; ``problems`` are ``(field, line, message)``."""

    def __init__(self, path: str, problems: list[tuple[str, int | None, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = [
            f"{path}:{line if line is not None else '?'}: {field}: {message}"
            for field, line, message in problems
        ]
        super().__init__("invalid hotline config\n" + "\n".join(lines))


def _load_with_lines(text: str, path: str) -> tuple[object, dict[tuple[str, ...], int]]:
    """The document (through :mod:`hotline.safe_yaml`'s limits) and the line of every
    mapping key and sequence item."""
    node, loader = safe_yaml.compose(text, path)
    try:
        if node is None:
            return None, {}
        lines: dict[tuple[str, ...], int] = {}

        def walk(n: yaml.Node, path: tuple[str, ...]) -> None:
            lines.setdefault(path, n.start_mark.line + 1)
            if isinstance(n, yaml.MappingNode):
                for key, value in n.value:
                    sub = (*path, str(key.value))
                    lines[sub] = key.start_mark.line + 1
                    walk(value, sub)
            elif isinstance(n, yaml.SequenceNode):
                for i, item in enumerate(n.value):
                    walk(item, (*path, str(i)))

        walk(node, ())
        return loader.construct_document(node), lines
    finally:
        loader.dispose()


def _line_for(loc: tuple[str | int, ...], lines: dict[tuple[str, ...], int]) -> int | None:
    path = tuple(str(p) for p in loc)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def field_line(text: str, field: str) -> int | None:
    """The line of ``field`` (dotted, ``menus.main.options.2``) in config text, or of its
    nearest enclosing key; ``None`` when the text does not parse."""
    try:
        _, lines = _load_with_lines(text, "<config>")
    except yaml.YAMLError:
        return None
    return _line_for(tuple(field.split(".")), lines)


def parse_config(text: str, path: str = "<config>") -> HotlineConfig:
    """Validate config text; raise :class:`ConfigError` naming each field and line at fault."""
    try:
        data, lines = _load_with_lines(text, path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(path, [("<yaml>", line, str(getattr(exc, "problem", exc)))]) from None
    if not isinstance(data, dict):
        raise ConfigError(path, [("<root>", 1, "the file must be a YAML mapping")])
    try:
        return HotlineConfig.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[str, int | None, str]] = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"] if not str(p).startswith("function-"))
            if not loc and err["type"] == "value_error":
                # Cross-section problems arrive as "a.b.c: message; d.e: message".
                text = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
                for part in text.split("; "):
                    where, _, msg = part.partition(": ")
                    sub = tuple(where.split("."))
                    problems.append((where, _line_for(sub, lines), msg))
                continue
            field = ".".join(loc) or "<root>"
            problems.append((field, _line_for(loc, lines), err["msg"]))
        raise ConfigError(path, problems) from None


def load_config(path: str | Path) -> HotlineConfig:
    """Read and validate a hotline config file."""
    p = Path(path)
    try:
        text = safe_yaml.read_text(p)
    except OSError as exc:
        raise ConfigError(str(p), [("<file>", None, exc.strerror or str(exc))]) from None
    except safe_yaml.YamlRefused as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise ConfigError(str(p), [("<file>", line, str(exc.problem))]) from None
    return parse_config(text, str(p))
