"""The ``sec`` fixture: the stack the security scenarios attack (see security_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from hotline import safe_yaml
from hotline.config import load_config
from testphones.sipp import PhoneSet, offset_config, start_phone

from .security_helpers import (
    INSTANCE,
    OFFSET,
    REPO,
    RTP_TIMEOUT_S,
    SILENT_AGENT,
    SecStack,
    why_not_runnable,
)


@pytest.fixture(scope="session")
def sec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecStack]:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    from runtime.procs import StackError
    from runtime.stack import Stack

    tmp = tmp_path_factory.mktemp("hotline-sec")
    base = safe_yaml.load_file(REPO / "hotline.yaml")
    data = offset_config(base, OFFSET, tmp / "data")
    data["menus"]["main"]["timeout_s"] = 3
    data["menus"]["main"]["retries"] = 2
    data.setdefault("speech", {})["mode"] = "off"  # keypad scenarios: nobody is asked to speak
    data["sip"]["rtp_timeout_s"] = RTP_TIMEOUT_S
    data["sip"]["rtp_timeout_hold_s"] = RTP_TIMEOUT_S
    data["throttle"]["key_file"] = str(tmp / "data" / "secrets" / "pii.key")
    config_path = tmp / f"{INSTANCE}.yaml"
    config_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    config = load_config(config_path)
    stack = Stack(config_path, instance=INSTANCE, run_dir=tmp / "run")
    phones = PhoneSet()
    try:
        try:
            stack.up(require_fastagi=True, speech=False)
        except StackError as exc:
            pytest.fail(f"the security stack did not come up: {exc}", pytrace=False)
        trunk = config.trunks.emergency
        for role, host, port in [
            *((a.endpoint, a.host, a.port) for a in config.agents if a.id != SILENT_AGENT),
            ("emergency", trunk.host, trunk.port),
        ]:
            phones.phones[role] = start_phone(role, host, port, tmp / "phones")
        yield SecStack(config, stack, phones, tmp)
    finally:
        phones.stop()
        stack.down()
