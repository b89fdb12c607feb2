"""Caller-number privacy, throttle config, and the throttle's fail-open path (with a fake
Redis client; the real-Redis scenarios are in tests/integration/test_throttle_redis.py)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from callers.throttle import Throttle
from hotline.config import ConfigError, load_config, parse_config
from hotline.config import Redis as RedisSettings
from hotline.config import Throttle as ThrottleSettings
from hotline.privacy import CallerKey, is_withheld, load_secret, mask, normalize

REPO = Path(__file__).resolve().parents[2]
KEY = CallerKey(b"unit-test-secret-0123456789")


# ---- privacy ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "written",
    ["13800001111", "+8613800001111", "+86 138-0000-1111", "008613800001111", "8613800001111"],
)
def test_one_mobile_caller_however_the_carrier_writes_the_number(written: str) -> None:
    assert normalize(written) == "13800001111"
    assert KEY.hash(normalize(written) or "") == KEY.hash("13800001111")


def test_landline_with_country_code_is_the_same_caller_as_with_area_code() -> None:
    assert normalize("+86 571 8700 1234") == normalize("0571-87001234") == "057187001234"
    assert normalize("+86 10 1234 5678") == "01012345678"


@pytest.mark.parametrize(
    "withheld", [None, "", "  ", "anonymous", "Anonymous", "unknown", "Restricted", "private",
                 "abc123", "12", "0000", "１３８００００１１１１"],
)  # fmt: skip
def test_withheld_numbers_are_no_one(withheld: str | None) -> None:
    assert is_withheld(withheld)
    assert mask(withheld) == "withheld"


def test_masked_number_keeps_prefix_and_last_four() -> None:
    assert mask("13800001111") == "138****1111"
    assert mask("0571-87001234") == "057*****1234"


def test_hashes_depend_on_the_secret_and_numbers_decrypt_back() -> None:
    other = CallerKey(b"another-secret-0123456789")
    assert KEY.hash("13800001111") != other.hash("13800001111")
    assert KEY.hash("13800001111") != KEY.hash("13800001112")
    token = KEY.encrypt("13800001111")
    assert "13800001111" not in token
    assert KEY.decrypt(token) == "13800001111"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        other.decrypt(token)


def test_secret_file_is_created_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOTLINE_PII_KEY", raising=False)
    path = tmp_path / "secrets" / "pii.key"
    first = load_secret(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_secret(path) == first
    assert len(first) == 32


def test_bad_secrets_are_refused_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_PII_KEY", "not-hex")
    with pytest.raises(ValueError, match="HOTLINE_PII_KEY"):
        load_secret(None)
    monkeypatch.setenv("HOTLINE_PII_KEY", "abcd")
    with pytest.raises(ValueError, match="16 bytes"):
        load_secret(None)
    monkeypatch.delenv("HOTLINE_PII_KEY")
    bad = tmp_path / "pii.key"
    bad.write_text("zz\n")
    with pytest.raises(ValueError, match="hex"):
        load_secret(bad)


# ---- config -------------------------------------------------------------------------------
def _config_with(throttle_yaml: str) -> str:
    return (REPO / "hotline.yaml").read_text(encoding="utf-8").split("\nthrottle:")[0] + (
        "\nthrottle:\n" + throttle_yaml
    )


def test_example_config_has_a_throttle_and_tickets_section() -> None:
    cfg = load_config(REPO / "hotline.yaml")
    assert cfg.throttle.warning.calls_per_hour < cfg.throttle.suspension.calls_per_hour
    assert cfg.tickets.backend == "sqlite"


def test_suspension_limits_below_warning_limits_are_refused_with_the_line() -> None:
    text = _config_with(
        "  warning: {calls_per_hour: 5, calls_per_day: 12, minutes_per_day: 60,"
        " no_demand_per_day: 4, harassment_flags: 1}\n"
        "  suspension: {calls_per_hour: 3, calls_per_day: 20, minutes_per_day: 120,"
        " no_demand_per_day: 8, harassment_flags: 2}\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, "h.yaml")
    ((field, line, message),) = err.value.problems
    assert field == "throttle"
    assert "calls_per_hour" in message
    assert line == text.splitlines().index("throttle:") + 1


def test_allow_list_accepts_numbers_only() -> None:
    ok = parse_config(_config_with('  allow_list: ["0571-87001234", "+8613800001111"]\n'))
    assert len(ok.throttle.allow_list) == 2
    with pytest.raises(ConfigError, match="allow_list"):
        parse_config(_config_with('  allow_list: ["社区网格员"]\n'))


# ---- fail open (fake Redis client) --------------------------------------------------------
class FakeRedis:
    """Stands in for redis.asyncio.Redis: every script call fails or hangs, and is counted."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.calls = 0

    def register_script(self, _: str) -> Any:
        async def run(**_: Any) -> Any:
            self.calls += 1
            if self.behaviour == "refuse":
                raise RedisConnectionError("Connection refused")
            await asyncio.sleep(10)

        return run

    async def aclose(self) -> None:
        pass


def throttle_with(fake: FakeRedis, **settings: Any) -> Throttle:
    s = ThrottleSettings(allow_list=("13900009999",), failure_cooldown_ms=300, **settings)
    return Throttle(s, RedisSettings(timeout_ms=50), KEY, client=fake)  # type: ignore[arg-type]


async def test_redis_refusing_connections_lets_the_caller_through() -> None:
    fake = FakeRedis("refuse")
    t = throttle_with(fake)
    d = await t.decide("13800001111", "call-1")
    assert (d.stage, d.failed_open, d.flag) == ("normal", True, "normal")
    assert await t.record_call_start("13800001111", "call-1") is False
    assert await t.record_call_end("13800001111", "call-1", 30, had_demand=False) is False
    assert fake.calls == 1  # the cool-down spares Redis after the first failure
    assert t.failures == 1


async def test_hanging_redis_is_given_up_after_the_timeout() -> None:
    fake = FakeRedis("hang")
    t = throttle_with(fake)
    start = time.perf_counter()
    d = await t.decide("13800001111")
    assert time.perf_counter() - start < 0.5
    assert d.failed_open
    await asyncio.sleep(0.35)  # cool-down over: Redis is tried again
    await t.decide("13800001111")
    assert fake.calls == 2


async def test_allow_listed_withheld_and_disabled_never_ask_redis() -> None:
    fake = FakeRedis("refuse")
    t = throttle_with(fake)
    assert (await t.decide("+86 139 0000 9999")).reasons == ("allow-listed",)
    assert (await t.decide("anonymous")).reasons == ("withheld",)
    assert await t.record_call_start("", "call-2") is False
    off = throttle_with(fake, enabled=False)
    assert (await off.decide("13800001111")).reasons == ("disabled",)
    assert fake.calls == 0


async def test_bad_input_from_agents_and_supervisors_is_refused() -> None:
    t = throttle_with(FakeRedis("refuse"))
    with pytest.raises(ValueError):
        await t.flag_harassment("anonymous", by="agent1008", note="骂人")
    with pytest.raises(ValueError):
        await t.flag_harassment("13800001111", by="", note="骂人")
    with pytest.raises(ValueError):
        await t.record_call_end("13800001111", "call-3", -5, had_demand=True)
    with pytest.raises(ValueError):
        await t.audit("unknown")


def test_from_config_reads_or_creates_the_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOTLINE_PII_KEY", raising=False)
    cfg = load_config(REPO / "hotline.yaml")
    key_file = tmp_path / "pii.key"
    cfg = cfg.model_copy(
        update={"throttle": cfg.throttle.model_copy(update={"key_file": str(key_file)})}
    )
    Throttle.from_config(cfg)
    assert key_file.exists()
    assert os.stat(key_file).st_mode & 0o777 == 0o600
